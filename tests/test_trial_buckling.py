"""The buckling load as a strength beside Pistoia: case key, MPI, trials (issues 14, 16).

The physics of the buckling analysis is checked against Euler's column and a braced frame
in tests/test_buckling_removal.py (which solves through the same pipeline path); here:
- ``[analysis] buckling`` enters a trial's resume keys only when it is on;
- the same specimen on one rank and on two gives the same load factor (MUMPS is exact,
  the eigen solve converged to 1e-10);
- a tiny trial's rows carry the buckling load; its changes and the paired difference from
  the Pistoia changes are recomputed here from the rows' own loads; the report and the
  paired statistics show it.
"""

import csv
import json

import pytest

from tests.conftest import read_result, run_cli


def test_buckling_enters_resume_keys_only_when_on():
    from fem.case import case_from_dict
    from fem.trial import job_keys

    trial = {"cohorts": ["elderly-osteoporotic"], "arms": ["untreated"], "seeds": [1]}

    def key(**analysis):
        case = case_from_dict({"trial": trial, "analysis": analysis}, source="test")
        return job_keys(case, "elderly-osteoporotic", 1, "untreated")

    assert key() == key(buckling=False)
    assert key() != key(buckling=True)
    assert key(strength="nonlinear") != key(strength="nonlinear", buckling=True)


@pytest.mark.mpi
def test_buckling_serial_equals_mpirun_2(tmp_path):
    case = tmp_path / "b.toml"
    case.write_text('[specimen.synthetic]\nsize = 0.8\nvoxel_size = 0.04\nbv_tv = 0.25\nseed = 2\n'
                    '[analysis]\nbuckling = true\n[output]\nfields = false\n')
    run_cli("run", case, "-o", tmp_path / "s", check=True)
    run_cli("run", case, "-o", tmp_path / "p", mpi=2, check=True)
    s, p = read_result(tmp_path / "s"), read_result(tmp_path / "p")
    assert s["buckling"]["factor"] > 0
    assert p["buckling"]["factor"] == pytest.approx(s["buckling"]["factor"], rel=1e-6)
    assert p["buckling"]["load_N"] == pytest.approx(s["buckling"]["load_N"], rel=1e-6)
    assert p["buckling"]["mode_share"] == pytest.approx(s["buckling"]["mode_share"], rel=1e-3)
    assert "buckling" in p["timings_s"]


@pytest.fixture(scope="module")
def buckling_trial(tmp_path_factory):
    d = tmp_path_factory.mktemp("btrial")
    (d / "trial.toml").write_text(
        'title = "tiny buckling"\n[trial]\ncohorts = ["elderly-osteoporotic"]\n'
        'arms = ["untreated", "combined"]\nyears = 0.5\ncheckpoints = [0.5]\nseeds = [1, 2]\n'
        "spinup_years = 0.5\nattribution = false\n[trial.specimen]\nsize = 1.6\nvoxel_size = 0.04\n"
        "[analysis]\nbuckling = true\n[output]\nfields = false\n")
    run_cli("run", d / "trial.toml", "-o", d / "out", check=True)
    return d


def test_trial_rows_carry_buckling_and_its_difference_from_pistoia(buckling_trial):
    out = buckling_trial / "out"
    rows = list(csv.DictReader((out / "trial.csv").open()))
    assert sorted(r["arm"] for r in rows) == ["baseline"] * 2 + ["combined"] * 2 + ["untreated"] * 2
    for r in rows:
        assert float(r["buckling_load_N"]) > 0 and 0 < float(r["buckling_mode_share"]) <= 1

    def pct(r, ref, key):
        return 100 * (float(r[key]) / float(ref[key]) - 1)

    for seed in ("1", "2"):
        base, untreated, combined = (next(r for r in rows if r["seed"] == seed and r["arm"] == a)
                                     for a in ("baseline", "untreated", "combined"))
        d_b = pct(combined, base, "buckling_load_N")
        assert float(combined["d_buckling_pct"]) == pytest.approx(d_b, rel=1e-9)
        assert float(combined["diff_d_buckling_pct"]) == pytest.approx(
            d_b - pct(combined, base, "failure_load_N"), rel=1e-9, abs=1e-9)
        assert float(combined["diff_du_buckling_pct"]) == pytest.approx(
            pct(combined, untreated, "buckling_load_N") - pct(combined, untreated, "failure_load_N"),
            rel=1e-9, abs=1e-9)
    result = json.loads((out / "result.json").read_text())
    assert result["solves"] == 2 * (1 + 2)           # no attribution: baseline + one per arm
    effect = next(e for e in result["paired"]["effects"] if e["figure"] == "buckling")
    assert effect["arm"] == "combined" and effect["n"] == 2
    summary = (out / "summary.md").read_text()
    assert "buckling − Pistoia" in summary and "| elderly-osteoporotic | combined | 2 |" in summary


def test_report_shows_buckling_beside_pistoia(buckling_trial, tmp_path):
    doc = tmp_path / "results.md"
    run_cli("report", buckling_trial / "out", "-o", doc, check=True)
    text = doc.read_text()
    assert "## Strength by two methods" in text and "first linear buckling load" in text
    assert "buckling load" in text.split("## Against untreated")[1]


def test_memory_check_counts_the_buckling_factorisation(monkeypatch):
    import numpy as np

    from fem import pipeline
    from fem.errors import BonefemError
    from fem.solve import memory

    mask = np.ones((40, 40, 40), bool)              # 41^3 nodes, 206,763 DOF
    monkeypatch.setattr(memory, "available_bytes", lambda: 1e9)
    # the matrix-free solve alone: 206,763 x 400 B + 0.3 GB = 0.38 GB, fits in 1 GB
    pipeline.check_model_size(mask, 1, "b.toml", matfree=True)
    # the factorisation adds 206,763 x 7 kB = 1.45 GB
    with pytest.raises(BonefemError, match=r"b.toml: about 1.8 GB needed .*analysis.buckling adds 1.4 GB"):
        pipeline.check_model_size(mask, 1, "b.toml", matfree=True, buckling=True)
