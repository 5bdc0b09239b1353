"""Bad input: each is a clear error naming the file and the key or problem, exit 2."""

import numpy as np
import pytest

from fem.errors import BonefemError
from tests.conftest import fails as _fails, read_result, run_cli


def test_unreadable_image(tmp_path):
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file")
    _fails(run_cli("solve", bad), "scan.nii.gz", "cannot read")


def test_image_with_nan(tmp_path):
    img = np.ones((4, 4, 4))
    img[1, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", img)
    _fails(run_cli("solve", tmp_path / "nan.npy", "--voxel-size", 0.05), "nan.npy", "NaN")


def test_no_bone_path_between_the_loaded_faces(tmp_path):
    img = np.zeros((6, 6, 8), np.uint8)
    img[:, :, :3] = 1            # bone only in the lower part
    np.save(tmp_path / "half.npy", img)
    _fails(run_cli("solve", tmp_path / "half.npy", "--voxel-size", 0.05, "-o", tmp_path / "o"),
           "half.npy", "no bone path")
    assert not (tmp_path / "o" / "result.json").exists()


def test_fully_solid_image_is_solved_and_said(tmp_path):
    np.save(tmp_path / "solid.npy", np.ones((4, 4, 4), np.uint8))
    proc = run_cli("solve", tmp_path / "solid.npy", "--voxel-size", 0.05, "--rtol", 1e-10,
                   "--no-fields", "-o", tmp_path / "o", check=True)
    assert "fully solid" in proc.stdout
    assert read_result(tmp_path / "o")["apparent_modulus_MPa"] == pytest.approx(10000.0, rel=1e-6)


def test_model_too_large_for_memory_is_refused_with_numbers(monkeypatch, case_factory):
    from fem.pipeline import Specimen, solve_specimen
    from fem.solve import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 1e8)   # pretend 100 MB
    spec = Specimen(np.ones((6, 6, 6), bool), (0.05,) * 3, 10000.0)
    with pytest.raises(BonefemError, match=r"GB needed for 0\.00 M DOF.*GB available"):
        solve_specimen(spec, case_factory(), log=lambda *a: None)
    # and the override lets it run
    r = solve_specimen(spec, case_factory(solver={"memory_check": False}), log=lambda *a: None)
    assert r["dofs"] == 3 * 7 ** 3


def test_unknown_cohort_and_arm_name_the_key(tmp_path):
    case = tmp_path / "t.toml"
    case.write_text('[trial]\ncohorts = ["teenage"]\n')
    _fails(run_cli("run", case), "[trial.cohorts]", "unknown cohort 'teenage'")
    case.write_text('[trial]\narms = ["untreated", "aspirin"]\n')
    _fails(run_cli("run", case), "[trial.arms]", "unknown arm 'aspirin'")
    case.write_text('[trial]\ncheckpoints = [3.0]\nyears = 2.0\n')
    _fails(run_cli("run", case), "[trial.checkpoints]")


def test_unwritable_output_fails_clearly_and_keeps_earlier_results(tmp_path):
    np.save(tmp_path / "solid.npy", np.ones((3, 3, 3), np.uint8))
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should go")
    _fails(run_cli("solve", tmp_path / "solid.npy", "--voxel-size", 0.05, "-o", blocker),
           "taken", "not a folder")
    assert blocker.read_text().startswith("a file")
    trial = tmp_path / "t.toml"
    trial.write_text('[trial]\ncohorts = ["elderly-osteoporotic"]\narms = ["untreated"]\n')
    _fails(run_cli("run", trial, "-o", blocker / "sub"), "cannot create the output folder")
