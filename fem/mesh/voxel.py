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


def voxel_grid(mask: np.ndarray, spacing) -> VoxelGrid:
    """Hexahedra for every True voxel of ``mask``; only used corners become points."""
    mask = np.asarray(mask, dtype=bool)
    nx, ny, nz = mask.shape
    ijk = np.argwhere(mask)  # C order: matches np.flatnonzero(mask)
    voxels = np.ravel_multi_index(ijk.T, mask.shape)
    corners = ijk[:, None, :] + HEX_CORNERS[None, :, :]          # (n, 8, 3)
    corner_ids = np.ravel_multi_index(corners.reshape(-1, 3).T, (nx + 1, ny + 1, nz + 1))
    used, cells = np.unique(corner_ids, return_inverse=True)
    cells = cells.reshape(-1, 8).astype(np.int64)
    points = np.column_stack(np.unravel_index(used, (nx + 1, ny + 1, nz + 1))).astype(np.float64)
    points *= np.asarray(spacing, dtype=np.float64)
    return VoxelGrid(cells, points, voxels, mask.shape, tuple(float(s) for s in spacing))
