"""MPI batch: groups of ranks take jobs from a shared counter; same numbers as serial."""

import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fem.specimen.foam import trabecular_foam
from tests.conftest import ROOT, fails, read_result, run_cli


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


# ---------------------------------------------------------------------------
# One protocol, many scans: `bonefem batch TEMPLATE.toml --images ...` (issue 19)

TEMPLATE = "[specimen]\nvoxel_size = 0.1\n[material]\nmodulus = 8000.0\n[solver]\nrtol = 1e-12\n[output]\nfields = false\n"


@pytest.fixture
def scans(tmp_path):
    """A folder of scans with known answers, a template, and a file that is no image.

    solid: a solid block, E_app = E exactly (uniaxial: lateral faces free);
    column: half of the cross-section removed over the whole height, E_app = E / 2;
    floor: the top half of the stack removed, no bone between the platens: fails alone.
    """
    from fem.specimen.io import write_nifti

    d = tmp_path / "scans"
    d.mkdir()
    np.save(d / "solid.npy", np.ones((4, 4, 5), np.uint8))
    column = np.zeros((4, 4, 5), np.uint8)
    column[:2] = 1
    write_nifti(d / "column.nii.gz", column, (0.1, 0.1, 0.1))
    floor = np.zeros((4, 4, 6), np.uint8)
    floor[:, :, :3] = 1
    np.save(d / "floor.npy", floor)
    (d / "notes.txt").write_text("scan log\n")
    template = tmp_path / "protocol.toml"
    template.write_text(TEMPLATE)
    return d, template


def _table(path):
    import csv

    with open(path) as f:
        return {Path(r["image"]).name: r for r in csv.DictReader(f)}


def test_batch_over_a_folder_of_images_with_a_template(scans, tmp_path):
    d, template = scans
    out = tmp_path / "study"
    proc = run_cli("batch", template, "--images", d, "-o", out)
    # the failed scan fails the batch at the end, after the others have finished
    assert proc.returncode == 2, proc.stderr
    assert "floor" in proc.stderr and "no bone path" in proc.stderr and "1 of 3 batch jobs failed" in proc.stderr
    for name in ("column", "floor", "solid"):
        assert f"{name} " in proc.stdout        # one plain line per image: a log, not a terminal
    table = _table(out / "images.csv")
    assert sorted(table) == ["column.nii.gz", "floor.npy", "solid.npy"]       # notes.txt is no scan
    assert float(table["solid.npy"]["apparent_modulus_MPa"]) == pytest.approx(8000.0, rel=1e-9)
    assert float(table["column.nii.gz"]["apparent_modulus_MPa"]) == pytest.approx(4000.0, rel=1e-9)
    assert float(table["column.nii.gz"]["bv_tv"]) == pytest.approx(0.5, rel=1e-12)
    assert table["floor.npy"]["status"] == "failed" and "no bone path" in table["floor.npy"]["error"]
    assert table["solid.npy"]["status"] == "ok" and table["solid.npy"]["error"] == ""
    # each image in a folder named after it, solved with the template's settings
    solid = read_result(out / "solid")
    assert solid["case"]["material"]["modulus"] == 8000.0 and solid["voxel_size_mm"] == [0.1] * 3
    assert not (out / "floor" / "result.json").exists()

    # resume: the finished scans are skipped, the failed one is tried again
    again = run_cli("batch", template, "--images", d, "-o", out)
    assert again.stdout.count("done earlier") == 2 and "floor FAILED" in again.stdout
    assert _table(out / "images.csv")["solid.npy"]["apparent_modulus_MPa"] == table["solid.npy"]["apparent_modulus_MPa"]

    # a glob picks some of them; a changed protocol is not passed off as the old results
    only = run_cli("batch", template, "--images", str(d / "[cs]*"), "-o", tmp_path / "glob", check=True)
    assert sorted(_table(tmp_path / "glob" / "images.csv")) == ["column.nii.gz", "solid.npy"]
    assert "one row per image in" in only.stdout
    template.write_text(TEMPLATE.replace("8000.0", "9000.0"))
    changed = run_cli("batch", template, "--images", d / "solid.npy", "-o", out)
    fails(changed, "was solved with another material.modulus", str(out / "solid"))


def test_a_template_solves_a_shipped_grey_scan_as_solve_does(tmp_path):
    # the template's threshold and solver reach the job: the same numbers as the command line
    scan = ROOT / "meshes" / "vertebral-elderly-1.6mm.nii.gz"
    run_cli("solve", scan, "--threshold", 0.5, "--rtol", 1e-12, "--no-fields", "-o", tmp_path / "s",
            check=True)
    template = tmp_path / "grey.toml"
    template.write_text("[specimen]\nthreshold = 0.5\n[solver]\nrtol = 1e-12\n[output]\nfields = false\n")
    run_cli("batch", template, "--images", scan, "-o", tmp_path / "b", check=True)
    single = read_result(tmp_path / "s")
    row = _table(tmp_path / "b" / "images.csv")[scan.name]
    assert float(row["reaction_force_N"]) == pytest.approx(single["reaction_force_N"], rel=1e-12)
    assert int(row["elements"]) == single["elements"] and row["source"] == str(tmp_path / "b" / "vertebral-elderly-1.6mm")


def test_an_unreadable_scan_fails_alone_and_names_its_file(scans, tmp_path):
    d, template = scans
    (d / "floor.npy").unlink()
    (d / "broken.npy").write_bytes(b"not a NumPy file")
    proc = run_cli("batch", template, "--images", d, "-o", tmp_path / "b")
    fails(proc, str(d / "broken.npy"), "1 of 3 batch jobs failed")
    table = _table(tmp_path / "b" / "images.csv")
    assert table["broken.npy"]["status"] == "failed" and str(d / "broken.npy") in table["broken.npy"]["error"]
    assert float(table["solid.npy"]["apparent_modulus_MPa"]) == pytest.approx(8000.0, rel=1e-9)


def test_bad_image_sets_and_templates_name_the_path_and_what_was_expected(scans, tmp_path):
    d, template = scans
    (tmp_path / "empty").mkdir()
    cases = [
        (["--images", str(d / "*.nii")], ["*.nii", "matches nothing", "expected image files (.npy"]),
        (["--images", str(d / "*.txt")], ["matches 1 path(s) but none is an image"]),
        (["--images", tmp_path / "empty"], [str(tmp_path / "empty"), "the folder holds no image"]),
        (["--images", d / "notes.txt"], ["notes.txt: not an image file", "expected image files"]),
        (["--images", tmp_path / "missing"], ["missing: no such file or folder"]),
    ]
    for args, fragments in cases:
        fails(run_cli("batch", template, *args, "-o", tmp_path / "x"), *fragments)
    two = run_cli("batch", template, template, "--images", d, "-o", tmp_path / "x")
    fails(two, "--images takes one template case file, got 2")
    generator = tmp_path / "gen.toml"
    generator.write_text("[specimen.synthetic]\nsize = 0.6\n")
    fails(run_cli("batch", generator, "--images", d, "-o", tmp_path / "x"),
          "[specimen.synthetic] a template for --images takes its specimens from the images")
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("[solver]\nrtoll = 1e-9\n")
    proc = run_cli("batch", bad_key, "--images", d, "-o", tmp_path / "x")
    fails(proc, "bad.toml: [solver.rtoll] unknown key")
    assert proc.stderr.count("unknown key") == 1
    assert not (tmp_path / "x").exists()


def test_a_folder_gives_its_image_files_and_its_folders_of_tiff_slices(tmp_path):
    from fem.batch import expand_image_args

    for name in ("b.nii.gz", "a.npy", "notes.txt", "p1/0001.tif", "p1/0002.tif", "docs/x.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    assert expand_image_args([tmp_path]) == [tmp_path / "a.npy", tmp_path / "b.nii.gz", tmp_path / "p1"]
    # a folder of slices alone is one scan, as is each folder a glob of folders matches
    assert expand_image_args([tmp_path / "p1"]) == [tmp_path / "p1"]
    assert expand_image_args(["*/"], cwd=tmp_path) == [tmp_path / "p1"]
    # given twice, solved once
    assert expand_image_args([tmp_path / "a.npy", str(tmp_path / "*.npy")]) == [tmp_path / "a.npy"]


def test_scans_with_the_same_name_in_patient_folders_get_their_folder_in_the_name(tmp_path):
    from fem.batch import image_names

    names = image_names([tmp_path / "p1" / "scan.nii.gz", tmp_path / "p2" / "scan.nii.gz"])
    assert names == ["p1-scan", "p2-scan"]
    assert image_names([tmp_path / "a.npy", tmp_path / "b.nii.gz"]) == ["a", "b"]
    with pytest.raises(Exception, match="would both write results to the folder 'a'"):
        image_names([tmp_path / "a.npy", tmp_path / "a.nii.gz"])


@pytest.mark.mpi
@pytest.mark.parametrize("k", [1, 2])
def test_image_batch_under_mpirun_gives_the_analytic_moduli(scans, tmp_path, k):
    d, template = scans
    out = tmp_path / "b"
    proc = run_cli("batch", template, "--images", str(d / "*.n*"), "--ranks-per-job", k,
                   "-o", out, mpi=2)
    # With stdin on /dev/null (as in CI), Open MPI 5's output forwarding now and then delivers
    # rank 0's stderr on mpirun's stdout (measured: 2 of 20 runs): the user sees the line on
    # the terminal either way, so it is looked for in both streams.
    shown = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "1 of 3 batch jobs failed" in shown, shown
    table = _table(out / "images.csv")
    assert float(table["solid.npy"]["apparent_modulus_MPa"]) == pytest.approx(8000.0, rel=1e-9)
    assert float(table["column.nii.gz"]["apparent_modulus_MPa"]) == pytest.approx(4000.0, rel=1e-9)
    assert int(table["solid.npy"]["ranks"]) == k and table["floor.npy"]["status"] == "failed"


# ---------------------------------------------------------------------------
# `bonefem run TRIAL --jobs N`: the trial's specimens side by side, as the demo runs


@pytest.mark.mpi
def test_run_with_jobs_gives_the_serial_trial(tmp_path):
    import csv

    case = tmp_path / "tiny2.toml"
    case.write_text(TINY_TRIAL.replace("seeds = [1]", "seeds = [1, 2]"))
    run_cli("run", case, "-o", tmp_path / "serial", check=True)
    par = run_cli("run", case, "-o", tmp_path / "par", "--jobs", "2", check=True)
    # two groups of one rank each ran one specimen (the batch's lines), then the summary
    assert par.stdout.count("group of 1 rank(s)") == 2, par.stdout
    assert "How sure each direction is" in par.stdout
    key = lambda r: (r["seed"], r["arm"], r["time_years"])  # noqa: E731
    serial, side = ({key(r): r for r in csv.DictReader((tmp_path / d / "trial.csv").open())}
                    for d in ("serial", "par"))
    assert set(serial) == set(side) and len(serial) == 6
    for k, r in serial.items():
        for col in ("bmd_mg_per_cm3", "apparent_modulus_MPa", "failure_load_N", "perforations"):
            assert float(side[k][col]) == pytest.approx(float(r[col]), rel=1e-9), (k, col)
    assert (tmp_path / "par" / "summary.md").read_text() == (tmp_path / "serial" / "summary.md").read_text()
    # field files (for the renders) of the first seed only, as the serial run writes them
    jobs = tmp_path / "par" / "jobs"
    assert (jobs / "elderly-osteoporotic-s1" / "fields").is_dir()
    assert not (jobs / "elderly-osteoporotic-s2" / "fields").exists()
    assert (tmp_path / "par" / "stress-elderly-osteoporotic.png").stat().st_size > 10000


def test_run_jobs_is_for_trials_and_at_least_one(cases, tmp_path):
    _, paths = cases
    fails(run_cli("run", paths[0], "-o", tmp_path / "one", "--jobs", "2"),
          "case1.toml: --jobs runs a trial's specimens side by side")
    fails(run_cli("run", paths[0], "-o", tmp_path / "zero", "--jobs", "0"), "--jobs must be 1 or more")
    assert not (tmp_path / "one").exists() and not (tmp_path / "zero").exists()


def test_report_of_an_older_batch_trial_recomputes_the_directions(batch_trial, tmp_path):
    """A trial written before result.json held the directions: docs/results.md computes
    them from the rows, which a batch keeps in its jobs' folders."""
    import json
    import shutil

    _, done = batch_trial
    trial = tmp_path / "tiny"
    shutil.copytree(done / "tiny", trial)
    result = json.loads((trial / "result.json").read_text())
    expected = result["paired"].pop("changes")
    (trial / "result.json").write_text(json.dumps(result))
    run_cli("report", trial, "-o", tmp_path / "results.md", check=True)
    text = (tmp_path / "results.md").read_text()
    assert "How sure each direction is" in text
    for c in expected:      # one specimen: the mean, no interval, so not resolved
        assert c["n"] == 1
    assert text.count("| not resolved |") == len(expected) == 4
