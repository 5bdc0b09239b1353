"""The command line: images in two formats, MPI, and user errors without tracebacks."""

import re
from pathlib import Path

import numpy as np
import pytest

from fem.specimen.io import read_image, write_nifti
from fem.specimen.foam import trabecular_foam
from tests.conftest import ROOT, fails as _fails, read_result, run_cli


@pytest.fixture(scope="module")
def foam(tmp_path_factory):
    """A small trabecular-like specimen saved as .npy and as NIfTI."""
    d = tmp_path_factory.mktemp("foam")
    bone = trabecular_foam(size=0.72, voxel_size=0.03, bv_tv=0.25, spacing=0.3, seed=2)
    np.save(d / "foam.npy", bone.astype(np.uint8))
    write_nifti(d / "foam.nii.gz", bone.astype(np.uint8), (0.03, 0.03, 0.03))
    return d


def test_npy_and_nifti_give_identical_results(foam, tmp_path):
    run_cli("solve", foam / "foam.npy", "--voxel-size", 0.03, "--rtol", 1e-10,
            "-o", tmp_path / "a", check=True)
    run_cli("solve", foam / "foam.nii.gz", "--rtol", 1e-10, "-o", tmp_path / "b", check=True)
    a, b = read_result(tmp_path / "a"), read_result(tmp_path / "b")
    assert a["reaction_force_N"] == b["reaction_force_N"]
    assert a["elements"] == b["elements"] > 0
    assert a["voxel_size_mm"] == b["voxel_size_mm"] == [0.03] * 3
    assert (tmp_path / "a" / "case.toml").exists()
    # The field file opens in PyVista with one value per element / node.
    import pyvista

    grid = pyvista.read(tmp_path / "a" / a["fields"]).combine()
    assert grid.n_cells == a["elements"] and grid.n_points == a["nodes"]
    for name in ("von_mises", "sed", "effective_strain", "modulus"):
        assert grid.cell_data[name].shape == (a["elements"],)
    assert grid.point_data["displacement"].shape == (a["nodes"], 3)
    assert grid.cell_data["modulus"].min() == grid.cell_data["modulus"].max() == 10000.0


def test_nifti_anisotropic_spacing_is_read(tmp_path):
    image = np.zeros((4, 5, 6), np.uint8)
    image[1:3, :, 2:] = 7
    write_nifti(tmp_path / "a.nii", image, (0.02, 0.03, 0.05))
    data, spacing = read_image(tmp_path / "a.nii")
    assert spacing == pytest.approx((0.02, 0.03, 0.05))
    assert np.array_equal(data, image)


@pytest.mark.mpi
def test_serial_and_two_ranks_agree(foam, tmp_path):
    args = ["solve", foam / "foam.npy", "--voxel-size", 0.03, "--rtol", 1e-12, "--no-fields"]
    run_cli(*args, "-o", tmp_path / "s", check=True)
    run_cli(*args, "-o", tmp_path / "p", mpi=2, check=True)
    s, p = read_result(tmp_path / "s"), read_result(tmp_path / "p")
    assert p["ranks"] == 2
    assert p["reaction_force_N"] == pytest.approx(s["reaction_force_N"], rel=1e-8)
    assert p["pistoia"]["failure_load_N"] == pytest.approx(s["pistoia"]["failure_load_N"], rel=1e-6)
    assert (p["elements"], p["dofs"]) == (s["elements"], s["dofs"])


def test_user_errors_exit_2_with_a_clear_message(tmp_path):
    case = tmp_path / "bad.toml"
    case.write_text("[specimen.synthetic]\n[material]\nmodulus = 'x'\n")
    _fails(run_cli("run", case), str(case), "[material.modulus]", "expected a number")
    case.write_text("[specimen.synthetic]\n[solver]\ntolerance = 1\n")
    _fails(run_cli("run", case), "[solver.tolerance]", "unknown key")
    _fails(run_cli("solve", tmp_path / "nothere.npy", "--voxel-size", 0.03), "nothere.npy", "file not found")
    np.save(tmp_path / "empty.npy", np.zeros((4, 4, 4)))
    _fails(run_cli("solve", tmp_path / "empty.npy", "--voxel-size", 0.03, "-o", tmp_path / "e"),
           "empty.npy", "holds no bone")
    assert not (tmp_path / "e").exists()
    np.save(tmp_path / "img.npy", np.ones((3, 3, 3)))
    _fails(run_cli("solve", tmp_path / "img.npy"), "img.npy", "voxel size")


def test_unconverged_solve_is_an_error_and_writes_nothing(foam, tmp_path):
    case = tmp_path / "c.toml"
    case.write_text(f"[specimen]\nimage = '{foam / 'foam.npy'}'\nvoxel_size = 0.03\n"
                    "[solver]\nmax_iterations = 2\nrtol = 1e-12\n")
    _fails(run_cli("run", case, "-o", tmp_path / "out"), "did not converge", "DIVERGED_MAX_IT")
    assert not (tmp_path / "out" / "result.json").exists()


def test_info_prints_versions():
    proc = run_cli("info", check=True)
    assert "dolfinx" in proc.stdout and "0.9" in proc.stdout and "petsc" in proc.stdout


# ---------------------------------------------------------------------------
# A new user's mistakes: one line each, no traceback (issue 18)

def test_specimen_of_a_trial_case_is_a_one_line_error(tmp_path):
    case = tmp_path / "t.toml"
    case.write_text('[trial]\ncohorts = ["elderly-osteoporotic"]\n')
    _fails(run_cli("specimen", case, "-o", tmp_path / "s"), "t.toml", "trial case", "[specimen]")
    assert not (tmp_path / "s").exists()


def test_output_below_a_file_fails_before_anything_is_solved(foam, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    for args in (("solve", foam / "foam.npy", "--voxel-size", 0.03),
                 ("solve", ROOT / "meshes" / "strut-cell.msh")):
        proc = run_cli(*args, "-o", blocker / "sub" / "out")
        _fails(proc, "cannot create the output folder", f"{blocker} is a file")
        assert "specimen:" not in proc.stdout and "solve:" not in proc.stdout
    case = tmp_path / "v.toml"
    case.write_text('[specimen.vertebral]\ncohort = "elderly-osteoporotic"\nsize = 1.6\nseed = 1\n')
    _fails(run_cli("specimen", case, "-o", blocker / "s"), f"{blocker} is a file")


def test_grey_image_without_threshold_is_refused(tmp_path):
    image = ROOT / "meshes" / "vertebral-elderly-1.6mm.nii.gz"
    _fails(run_cli("solve", image, "-o", tmp_path / "o"), image.name, "did you forget --threshold?")
    run_cli("solve", image, "--threshold", "0.5", "--no-fields", "-o", tmp_path / "o", check=True)
    assert read_result(tmp_path / "o")["bv_tv"] > 0.05


def test_ctrl_c_in_a_trial_says_how_to_resume(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    case = tmp_path / "t.toml"
    case.write_text('[trial]\ncohorts = ["elderly-osteoporotic"]\narms = ["untreated"]\nyears = 0.5\n'
                    "checkpoints = [0.5]\nseeds = [1]\nspinup_years = 0.5\nattribution = false\n"
                    "[trial.specimen]\nsize = 1.6\nvoxel_size = 0.04\n[output]\nfields = false\n")
    rows = tmp_path / "out" / "rows.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "fem", "run", str(case), "-o", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not rows.exists():
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "bonefem: interrupted; re-run to resume" in err and "Traceback" not in err
    # it stopped between two solves: the rows written are whole, and a re-run reuses them
    again = run_cli("run", case, "-o", tmp_path / "out", check=True)
    assert "rows reused" in again.stdout and " 0 rows reused" not in again.stdout


def test_calibrate_without_output_writes_a_preset_and_prints_plain_numbers(tmp_path):
    proc = run_cli("calibrate", "untreated", "--fit", "balance:0.9:1.0", "--target",
                   "elderly-osteoporotic=-1", "--seeds", 1, "--size", 1.6, "--years", 0.25,
                   "--max-evaluations", 2, cwd=tmp_path, check=True)
    preset = tmp_path / "results" / "calibrated-untreated.toml"
    assert "balance" in preset.read_text()
    # which of the two values fits better depends on the generated specimen; either is
    # printed as a plain number
    assert "np.float64" not in proc.stdout
    assert re.search(r"fitted balance = (0\.9|1);", proc.stdout), proc.stdout
    assert "written to results/calibrated-untreated.toml" in proc.stdout


def test_collect_writes_into_the_first_folder_by_default_and_says_so(foam, tmp_path):
    run_cli("solve", foam / "foam.npy", "--voxel-size", 0.03, "--no-fields", "-o",
            tmp_path / "r" / "a", check=True)
    proc = run_cli("collect", tmp_path / "r", cwd=tmp_path, check=True)
    out = tmp_path / "r" / "collected.csv"
    assert len(out.read_text().splitlines()) == 2 and not (tmp_path / "collected.csv").exists()
    assert f"1 rows written to {out}" in proc.stdout


# ---------------------------------------------------------------------------
# --json for scripts: one JSON document on stdout, every message on stderr (issue 19)

@pytest.mark.parametrize("mpi", [0, pytest.param(2, marks=pytest.mark.mpi)])
def test_json_output_of_solve_run_and_collect_parses_and_holds_the_numbers(tmp_path, mpi):
    import json

    # a solid block under uniaxial compression: E_app = E, F = E * strain * area (analytic)
    np.save(tmp_path / "solid.npy", np.ones((4, 5, 6), np.uint8))
    proc = run_cli("solve", tmp_path / "solid.npy", "--voxel-size", 0.1, "--modulus", 7000,
                   "--rtol", 1e-12, "--no-fields", "--json", "-o", tmp_path / "r" / "s", mpi=mpi, check=True)
    solved = json.loads(proc.stdout)
    assert solved["apparent_modulus_MPa"] == pytest.approx(7000.0, rel=1e-9)
    assert solved["reaction_force_N"] == pytest.approx(7000.0 * -0.01 * 0.4 * 0.5, rel=1e-9)
    assert solved["output"] == str(tmp_path / "r" / "s") and solved["ranks"] == max(mpi, 1)
    assert "solve:" in proc.stderr and "results in" in proc.stderr     # the messages, on stderr

    case = tmp_path / "half.toml"       # a column of half the cross-section: E_app = E / 2
    half = np.zeros((4, 4, 6), np.uint8)
    half[:2] = 1
    np.save(tmp_path / "half.npy", half)
    case.write_text('[specimen]\nimage = "half.npy"\nvoxel_size = 0.1\n[solver]\nrtol = 1e-12\n'
                    "[output]\nfields = false\n")
    proc = run_cli("run", case, "--json", "-o", tmp_path / "r" / "h", mpi=mpi, check=True)
    assert json.loads(proc.stdout)["apparent_modulus_MPa"] == pytest.approx(5000.0, rel=1e-9)

    proc = run_cli("collect", tmp_path / "r", "--json", check=True)
    collected = json.loads(proc.stdout)
    by_image = {Path(r["image"]).name: r for r in collected["rows"]}
    assert by_image["solid.npy"]["apparent_modulus_MPa"] == pytest.approx(7000.0, rel=1e-9)
    assert by_image["half.npy"]["bv_tv"] == pytest.approx(0.5, rel=1e-12)
    assert collected["output"] == str(tmp_path / "r" / "collected.csv") and "2 rows" in proc.stderr


def test_json_mode_errors_leave_stdout_empty(tmp_path):
    proc = run_cli("solve", tmp_path / "nothere.npy", "--voxel-size", 0.1, "--json")
    _fails(proc, "nothere.npy", "file not found")
    assert proc.stdout == ""
