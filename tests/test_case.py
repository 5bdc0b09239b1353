"""Case files: validation errors name the file, the key and what was expected."""

import pytest

from fem.case import case_from_dict, case_to_dict, describe, load_case
from fem.errors import CaseError


def write(tmp_path, text, name="case.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_filled(tmp_path):
    case = load_case(write(tmp_path, "[specimen.synthetic]\nseed = 4\n"))
    assert case.material.modulus == 10000.0
    assert case.material.poisson == 0.3
    assert case.load.test == "uniaxial" and case.load.strain == -0.01
    assert case.pistoia.critical_volume == 2.0 and case.pistoia.critical_strain == 0.007
    d = case_to_dict(case)
    assert d["specimen"]["synthetic"]["seed"] == 4
    assert "image" not in d["specimen"]


@pytest.mark.parametrize("text, key, expected", [
    ("[specimen.synthetic]\n[material]\nstiffness = 3\n", "material.stiffness", "unknown key"),
    ("[specimen.synthetic]\n[material]\nmodulus = 'hard'\n", "material.modulus", "expected a number"),
    ("[specimen.synthetic]\n[material]\npoisson = 0.5\n", "material.poisson", "< 0.5"),
    ("[specimen.synthetic]\n[load]\nstrain = 0\n", "load.strain", "non-zero"),
    ("[specimen.synthetic]\n[load]\ntest = 'shear'\n", "load.test", "'uniaxial', 'axial'"),
    ("[specimen.synthetic]\nvoxel_size = -1\n", "specimen.synthetic.voxel_size", "> 0"),
    ("[specimen]\nimage = 'nothere.npy'\n", "specimen.image", "file not found"),
    ("[specimen]\nimage = 'x.npy'\nvoxel_size = [1, 2]\n", "specimen.voxel_size", "3 numbers"),
    ("[material]\n", "specimen", "exactly one of 'image', 'synthetic' or 'vertebral'"),
    ("[solver]\nmax_iterations = 1.5\n[specimen.synthetic]\n", "solver.max_iterations", "an integer"),
])
def test_bad_values_name_file_and_key(tmp_path, text, key, expected):
    (tmp_path / "x.npy").write_bytes(b"")
    path = write(tmp_path, text)
    with pytest.raises(CaseError) as err:
        load_case(path)
    msg = str(err.value)
    assert str(path) in msg
    assert f"[{key}]" in msg
    assert expected in msg


def test_malformed_toml_and_missing_file(tmp_path):
    with pytest.raises(CaseError, match="malformed TOML"):
        load_case(write(tmp_path, "[material\nmodulus = 1\n"))
    with pytest.raises(CaseError, match="cannot read the case file"):
        load_case(tmp_path / "absent.toml")


def test_relative_image_path_resolves_against_case_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bone.npy").write_bytes(b"")
    case = case_from_dict({"specimen": {"image": "bone.npy"}}, "c.toml", tmp_path / "sub")
    assert case.specimen.image == str((tmp_path / "sub" / "bone.npy").resolve())


def test_reference_covers_every_key():
    keys = {row[0] for row in describe()}
    assert {"material.modulus", "load.strain", "specimen.synthetic.seed", "pistoia.critical_strain"} <= keys


def test_case_file_reference_is_up_to_date():
    from fem.case import reference_table
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "case-files.md").read_text()
    assert reference_table() in doc, "regenerate the table: ./bonefem exec python3 -m fem.case"
    assert all(f"`{key}`" in doc for key, _, _ in describe())


def test_every_generator_parameter_is_a_case_key(tmp_path):
    # A vertebral case fills its unset values from the generator's parameters by name, so a
    # parameter the case table lacks crashes every vertebral case (it happened twice).
    import dataclasses

    from fem.case import Vertebral
    from fem.specimen.vertebral import VertebralParams

    case_keys = {f.name for f in dataclasses.fields(Vertebral)}
    missing = {f.name for f in dataclasses.fields(VertebralParams)} - case_keys
    assert not missing, f"add {sorted(missing)} to fem.case.Vertebral"
    case = load_case(write(tmp_path, '[specimen.vertebral]\ncohort = "elderly-osteoporotic"\nsize = 1.0\n'))
    # plate_span from the generator's default, horizontal_plates from the cohort's preset
    from fem.specimen.cohorts import load_cohort

    assert case.specimen.vertebral.plate_span == 1
    assert case.specimen.vertebral.horizontal_plates == load_cohort("elderly-osteoporotic")["generator"]["horizontal_plates"] > 0
