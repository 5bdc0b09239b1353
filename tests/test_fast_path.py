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


def test_default_presets():
    from fem.solve import solver

    assert solver.DEFAULT_PRESET == "fast"        # assembled meshes (tetrahedra)
    assert solver.PRESETS["fast"] != solver.PRESETS["demo"]
    assert solver.PRESETS["matfree"]["pc_type"] == "mg"


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


def test_presets_do_not_leak_into_each_other():
    # The PETSc options database is global: a fast solve followed by a demo solve in
    # the same process must not keep the fast preset's threshold, and user options win.
    from petsc4py import PETSc

    from fem.solve import solver

    opts = PETSc.Options()
    name = "bonefem_pc_gamg_threshold"

    class FakeSpace:  # make_ksp only needs the rigid-body modes from V
        pass

    def options_after(preset):
        A = PETSc.Mat().createAIJ([3, 3])
        A.setUp()
        A.assemble()
        orig = solver.rigid_body_modes
        solver.rigid_body_modes = lambda V: PETSc.NullSpace().create(constant=False, vectors=[])
        try:
            solver.make_ksp(A, FakeSpace(), preset=preset).destroy()
        finally:
            solver.rigid_body_modes = orig
        return opts.getString(name) if opts.hasName(name) else None

    assert options_after("fast") == str(solver.PRESETS["fast"]["pc_gamg_threshold"])
    assert options_after("demo") is None
    opts[name] = 0.07
    try:
        assert options_after("fast") == "0.07"
        assert options_after("demo") == "0.07"
    finally:
        opts.delValue(name)
    with pytest.raises(ValueError):
        options_after("nonsense")
