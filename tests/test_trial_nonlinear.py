"""Nonlinear strength in trials, batches and collected tables (issue 16).

- A solid cube in uniaxial compression is one material point. With a perfectly plastic
  tissue (post_yield = 0) its nonlinear ultimate load is the analytic yield load
  E eps_yc A, and the Pistoia estimate of the same linear solve is 0.007 E A (effective
  strain = applied strain in uniaxial stress): both closed forms.
- A tiny trial with ``strength = "nonlinear"`` gives rows with both strengths, whose
  changes and paired difference the report recomputes from the rows' own loads.
- A batch of nonlinear cases collects the nonlinear columns.
"""

import csv
import json

import numpy as np
import pytest

from fem.pipeline import solve_specimen
from fem.specimen.load import Specimen
from tests.conftest import run_cli

E, H, N = 10000.0, 0.05, 3          # MPa, voxel mm, voxels per edge
AREA = (N * H) ** 2                 # mm^2
EPS_YC = 0.0081


def test_cube_ultimate_is_the_yield_load_and_pistoia_its_closed_form(case_factory):
    case = case_factory(analysis={"strength": "nonlinear", "strain_max": -0.02, "steps": 6,
                                  "post_yield": 0.0}, solver={"rtol": 1e-12})
    r = solve_specimen(Specimen(np.ones((N, N, N), bool), (H, H, H), E), case, log=lambda *a: None)
    nl = r["nonlinear"]
    assert nl["ultimate_load_N"] == pytest.approx(E * EPS_YC * AREA, rel=1e-9)
    # a perfectly plastic plateau: the offset yield load is the same load
    assert nl["offset_yield_load_N"] == pytest.approx(E * EPS_YC * AREA, rel=1e-9)
    assert EPS_YC - 1e-12 <= nl["strain_at_ultimate"] <= 0.02
    assert r["pistoia"]["failure_load_N"] == pytest.approx(0.007 * E * AREA, rel=1e-9)


def test_pistoia_trials_keep_their_resume_keys():
    """The nonlinear settings enter a trial's resume keys only where the test runs."""
    from fem.case import case_from_dict
    from fem.trial import job_keys

    trial = {"cohorts": ["elderly-osteoporotic"], "arms": ["untreated"], "seeds": [1]}

    def key(**analysis):
        case = case_from_dict({"trial": trial, "analysis": analysis}, source="test")
        return job_keys(case, "elderly-osteoporotic", 1, "untreated")

    assert key() == key(post_yield=0.1)                  # Pistoia: unused keys change nothing
    assert key() != key(strength="nonlinear")
    assert key(strength="nonlinear") != key(strength="nonlinear", post_yield=0.1)
    # the softening law's keys only with softening, the crack band's only when it is on
    nl, soft = {"strength": "nonlinear"}, {"strength": "nonlinear", "softening": True}
    assert key(**nl) == key(**nl, softening_end=5.0)
    assert key(**nl) != key(**soft)
    assert key(**soft) != key(**soft, crack_band=0.04)
    assert key(**nl) != key(**nl, nonlocal_radius=0.04)


@pytest.fixture(scope="module")
def nonlinear_trial(tmp_path_factory):
    d = tmp_path_factory.mktemp("nltrial")
    (d / "trial.toml").write_text(
        'title = "tiny nonlinear"\n[trial]\ncohorts = ["elderly-osteoporotic"]\n'
        'arms = ["untreated", "combined"]\nyears = 0.5\ncheckpoints = [0.5]\nseeds = [1]\n'
        "spinup_years = 0.5\n[trial.specimen]\nsize = 1.6\nvoxel_size = 0.04\n"
        '[analysis]\nstrength = "nonlinear"\nstrain_max = -0.015\nsteps = 3\n')
    proc = run_cli("run", d / "trial.toml", "-o", d / "out", check=True)
    return d, proc


def test_nonlinear_trial_rows_carry_both_strengths_and_their_difference(nonlinear_trial):
    d, proc = nonlinear_trial
    out = d / "out"
    rows = list(csv.DictReader((out / "trial.csv").open()))
    assert [r["arm"] for r in rows] == ["baseline", "untreated", "combined"]
    for r in rows:
        assert float(r["failure_load_N"]) > 0 and float(r["nl_ultimate_load_N"]) > 0
        assert 0 < float(r["nl_yield_load_N"]) <= float(r["nl_ultimate_load_N"])
        assert 0 < float(r["nl_yielded_fraction"]) <= 1
        assert 0 < float(r["nl_strain_at_ultimate"]) <= 0.015 + 1e-12
    base, untreated, combined = rows

    def pct(r, ref, key):
        return 100 * (float(r[key]) / float(ref[key]) - 1)

    d_nl = pct(combined, base, "nl_ultimate_load_N")
    assert float(combined["d_nl_ultimate_pct"]) == pytest.approx(d_nl, rel=1e-9)
    assert float(combined["diff_d_strength_pct"]) == pytest.approx(
        d_nl - pct(combined, base, "failure_load_N"), rel=1e-9, abs=1e-9)
    assert float(combined["diff_du_strength_pct"]) == pytest.approx(
        pct(combined, untreated, "nl_ultimate_load_N") - pct(combined, untreated, "failure_load_N"),
        rel=1e-9, abs=1e-9)
    result = json.loads((out / "result.json").read_text())
    # baseline, then per arm its checkpoint and the 6 counterfactuals of the order-free
    # attribution at the last checkpoint (Pistoia solves)
    assert result["solves"] == 1 + 2 * (1 + 6)
    assert {s["arm"] for s in result["strength_methods"]} == {"baseline", "untreated", "combined"}
    summary = (out / "summary.md").read_text()
    assert "by two methods" in summary and "| elderly-osteoporotic | combined | 1 |" in summary
    # the curve of each solved specimen with fields sits beside its stress fields
    assert (out / "fields" / "elderly-osteoporotic-s1-combined-0.5y" / "curve.csv").exists()


def test_nonlinear_trial_resumes_without_solving(nonlinear_trial):
    d, _ = nonlinear_trial
    before = (d / "out" / "trial.csv").read_text()
    again = run_cli("run", d / "trial.toml", "-o", d / "out", check=True)
    assert "rows reused" in again.stdout
    assert json.loads((d / "out" / "result.json").read_text())["this_run"]["solves"] == 0
    assert (d / "out" / "trial.csv").read_text() == before


def test_report_shows_strength_by_two_methods(nonlinear_trial, tmp_path):
    d, _ = nonlinear_trial
    doc = tmp_path / "results.md"
    run_cli("report", d / "out", "-o", doc, check=True)
    text = doc.read_text()
    assert "## Strength by two methods" in text and "nonlinear − Pistoia" in text


def test_batch_of_nonlinear_cases_collects_the_nonlinear_columns(tmp_path):
    paths = []
    for n in (3, 4):
        np.save(tmp_path / f"cube{n}.npy", np.ones((n, n, n), np.uint8))
        p = tmp_path / f"cube{n}.toml"
        p.write_text(f'[specimen]\nimage = "cube{n}.npy"\nvoxel_size = {H}\n[material]\nmodulus = {E}\n'
                     '[analysis]\nstrength = "nonlinear"\nstrain_max = -0.02\nsteps = 4\npost_yield = 0.0\n'
                     "[solver]\nrtol = 1e-12\n[output]\nfields = false\n")
        paths.append(p)
    run_cli("batch", *paths, "-o", tmp_path / "out", check=True)
    run_cli("collect", tmp_path / "out", "-o", tmp_path / "all.csv", check=True)
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in csv.DictReader((tmp_path / "all.csv").open())}
    for n in (3, 4):
        r = rows[f"cube{n}"]
        area = (n * H) ** 2
        assert float(r["nl_ultimate_load_N"]) == pytest.approx(E * EPS_YC * area, rel=1e-9)
        assert float(r["failure_load_N"]) == pytest.approx(0.007 * E * area, rel=1e-9)
        assert float(r["nl_yielded_fraction"]) == 1.0


def test_view_of_a_result_folder_takes_the_linear_fields_beside_the_peak(tmp_path):
    """A nonlinear run writes peak.pvd beside fields.pvd; the folder still has one stress
    field for `bonefem view` and the trial renders (peak.pvd is viewed by its path)."""
    from fem.report.view import find_field_file

    for name in ("fields.pvd", "peak.pvd"):
        (tmp_path / name).write_text("<VTKFile/>")
    assert find_field_file(tmp_path).name == "fields.pvd"
    assert find_field_file(tmp_path / "peak.pvd").name == "peak.pvd"
