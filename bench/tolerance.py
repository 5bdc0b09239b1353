"""Accuracy of the reaction force and the Pistoia load against the CG tolerance.

    ./bonefem exec python3 bench/tolerance.py bench/out/real/std-k3.npz [more.npz ...]

Each specimen (.npz from bench/real_bone.py or bench/solver.py) is solved with the
default solver at rtol 1e-12 (the reference) and at looser tolerances; printed: CG
iterations and the relative errors of the reaction force and the Pistoia failure load.
docs/method.md explains the default tolerance chosen from these.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RTOLS = (1e-12, 1e-5, 1e-6, 1e-7, 1e-8)


def study(path: Path):
    from mpi4py import MPI

    from bench.solver import POISSON, STRAIN, load_mesh
    from fem.analysis.pistoia import pistoia
    from fem.solve.elasticity import solve_compression
    from fem.solve.loadcases import pin_points

    comm = MPI.COMM_WORLD
    msh, modulus, grid = load_mesh(path, comm)
    ref = None
    for rtol in RTOLS:
        sol = solve_compression(msh, modulus, POISSON, "uniaxial", STRAIN, grid.extent[2],
                                pin_points(grid.points), rtol=rtol, voxel_spacing=grid.spacing)
        load = pistoia(sol.reaction_force, np.concatenate(comm.allgather(sol.ees)),
                       np.concatenate(comm.allgather(sol.volume))).failure_load_N
        if ref is None:
            ref = (sol.reaction_force, load)
        if comm.rank == 0:
            print(f"{path.name} ({sol.dofs} DOF) rtol {rtol:.0e}: {sol.stats.iterations} iterations, "
                  f"reaction error {abs(sol.reaction_force / ref[0] - 1):.1e}, "
                  f"Pistoia load error {abs(load / ref[1] - 1):.1e}", flush=True)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        study(Path(arg))
