"""Bad input: each is a clear error naming the file and the key or problem, exit 2."""

import os

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
    from fem.pipeline import solve_specimen
    from fem.specimen.load import Specimen
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
    for bad in ("true", '"every"'):   # true was the two-solve split's switch; say what it is now
        case.write_text(f"[trial]\nattribution = {bad}\n")
        _fails(run_cli("run", case), "[trial.attribution]", '"final" (the last checkpoint), "all"')


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


@pytest.fixture
def full_disk(monkeypatch):
    """Results written from now on hit a full disk: their temporary file is /dev/full,
    which fails every write with ENOSPC, as a full file system does."""
    import types

    from fem.report import result

    real = result.tempfile.mkstemp

    def mkstemp(**kw):
        fd, name = real(**kw)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), name

    monkeypatch.setattr(result, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))


def test_disk_full_keeps_the_old_file_and_no_temporary(tmp_path, request):
    from fem.report.result import write_json

    path = write_json(tmp_path / "result.json", {"failure_load_N": 1.5})
    before = path.read_bytes()
    request.getfixturevalue("full_disk")
    with pytest.raises(BonefemError, match=r"result\.json: cannot write \(the disk is full\)"):
        write_json(path, {"failure_load_N": 2.5})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["result.json"]


def test_disk_full_fails_the_batch_clearly_and_keeps_earlier_results(tmp_path, capsys, request):
    from fem.cli import main
    from fem.specimen.foam import trabecular_foam

    for name in ("first", "second"):
        np.save(tmp_path / f"{name}.npy", trabecular_foam(size=0.45, voxel_size=0.03, bv_tv=0.3,
                                                          spacing=0.3, seed=1).astype(np.uint8))
        (tmp_path / f"{name}.toml").write_text(f'[specimen]\nimage = "{name}.npy"\nvoxel_size = 0.03\n'
                                               "[output]\nfields = false\n")
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "first.toml"), "-o", str(out)]) == 0
    earlier = {p.name: p.read_bytes() for p in (out / "first").iterdir()}
    request.getfixturevalue("full_disk")
    code = main(["batch", str(tmp_path / "first.toml"), str(tmp_path / "second.toml"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert str(out / "second") in err and "the disk is full" in err and "1 of 2 batch jobs failed" in err
    assert {p.name: p.read_bytes() for p in (out / "first").iterdir()} == earlier
    assert list((out / "second").iterdir()) == []     # no half file, no temporary left
