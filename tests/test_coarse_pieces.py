"""Connectivity-aware coarse nodes (fem.solve.coarse_pieces) on configurations whose
pieces are known by hand."""

import numpy as np
import pytest

from fem.solve.voxel_levels import Constraints, first_coarse


def level_of(mask, split):
    cells = np.argwhere(mask).astype(np.int64)
    top = int(cells[:, 2].max()) + 1
    return first_coarse(cells, np.full(len(cells), 1000.0), (0.1, 0.1, 0.1), 0.3,
                        Constraints(top, "axial", None), exact=False, split=split)


def copies(level):
    ids, count = np.unique(level.nodes, return_counts=True)
    NX, NY, _ = level.dims
    return {(int(i % NX), int(i // NX % NY), int(i // (NX * NY))): int(c)
            for i, c in zip(ids, count) if c > 1}


def test_two_columns_a_voxel_apart_get_their_own_copies_of_the_shared_coarse_nodes():
    # columns at voxel x = 0 and x = 2 (a gap of one voxel): coarse cells x = 0 and x = 1
    # share the coarse nodes at x = 1, but no voxel of one touches a voxel of the other
    mask = np.zeros((3, 1, 4), bool)
    mask[0, 0, :] = mask[2, 0, :] = True
    plain, split = level_of(mask, False), level_of(mask, True)
    # coarse node lattice: x 0..2, y 0..1, z 0..2; shared plane x = 1: 2 x 3 nodes, each twice
    assert copies(split) == {(1, j, k): 2 for j in range(2) for k in range(3)}
    assert len(split.nodes) == len(plain.nodes) + 6
    # each coarse element's corners at x = 1 are its own copies
    left, right = split.corners[split.cells[:, 0] == 0], split.corners[split.cells[:, 0] == 1]
    assert not set(left[:, [1, 3, 5, 7]].ravel()) & set(right[:, [0, 2, 4, 6]].ravel())


def test_touching_columns_and_diagonal_contact_share_the_coarse_nodes():
    # x = 0 and x = 1 touch (a face) inside one coarse cell; x = 1 and a voxel at x = 2,
    # z shifted by one, touch along an edge: node-connected, so no copies anywhere
    mask = np.zeros((4, 1, 4), bool)
    mask[0, 0, :] = mask[1, 0, :] = True
    mask[2, 0, 1:] = True
    assert copies(level_of(mask, True)) == {}


def test_a_piece_bridged_outside_the_support_still_splits():
    # two columns a voxel apart joined by a bridge at the top only: connected as a whole,
    # but not inside the support of the coarse nodes near the bottom
    mask = np.zeros((3, 1, 8), bool)
    mask[0, 0, :] = mask[2, 0, :] = True
    mask[:, 0, 7] = True
    c = copies(level_of(mask, True))
    assert (1, 0, 0) in c and (1, 0, 1) in c and (1, 0, 4) not in c


# Exact node connectivity above level 1 (fem.solve.coarse_pieces.element_pieces): a
# specimen of one-voxel columns in x at 0, 3, 4, 7 (mod 8), y the same: the columns at x = 0
# and x = 3 lie in one level-2 cell (4 voxels) but do not touch (x = 1, 2 empty); 3 and 4
# touch through a face. A bar along x at the top joins every column far from the bottom.
def columns_mask(n=24, bar=True):
    mask = np.zeros((n, n, n), bool)
    pos = [p for p in range(n) if p % 8 in (0, 3, 4, 7)]
    for x in pos:
        for y in pos:
            mask[x, y, :] = True
    if bar:
        mask[:, pos, n - 2] = True
    return mask


def levels_of(mask, pieces):
    from fem.solve.voxel_levels import next_coarse

    cells = np.argwhere(mask).astype(np.int64)
    top = int(cells[:, 2].max()) + 1
    fixed = Constraints(top, "axial", None)
    one = first_coarse(cells, np.full(len(cells), 1000.0), (0.1, 0.1, 0.1), 0.3, fixed,
                       exact=False, split=True)
    return one, next_coarse(one, fixed.coarser(int(one.cells[:, 2].max()) + 1), split=True, pieces=pieces)


def test_pieces_in_one_coarse_cell_that_do_not_touch_get_their_own_elements():
    _, old = levels_of(columns_mask(bar=False), pieces=False)
    _, new = levels_of(columns_mask(bar=False), pieces=True)
    # level-2 cells hold columns (x, y) at {0, 3} x {0, 3} (mod 8): four pieces each; cells at
    # (4, 7) x (4, 7): the columns 4 and 7 do not touch either; so every cell of the 6 x 6 x 6
    # level-2 lattice holds 4 pieces, none of which shares a node copy with another
    assert len(old.cells) == 6 ** 3
    assert len(new.cells) == 4 * 6 ** 3
    ids = new.node_ids(new.cells)
    for cell in np.unique(ids):
        corners = new.corners[ids == cell]
        assert len(np.unique(corners)) == corners.size       # no copy shared inside a cell
    # the children's weights are shared out, not lost: same total over the level
    assert np.isclose(new.weights.sum(), old.weights.sum())


def test_pieces_joined_inside_a_cell_stay_one_element():
    # the bar joins the columns inside the top level-2 cells only: there one element per cell
    _, new = levels_of(columns_mask(bar=True), pieces=True)
    top = new.cells[:, 2] == new.cells[:, 2].max()
    assert len(np.unique(new.node_ids(new.cells[top]))) < top.sum()   # split on the y axis only
    bottom = new.cells[:, 2] == 0
    assert bottom.sum() == 4 * 36


def _coupling_and_solution(pieces):
    """Coarse-level coupling between two columns that share a level-2 cell, and the
    multigrid solution against LU, for the columns specimen under axial compression."""
    from mpi4py import MPI
    from petsc4py import PETSc

    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.solve import solver
    from fem.solve.elasticity import assemble_system
    from fem.solve.multigrid import VoxelMultigrid

    mask = columns_mask()
    grid = voxel_grid(mask, (0.05,) * 3)
    E = 3000.0 + 9000.0 * np.random.default_rng(3).random(len(grid.voxels))
    msh, original = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    s = assemble_system(msh, E[original], 0.3, "axial", -0.01, grid.extent[2], None)
    mg = VoxelMultigrid(s.V, grid.spacing, E[original], 0.3, s.bcs, "axial", None,
                        coarse_dofs=500, pieces=pieces, keep_levels=True)
    assert mg.levels >= 3
    # fine DOFs of the columns at x = 0 and x = 3 (y = 0), below the bar; the level-2 DOFs
    # they interpolate from, and the level-2 operator between those
    xyz = s.V.tabulate_dof_coordinates() / 0.05
    lower = xyz[:, 2] < 12
    col = [np.flatnonzero(lower & (np.rint(xyz[:, 0]) // 1 == x0) & (xyz[:, 1] <= 1)) for x0 in (0, 4)]
    P1, P2 = (M.copy() for M in mg.transfer_matrices()[:2])
    P = P1.matMult(P2)
    import scipy.sparse as sp
    Ps = sp.csr_matrix(P.getValuesCSR()[::-1], shape=P.getSize())
    reached = [np.unique(Ps[(3 * c[:, None] + np.arange(3)).ravel()].indices) for c in col]
    A2 = s.A.ptap(P)
    A2s = sp.csr_matrix(A2.getValuesCSR()[::-1], shape=A2.getSize())
    coupling = abs(A2s[reached[0]][:, reached[1]]).sum() / abs(A2s[reached[0]][:, reached[0]]).sum()
    ksp = mg.ksp(1e-12, 500, fixed=True)
    x = s.b.duplicate()
    stats = solver.solve(ksp, mg.rhs(s.bcs), x)
    lu = PETSc.KSP().create(MPI.COMM_SELF)
    lu.setOperators(s.A)
    lu.setType("preonly")
    lu.getPC().setType("lu")
    xr = s.b.duplicate()
    lu.solve(s.b, xr)
    err = (x - xr).norm() / xr.norm()
    mg.destroy()
    return coupling, err, stats.iterations


def test_columns_a_gap_apart_are_decoupled_on_level_2_and_the_solution_matches_lu():
    old, err_old, _ = _coupling_and_solution(pieces=False)
    new, err_new, _ = _coupling_and_solution(pieces=True)
    assert old > 1e-3          # one element per cell ties the two columns together
    assert new < 1e-12         # one element per piece does not
    assert err_old < 1e-9 and err_new < 1e-9


# The columns specimen solved with pieces above level 1, on any number of ranks: prints the
# iterations, b.x and x.x (both independent of how the DOFs are numbered and distributed)
TWO_RANKS = r"""
import numpy as np
import pytest
from mpi4py import MPI
from fem.mesh.distribute import create_dolfinx_mesh
from fem.mesh.voxel import voxel_grid
from fem.solve import solver
from fem.solve.elasticity import assemble_system
from fem.solve.multigrid import VoxelMultigrid
from tests.test_coarse_pieces import columns_mask

comm = MPI.COMM_WORLD
grid = voxel_grid(columns_mask(), (0.05,) * 3)
E = 3000.0 + 9000.0 * np.random.default_rng(3).random(len(grid.voxels))
msh, original = create_dolfinx_mesh(comm, *((grid.points, grid.cells) if comm.rank == 0 else (None, None)))
s = assemble_system(msh, E[original], 0.3, "axial", -0.01, grid.extent[2], None)
mg = VoxelMultigrid(s.V, grid.spacing, E[original], 0.3, s.bcs, "axial", None, coarse_dofs=500)
assert mg.levels >= 3
x = s.b.duplicate()
stats = solver.solve(mg.ksp(1e-12, 500, fixed=True), mg.rhs(s.bcs), x)
bx, xx = s.b.dot(x), x.dot(x)
if comm.rank == 0:
    print("RESULT", stats.iterations, repr(bx), repr(xx))
"""


def _run_columns(ranks):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    cmd = [sys.executable, "-c", TWO_RANKS]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return [float(v) for v in line.split()[1:]]


@pytest.mark.mpi
def test_pieces_on_two_ranks_solve_the_same_system():
    serial, two = _run_columns(1), _run_columns(2)
    assert two[1] == pytest.approx(serial[1], rel=1e-9)
    assert two[2] == pytest.approx(serial[2], rel=1e-9)
