"""What the matrix-free solve releases to save memory (docs/benchmark.md, issue 13)
changes nothing in what it solves: each check compares with an independent route."""

import ctypes

import numpy as np


def _problem():
    from mpi4py import MPI

    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.solve.elasticity import assemble_system
    from fem.solve.loadcases import pin_points
    from fem.specimen.foam import trabecular_foam
    from fem.specimen.islands import largest_component

    mask, _ = largest_component(trabecular_foam(size=0.63, voxel_size=0.03, bv_tv=0.3,
                                                spacing=0.3, seed=2))
    grid = voxel_grid(mask, (0.03,) * 3)
    E = 2000.0 + 9000.0 * np.random.default_rng(0).random(len(grid.voxels))
    msh, original = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    pins = pin_points(grid.points)
    s = assemble_system(msh, E[original], 0.3, "uniaxial", -0.01, grid.extent[2], pins)
    return s, grid, E[original], pins


def _estimator(smoother):
    """The Chebyshev smoother's eigenvalue-estimator KSP handle (0 when there is none)."""
    from fem.solve.multigrid import _petsc_library

    f = _petsc_library().KSPChebyshevEstEigGetKSP
    f.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    out = ctypes.c_void_p()
    assert f(smoother.handle, ctypes.byref(out)) == 0
    return out.value or 0


def test_lean_set_up_solves_the_same_system():
    """``ksp(fixed=True)`` drops the smoothers' eigenvalue estimators after the set-up:
    the same CG iterations and the same solution, bit for bit, as PETSc's own set-up at
    the first solve, and that solution is the direct solve's to the CG tolerance."""
    from fem.solve import solver
    from fem.solve.multigrid import VoxelMultigrid

    s, grid, E, pins = _problem()
    results = []
    for fixed in (False, True):
        mg = VoxelMultigrid(s.V, grid.spacing, E, 0.3, s.bcs, "uniaxial", pins, coarse_dofs=500)
        assert mg.levels >= 3
        ksp = mg.ksp(1e-10, 500, fixed=fixed)
        pc = ksp.getPC()
        if fixed:
            assert all(_estimator(pc.getMGSmoother(lv)) == 0 for lv in range(1, mg.levels))
        x = mg.rhs(s.bcs).duplicate()
        stats = solver.solve(ksp, mg.rhs(s.bcs), x)
        if not fixed:      # PETSc's set-up keeps them
            assert all(_estimator(pc.getMGSmoother(lv)) != 0 for lv in range(1, mg.levels))
        results.append((stats.iterations, x.getArray().copy()))
        ksp.destroy()
        mg.destroy()
    assert results[0][0] == results[1][0]
    assert np.array_equal(results[0][1], results[1][1])
    lu = solver.PETSc.KSP().create(s.A.getComm())
    lu.setOperators(s.A)
    lu.setType("preonly")
    lu.getPC().setType("lu")
    x = s.b.duplicate()
    lu.solve(s.b, x)
    assert np.abs(results[1][1] - x.getArray()).max() < 1e-7 * np.abs(x.getArray()).max()


def test_levels_are_released_unless_kept():
    import pytest

    from fem.solve.multigrid import VoxelMultigrid

    s, grid, E, pins = _problem()
    kept = VoxelMultigrid(s.V, grid.spacing, E, 0.3, s.bcs, "uniaxial", pins, coarse_dofs=500,
                          keep_levels=True)
    lean = VoxelMultigrid(s.V, grid.spacing, E, 0.3, s.bcs, "uniaxial", pins, coarse_dofs=500)
    assert lean.level_dofs() == kept.level_dofs() == [kept.ops[0].getSize()[0]] + [
        sl.level.dofs for sl in kept.slabs]
    assert all(sl.level is None for sl in lean.slabs)
    assert len(kept.transfer_matrices()) == kept.levels - 1
    with pytest.raises(RuntimeError, match="keep_levels"):
        lean.transfer_matrices()


def test_boundary_conditions_from_vertices_build_no_facets():
    """The loaded faces are found from vertices: no facets are built, and the constrained
    DOFs are those of the nodes on the faces, read from the DOF coordinates."""
    import dolfinx.fem
    import pytest
    from mpi4py import MPI

    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.solve.loadcases import boundary_conditions

    rng = np.random.default_rng(3)
    mask = rng.random((6, 5, 7)) < 0.7
    mask[:, :, [0, -1]] = True
    grid = voxel_grid(mask, (0.1, 0.1, 0.1))
    msh, _ = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1, (3,)))
    h = grid.extent[2]
    bcs, top = boundary_conditions(V, "axial", -0.01, h, None)
    with pytest.raises(RuntimeError, match="not been computed"):     # no facets
        msh.topology.index_map(2)
    z = V.tabulate_dof_coordinates()[:, 2]
    on_face = np.flatnonzero(np.isclose(z, 0) | np.isclose(z, h))
    expected = np.sort((3 * on_face[:, None] + np.arange(3)).ravel())
    got = np.unique(np.concatenate([bc.dof_indices()[0] for bc in bcs]))
    assert np.array_equal(got, expected)
    assert np.array_equal(np.sort(top), 3 * np.flatnonzero(np.isclose(z, h)) + 2)
