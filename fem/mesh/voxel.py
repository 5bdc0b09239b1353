"""Voxel image -> hexahedral mesh as plain arrays (one Q1 element per bone voxel).

Built on rank 0; fem.mesh.distribute.create_dolfinx_mesh hands it to DOLFINx. Vertex
order of each hexahedron: DOLFINx's tensor-product order (HEX_CORNERS), not VTK's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Corner offsets (di, dj, dk) in DOLFINx's tensor-product order.
HEX_CORNERS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0],
                        [0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=np.int64)


@dataclass
class VoxelGrid:
    """Plain-array hexahedral mesh of the bone voxels of an image.

    cells : (n_cells, 8) int64, vertex indices in tensor-product order
    points : (n_points, 3) float64, mm
    voxels : (n_cells,) int64, flat index (C order) of each cell's voxel in the image
    shape : image shape (nx, ny, nz)
    spacing : voxel edge (dx, dy, dz), mm
    """

    cells: np.ndarray
    points: np.ndarray
    voxels: np.ndarray
    shape: tuple
    spacing: tuple

    @property
    def extent(self) -> np.ndarray:
        """Edge lengths of the image's bounding box, mm."""
        return np.asarray(self.shape) * np.asarray(self.spacing)


# Grid corners per chunk of x-rows built at once (see voxel_grid): about 2 M corners keep
# the chunk's temporaries near 100 MB whatever the image size.
CHUNK_CORNERS = 1 << 21


def used_corners(mask: np.ndarray) -> np.ndarray:
    """(nx+1, ny+1, nz+1) bool: the grid corners touched by at least one True voxel of
    ``mask`` (the nodes of its voxel mesh), one byte per corner."""
    nx, ny, nz = mask.shape
    used = np.zeros((nx + 1, ny + 1, nz + 1), dtype=bool)
    for di, dj, dk in np.ndindex(2, 2, 2):
        used[di:di + nx, dj:dj + ny, dk:dk + nz] |= mask
    return used


def voxel_grid(mask: np.ndarray, spacing, chunk_corners: int | None = None) -> VoxelGrid:
    """Hexahedra for every True voxel of ``mask``; only used corners become points.

    Nodes are the used grid corners numbered in C order of their (i, j, k) and cells
    follow the voxels in C order. Built in chunks of x-rows (the slowest axis, so each
    chunk is a contiguous run of both numberings) of at most ``chunk_corners`` grid
    corners: beyond the result (cells 64 B and voxels 8 B per bone voxel, points 24 B per
    node) only the used-corner map (1 B per grid corner) and one chunk's temporaries are
    held (80-140 B per bone voxel in all, against 650 B for a build in one piece). The
    result does not depend on the chunk size (None: :data:`CHUNK_CORNERS`).
    """
    chunk_corners = CHUNK_CORNERS if chunk_corners is None else int(chunk_corners)
    mask = np.asarray(mask, dtype=bool)
    nx, ny, nz = mask.shape
    used = used_corners(mask)
    # first node id of each corner row i: the used corners of the rows before it
    row_start = np.zeros(nx + 2, dtype=np.int64)
    np.cumsum(np.count_nonzero(used.reshape(nx + 1, -1), axis=1), out=row_start[1:])
    cell_start = np.zeros(nx + 1, dtype=np.int64)
    np.cumsum(np.count_nonzero(mask.reshape(nx, -1), axis=1), out=cell_start[1:])
    cells = np.empty((cell_start[-1], 8), dtype=np.int64)
    voxels = np.empty(cell_start[-1], dtype=np.int64)
    points = np.empty((row_start[-1], 3), dtype=np.float64)
    step = max(1, chunk_corners // ((ny + 1) * (nz + 1)))
    for i0 in range(0, nx + 1, step):
        i1 = min(i0 + step, nx + 1)                 # corner rows i0..i1-1, cell rows up to i1-1
        node = np.nonzero(used[i0:i1])
        rows = slice(row_start[i0], row_start[i1])
        for axis, index in enumerate(node):
            points[rows, axis] = index + (i0 if axis == 0 else 0)
        del node
        c1 = min(i1, nx)
        if c1 <= i0:
            continue
        # node id of every corner in rows i0..c1 (the cells' top corners lie in row c1)
        ids = np.cumsum(used[i0:c1 + 1], axis=None, dtype=np.int64).reshape(c1 + 1 - i0, ny + 1, nz + 1)
        ids += row_start[i0] - 1
        i, j, k = np.nonzero(mask[i0:c1])
        out = slice(cell_start[i0], cell_start[c1])
        voxels[out] = ((i + i0) * ny + j) * nz + k
        for q, (di, dj, dk) in enumerate(HEX_CORNERS):
            cells[out, q] = ids[i + di, j + dj, k + dk]
        del ids, i, j, k
    points *= np.asarray(spacing, dtype=np.float64)
    return VoxelGrid(cells, points, voxels, mask.shape, tuple(float(s) for s in spacing))
