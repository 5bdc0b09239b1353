"""Load cases along z with the field's names (as in Faim).

``uniaxial``: frictionless platens. Bottom face u_z = 0, top face u_z = strain * height;
x and y are free on both faces except for minimal pins (u_x, u_y at one bottom node,
u_y at a second bottom node with a different x) that remove rigid-body motion and
carry no load.

``axial``: bonded platens. Bottom face fully fixed; top face u_x = u_y = 0, u_z prescribed.
"""

from __future__ import annotations

import numpy as np
from petsc4py import PETSc

LOAD_CASES = ("uniaxial", "axial")


def pin_points(points: np.ndarray) -> np.ndarray:
    """Two bottom-face points for the uniaxial pins, shape (2, 3), mm.

    A: the bottom point with the smallest x (then y); B: the one with the largest x
    (then smallest y). Chosen from coordinates so every partitioning picks the same.
    """
    bottom = points[np.isclose(points[:, 2], points[:, 2].min())]
    a = bottom[np.lexsort((bottom[:, 1], bottom[:, 0]))[0]]
    b = bottom[np.lexsort((bottom[:, 1], -bottom[:, 0]))[0]]
    return np.array([a, b])


def _vertices_at(msh, point, tol):
    import dolfinx.mesh

    return dolfinx.mesh.locate_entities(
        msh, 0, lambda x: np.linalg.norm(x.T - point, axis=1) < tol)


def boundary_conditions(V, test: str, strain: float, height: float, pins=None):
    """Dirichlet conditions for a load case on a specimen spanning z in [0, height] mm.

    Returns ``(bcs, top_z_dofs)``: the DirichletBC list and the local (unrolled) indices
    of the z-displacement DOFs on the top face, where the reaction force is summed.
    """
    import dolfinx.fem
    import dolfinx.mesh

    if test not in LOAD_CASES:
        raise ValueError(f"unknown load case {test!r}; expected one of {LOAD_CASES}")
    msh = V.mesh
    tol = 1e-6 * height
    # The faces' vertices, not their facets: locating boundary facets builds every facet
    # of the mesh (about 50 B per DOF on a voxel mesh, held as long as the mesh), which
    # nothing else in a solve uses; vertex -> cell connectivity (4 B per cell corner) is
    # all this needs. On a voxel mesh spanning z in [0, height] a vertex on either plane
    # lies on a face of its cell there, so the DOFs are the same (tests/test_solver_memory.py);
    # on a tetrahedral mesh a vertex that touches a plane without a face there is now
    # held too (a point touching the platen).
    msh.topology.create_connectivity(0, msh.topology.dim)
    bottom = dolfinx.mesh.locate_entities(msh, 0, lambda x: np.abs(x[2]) < tol)
    top = dolfinx.mesh.locate_entities(msh, 0, lambda x: np.abs(x[2] - height) < tol)
    zero, uz = PETSc.ScalarType(0.0), PETSc.ScalarType(strain * height)

    # One subspace per component, shared by its conditions: each V.sub() copies the
    # dofmap (4 B per cell corner) and every condition keeps its subspace alive.
    subs = {}

    def fix(comp, vertices, value):
        sub = subs.setdefault(comp, V.sub(comp))
        dofs = dolfinx.fem.locate_dofs_topological(sub, 0, vertices)
        return dolfinx.fem.dirichletbc(value, dofs, sub), dofs

    bc_bot, _ = fix(2, bottom, zero)
    bc_top, top_dofs = fix(2, top, uz)
    bcs = [bc_bot, bc_top]
    if test == "axial":
        for c in (0, 1):
            bcs += [fix(c, bottom, zero)[0], fix(c, top, zero)[0]]
    else:
        a, b = pins
        va, vb = _vertices_at(msh, a, tol), _vertices_at(msh, b, tol)
        bcs += [fix(0, va, zero)[0], fix(1, va, zero)[0], fix(1, vb, zero)[0]]
    # Unrolled z-DOF indices (block size 3) of the owned top-face nodes.
    n_owned = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
    top_dofs = np.asarray(top_dofs)
    return bcs, top_dofs[top_dofs < n_owned]
