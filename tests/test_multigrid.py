"""The matrix-free voxel operator and its multigrid hierarchy, piece by piece.

Each piece is checked against an independent computation: the element stiffness
against the analytic strain energy of a uniform strain, the matrix-free product and
diagonal against DOLFINx's assembled matrix, the coarse operators against PETSc's
own Galerkin product P^T A P of that matrix.
"""

import numpy as np
import pytest

from fem.mesh.voxel import HEX_CORNERS


def test_element_stiffness_uniform_strain_energy():
    from fem.solve.voxel_kernel import hex_stiffness

    h, nu = np.array([0.1, 0.2, 0.3]), 0.3
    K = hex_stiffness(h, nu)
    assert np.abs(K - K.T).max() < 1e-14 * np.abs(K).max()
    X = HEX_CORNERS * h
    lam, mu = nu / ((1 + nu) * (1 - 2 * nu)), 1 / (2 * (1 + nu))
    # eps_zz = 1: W = (lam + 2 mu) V / 2; shear gamma_xy = 1: W = mu V / 2
    u = np.zeros((8, 3))
    u[:, 2] = X[:, 2]
    assert 0.5 * u.ravel() @ K @ u.ravel() == pytest.approx((lam + 2 * mu) * h.prod() / 2, rel=1e-12)
    u = np.zeros((8, 3))
    u[:, 0] = X[:, 1]
    assert 0.5 * u.ravel() @ K @ u.ravel() == pytest.approx(mu * h.prod() / 2, rel=1e-12)
    # six rigid-body modes, nothing else, in the null space
    assert np.sum(np.linalg.eigvalsh(K) < 1e-12 * np.abs(K).max()) == 6


def test_galerkin_basis_sums_to_the_coarse_element():
    from fem.solve.voxel_kernel import hex_stiffness
    from fem.solve.voxel_levels import galerkin_basis

    B = galerkin_basis((0.04, 0.04, 0.05), 0.3)
    assert np.allclose(B.sum(axis=0), hex_stiffness((0.08, 0.08, 0.1), 0.3), rtol=0, atol=1e-13)


def test_kernel_matches_numpy():
    from fem.solve import voxel_kernel

    rng = np.random.default_rng(3)
    n, nodes, m = 500, 300, 8
    cells = rng.integers(0, nodes, (n, 8)).astype(np.int32)
    basis = rng.random((m, 24, 24))
    basis = basis + basis.transpose(0, 2, 1)
    weights = rng.random((n, m))
    x = rng.random(3 * nodes)
    Ke = np.einsum("em,mij->eij", weights, basis)
    idx = (3 * cells[:, :, None] + np.arange(3)).reshape(n, 24)
    ref = np.zeros(3 * nodes)
    np.add.at(ref, idx, np.einsum("eij,ej->ei", Ke, x[idx]))
    assert voxel_kernel.galerkin_blocks(basis) is None     # random: the dense kernel
    for w, b in ((weights, basis), (None, Ke)):
        y = np.zeros(3 * nodes)
        voxel_kernel.matvec(cells, w, b, x, y)
        assert np.allclose(y, ref, rtol=1e-13, atol=0)
        d = voxel_kernel.diagonal(cells, w, b, nodes)
        dref = np.zeros(3 * nodes)
        np.add.at(dref, idx, np.diagonal(Ke, axis1=1, axis2=2))
        assert np.allclose(d, dref, rtol=1e-13, atol=0)


@pytest.mark.parametrize("n", [501, 3])
def test_box_kernel_matches_dense(n):
    """The Hadamard-block kernel (one box stiffness times a modulus per element) against
    the dense product, on a box of three different edges and a count of elements that
    is not a multiple of the kernel's four-element step."""
    from fem.solve import voxel_kernel

    rng = np.random.default_rng(5)
    nodes = 400
    cells = rng.integers(0, nodes, (n, 8)).astype(np.int32)
    K = voxel_kernel.hex_stiffness((0.03, 0.05, 0.04), 0.27)
    assert voxel_kernel.box_blocks(K) is not None
    w = rng.random((n, 1)) * 1e4
    x = rng.random(3 * nodes)
    idx = (3 * cells[:, :, None] + np.arange(3)).reshape(n, 24)
    ref = np.zeros(3 * nodes)
    np.add.at(ref, idx, w * (x[idx] @ K))
    y = np.zeros(3 * nodes)
    voxel_kernel.matvec(cells, w, K[None], x, y)
    assert np.abs(y - ref).max() <= 1e-13 * np.abs(ref).max()
    # a matrix without the box's mirror symmetry is not mistaken for one
    R = rng.random((24, 24))
    assert voxel_kernel.box_blocks(R + R.T) is None


def test_galerkin_add_matches_dense_product():
    from fem.solve import voxel_kernel
    from fem.solve.voxel_levels import child_interpolation

    rng = np.random.default_rng(6)
    n, n_parents = 50, 7
    K = rng.random((n, 24, 24))
    K = K + K.transpose(0, 2, 1)
    slot = rng.integers(0, 8, n)
    parent = rng.integers(0, n_parents, n)
    P = child_interpolation()
    ref = np.zeros((n_parents, 24, 24))
    np.add.at(ref, parent, np.einsum("nai,nab,nbj->nij", P[slot], K, P[slot]))
    out = np.zeros((n_parents, 24, 24))
    voxel_kernel.galerkin_add(K, slot, parent, P[:, ::3, ::3], out)
    assert np.abs(out - ref).max() <= 1e-13 * np.abs(ref).max()


def _dense(op) -> "PETSc.Mat":
    """A serial PETSc matrix as an AIJ matrix, column by column (small levels only)."""
    from petsc4py import PETSc

    n = op.getSize()[0]
    e, col = op.createVecRight(), op.createVecLeft()
    M = np.zeros((n, n))
    for j in range(n):
        e.set(0.0)
        e.setValue(j, 1.0)
        op.mult(e, col)
        M[:, j] = col.getArray()
    M[np.abs(M) < 1e-14 * np.abs(M).max()] = 0.0
    import scipy.sparse as sp
    C = sp.csr_matrix(M)
    A = PETSc.Mat().createAIJ(M.shape, csr=(C.indptr.astype(PETSc.IntType), C.indices.astype(PETSc.IntType),
                                            C.data), comm=PETSc.COMM_SELF)
    A.assemble()
    return A


@pytest.mark.parametrize("test,exact,specimen", [("uniaxial", True, "foam"), ("axial", True, "foam"),
                                                ("uniaxial", False, "foam"), ("axial", False, "columns")])
def test_operators_equal_assembled_and_galerkin(test, exact, specimen):
    """exact: level 1 is the Galerkin product of the voxels (else rediscretised with mean
    moduli, and the deeper levels, stored as 8 weights or as matrices, are checked).
    "columns": thin columns that share coarse cells without touching
    (tests/test_coarse_pieces.py), so levels above 1 have several elements per cell."""
    from petsc4py import PETSc

    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.solve.elasticity import assemble_system
    from fem.solve.loadcases import pin_points
    from fem.solve.multigrid import VoxelMultigrid
    from fem.specimen.islands import largest_component
    from fem.specimen.foam import trabecular_foam
    from mpi4py import MPI

    # odd voxel counts, so that faces and pins fall between coarse nodes
    if specimen == "foam":
        mask, _ = largest_component(trabecular_foam(size=0.63, voxel_size=0.03, bv_tv=0.3,
                                                    spacing=0.3, seed=2))
    else:
        from tests.test_coarse_pieces import columns_mask

        mask = columns_mask(18)
    grid = voxel_grid(mask, (0.03,) * 3)
    E = 2000.0 + 9000.0 * np.random.default_rng(0).random(len(grid.voxels))
    msh, original = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    s = assemble_system(msh, E[original], 0.3, test, -0.01, grid.extent[2], pin_points(grid.points))
    mg = VoxelMultigrid(s.V, grid.spacing, E[original], 0.3, s.bcs, test, pin_points(grid.points),
                        coarse_dofs=500, exact=exact, keep_levels=True)
    assert mg.levels >= 3
    if specimen == "columns":
        cells = mg.slabs[1].level.cells
        assert len(np.unique(cells, axis=0)) < len(cells)
    x = s.b.duplicate()
    x.setRandom(PETSc.Random().create(MPI.COMM_SELF))
    y1, y2 = x.duplicate(), x.duplicate()
    s.A.mult(x, y1)
    mg.ops[0].mult(x, y2)
    assert (y1 - y2).norm() < 1e-12 * y1.norm()
    d = x.duplicate()
    mg.ops[0].getDiagonal(d)
    assert (d - s.A.getDiagonal()).norm() < 1e-12 * d.norm()
    assert (mg.rhs(s.bcs) - s.b).norm() < 1e-12 * s.b.norm()
    # every coarse level is the Galerkin product of the one below (free DOFs; the
    # constrained ones are the identity in ours and zero in P^T A P)
    A = s.A
    for depth, P in enumerate(mg.transfer_matrices()):
        if depth == 0 and not exact:
            A = _dense(mg.ops[1])     # level 1 by rediscretisation: the reference from here
            assert mg.slabs[1].level.weights.shape[1] == 8    # level 2: the 8-weight kernel
            continue
        # the matrix-free transfer applies the same P (and P^T)
        xf, xc = P.createVecLeft(), P.createVecRight()
        xf.setRandom(PETSc.Random().create(MPI.COMM_SELF))
        xc.setRandom(PETSc.Random().create(MPI.COMM_SELF))
        for apply, x_in, out_ref, out in ((P.mult, xc, xf.duplicate(), xf.duplicate()),
                                          (P.multTranspose, xf, xc.duplicate(), xc.duplicate())):
            apply(x_in, out_ref)
            (mg.transfers[depth].mult if apply == P.mult else mg.transfers[depth].multTranspose)(x_in, out)
            assert (out - out_ref).norm() < 1e-14 * out_ref.norm(), depth
        G = A.ptap(P)
        coarse = mg.ops[depth + 1] if depth + 1 < len(mg.ops) else mg.coarse
        bc = mg.slabs[depth].op.bcs_owned
        xc = P.createVecRight()
        xc.setRandom(PETSc.Random().create(MPI.COMM_SELF))
        xc.getArray()[bc] = 0.0
        g, c = xc.duplicate(), xc.duplicate()
        G.mult(xc, g)
        coarse.mult(xc, c)
        assert np.allclose(c.getArray()[bc], 0.0)
        ga = g.getArray().copy()
        if coarse is mg.coarse:    # the coarsest level carries a deliberate 1e-6 diagonal shift
            ga += 1e-6 * G.getDiagonal().getArray() * xc.getArray()
        ga[bc] = 0.0
        assert np.linalg.norm(ga - c.getArray()) < 1e-10 * np.linalg.norm(ga), depth
        A = G
        A.zeroRowsColumns(bc.astype(PETSc.IntType), diag=1.0)
    mg.destroy()


def test_coarsest_level_is_the_first_below_coarse_dofs(monkeypatch):
    """The hierarchy coarsens until a level has fewer DOF than its limit (COARSE_DOFS if set,
    read when the solver is built so benchmarks can vary it; else 30 sqrt(fine DOF) within
    [5 k, 30 k]) and factors that level."""
    from mpi4py import MPI

    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.solve import multigrid
    from fem.solve.elasticity import assemble_system
    from fem.solve.loadcases import pin_points
    from fem.specimen.foam import trabecular_foam
    from fem.specimen.islands import largest_component

    mask, _ = largest_component(trabecular_foam(size=0.9, voxel_size=0.03, bv_tv=0.3,
                                                spacing=0.3, seed=2))
    grid = voxel_grid(mask, (0.03,) * 3)
    E = np.full(len(grid.voxels), 8000.0)
    msh, original = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    pins = pin_points(grid.points)
    s = assemble_system(msh, E[original], 0.3, "uniaxial", -0.01, grid.extent[2], pins)
    for limit in (300, 2000):
        monkeypatch.setattr(multigrid, "COARSE_DOFS", limit)
        dofs = multigrid.VoxelMultigrid(s.V, grid.spacing, E[original], 0.3, s.bcs, "uniaxial",
                                        pins).level_dofs()
        assert dofs[-1] < limit <= dofs[-2], (limit, dofs)
    # the first coarse level is always built, however large the limit
    monkeypatch.setattr(multigrid, "COARSE_DOFS", 10 ** 9)
    mg = multigrid.VoxelMultigrid(s.V, grid.spacing, E[original], 0.3, s.bcs, "uniaxial", pins)
    assert mg.levels == 2
    # by default the limit is COARSE_SCALE sqrt(fine DOF), at least COARSE_MIN
    monkeypatch.setattr(multigrid, "COARSE_DOFS", None)
    monkeypatch.setattr(multigrid, "COARSE_MIN", 10)
    dofs = multigrid.VoxelMultigrid(s.V, grid.spacing, E[original], 0.3, s.bcs, "uniaxial",
                                    pins).level_dofs()
    limit = multigrid.COARSE_SCALE * np.sqrt(dofs[0])
    assert dofs[-1] < limit <= dofs[-2], (limit, dofs)
    assert multigrid.coarse_limit(10 ** 6) == 30000
    assert multigrid.coarse_limit(4 * 10 ** 5) == int(30 * np.sqrt(4e5))
    assert multigrid.coarse_limit(10 ** 8) == multigrid.COARSE_MAX
    monkeypatch.setattr(multigrid, "COARSE_MIN", 5000)
    assert multigrid.coarse_limit(10 ** 4) == 5000


def test_multigrid_breakdown_falls_back_to_the_assembled_solver(monkeypatch):
    from mpi4py import MPI

    from fem.errors import SolverError
    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.solve import elasticity
    from fem.solve.loadcases import pin_points

    grid = voxel_grid(np.ones((3, 3, 4), bool), (0.1,) * 3)
    msh, original = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    E = np.full(len(original), 8000.0)

    def solve(**kw):
        return elasticity.solve_compression(msh, E, 0.3, "uniaxial", -0.01, grid.extent[2],
                                            pin_points(grid.points), rtol=1e-10,
                                            voxel_spacing=grid.spacing, **kw)

    def broken(*args, **kw):
        raise SolverError("broke", reason="DIVERGED_INDEFINITE_PC")

    monkeypatch.setattr(elasticity, "_solve_matfree", broken)
    sol = solve()
    assert "assembled GAMG after a matrix-free DIVERGED_INDEFINITE_PC" in sol.stats.converged_reason
    # a solid block: E_app = E
    assert sol.reaction_force / (0.3 * 0.3) / -0.01 == pytest.approx(8000.0, rel=1e-8)

    # a coarsest level that its Cholesky factorisation refuses (a zero pivot): PETSc raises
    # inside the solve; that is a breakdown too, not a crash
    from fem.solve import multigrid

    real = multigrid.coarse_matrix

    def singular(comm, sl):
        A = real(comm, sl)
        A.zeroRows([A.getOwnershipRange()[0]], diag=0.0)
        return A

    monkeypatch.undo()
    monkeypatch.setattr(multigrid, "coarse_matrix", singular)
    sol = solve()
    assert "assembled GAMG after a matrix-free DIVERGED_PC_FAILED" in sol.stats.converged_reason
    assert sol.reaction_force / (0.3 * 0.3) / -0.01 == pytest.approx(8000.0, rel=1e-8)

    def slow(*args, **kw):
        raise SolverError("slow", reason="DIVERGED_ITS")

    monkeypatch.setattr(elasticity, "_solve_matfree", slow)
    with pytest.raises(SolverError, match="slow"):
        solve()


def test_kernel_compiles_where_the_cache_folder_cannot_be_made(tmp_path):
    # XDG_CACHE_HOME under a regular file: mkdir fails, the kernel goes to the temp dir
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    blocker = tmp_path / "file"
    blocker.write_text("")
    code = ("import numpy as np; from fem.solve import voxel_kernel as vk; "
            "y = np.zeros(24); vk.matvec(np.arange(8, dtype=np.int32)[None], np.ones((1, 1)), "
            "vk.hex_stiffness((1, 1, 1), 0.3)[None], np.ones(24), y); print(abs(y).max())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(blocker / "cache"),
                                   TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) < 1e-9          # a rigid translation has no elastic force
    assert list(tmp_path.glob("bonefem-*/_bonefem_voxel_*.so"))


# One box element on rank 0, whose upper four nodes rank 1 owns: rank 1 has neither
# elements nor ghosts, yet must join the ghost exchanges (it once skipped them and hung).
RANK_WITHOUT_GHOSTS = r"""
import numpy as np
import dolfinx.common
from mpi4py import MPI
from fem.solve.multigrid import LevelOperator
from fem.solve.voxel_kernel import hex_stiffness

comm = MPI.COMM_WORLD
K = hex_stiffness((0.1, 0.1, 0.1), 0.3)
if comm.rank == 0:
    imap = dolfinx.common.IndexMap(comm, 4, np.arange(4, 8, dtype=np.int64), np.ones(4, np.int32))
    cells = np.arange(8, dtype=np.int32)[None]
else:
    imap = dolfinx.common.IndexMap(comm, 4, np.zeros(0, np.int64), np.zeros(0, np.int32))
    cells = np.zeros((0, 8), dtype=np.int32)
op = LevelOperator(imap, [(cells, np.ones((len(cells), 1)), K[None])], np.zeros(0, np.int64))
A = op.as_petsc(comm)
x, y = A.createVecRight(), A.createVecLeft()
u = np.random.default_rng(0).random(24)
x.getArray()[:] = u[12 * comm.rank: 12 * comm.rank + 12]
A.mult(x, y)
y_all = np.concatenate(comm.allgather(y.getArray().copy()))
if comm.rank == 0:
    assert np.abs(y_all - K @ u).max() < 1e-12 * np.abs(K @ u).max()
    print("OK")
"""


@pytest.mark.mpi
def test_operator_on_a_rank_without_ghosts():
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run(["mpirun", "-n", "2", sys.executable, "-c", RANK_WITHOUT_GHOSTS],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr
