"""Pistoia failure load from the element-centre-strain SED and from the element-average SED.

    ./bonefem exec python3 bench/pistoia_sed.py bench/out/real/std-k2.npz bench/out/real/syn-3.0.npz

Each specimen (.npz with mask, fraction, spacing, as bench/real_bone.py and
bench/solver.py write them) is solved once (uniaxial, 1 % compression, E 10 GPa,
rtol 1e-10); both criteria read the same solution, so the difference is the SED
definition only (docs/method.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def compare(path: Path) -> dict:
    from mpi4py import MPI

    from bench.solver import POISSON, STRAIN, load_mesh
    from fem.analysis.pistoia import pistoia
    from fem.solve.elasticity import solve_compression
    from fem.solve.loadcases import pin_points

    comm = MPI.COMM_WORLD
    msh, modulus, grid = load_mesh(path, comm)
    sol = solve_compression(msh, modulus, POISSON, "uniaxial", STRAIN, grid.extent[2],
                            pin_points(grid.points), rtol=1e-10, voxel_spacing=grid.spacing)
    volume = np.concatenate(comm.allgather(sol.volume))
    out = {"specimen": path.name, "dofs": sol.dofs, "iterations": sol.stats.iterations}
    for name, sed in (("centre", sol.sed), ("average", sol.sed_average)):
        ees = np.concatenate(comm.allgather(np.sqrt(2 * np.maximum(sed, 0) / modulus)))
        p = pistoia(sol.reaction_force, ees, volume)
        out[name] = {"ees_2pct": p.ees_at_critical_volume, "failure_load_N": p.failure_load_N}
    out["change_percent"] = 100 * (out["centre"]["failure_load_N"] / out["average"]["failure_load_N"] - 1)
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(compare(Path(arg)), flush=True)
