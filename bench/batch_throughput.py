"""Batch throughput: jobs per minute of `bonefem batch` serially and on 2 MPI ranks.

./bonefem exec python3 bench/batch_throughput.py [JOBS] [REPEATS]

Runs the same JOBS (default 8) small synthetic foam cases (1.2 mm cube at 30 um, BV/TV
0.25, about 95 k DOF, about 1.5 s each serially; no field files) three ways: one rank,
`mpirun -n 2 ... --ranks-per-job 1` (two groups of one rank) and `--ranks-per-job 2`
(one group of two ranks). Each run starts from an empty output folder and is timed
from launch to exit, so start-up is included, as a user sees it. The three ways are
interleaved REPEATS (default 3) times, so a slow spell on a shared machine hits them
alike; the median and the fastest run are reported. Checks that every way gives the
same reaction forces (to 1e-4). Takes about 2 minutes on 2 cores; much longer on a busy
machine, where a 2-rank group busy-waits (docs/cluster.md: prefix the python3 command
with `env OMPI_MCA_mpi_yield_when_idle=1`).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fem.specimen.foam import trabecular_foam

ROOT = Path(__file__).resolve().parents[1]
n_jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 8
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ways = {"serial (1 rank)": (0, 1), "2 ranks, 2 groups of 1": (2, 1), "2 ranks, 1 group of 2": (2, 2)}

work = Path(tempfile.mkdtemp(prefix="batch-throughput-"))
cases = []
for seed in range(1, n_jobs + 1):
    img = trabecular_foam(size=1.2, voxel_size=0.03, bv_tv=0.25, spacing=0.3, seed=seed)
    np.save(work / f"foam{seed}.npy", img.astype(np.uint8))
    case = work / f"foam{seed}.toml"
    case.write_text(f'[specimen]\nimage = "foam{seed}.npy"\nvoxel_size = 0.03\n[output]\nfields = false\n')
    cases.append(case)


def run(ranks: int, per_job: int, outdir: Path) -> float:
    """Seconds for one batch of every case, from launch to exit."""
    cmd = [sys.executable, "-m", "fem", "batch", *map(str, cases), "-o", str(outdir), "--quiet"]
    if ranks:
        cmd = ["mpirun", "-n", str(ranks), *cmd, "--ranks-per-job", str(per_job)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return time.perf_counter() - t


def forces(outdir: Path) -> list[float]:
    return [json.loads((outdir / c.stem / "result.json").read_text())["reaction_force_N"] for c in cases]


seconds = {w: [] for w in ways}
reference = None
for r in range(repeats):
    for w, (ranks, per_job) in ways.items():
        out = work / f"out-{r}-{ranks}x{per_job}"
        seconds[w].append(run(ranks, per_job, out))
        f = forces(out)
        reference = reference or f
        # Loose: at the default CG tolerance (1e-8) a 2-rank partition moves forces by ~1e-6.
        assert np.allclose(f, reference, rtol=1e-4), (w, f, reference)
        print(f"repeat {r + 1}/{repeats}: {w}: {seconds[w][-1]:.1f} s", flush=True)

shutil.rmtree(work)
rate = {w: n_jobs / statistics.median(s) * 60 for w, s in seconds.items()}
serial = rate["serial (1 rank)"]
print(f"\n{n_jobs} jobs per run, {repeats} runs per way; rates from the median run, and from the "
      "fastest (least disturbed by other work on the machine)\n")
print("| way | runs, s | jobs per minute (median) | vs serial | jobs per minute (fastest) |")
print("| --- | --- | --- | --- | --- |")
for w, s in seconds.items():
    runs = ", ".join(f"{x:.1f}" for x in s)
    print(f"| {w} | {runs} | {rate[w]:.1f} | {rate[w] / serial:.2f} x | {n_jobs / min(s) * 60:.1f} |")
groups, one = rate["2 ranks, 2 groups of 1"], rate["2 ranks, 1 group of 2"]
print(f"\n2 groups of 1 rank vs 1 group of 2 ranks (medians): {groups / one:.2f} x")
