"""Trial statistics against textbook values and SciPy's own tests."""

import math

import numpy as np
import pytest
from scipy import stats

from fem.analysis.stats import (interaction, mean_interval, paired_difference, paired_power,
                                specimens_for_power)


def test_paired_difference_matches_ttest_rel_and_hand_interval():
    a = np.array([2.1, -0.4, 1.7, 3.2, 0.9, 1.5])
    b = np.array([1.0, -1.1, 1.9, 1.4, 0.2, 0.3])
    r = paired_difference(a, b)
    d = a - b
    assert r["n"] == 6 and r["mean"] == pytest.approx(d.mean())
    ref = stats.ttest_rel(a, b)
    assert r["t"] == pytest.approx(ref.statistic) and r["p"] == pytest.approx(ref.pvalue)
    # t_{0.975, 5} = 2.5706 (statistical tables)
    half = 2.5706 * d.std(ddof=1) / math.sqrt(6)
    assert r["ci_low"] == pytest.approx(d.mean() - half, abs=1e-4)
    assert r["ci_high"] == pytest.approx(d.mean() + half, abs=1e-4)


def test_paired_difference_degenerate_cases():
    one = paired_difference([1.0], [0.5])
    assert one["mean"] == 0.5 and math.isnan(one["ci_low"])
    same = paired_difference([1.0, 2.0], [1.0, 2.0])
    assert same["mean"] == 0.0 and same["p"] == 1.0 and same["ci_low"] == same["ci_high"] == 0.0


def test_interaction_anova_and_welch():
    eff = {"early": np.array([4.0, 5.5, 3.9, 5.1]), "late": np.array([1.0, 1.8, 0.9, 1.6]),
           "elderly": np.array([-2.0, -1.1, -2.5, -0.9])}
    r = interaction(eff)
    ref = stats.f_oneway(*eff.values())
    assert r["F"] == pytest.approx(ref.statistic) and r["p"] == pytest.approx(ref.pvalue)
    first = r["pairs"][0]
    assert first["cohorts"] == ("early", "late")
    assert first["difference"] == pytest.approx(eff["early"].mean() - eff["late"].mean())
    welch = stats.ttest_ind(eff["early"], eff["late"], equal_var=False)
    assert first["p"] == pytest.approx(welch.pvalue)
    assert first["ci_low"] < first["difference"] < first["ci_high"]


def test_power_textbook_values():
    # Cohen's d = 0.5, two-sided alpha 0.05, power 0.8: a paired t-test needs 34 pairs
    # (G*Power and Cohen's tables); the normal approximation gives 31.4 -> 32.
    assert specimens_for_power(0.5, 1.0) == 34
    assert specimens_for_power(1.0, 1.0) == 10
    assert paired_power(34, 0.5, 1.0) >= 0.8 > paired_power(33, 0.5, 1.0)
    # Monte Carlo check of the power formula at n = 10, d = 1.
    rng = np.random.default_rng(7)
    d = rng.normal(1.0, 1.0, (20000, 10))
    p = stats.ttest_1samp(d, 0.0, axis=1).pvalue
    assert (p < 0.05).mean() == pytest.approx(paired_power(10, 1.0, 1.0), abs=0.01)
    with pytest.raises(ValueError, match="cannot be detected"):
        specimens_for_power(0.0, 1.0)


def test_mean_interval_is_scipys_one_sample_interval():
    x = np.array([-3.1, -2.2, -4.0, -1.5])
    r = mean_interval(x)
    ref = stats.ttest_1samp(x, 0.0)
    ci = ref.confidence_interval(0.95)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert r["p"] == pytest.approx(ref.pvalue)
    with pytest.raises(ValueError, match="unknown"):
        specimens_for_power(2.0, math.nan)      # n = 1: no SD, no trial size (and no 10,000-step loop)


def test_welch_difference_is_the_welch_satterthwaite_interval():
    from fem.analysis.stats import welch_difference

    a, b = np.array([4.0, 5.5, 3.9, 5.1, 4.4]), np.array([1.0, 1.8, 0.9])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = stats.t.ppf(0.975, df) * np.sqrt(va + vb)
    d = a.mean() - b.mean()
    w = welch_difference(a, b)
    assert w["difference"] == pytest.approx(d)
    assert (w["ci_low"], w["ci_high"]) == pytest.approx((d - half, d + half), rel=1e-10)
    assert w["p"] == pytest.approx(2 * stats.t.sf(d / np.sqrt(va + vb), df), rel=1e-10)
    assert np.isnan(welch_difference(a, [1.0])["ci_low"])


def test_directions_follow_the_95_percent_interval():
    from fem.report.paired_report import changes_markdown, direction

    # the interval by hand: mean +- t(0.975, n - 1) * sd / sqrt(n)
    for values, expected in [([-3.0, -2.0, -4.0], "falls"), ([1.5, 2.0, 2.5], "rises"),
                             ([1.0, -2.0, 3.0], "not resolved"), ([-5.0], "not resolved")]:
        x = np.array(values)
        half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else math.nan
        by_hand = ("falls" if x.mean() + half < 0 else "rises" if x.mean() - half > 0
                   else "not resolved")
        assert direction(mean_interval(x)) == by_hand == expected
    # -1 +- 4.30 * 1 / sqrt(3) = [-3.48, +1.48]: a mean below 0 is not a fall
    assert direction(mean_interval([-2.0, -1.0, 0.0])) == "not resolved"
    text = changes_markdown({"time_years": 2.0, "changes": [
        {"cohort": "c", "arm": "untreated", "figure": "bmd", **mean_interval([-3.0, -2.0, -4.0])},
        {"cohort": "c", "arm": "untreated", "figure": "failure_load", **mean_interval([-5.0])}]})
    assert "| c | untreated | 3 | -3.00 [-5.48, -0.52] | falls | -5.00 | not resolved |" in text
    assert changes_markdown({"time_years": 2.0, "effects": []}) == ""
