"""The command line: images in two formats, MPI, and user errors without tracebacks."""

import numpy as np
import pytest

from fem.specimen.io import read_image, write_nifti
from fem.specimen.synthetic import trabecular_foam
from tests.conftest import fails as _fails, read_result, run_cli


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
