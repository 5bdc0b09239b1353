"""Virtual trials: a tiny trial end to end, resumed, under MPI; views and reports.
(The attribution on constructed cases: tests/test_attribution.py.)"""

import csv
import json

import numpy as np
import pytest

from tests.conftest import ROOT, read_result, run_cli


@pytest.fixture(scope="module")
def tiny_trial(tmp_path_factory):
    d = tmp_path_factory.mktemp("trial")
    (d / "trial.toml").write_text(
        'title = "tiny"\n[trial]\ncohorts = ["elderly-osteoporotic"]\narms = ["untreated", "combined"]\n'
        "years = 0.5\ncheckpoints = [0.25, 0.5]\nseeds = [1]\nspinup_years = 0.5\n"
        "[trial.specimen]\nsize = 1.6\nvoxel_size = 0.04\n"
        # tight solves, so that serial and 2-rank runs agree far inside the test's 1e-5
        # (at the default rtol 1e-7 the Pistoia load of the two differs by about 1e-5)
        "[solver]\nrtol = 1e-10\n")
    proc = run_cli("run", d / "trial.toml", "-o", d / "out", check=True)
    return d / "out", proc


def test_tiny_trial_writes_its_tables_and_figures(tiny_trial):
    out, proc = tiny_trial
    rows = list(csv.DictReader((out / "trial.csv").open()))
    assert [(r["arm"], float(r["time_years"])) for r in rows] == \
        [("baseline", 0.0), ("untreated", 0.25), ("untreated", 0.5), ("combined", 0.25), ("combined", 0.5)]
    base, _, untreated, combined_mid, combined = rows
    # changes against baseline and untreated are computed from the rows' own figures
    assert float(combined["d_bmd_pct"]) == pytest.approx(
        100 * (float(combined["bmd_mg_per_cm3"]) / float(base["bmd_mg_per_cm3"]) - 1), rel=1e-9)
    assert float(combined["du_failure_load_pct"]) == pytest.approx(
        100 * (float(combined["failure_load_N"]) / float(untreated["failure_load_N"]) - 1), rel=1e-9)
    # the order-free parts add up to the change against baseline (to rounding);
    # attribution = "final" (the default): only the last checkpoint is split
    parts = ("strength_mass_pct", "strength_tissue_pct", "strength_architecture_pct")
    for r in (untreated, combined):
        assert sum(float(r[k]) for k in parts) == pytest.approx(float(r["d_failure_load_pct"]), abs=1e-9)
    assert all(combined_mid[k] == "" for k in parts + ("mass_only_pct",))
    result = json.loads((out / "result.json").read_text())
    assert result["solves"] == 1 + 2 * 2 + 2 * 6   # baseline, 2 arms x 2 checkpoints, 6 counterfactuals each at the end
    for name in ("strength_vs_bmd.png", "trajectories.png", "attribution.png"):
        assert (out / name).stat().st_size > 10000
    assert "| elderly-osteoporotic | combined | 1 |" in (out / "summary.md").read_text()
    assert "elderly-osteoporotic | combined" in proc.stdout


def test_remodelling_space_splits_architecture_and_keeps_the_other_parts(tiny_trial, tmp_path):
    # the tiny trial's specimen and arms, split at 0.5 years with the open cavities
    reference, _ = tiny_trial
    case = tmp_path / "rs.toml"
    case.write_text((reference.parent / "trial.toml").read_text()
                    .replace("checkpoints = [0.25, 0.5]", "checkpoints = [0.5]\nremodelling_space = true"))
    run_cli("run", case, "-o", tmp_path / "out", check=True)
    rows = {r["arm"]: r for r in csv.DictReader((tmp_path / "out" / "trial.csv").open())}
    old = {r["arm"]: r for r in csv.DictReader((reference / "trial.csv").open()) if r["time_years"] == "0.5"}
    for arm in ("untreated", "combined"):
        r, o = rows[arm], old[arm]
        # the same remodelling and the same solves: mass, tissue and architecture as without
        for k in ("failure_load_N", "strength_mass_pct", "strength_tissue_pct", "strength_architecture_pct"):
            assert float(r[k]) == pytest.approx(float(o[k]), abs=1e-9)
        assert float(r["strength_cavities_pct"]) + float(r["strength_permanent_pct"]) == pytest.approx(
            float(r["strength_architecture_pct"]), abs=1e-12)
        assert float(r["strength_cavities_pct"]) != 0
        assert float(r["cavity_cost_baseline_pct"]) == float(rows["untreated"]["cavity_cost_baseline_pct"])
    # paired parts: arm minus untreated, same specimen, adding up to the effect
    c = rows["combined"]
    parts = [float(c[f"paired_strength_{p}_pts"]) for p in ("mass", "tissue", "cavities", "permanent")]
    assert sum(parts) == pytest.approx(float(c["paired_d_failure_load_pts"]), abs=1e-9)
    assert float(c["paired_d_failure_load_pts"]) == pytest.approx(
        float(c["d_failure_load_pct"]) - float(rows["untreated"]["d_failure_load_pct"]), abs=1e-12)
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    # baseline, 2 arms x 1 checkpoint, 6 + 8 counterfactuals each (both states have open cavities)
    assert result["solves"] == 1 + 2 + 2 * 14
    assert "| cavities | permanent |" in (tmp_path / "out" / "summary.md").read_text()


def test_view_writes_a_non_trivial_png(tiny_trial, tmp_path):
    out, _ = tiny_trial
    field_dir = out / "fields" / "elderly-osteoporotic-s1-combined-0.5y"
    png = tmp_path / "v.png"
    run_cli("view", field_dir, "--field", "von_mises", "--screenshot", png, check=True)
    from matplotlib.image import imread

    img = imread(png)
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert np.unique(img.reshape(-1, img.shape[-1]), axis=0).shape[0] > 50  # not a blank image
    assert read_result(field_dir)["pistoia"]["failure_load_N"] > 0


def test_report_generates_results_document(tiny_trial, tmp_path):
    out, _ = tiny_trial
    doc = tmp_path / "results.md"
    run_cli("report", out, "-o", doc, check=True)
    text = doc.read_text()
    assert "## Headline table" in text and "elderly-osteoporotic" in text
    assert (tmp_path / "figures" / "strength_vs_bmd.png").exists()


def test_killed_trial_resumes_and_matches_an_uninterrupted_run(tiny_trial, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    reference, _ = tiny_trial
    case = reference.parent / "trial.toml"
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fem", "run", str(case), "-o", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        rows = out / "rows.jsonl"
        before = len(rows.read_text().splitlines()) if rows.exists() else 0
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if rows.exists() and len(rows.read_text().splitlines()) > before:
                break
            time.sleep(0.2)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finished_rows = len((out / "rows.jsonl").read_text().splitlines())
    assert 1 <= finished_rows < 5
    final = run_cli("run", case, "-o", out, check=True)
    assert "rows reused" in final.stdout
    # only the unfinished work was recomputed: fewer solves than the uninterrupted run,
    # while the totals count the whole trial
    full = json.loads((reference / "result.json").read_text())["solves"]
    resumed = json.loads((out / "result.json").read_text())
    assert resumed["this_run"]["solves"] < full == resumed["solves"]
    assert (out / "trial.csv").read_text() == (reference / "trial.csv").read_text()


@pytest.mark.mpi
def test_trial_under_two_ranks_gives_the_serial_numbers(tiny_trial, tmp_path):
    reference, _ = tiny_trial
    run_cli("run", reference.parent / "trial.toml", "-o", tmp_path / "p", mpi=2, check=True)
    serial = list(csv.DictReader((reference / "trial.csv").open()))
    parallel = list(csv.DictReader((tmp_path / "p" / "trial.csv").open()))
    assert [r["arm"] for r in parallel] == [r["arm"] for r in serial]
    for s, p in zip(serial, parallel):
        assert float(p["bmd_mg_per_cm3"]) == float(s["bmd_mg_per_cm3"])   # remodelling: rank 0 only
        # solves at the trial's rtol (1e-10): failure load far inside 1e-5
        assert float(p["failure_load_N"]) == pytest.approx(float(s["failure_load_N"]), rel=1e-5)


# Appends to rows.jsonl fail with ENOSPC (the disk is full), on rank 0, which writes them.
FULL_DISK = r"""
import errno, pathlib, sys
real_open = pathlib.Path.open
def full_open(self, mode="r", *args, **kwargs):
    if self.name == "rows.jsonl" and "a" in mode:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))
    return real_open(self, mode, *args, **kwargs)
pathlib.Path.open = full_open
from fem.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.mpi
def test_trial_rows_on_a_full_disk_fail_clearly_on_every_rank(tiny_trial, tmp_path):
    # The error is raised on rank 0; the other rank must hear of it rather than wait
    # for rank 0 in the next solve (the timeout would catch a hang).
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    reference, _ = tiny_trial
    cmd = ["mpirun", "-n", "2", sys.executable, "-c", FULL_DISK, "run",
           str(reference.parent / "trial.toml"), "-o", str(tmp_path / "full")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode != 0
    assert "rows.jsonl: cannot write a result (the disk is full)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_demo_uses_representative_specimens_of_the_full_trial():
    """The demo may have fewer arms and specimens than cases/trial.toml, never smaller or
    coarser ones, and its specimens are the full trial's first seeds (not picked by outcome)."""
    from fem.case import load_case

    demo, full = (load_case(ROOT / "cases" / f"{n}.toml").trial for n in ("demo", "trial"))
    assert demo.specimen.size >= full.specimen.size
    assert demo.specimen.voxel_size <= full.specimen.voxel_size
    assert demo.seeds == full.seeds[:len(demo.seeds)] and len(demo.seeds) >= 3
    assert set(demo.arms) <= set(full.arms) and {"untreated", "combined"} <= set(demo.arms)
    assert demo.cohorts == full.cohorts and demo.years == full.years
    assert demo.spinup_years == full.spinup_years
