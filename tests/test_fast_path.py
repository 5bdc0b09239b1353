"""The fast solver paths against the assembled DOLFINx-demo baseline (docs/benchmark.md).

All solve the same linear system at a tight tolerance; the reaction force of the
matrix-free multigrid solver (the default on voxel meshes) and of the tuned GAMG
must match the baseline's to 1e-6 relative, serially and on two MPI ranks. The
reference is the baseline's answer, never a stored number.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

# Solve one trabecular specimen with both presets and print the reaction forces.
SCRIPT = r"""
import json, sys
import numpy as np
from mpi4py import MPI
from fem.mesh.distribute import create_dolfinx_mesh
from fem.mesh.voxel import voxel_grid
from fem.solve.elasticity import solve_compression
from fem.solve.loadcases import pin_points
from fem.specimen.islands import largest_component
from fem.specimen.foam import trabecular_foam

comm = MPI.COMM_WORLD
mask, _ = largest_component(trabecular_foam(size=0.6, voxel_size=0.03, bv_tv=0.25, spacing=0.3, seed=4))
grid = voxel_grid(mask, (0.03,) * 3)
# Heterogeneous modulus, so that a wrong element scaling could not go unnoticed.
modulus = 4000.0 + 8000.0 * np.random.default_rng(1).random(len(grid.voxels))
msh, original = create_dolfinx_mesh(comm, *((grid.points, grid.cells) if comm.rank == 0 else (None, None)))
out = {}
test = sys.argv[1]
for preset in sys.argv[2:]:
    sol = solve_compression(msh, modulus[original], 0.3, test, -0.01, grid.extent[2],
                            pin_points(grid.points), rtol=1e-12,
                            preset=None if preset == "default" else preset,
                            voxel_spacing=grid.spacing)
    out[preset] = {"reaction": sol.reaction_force, "iterations": sol.stats.iterations,
                   "energy": sol.strain_energy}
if comm.rank == 0:
    print("RESULT", json.dumps(out))
"""


def run_presets(*presets, mpi=0, test="uniaxial") -> dict:
    cmd = [sys.executable, "-c", SCRIPT, test, *presets]
    if mpi:
        cmd = ["mpirun", "-n", str(mpi), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("test", ["uniaxial", "axial"])
def test_fast_paths_match_assembled_baseline_serial(test):
    r = run_presets("demo", "fast", "default", test=test)
    ref = r["demo"]["reaction"]
    assert ref < 0
    for method in ("fast", "default"):        # default on a voxel mesh: matfree
        assert r[method]["reaction"] == pytest.approx(ref, rel=1e-6)
        assert r[method]["energy"] == pytest.approx(r["demo"]["energy"], rel=1e-6)
    # the multigrid preconditioner must be doing its job, not CG alone
    assert r["default"]["iterations"] < r["demo"]["iterations"]


@pytest.mark.mpi
def test_fast_paths_match_assembled_baseline_two_ranks():
    serial = run_presets("demo")["demo"]["reaction"]
    r = run_presets("demo", "fast", "matfree", mpi=2)
    for method in ("fast", "matfree"):
        assert r[method]["reaction"] == pytest.approx(r["demo"]["reaction"], rel=1e-6)
        assert r[method]["reaction"] == pytest.approx(serial, rel=1e-6)


def _cube_system(n=3):
    from mpi4py import MPI

    from fem.mesh.distribute import create_dolfinx_mesh

    from fem.mesh.voxel import voxel_grid
    from fem.solve.elasticity import assemble_system
    from fem.solve.loadcases import pin_points

    grid = voxel_grid(np.ones((n, n, n), bool), (0.1,) * 3)
    msh, original = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    return assemble_system(msh, np.full(len(original), 5000.0), 0.3, "uniaxial", -0.01,
                           grid.extent[2], pin_points(grid.points)), grid


def _prefixed(prefix):
    from petsc4py import PETSc

    return {k[len(prefix):]: v for k, v in PETSc.Options().getAll().items() if k.startswith(prefix)}


def test_each_solver_has_its_own_options_removed_after_its_solve():
    # Two assembled solvers alive at once, one user override: each KSP sees its preset's
    # options plus the user's, the user's option reaches GAMG's level smoothers (which
    # read their options at set-up, in the solve), and nothing is left behind.
    from petsc4py import PETSc

    from fem.solve import solver

    opts = PETSc.Options()
    opts["bonefem_mg_levels_pc_type"] = "sor"
    try:
        fast_sys, _ = _cube_system()
        demo_sys, _ = _cube_system()
        fast = solver.make_ksp(fast_sys.A, fast_sys.V, rtol=1e-10, preset="fast")
        demo = solver.make_ksp(demo_sys.A, demo_sys.V, rtol=1e-10, preset="demo")
        pf, pd = fast.getOptionsPrefix(), demo.getOptionsPrefix()
        assert pf != pd
        assert float(_prefixed(pf)["pc_gamg_threshold"]) == 0.02
        assert "pc_gamg_threshold" not in _prefixed(pd)
        for ksp, s in ((fast, fast_sys), (demo, demo_sys)):
            x = s.A.createVecRight()
            solver.solve(ksp, s.b, x)
            pc = ksp.getPC()
            assert pc.getType() == "gamg"
            assert pc.getMGSmoother(pc.getMGLevels() - 1).getPC().getType() == "sor"
            assert _prefixed(ksp.getOptionsPrefix()) == {}
    finally:
        opts.delValue("bonefem_mg_levels_pc_type")
    with pytest.raises(ValueError, match="matfree"):
        solver.make_ksp(fast_sys.A, fast_sys.V, preset="matfree")


def test_matrix_free_multigrid_gets_its_options_at_set_up():
    # PCMG's own defaults differ (SOR smoothing, LU coarse solve): a cycle set up after
    # its options were gone would show them.
    from fem.solve import solver
    from fem.solve.multigrid import VoxelMultigrid
    from fem.solve.loadcases import pin_points

    s, grid = _cube_system(8)
    mg = VoxelMultigrid(s.V, grid.spacing, np.full(512, 5000.0), 0.3, s.bcs, "uniaxial",
                        pin_points(grid.points), coarse_dofs=300)
    ksp = mg.ksp(1e-10, 100)
    x = s.A.createVecRight()
    solver.solve(ksp, mg.rhs(s.bcs), x)
    pc = ksp.getPC()
    assert pc.getMGLevels() >= 2
    assert pc.getMGSmoother(pc.getMGLevels() - 1).getPC().getType() == "jacobi"
    assert pc.getMGCoarseSolve().getPC().getType() == "redundant"
    assert _prefixed(ksp.getOptionsPrefix()) == {}
    # the same answer as the assembled system
    y = s.A.createVecRight()
    ref = solver.make_ksp(s.A, s.V, rtol=1e-12, preset="demo")
    solver.solve(ref, s.b, y)
    assert (x - y).norm() < 1e-8 * y.norm()
    mg.destroy()


def test_rigid_body_modes_are_the_kernel_of_the_free_stiffness():
    # K r = 0 for the six modes of the unconstrained stiffness (no boundary conditions),
    # and the basis is orthonormal.
    import dolfinx.fem.petsc
    from mpi4py import MPI

    from fem.solve import solver

    s, _ = _cube_system()
    K = dolfinx.fem.petsc.assemble_matrix(s.a)
    K.assemble()
    n = s.V.dofmap.index_map.size_local
    modes = solver.rigid_body_modes(s.V.tabulate_dof_coordinates()[:n], MPI.COMM_SELF).getVecs()
    assert len(modes) == 6
    scale = K.norm()
    for i, v in enumerate(modes):
        y = K.createVecLeft()
        K.mult(v, y)
        assert y.norm() < 1e-12 * scale, i
        for j, w in enumerate(modes):
            assert v.dot(w) == pytest.approx(float(i == j), abs=1e-12)
    # a non-rigid field is not in the kernel: the check can fail
    v = modes[0].duplicate()
    v.getArray()[:] = s.V.tabulate_dof_coordinates()[:n, 2].repeat(3)
    y = K.createVecLeft()
    K.mult(v, y)
    assert y.norm() > 1e-3 * scale * v.norm()
