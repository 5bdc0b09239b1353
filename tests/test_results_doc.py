"""docs/results.md's numbers (issue 18): the whole trial's solves, and the strength change
beyond the BMD-predicted one, whose sign means the same for gains and losses."""

import math

import pytest

from fem.report.results_doc import DEFAULT_EXPONENT, effort_text, findings, strength_beyond_bmd


def test_beyond_bmd_has_the_right_sign_when_both_changes_are_losses():
    # elderly combined in an earlier run: -17.7 % BMD, -23.2 % failure load; the old ratio
    # 1.31 (> 1, "more strength than BMD shows") said the opposite of what happened
    predicted, excess = strength_beyond_bmd(-17.7, -23.2, 1.27)
    assert predicted == pytest.approx(100 * (math.exp(1.27 * math.log(0.823)) - 1), rel=1e-12)
    assert excess == pytest.approx(-23.2 - predicted, rel=1e-12)
    assert excess < 0
    # a gain larger than BMD predicts is positive, one smaller negative
    assert strength_beyond_bmd(4.0, 8.0, 1.0)[1] == pytest.approx(4.0)
    assert strength_beyond_bmd(4.0, 2.0, 1.0)[1] == pytest.approx(-2.0)
    # k = 2: 10 % more BMD predicts 21 % more strength
    assert strength_beyond_bmd(10.0, 21.0, 2.0) == pytest.approx((21.0, 0.0), abs=1e-9)


def _s(cohort, arm, du_bmd, du_fl):
    return {"cohort": cohort, "arm": arm, "time_years": 2.0, "du_bmd_pct_mean": du_bmd,
            "du_failure_load_pct_mean": du_fl, "d_bmd_pct_mean": du_bmd, "d_failure_load_pct_mean": du_fl}


def test_findings_report_the_difference_and_name_the_relation():
    summary = [_s("elderly", "untreated", 0.0, 0.0), _s("elderly", "combined", -17.7, -23.2),
               _s("early", "untreated", 0.0, 0.0), _s("early", "combined", 5.0, 9.0)]
    text = "\n".join(findings(summary, ["elderly", "early"], ["untreated", "combined"], 2.0,
                              {"elderly": 1.27, "early": None}))
    assert "per % of BMD" not in text
    p_elderly, x_elderly = strength_beyond_bmd(-17.7, -23.2, 1.27)
    p_early, x_early = strength_beyond_bmd(5.0, 9.0, DEFAULT_EXPONENT)
    assert f"elderly {x_elderly:+.1f} (BMD -17.7 % predicts {p_elderly:+.1f} %" in text
    assert f"early {x_early:+.1f}" in text
    assert "Carter and Hayes 1977" in text and "early 2.00" in text


def test_solves_are_counted_over_every_run_of_the_trial():
    # a resumed run made 18 of 150 solves: the document says 150, and 18 for the last run
    text = effort_text({"solves": 150, "seconds": 1200.0,
                        "this_run": {"solves": 18, "seconds": 144.0}})
    assert text.startswith("150 solves over all runs of the trial, 1200 s of solving")
    assert "last run made 18 of them and took 144 s" in text
    # a batch merge (0 s, no solves of its own) does not claim "in 0 s"
    text = effort_text({"solves": 39, "seconds": 310.0, "this_run": {"solves": 0, "seconds": 0.0}})
    assert "0 s" not in text.replace("310 s", "")


# --- paired statistics in the trial report (issue 20) ---------------------------------
# A rows table built by hand: baseline BMD 100, modulus 500 and failure load 1000 for
# every specimen, so a value of 100 + x is a change of x %. Cohort A has 3 seeds whose
# BMD differences combined - untreated are 3, 4, 5 points (mean 4, SD 1), failure load
# 1, 3, 8 (mean 4, SD sqrt(13)); cohort B 2 seeds (BMD 0 and 1 points); cohort C 1 seed.
A, B, C = "early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic"
_CHANGES = {  # cohort -> seed -> arm -> (BMD %, modulus %, failure load %)
    A: {0: {"untreated": (-2, -4, -3), "combined": (1, 2, -2)},
          1: {"untreated": (-3, -6, -5), "combined": (1, 1, -2)},
          2: {"untreated": (-1, -2, 0), "combined": (4, 3, 8)}},
    B: {0: {"untreated": (-2, -3, -4), "combined": (-2, -1, -1)},
          1: {"untreated": (-4, -5, -6), "combined": (-3, -4, -2)}},
    C: {0: {"untreated": (-1, -1, -1), "combined": (2, 2, 2)}},
}


def _hand_rows():
    rows = []
    for cohort, seeds in _CHANGES.items():
        for seed, arms in seeds.items():
            rows.append({"cohort": cohort, "seed": seed, "arm": "baseline", "time_years": 0.0,
                         "bmd_mg_per_cm3": 100.0, "apparent_modulus_MPa": 500.0, "failure_load_N": 1000.0})
            for arm, (b, m, f) in arms.items():
                rows.append({"cohort": cohort, "seed": seed, "arm": arm, "time_years": 2.0,
                             "bmd_mg_per_cm3": 100.0 + b, "apparent_modulus_MPa": 500.0 * (1 + m / 100),
                             "failure_load_N": 1000.0 * (1 + f / 100)})
    return rows


def test_paired_statistics_of_a_hand_built_trial():
    from scipy import stats

    from fem.analysis.stats import specimens_for_power
    from fem.report.paired_report import paired_markdown, paired_statistics

    p = paired_statistics(_hand_rows(), 2.0)
    by = {(e["cohort"], e["figure"]): e for e in p["effects"]}
    a = by[(A, "bmd")]
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)       # SD of 3, 4, 5 is 1
    assert a["n"] == 3 and a["mean"] == pytest.approx(4.0) and a["sd"] == pytest.approx(1.0)
    assert (a["ci_low"], a["ci_high"]) == pytest.approx((4.0 - half, 4.0 + half))
    f = by[(A, "failure_load")]
    assert f["mean"] == pytest.approx(4.0) and f["sd"] == pytest.approx(math.sqrt(13.0))
    assert f["p"] == pytest.approx(stats.ttest_1samp([1, 3, 8], 0).pvalue)
    assert by[(C, "bmd")]["n"] == 1 and by[(C, "bmd")]["ci_low"] is None
    # interaction: A's BMD effects 3, 4, 5 against B's 0, 1 (C has one specimen: left out)
    it = next(i for i in p["interactions"] if i["figure"] == "bmd")
    ref = stats.f_oneway([3, 4, 5], [0, 1])
    assert it["F"] == pytest.approx(ref.statistic) and it["p"] == pytest.approx(ref.pvalue)
    text = paired_markdown(p)
    assert f"+4.00 [{4 - half:+.2f}, {4 + half:+.2f}]" in text
    assert "+3.00 (n = 1: no interval)" in text
    assert f"F = {ref.statistic:.3g}, p = {ref.pvalue:.3g}" in text
    # power: the largest SD of the failure-load differences is A's sqrt(13) (B: SD of 3, 4)
    need = specimens_for_power(2.0, math.sqrt(13.0))
    assert f"a trial needs {need} specimens per cohort" in text


def test_trial_report_and_results_doc_carry_the_paired_differences(tmp_path):
    import json

    from scipy import stats

    from fem.case import case_from_dict
    from fem.report.results_doc import write_results_doc
    from fem.report.trial_report import write_trial

    case = case_from_dict({"title": "hand", "trial": {
        "cohorts": [A, B, C], "arms": ["untreated", "combined"], "checkpoints": [2.0],
        "seeds": [0, 1, 2], "attribution": False}, "output": {"fields": False}}, source="test")
    report = write_trial(_hand_rows(), case, tmp_path)
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert f"+4.00 [{4 - half:+.2f}, {4 + half:+.2f}]" in report["headline"]
    assert (tmp_path / "paired.png").exists()
    result = json.loads((tmp_path / "result.json").read_text())   # standard JSON: no NaN
    assert result["paired"]["effects"][0]["cohort"] == A
    doc = write_results_doc(tmp_path, tmp_path / "doc" / "results.md").read_text()
    assert "## Against untreated: paired differences" in doc
    assert f"combined: BMD +4.00 [{4 - half:+.2f}, {4 + half:+.2f}] points" in doc
    assert "combined: BMD +3.00 points, failure load +3.00 points (n = 1: no interval)" in doc


def test_regenerating_results_keeps_the_sections_written_from_other_runs(tmp_path):
    from fem.case import case_from_dict
    from fem.report.results_doc import KEEP_MARK, write_results_doc
    from fem.report.trial_report import write_trial

    case = case_from_dict({"title": "hand", "trial": {
        "cohorts": [A, B, C], "arms": ["untreated", "combined"], "checkpoints": [2.0],
        "seeds": [0, 1, 2], "attribution": False}, "output": {"fields": False}}, source="test")
    write_trial(_hand_rows(), case, tmp_path)
    out = tmp_path / "doc" / "results.md"
    out.parent.mkdir()
    tail = f"{KEEP_MARK}\n\n## Real scan vs generated bone\n\nby hand\n"
    out.write_text("# stale trial part\n\nold numbers\n\n" + tail)
    doc = write_results_doc(tmp_path, out).read_text()
    assert "old numbers" not in doc and "## Headline table" in doc
    assert doc.endswith(tail) and doc.count(KEEP_MARK) == 1
    out.write_text("# no mark\n")                 # without the mark nothing is kept
    assert "no mark" not in write_results_doc(tmp_path, out).read_text()


def test_limits_say_when_the_voxels_do_not_resolve_the_cavities():
    from fem.report.results_doc import voxel_limits

    (line,) = voxel_limits(0.04)
    assert "40 um" in line and "understate" in line and "paired differences" in line
    assert voxel_limits(0.02) == [] and voxel_limits(0.015) == []
    assert len(voxel_limits(0.025)) == 1
