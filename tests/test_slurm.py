"""docs/cluster.md's SLURM scripts, submitted as written to a real one-node SLURM.

Host-side (sbatch and the daemons are host tools): ``fem/runtime/slurm-local.sh check``
starts SLURM, runs this file with ``-m slurm`` and stops the daemons. The default suite
skips it (pyproject addopts). Jobs run bonefem through the runtime launcher
(BONEFEM_IN="ROOT/bonefem exec", as the guide says for a clone without containers).
"""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_host

pytestmark = pytest.mark.slurm

SLURM_SH = str(ROOT / "fem/runtime/slurm-local.sh")
SLURM_DIR = Path(os.environ.get("BONEFEM_SLURM_DIR", "/tmp/bonefem-slurm"))


def foam(size, seed, rtol=1e-10):
    return (f'title = "slurm check {size} mm seed {seed}"\n[specimen.synthetic]\nsize = {size}\n'
            f"voxel_size = 0.03\nbv_tv = 0.2\nspacing = 0.4\nseed = {seed}\n"
            f'[load]\ntest = "uniaxial"\nstrain = -0.01\n[solver]\nrtol = {rtol}\n')


TRIAL = """title = "slurm check: tiny trial"
[trial]
cohorts = ["elderly-osteoporotic"]
arms = ["untreated", "combined"]
years = 0.5
checkpoints = [0.5]
seeds = [1, 2]
spinup_years = 0.5
[trial.specimen]
size = 1.6
voxel_size = 0.04
[solver]
rtol = 1e-10
"""
# a0 is large enough (3 mm at 30 um, 100^3 voxels) to be cancelled in the middle of its run
ARRAY = {"a0": foam(3.0, 10), "a1": foam(1.2, 11), "a2": foam(1.2, 12), "a3": foam(1.2, 13)}
# columns that may differ between a run on 2 ranks or a job and the serial run
VOLATILE = {"source", "iterations", "solve_s", "ranks"}


def guide_scripts() -> dict[str, str]:
    """The job scripts of docs/cluster.md by job name, exactly as written there."""
    text = (ROOT / "docs/cluster.md").read_text()
    found = re.findall(r"```sh\n(#!/bin/bash\n#SBATCH --job-name=(\S+)\n.*?)```", text, re.S)
    return {name: body for body, name in found}


def _run(cmd, env, cwd=None, timeout=1800):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _state(env, job) -> dict[str, str]:
    """Array task id -> SLURM state (squeue while queued or running)."""
    out = subprocess.run(["squeue", "-h", "-r", "-j", str(job), "-o", "%K %T"], capture_output=True,
                         text=True, env=env).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def _wait(env, job, timeout=1800):
    t0 = time.time()
    while _state(env, job):
        assert time.time() - t0 < timeout, f"job {job} still queued after {timeout} s"
        time.sleep(2)


def _table(path: Path) -> dict[tuple, dict]:
    """Rows of a collected CSV by (specimen folder name, cohort, seed, arm, time)."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {(Path(r["source"]).name, r.get("cohort"), r.get("seed"), r.get("arm"), r.get("time_years")): r
            for r in rows}


def _equal(a: str, b: str, rtol=1e-8) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return abs(x - y) <= rtol * max(abs(x), abs(y)) + 1e-300


@pytest.fixture(scope="module")
def slurm():
    """SLURM's environment for sbatch/squeue; starts the daemons (and stops them) if needed."""
    require_host("sbatch", "fem/runtime/slurm-local.sh")
    env = dict(os.environ, SLURM_CONF=str(SLURM_DIR / "slurm.conf"))
    started = subprocess.run([SLURM_SH, "status"], capture_output=True).returncode != 0
    if started:
        _run([SLURM_SH, "start"], env)
    yield env
    if started:
        _run([SLURM_SH, "stop"], env)


@pytest.fixture(scope="module")
def runs(slurm, tmp_path_factory):
    """Submit the guide's three scripts, cancel an array task midway and resubmit the array,
    collect; and the same cases run serially. Returns what the tests look at."""
    work = tmp_path_factory.mktemp("slurm")
    scripts = guide_scripts()
    assert {"bonefem-large", "bonefem-array", "bonefem-trial"} <= set(scripts), scripts.keys()
    for name, body in scripts.items():
        (work / f"{name}.sh").write_text(body)
    cases = work / "cases"
    cases.mkdir()
    for name, text in ARRAY.items():
        (cases / f"{name}.toml").write_text(text)
    (work / "big.toml").write_text(foam(1.5, 7))
    (work / "trial.toml").write_text(TRIAL)
    env = dict(slurm, BONEFEM_IN=f"{ROOT / 'bonefem'} exec")
    sbatch = ["sbatch", "--parsable", "--chdir", work, "--mem-per-cpu=2G", "--time=60"]
    array_cases = sorted(str(p.relative_to(work)) for p in cases.glob("*.toml"))
    t0 = time.time()
    times = {}

    # the array first, with task 0 cancelled in the middle of its solve
    array = _run([*sbatch, "--array=0-3", "--ntasks=1", "bonefem-array.sh", *array_cases], env, work).strip()
    first = work / "results/array/a0/result.json"
    t = time.time()
    while _state(env, array).get("0") != "RUNNING":
        assert time.time() - t < 600, "array task 0 never started"
        time.sleep(0.5)
    time.sleep(8)             # past start-up, into the specimen, mesh and solve
    assert not first.exists(), "array task 0 finished before it could be cancelled: make a0 larger"
    _run(["scancel", f"{array}_0"], env)
    _wait(env, array)
    times["array with one task cancelled"] = time.time() - t
    cancelled_left = first.exists()
    done = {p.parent.name: (p.stat().st_mtime_ns, p.read_bytes())
            for p in (work / "results/array").glob("*/result.json")}

    t = time.time()
    again = _run([*sbatch, "--array=0-3", "--ntasks=1", "--wait", "bonefem-array.sh", *array_cases], env,
                 work).strip()
    times["array resubmitted"] = time.time() - t
    t = time.time()
    _run([*sbatch, "--ntasks=2", "--wait", "bonefem-large.sh", "big.toml"], env, work)
    times["large, 2 ranks"] = time.time() - t
    t = time.time()
    _run([*sbatch, "--ntasks=2", "--wait", "bonefem-trial.sh", "trial.toml"], env, work)
    times["trial batch, 2 ranks"] = time.time() - t
    times["all jobs"] = time.time() - t0
    collect = (f"{env['BONEFEM_IN']} python3 -m fem collect results/ -o all.csv")
    _run(["bash", "-c", collect], env, work)       # as the guide writes it

    # the same cases serially, without SLURM
    ref = work / "ref"
    t = time.time()
    for case in [*(cases.glob("*.toml")), work / "big.toml", work / "trial.toml"]:
        _run([ROOT / "bonefem", "run", case, "-o", ref / case.stem], env, work)
    times["serial runs"] = time.time() - t
    _run([ROOT / "bonefem", "collect", ref, "-o", work / "ref.csv"], env, work)
    print("SLURM check times (s):", {k: round(v, 1) for k, v in times.items()})
    logs = {p.name: p.read_text() for p in work.glob("slurm-*.out")}
    return dict(work=work, done=done, cancelled_left=cancelled_left, array=array, again=again,
                logs=logs, times=times)


def test_collected_table_equals_a_serial_run(runs):
    work = runs["work"]
    got, ref = _table(work / "all.csv"), _table(work / "ref.csv")
    # 4 array cases + the large job + the trial's rows (2 seeds x baseline and 2 arms)
    assert len(ref) == 5 + 6 and set(got) == set(ref), (sorted(got), sorted(ref))
    worst = 0.0
    for key, row in ref.items():
        for col, value in row.items():
            if col not in VOLATILE:
                assert _equal(got[key][col], value), (key, col, got[key][col], value)
                try:
                    x, y = float(got[key][col]), float(value)
                    worst = max(worst, abs(x - y) / max(abs(x), abs(y)))
                except (ValueError, ZeroDivisionError):
                    pass
    print(f"largest relative difference, SLURM vs serial: {worst:.1e}")
    big = next(r for k, r in got.items() if k[0] == "big")
    assert big["ranks"] == "2"           # the large job really ran on 2 ranks


def test_a_cancelled_array_task_is_redone_and_nothing_finished_is_lost(runs):
    work = runs["work"]
    assert not runs["cancelled_left"]
    assert set(runs["done"]) == {"a1", "a2", "a3"}
    for name, (mtime, content) in runs["done"].items():
        p = work / "results/array" / name / "result.json"
        assert p.stat().st_mtime_ns == mtime and p.read_bytes() == content, name
    assert (work / "results/array/a0/result.json").exists()
    # the resubmitted array solved only a0; the other tasks found their results
    again = {name: log for name, log in runs["logs"].items() if name.startswith(f"slurm-{runs['again']}_")}
    assert len(again) == 4, sorted(runs["logs"])
    solved = [name for name, log in again.items() if " solved in " in log]
    skipped = [name for name, log in again.items() if " done earlier in " in log]
    assert solved == [f"slurm-{runs['again']}_0.out"], again
    assert len(skipped) == 3


# Scans with analytic answers, made in the runtime (the host's Python may lack NumPy):
# a solid block (E_app = E) and a column of half the cross-section (E_app = E / 2).
MAKE_SCANS = """
import numpy as np
np.save("scans/solid.npy", np.ones((4, 4, 5), np.uint8))
column = np.zeros((4, 4, 5), np.uint8)
column[:2] = 1
np.save("scans/column.npy", column)
"""


def test_a_labs_scans_batch_writes_one_table_with_the_analytic_moduli(slurm, tmp_path):
    work = tmp_path
    (work / "bonefem-scans.sh").write_text(guide_scripts()["bonefem-scans"])
    (work / "scans").mkdir()
    _run([ROOT / "bonefem", "exec", "python3", "-c", MAKE_SCANS], slurm, work)
    (work / "protocol.toml").write_text("[specimen]\nvoxel_size = 0.1\n[material]\nmodulus = 8000.0\n"
                                        "[solver]\nrtol = 1e-12\n[output]\nfields = false\n")
    env = dict(slurm, BONEFEM_IN=f"{ROOT / 'bonefem'} exec")
    # as the guide writes it: the pattern quoted, expanded by bonefem in the job
    _run(["sbatch", "--parsable", "--chdir", work, "--mem-per-cpu=2G", "--time=30", "--ntasks=2",
          "--wait", "bonefem-scans.sh", "protocol.toml", "scans/*.npy"], env, work)
    with (work / "results/scans/images.csv").open() as f:
        rows = {Path(r["image"]).name: r for r in csv.DictReader(f)}
    assert set(rows) == {"solid.npy", "column.npy"}
    assert _equal(rows["solid.npy"]["apparent_modulus_MPa"], "8000", rtol=1e-9)
    assert _equal(rows["column.npy"]["apparent_modulus_MPa"], "4000", rtol=1e-9)
    log = next(work.glob("slurm-*.out")).read_text()
    assert log.count(" solved in ") == 2 and "one row per image" in log
