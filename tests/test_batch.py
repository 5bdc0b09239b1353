"""MPI batch: groups of ranks take jobs from a shared counter; same numbers as serial."""

import os
import select
import subprocess
import sys

import numpy as np
import pytest

from fem.specimen.foam import trabecular_foam
from tests.conftest import ROOT, read_result, run_cli


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    paths = []
    for seed in (1, 2, 3):
        np.save(d / f"foam{seed}.npy", trabecular_foam(size=0.6, voxel_size=0.03, bv_tv=0.3,
                                                       spacing=0.3, seed=seed).astype(np.uint8))
        p = d / f"case{seed}.toml"
        p.write_text(f'[specimen]\nimage = "foam{seed}.npy"\nvoxel_size = 0.03\n'
                     "[solver]\nrtol = 1e-12\n[output]\nfields = false\n")
        paths.append(p)
    return d, paths


@pytest.mark.mpi
@pytest.mark.parametrize("k", [1, 2])
def test_batch_groups_give_the_serial_numbers(cases, tmp_path, k):
    d, paths = cases
    serial = {}
    for p in paths:
        run_cli("run", p, "-o", tmp_path / "serial" / p.stem, check=True)
        serial[p.stem] = read_result(tmp_path / "serial" / p.stem)["reaction_force_N"]
    proc = run_cli("batch", *paths, "--ranks-per-job", k, "-o", tmp_path / "b", mpi=2, check=True)
    assert proc.stdout.count("solved") == 3
    assert "\r" not in proc.stdout      # no bar: mpirun's stdout here is a pipe, like a SLURM log
    for p in paths:
        r = read_result(tmp_path / "b" / p.stem)
        assert r["ranks"] == k
        assert r["reaction_force_N"] == pytest.approx(serial[p.stem], rel=1e-8)
    # a re-run finds every job done
    again = run_cli("batch", *paths, "--ranks-per-job", k, "-o", tmp_path / "b", mpi=2, check=True)
    assert again.stdout.count("done earlier") == 3
    out = tmp_path / "all.csv"
    run_cli("collect", tmp_path / "b", "-o", out, check=True)
    assert len(out.read_text().splitlines()) == 1 + 3


@pytest.fixture
def two_and_a_broken_one(cases, tmp_path):
    """The first two foam cases and one that fails while it runs (no bone path)."""
    d, paths = cases
    img = np.zeros((6, 6, 8), np.uint8)
    img[:, :, :3] = 1
    np.save(tmp_path / "half.npy", img)
    broken = tmp_path / "broken.toml"
    broken.write_text('[specimen]\nimage = "half.npy"\nvoxel_size = 0.05\n')
    return [*paths[:2], broken]


def test_batch_lines_in_a_log_quiet_and_verbose(two_and_a_broken_one, tmp_path):
    jobs = two_and_a_broken_one
    proc = run_cli("batch", *jobs, "-o", tmp_path / "plain")
    assert "bonefem batch: job 1/3 case1 solved in" in proc.stdout
    assert "job 2/3 case2 solved in" in proc.stdout and "job 3/3 broken FAILED" in proc.stdout
    assert "\r" not in proc.stdout and "solve:" not in proc.stdout
    # a failed job fails the batch, after the others have finished and kept their results
    assert proc.returncode == 2 and "no bone path" in proc.stderr and "1 of 3 batch jobs failed" in proc.stderr
    assert read_result(tmp_path / "plain" / "case2")["dofs"] > 0

    quiet = run_cli("batch", *jobs, "-o", tmp_path / "quiet", "--quiet")
    assert "bonefem batch: job" not in quiet.stdout and "\r" not in quiet.stdout
    assert quiet.returncode == 2 and "job 3/3 broken failed" in quiet.stderr and "no bone path" in quiet.stderr

    # --quiet on a batch that succeeds: nothing at all (the two jobs were done above)
    silent = run_cli("batch", *jobs[:2], "-o", tmp_path / "quiet", "--quiet", check=True)
    assert silent.stdout.strip() == ""

    verbose = run_cli("batch", *jobs[:1], "-o", tmp_path / "verbose", "--verbose", check=True)
    assert "CG iterations" in verbose.stdout and "job 1/1 case1 solved" in verbose.stdout


def fem_command(*args, mpi=0) -> list[str]:
    cmd = [sys.executable, "-m", "fem", *map(str, args)]
    return ["mpirun", "-n", str(mpi), *cmd] if mpi else cmd


@pytest.mark.mpi
def test_a_group_with_only_finished_jobs_does_not_stall_the_others(cases, tmp_path):
    _, paths = cases
    run_cli("batch", paths[0], "-o", tmp_path / "b", check=True)
    # Two groups, one job done earlier: whichever group gets it may never solve anything.
    proc = subprocess.Popen(fem_command("batch", *paths[:2], "-o", tmp_path / "b", mpi=2),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        out = proc.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        proc.terminate()       # mpirun passes SIGTERM on to its ranks
        proc.communicate(timeout=30)
        pytest.fail("the batch hung")
    assert proc.returncode == 0, out
    assert out.count("done earlier") == 1 and out.count("solved") == 1


def run_on_terminal(*args, mpi=0) -> str:
    """Run ``python3 -m fem ARGS`` with stdout and stderr on a pseudo-terminal; its output."""
    import pty

    main, child = pty.openpty()
    proc = subprocess.Popen(fem_command(*args, mpi=mpi), stdin=subprocess.DEVNULL, stdout=child,
                            stderr=child, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    os.close(child)
    out = b""
    # Read as it comes: a pty holds only a few kB, and a full one would stop the writer.
    while select.select([main], [], [], 120)[0]:
        try:
            chunk = os.read(main, 4096)
        except OSError:      # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


@pytest.mark.parametrize("mpi", [0, pytest.param(2, marks=pytest.mark.mpi)])
def test_batch_draws_a_bar_on_a_terminal(cases, tmp_path, mpi):
    _, paths = cases
    out = run_on_terminal("batch", *paths[:2], "-o", tmp_path / "b", mpi=mpi)
    assert "batch: 100%" in out and "2/2" in out and "\r" in out
    assert "case" in out.split("batch: 100%")[0]       # the current job's name on the bar
    assert "bonefem batch: job" not in out             # and no log lines from any rank


# Claim files of job 2 (index 1) cannot be created: the disk is full.
FULL_CLAIMS = r"""
import errno, os, sys
real_open = os.open
def full_open(path, flags, *args, **kwargs):
    p = os.fspath(path)
    if ".claims-" in p and os.path.basename(p) == "1":
        raise OSError(errno.ENOSPC, "No space left on device", p)
    return real_open(path, flags, *args, **kwargs)
os.open = full_open
from fem.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.mpi
@pytest.mark.parametrize("mpi", [0, 2])
def test_batch_claims_on_a_full_disk_end_in_a_clear_error(cases, tmp_path, mpi):
    d, paths = cases
    cmd = [sys.executable, "-c", FULL_CLAIMS, "batch", *map(str, paths), "-o", str(tmp_path / "b")]
    if mpi:
        cmd = ["mpirun", "-n", str(mpi), *cmd]
    # every rank must hear of it and stop (the timeout would catch a hang)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot create the claim file" in proc.stderr and "No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "a re-run does only the unfinished jobs" in proc.stderr
    assert read_result(tmp_path / "b" / "case1")["dofs"] > 0        # job 1 was kept


def test_batch_solves_a_mesh_case_as_run_does(tmp_path):
    # The choice between image and mesh used to be made by the command line only.
    case = tmp_path / "cell.toml"
    case.write_text(f'[specimen]\nimage = "{ROOT / "meshes" / "strut-cell.msh"}"\n'
                    "[solver]\nrtol = 1e-12\n[output]\nfields = false\n")
    run_cli("run", case, "-o", tmp_path / "run", check=True)
    run_cli("batch", case, "-o", tmp_path / "b", check=True)
    single, batch = read_result(tmp_path / "run"), read_result(tmp_path / "b" / "cell")
    assert batch["mesh"]["cell_type"] == "tetrahedron"
    assert batch["reaction_force_N"] == pytest.approx(single["reaction_force_N"], rel=1e-12)


TINY_TRIAL = ('title = "tiny"\n[trial]\ncohorts = ["elderly-osteoporotic"]\narms = ["untreated", "combined"]\n'
              "years = 0.5\ncheckpoints = [0.5]\nseeds = [1]\nspinup_years = 0.5\nattribution = false\n"
              "[trial.specimen]\nsize = 1.6\nvoxel_size = 0.04\n")


@pytest.fixture(scope="module")
def batch_trial(tmp_path_factory):
    """A tiny trial run through `bonefem batch`: (case file, batch output folder)."""
    d = tmp_path_factory.mktemp("batch-trial")
    case = d / "tiny.toml"
    case.write_text(TINY_TRIAL)
    run_cli("batch", case, "-o", d / "b", check=True)
    return case, d / "b"


def test_trial_through_batch_keeps_its_renders_and_time(batch_trial):
    import json

    _, out = batch_trial
    result = json.loads((out / "tiny" / "result.json").read_text())
    assert result["renders"] == ["stress-elderly-osteoporotic.png"]
    assert (out / "tiny" / result["renders"][0]).stat().st_size > 10000
    assert result["solves"] == 3 and result["seconds"] > 0


def test_a_cut_line_in_a_jobs_rows_does_not_break_later_batches(batch_trial, tmp_path):
    import json
    import shutil

    case, done = batch_trial
    out = tmp_path / "b"
    shutil.copytree(done, out)
    table = (out / "tiny" / "trial.csv").read_text()
    # a job killed in the middle of a write leaves half a line behind
    with (out / "tiny" / "jobs" / "elderly-osteoporotic-s1" / "rows.jsonl").open("a") as f:
        f.write('{"cohort": "elderly-osteop')
    again = run_cli("batch", case, "-o", out)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert (out / "tiny" / "trial.csv").read_text() == table
    assert json.loads((out / "tiny" / "result.json").read_text())["solves"] == 3
