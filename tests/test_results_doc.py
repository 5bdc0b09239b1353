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
