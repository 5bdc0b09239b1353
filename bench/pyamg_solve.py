"""Baseline (b): the exported voxel system solved with SciPy sparse + PyAMG.

What a Python user writes: smoothed-aggregation AMG with the six rigid-body modes as
candidate vectors B, as the accelerator of CG. Runs on the host Python (PyAMG is not
in the runtime): ``pip install pyamg scipy`` and

    python3 bench/pyamg_solve.py bench/out [--repeat 3] [--rtol 1e-8]

For every ``system_*.npz`` written by ``bench/solver.py run`` it writes
``pyamg_*.json`` beside it: set-up and solve seconds (medians), iterations, peak
memory, reaction force and apparent modulus. Serial only (PyAMG has no MPI).
The tolerance is relative to ||b||, as PETSc's unpreconditioned CG norm in the
runtime.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import pyamg
import scipy.sparse as sp


def rigid_body_modes(coords: np.ndarray) -> np.ndarray:
    """(3 n, 6) translations and rotations at node coordinates ``coords`` (n, 3), mm."""
    n = len(coords)
    x, y, z = (coords[:, i] - coords[:, i].mean() for i in range(3))
    B = np.zeros((n, 3, 6))
    for i in range(3):
        B[:, i, i] = 1.0
    B[:, 0, 3], B[:, 1, 3] = -y, x
    B[:, 0, 4], B[:, 2, 4] = z, -x
    B[:, 1, 5], B[:, 2, 5] = -z, y
    return B.reshape(3 * n, 6)


def solve(path: Path, repeat: int, rtol: float) -> dict:
    d = np.load(path)
    n = len(d["b"])
    A = sp.csr_matrix((d["data"], d["indices"], d["indptr"]), shape=(n, n))
    b = d["b"]
    B = rigid_body_modes(d["coords"])
    setups, solves = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ml = pyamg.smoothed_aggregation_solver(A.tobsr(blocksize=(3, 3)), B=B)
        setups.append(time.perf_counter() - t0)
        residuals = []
        t0 = time.perf_counter()
        x = ml.solve(b, tol=rtol, accel="cg", maxiter=5000, residuals=residuals)
        solves.append(time.perf_counter() - t0)
    reaction = float(d["reaction_row"] @ x)
    lx, ly, _ = d["extent"]
    return {
        "method": "pyamg", "ranks": 1, "system": path.name, "dofs": n,
        "setup_s": statistics.median(setups),
        "solve_s": statistics.median(s + t for s, t in zip(setups, solves)),
        "iterations": len(residuals) - 1,
        "relative_residual": float(np.linalg.norm(b - A @ x) / np.linalg.norm(b)),
        "reaction_N": reaction,
        "apparent_modulus_MPa": reaction / (lx * ly) / float(d["strain"]),
        "operator_complexity": float(ml.operator_complexity()),
        "peak_rss_mb": [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0],
        "versions": {"pyamg": pyamg.__version__, "numpy": np.__version__},
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rtol", type=float, default=1e-8)
    args = p.parse_args()
    for path in sorted(Path(args.dir).glob("system_*.npz"), key=lambda p: p.stat().st_size):
        rec = solve(path, args.repeat, args.rtol)
        out = path.with_name(path.name.replace("system_", "pyamg_").replace(".npz", ".json"))
        out.write_text(json.dumps(rec, indent=1))
        print(f"{path.name}: {rec['dofs']} DOF, set-up + solve {rec['solve_s']:.2f} s, "
              f"{rec['iterations']} it, peak {rec['peak_rss_mb'][0]:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
