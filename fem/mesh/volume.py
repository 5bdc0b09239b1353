"""Volume meshes as plain arrays: the :class:`VolumeMesh` type, placing a mesh in the
specimen frame, and the checks a mesh must pass before it is solved."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fem.errors import BonefemError
from fem.mesh.distribute import CELL_TYPES


@dataclass
class VolumeMesh:
    """A volume mesh as plain arrays, on the process that read or built it.

    points : (n, 3) float64, mm
    cells : (m, 4) linear tetrahedra or (m, 8) hexahedra in DOLFINx's vertex order, int64
    source : where it came from (file name or model), for messages and result.json
    cell_data : {name: (m,) float64} per-cell arrays (e.g. a modulus in MPa)
    """

    points: np.ndarray
    cells: np.ndarray
    source: str = "mesh"
    cell_data: dict = field(default_factory=dict)

    @property
    def cell_type(self) -> str:
        return CELL_TYPES[self.cells.shape[1]]


# Local vertex indices of the faces of each cell (DOLFINx vertex order).
_FACES = {4: [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]],
          8: [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 4, 5], [2, 3, 6, 7], [0, 2, 4, 6], [1, 3, 5, 7]]}


def compact(points: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop points that no cell uses and renumber the cells; returns (points, cells)."""
    cells = np.asarray(cells, dtype=np.int64)
    used, inverse = np.unique(cells.ravel(), return_inverse=True)
    return np.ascontiguousarray(points[used], dtype=np.float64), inverse.reshape(cells.shape)


def tet_volumes(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Volume of each tetrahedron, (m,) mm^3 (unsigned)."""
    d = points[tets[:, 1:]] - points[tets[:, :1]]
    return np.abs(np.linalg.det(d)) / 6.0


def face_components(cells: np.ndarray) -> tuple[int, np.ndarray]:
    """Pieces of a mesh whose cells share faces: ``(count, label per cell)``.

    Cells that touch only along an edge or at a vertex are separate pieces, as in the
    voxel path's connectivity filter: such a hinge carries no load in the model.
    """
    cells = np.asarray(cells, dtype=np.int64)
    m, nv = cells.shape
    local = np.array(_FACES[nv])
    faces = np.sort(cells[:, local], axis=2).reshape(-1, local.shape[1])
    owner = np.repeat(np.arange(m), len(local))
    order = np.lexsort(faces.T[::-1])
    faces, owner = faces[order], owner[order]
    same = np.all(faces[1:] == faces[:-1], axis=1)
    a, b = owner[:-1][same], owner[1:][same]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(m, m))
    return connected_components(graph, directed=False)


def boundary_faces_on_plane(points, cells, z, tol) -> int:
    """Number of cell faces lying in the plane z (within tol, mm).

    In a conforming mesh such a face on the bounding box is a boundary face, and the
    load case needs some at z = 0 and at z = top: a mesh that only touches a loaded
    plane at a point or an edge has nothing to push on.
    """
    cells = np.asarray(cells, dtype=np.int64)
    on = np.abs(points[:, 2] - z) <= tol
    local = np.array(_FACES[cells.shape[1]])
    return int(np.all(on[cells[:, local]], axis=2).sum())


def check_mesh(points, cells, height, where="mesh"):
    """Raise BonefemError unless the mesh is one face-connected piece with faces on both
    loaded planes z = 0 and z = height (mm)."""
    n, _ = face_components(cells)
    if n > 1:
        raise BonefemError(f"{where}: the mesh falls apart into {n} pieces that share no face "
                           "(a floating piece makes the stiffness matrix singular; if the pieces "
                           "should be joined, merge coincident nodes)")
    tol = 1e-6 * height
    for z, name in ((0.0, "bottom (z = 0)"), (height, f"top (z = {height:g} mm)")):
        if boundary_faces_on_plane(points, cells, z, tol) == 0:
            raise BonefemError(f"{where}: no element face lies on the {name} plane, so there "
                               "is nothing for the platen to load")


def place(points: np.ndarray, size=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put a mesh in the specimen frame; returns ``(points, origin, extent)`` in mm.

    size : None: shift the mesh so its bounding box starts at 0 (``origin`` is the
        old corner) and use the bounding box as the specimen; a number or (3,): the
        mesh already lies in [0, size] (a strut model's cube), whose faces are the
        specimen's even where the mesh does not reach them (E_app = F / (Lx Ly) / strain).
    """
    points = np.asarray(points, dtype=np.float64)
    if size is None:
        origin = points.min(axis=0)
        points = points - origin
        return points, origin, points.max(axis=0)
    extent = np.broadcast_to(np.asarray(size, dtype=np.float64), (3,)).copy()
    tol = 1e-6 * extent.max()
    if np.any(points.min(axis=0) < -tol) or np.any(points.max(axis=0) > extent + tol):
        raise BonefemError(f"mesh: points outside the specimen box [0, {extent.tolist()}] mm")
    return points, np.zeros(3), extent
