"""A mesh given as plain arrays on rank 0 -> distributed DOLFINx mesh.

The mesh is handed to DOLFINx in memory, which partitions and distributes it; no file
is written. Cells are linear tetrahedra or hexahedra; DOLFINx orders hexahedron
vertices in tensor-product order, (0,0,0) (1,0,0) (0,1,0) (1,1,0) (0,0,1) (1,0,1)
(0,1,1) (1,1,1), not in VTK order.
"""

from __future__ import annotations

import numpy as np

CELL_TYPES = {4: "tetrahedron", 8: "hexahedron"}


def create_dolfinx_mesh(comm, points: np.ndarray | None, cells: np.ndarray | None):
    """Distribute a mesh given on rank 0 (None elsewhere) as a DOLFINx mesh.

    points : (n, 3) float64, mm
    cells : (m, 4) linear tetrahedra or (m, 8) hexahedra in DOLFINx's tensor-product
        vertex order; int64
    Returns ``(mesh, original)``; ``original[c]`` is the row of ``cells`` of local cell
    ``c``: use it to map per-cell input data to the local cells.
    """
    import basix.ufl
    import dolfinx.mesh
    import ufl

    nv = comm.bcast(None if comm.rank != 0 else int(cells.shape[1]), root=0)
    if comm.rank != 0:
        cells, points = np.empty((0, nv), np.int64), np.empty((0, 3), np.float64)
    domain = ufl.Mesh(basix.ufl.element("Lagrange", CELL_TYPES[nv], 1, shape=(3,)))
    msh = dolfinx.mesh.create_mesh(comm, np.asarray(cells, np.int64),
                                   np.asarray(points, np.float64), domain)
    return msh, np.asarray(msh.topology.original_cell_index, dtype=np.int64)
