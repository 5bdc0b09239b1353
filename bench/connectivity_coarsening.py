"""Measure connectivity-aware coarsening against plain trilinear coarsening (serial prototype).

    ./bonefem exec python3 bench/connectivity_coarsening.py ,first,all bench/out/real/std-k3.npz

The first argument lists the variants: "" plain trilinear, "first" connectivity-aware
on the first coarsening only, "all" on every level.

A known weakness of geometric multigrid on porous voxel models: a coarse node's support
(the 2 x 2 x 2 coarse cells around it) can hold pieces of bone that do not touch inside
it, and one trilinear coarse node then couples them. The remedy measured here gives every
coarse node one copy per connected piece of the (finer level's) elements in its support
(elements connected through shared nodes), and every fine node interpolates from the
copies of the pieces it belongs to. Both hierarchies are assembled here (SciPy Galerkin
products P^T A P, PETSc PCMG with the matrix-free solver's cycle options: W-cycle, 2
Chebyshev/Jacobi sweeps, direct coarsest solve), so the comparison isolates the coarse
spaces; it is a prototype for choosing, not the production solver (fem.solve.multigrid).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORNERS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)])


def coarsen(cells, cell_ijk, node_ijk, aware: bool):
    """One coarsening step.

    cells (n, 8) node indices of the level's box elements; cell_ijk (n, 3) their lowest
    lattice corners; node_ijk (N, 3) node lattice coordinates. Returns (P, coarse_cells,
    coarse_cell_ijk, coarse_node_ijk) with P (N, M) the nodal interpolation.
    """
    from scipy.sparse.csgraph import connected_components

    n = len(cells)
    C = cell_ijk >> 1                                                   # coarse cell per element
    L = C[:, None, :] + CORNERS[None]                                   # (n, 8, 3) coarse corners
    dims = L.reshape(-1, 3).max(axis=0) + 1
    lid = (L[..., 2] * dims[1] + L[..., 1]) * dims[0] + L[..., 0]       # (n, 8) lattice ids
    if aware:
        # vertex (e, a): element e seen from coarse corner a of its coarse cell. Elements
        # sharing a fine node n and the same coarse corner are connected.
        key_node = np.repeat(cells, 8, axis=1).ravel()                  # (n*64,) fine node
        key_corner = np.tile(lid, (1, 8)).ravel()                       # coarse corner lattice id
        vertex = np.tile(np.arange(8), (n, 8)).ravel() + 8 * np.repeat(np.arange(n), 64)
        order = np.lexsort((key_corner, key_node))
        kn, kc, vx = key_node[order], key_corner[order], vertex[order]
        same = (kn[1:] == kn[:-1]) & (kc[1:] == kc[:-1])
        g = sp.coo_matrix((np.ones(same.sum()), (vx[:-1][same], vx[1:][same])), shape=(8 * n, 8 * n))
        _, label = connected_components(g, directed=False)
        label = label.reshape(n, 8)
    else:
        label = lid
    uniq, copy = np.unique(label, return_inverse=True)
    copy = copy.reshape(n, 8)
    coarse_node_ijk = np.zeros((len(uniq), 3), dtype=np.int64)
    coarse_node_ijk[copy.ravel()] = L.reshape(-1, 3)
    # coarse elements: unique (coarse cell, 8 copies)
    rows, first = np.unique(copy, axis=0, return_index=True)
    coarse_cells, coarse_cell_ijk = rows, C[first]
    # P row of fine node m: trilinear weights within the coarse cell of any element holding it
    N = len(node_ijk)
    holder = np.full(N, -1)
    holder[cells.ravel()] = np.repeat(np.arange(n), 8)
    local = (node_ijk - 2 * C[holder]) / 2.0                            # (N, 3) in [0, 1]
    w = np.prod(np.where(CORNERS[None] == 1, local[:, None, :], 1 - local[:, None, :]), axis=2)
    P = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(N), 8), copy[holder].ravel())),
                      shape=(N, len(uniq)))
    P.eliminate_zeros()
    return P, coarse_cells, coarse_cell_ijk, coarse_node_ijk


def hierarchy(A, free, cells, cell_ijk, node_ijk, aware, coarse_dofs=5000):
    """``aware``: "all" levels connectivity-aware, "first" the first coarsening only, or ""."""
    """Galerkin operators [A0, A1, ...] and DOF prolongations [P1, ...] (free DOFs only)."""
    ops, Ps = [A], []
    keep_rows = free
    while ops[-1].shape[0] > coarse_dofs and len(Ps) < 8:
        Pn, cells, cell_ijk, node_ijk = coarsen(cells, cell_ijk, node_ijk,
                                                aware == "all" or (aware == "first" and not Ps))
        P = sp.kron(Pn, sp.identity(3), format="csr")[keep_rows]
        nz = np.flatnonzero(np.asarray(abs(P).sum(axis=0)).ravel() > 0)
        P = P[:, nz].tocsr()
        # coarse node k's 3 DOFs may lose some columns; keep only whole nodes in the
        # geometry of the next step (columns dropped stay dropped)
        node_keep = np.zeros(len(node_ijk) * 3, dtype=bool)
        node_keep[nz] = True
        keep_rows = np.flatnonzero(node_keep)
        Ps.append(P)
        ops.append((P.T @ ops[-1] @ P).tocsr())
    return ops, Ps


def petsc_aij(M):
    from petsc4py import PETSc

    M = M.tocsr()
    M.sort_indices()
    return PETSc.Mat().createAIJ(M.shape, csr=(M.indptr.astype(PETSc.IntType),
                                               M.indices.astype(PETSc.IntType), M.data),
                                 comm=PETSc.COMM_SELF)


def solve(ops, Ps, b, rtol=1e-8):
    from petsc4py import PETSc

    from fem.solve import multigrid, solver

    # a copy that reaches a single fine node repeats another column of P: the coarsest
    # Galerkin operator can be singular; the production solver's 1e-6 diagonal shift
    # (fem.solve.multigrid.coarse_matrix) keeps its Cholesky factorisation SPD
    ops = ops[:-1] + [ops[-1] + sp.diags(1e-6 * ops[-1].diagonal())]
    mats = [petsc_aij(A) for A in ops]
    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    ksp.setOptionsPrefix(solver.options_prefix({**solver.cg_options(rtol, 3000), **multigrid.OPTIONS,
                                                "mg_coarse_pc_type": "cholesky",
                                                "mg_coarse_pc_factor_mat_solver_type":
                                                    multigrid.OPTIONS["mg_coarse_redundant_pc_factor_mat_solver_type"]}))
    ksp.setOperators(mats[0])
    pc = ksp.getPC()
    pc.setType("mg")
    n = len(mats)
    pc.setMGLevels(n)
    for depth in range(n - 1):
        level = n - 1 - depth
        pc.setMGInterpolation(level, petsc_aij(Ps[depth]))
        pc.getMGSmoother(level).setOperators(mats[depth])
    pc.getMGCoarseSolve().setOperators(mats[-1])
    ksp.setFromOptions()
    bv = mats[0].createVecLeft()
    bv.getArray()[:] = b
    x = mats[0].createVecRight()
    stats = solver.solve(ksp, bv, x)
    return stats, x.getArray().copy()


def main(path):
    from mpi4py import MPI

    from fem.mesh.distribute import create_dolfinx_mesh

    from fem.mesh.voxel import voxel_grid
    from fem.specimen.load import Specimen
    from fem.solve.elasticity import assemble_system
    from fem.solve.loadcases import pin_points
    from fem.solve.multigrid import fine_cells

    data = np.load(path)
    spec = Specimen(data["mask"], tuple(data["spacing"]), 10000.0, fraction=data["fraction"].astype(float))
    grid = voxel_grid(spec.mask, spec.spacing)
    msh, original = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    s = assemble_system(msh, spec.element_modulus(grid)[original], 0.3, "uniaxial", -0.01,
                        grid.extent[2], pin_points(grid.points))
    indptr, indices, vals = s.A.getValuesCSR()
    A = sp.csr_matrix((vals, indices, indptr))
    bcs = np.unique(np.concatenate([bc.dof_indices()[0] for bc in s.bcs]))
    free = np.setdiff1d(np.arange(A.shape[0]), bcs)
    b = s.b.getArray()[free] 
    A = A[free][:, free].tocsr()
    cells, cell_ijk, node_ijk = fine_cells(s.V, grid.spacing)
    print(f"{Path(path).name}: {A.shape[0]} free DOF", flush=True)
    for aware in sys.argv[1].split(","):
        t0 = time.perf_counter()
        ops, Ps = hierarchy(A, free, cells, cell_ijk, node_ijk, aware)
        setup = time.perf_counter() - t0
        stats, x = solve(ops, Ps, b)
        print(f"  {aware or 'plain':5s}: DOF per level "
              f"{[o.shape[0] for o in ops]}, hierarchy {setup:.1f} s, solve {stats.seconds:.1f} s, "
              f"{stats.iterations} CG iterations", flush=True)


if __name__ == "__main__":
    for arg in sys.argv[2:]:
        main(arg)
