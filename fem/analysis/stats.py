"""Statistics for virtual trials: paired differences, interactions and trial size.

Arms of a trial start from the same specimens and share their random streams, so the
difference between two arms is measured within each specimen: a paired design. These
functions take plain arrays (one value per specimen, e.g. the 2-year % change of failure
load) and return plain dictionaries, computed with SciPy's t and noncentral t
distributions.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_interval(x, confidence: float = 0.95) -> dict:
    """Mean of ``x`` with its t-based confidence interval and one-sample t-test against 0.

    Parameters
    ----------
    x : (n,) values (e.g. one % change per specimen)
    confidence : two-sided coverage of the interval

    Returns
    -------
    dict with ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high``, ``t`` and ``p`` (two-sided,
    H0: mean 0). With n < 2 the spread is unknown: ``sd``, the interval, ``t`` and ``p``
    are NaN.
    """
    d = np.asarray(x, float)
    if d.ndim != 1:
        raise ValueError(f"mean_interval: need a 1-D array, got shape {d.shape}")
    n = d.size
    mean = float(d.mean()) if n else math.nan
    out = {"n": n, "mean": mean, "sd": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "t": math.nan, "p": math.nan}
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    out.update(sd=sd, ci_low=mean - half, ci_high=mean + half)
    if se > 0:
        t = mean / se
        out.update(t=t, p=float(2 * stats.t.sf(abs(t), n - 1)))
    else:
        out.update(t=math.copysign(math.inf, mean) if mean else math.nan,
                   p=0.0 if mean else 1.0)
    return out


def paired_difference(a, b, confidence: float = 0.95) -> dict:
    """Mean of ``a - b`` over paired specimens, with its t-based confidence interval.

    Parameters
    ----------
    a, b : (n,) values of two arms for the same n specimens (same units, e.g. % change)
    confidence : two-sided coverage of the interval

    Returns
    -------
    dict as :func:`mean_interval` of the differences (``sd`` is their SD; ``p`` tests a
    mean difference of 0).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired_difference: need two 1-D arrays of equal length, got shapes "
                         f"{a.shape} and {b.shape}")
    return mean_interval(a - b, confidence)


def interaction(effects: dict[str, np.ndarray]) -> dict:
    """Does a paired arm effect differ between cohorts? (cohort x arm interaction)

    Parameters
    ----------
    effects : cohort name -> (n_c,) within-specimen effects (arm minus control) of that
        cohort; specimens of different cohorts are independent.

    Returns
    -------
    dict with ``F`` and ``p`` of a one-way ANOVA of the effects across cohorts (the
    interaction test of a cohort x arm design with a paired arm factor), and ``pairs``:
    for every pair of cohorts the difference of mean effects with Welch's t-test and its
    95 % interval.
    """
    groups = {k: np.asarray(v, float) for k, v in effects.items()}
    usable = [v for v in groups.values() if v.size >= 2]
    out = {"F": math.nan, "p": math.nan, "pairs": []}
    if len(usable) >= 2 and any(v.std(ddof=1) > 0 for v in usable):
        res = stats.f_oneway(*usable)
        out.update(F=float(res.statistic), p=float(res.pvalue))
    names = list(groups)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            out["pairs"].append({"cohorts": (x, y), **welch_difference(groups[x], groups[y])})
    return out


def welch_difference(a, b, confidence: float = 0.95) -> dict:
    """Difference of the means of two independent groups, ``mean(a) - mean(b)``, with
    Welch's t-test (unequal variances) and its confidence interval.

    Parameters
    ----------
    a, b : (n_a,), (n_b,) values of two independent groups (same units)
    confidence : two-sided coverage of the interval

    Returns
    -------
    dict with ``difference``, ``ci_low``, ``ci_high`` and ``p`` (two-sided, H0: equal
    means); the interval and ``p`` are NaN unless both groups have 2 or more values.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    row = {"difference": float(a.mean() - b.mean()), "ci_low": math.nan, "ci_high": math.nan,
           "p": math.nan}
    if a.size >= 2 and b.size >= 2:
        res = stats.ttest_ind(a, b, equal_var=False)
        ci = res.confidence_interval(confidence)
        row.update(ci_low=float(ci.low), ci_high=float(ci.high), p=float(res.pvalue))
    return row


def paired_power(n: int, delta: float, sd: float, alpha: float = 0.05) -> float:
    """Power of a two-sided paired t-test with n specimens to detect a mean difference
    ``delta`` when the paired differences have standard deviation ``sd``."""
    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = delta / sd * math.sqrt(n)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def specimens_for_power(delta: float, sd: float, power: float = 0.8, alpha: float = 0.05,
                        n_max: int = 10_000) -> int:
    """Smallest number of paired specimens whose t-test reaches ``power`` for ``delta``.

    Raises
    ------
    ValueError
        If delta is 0 or more than ``n_max`` specimens would be needed.
    """
    if delta == 0:
        raise ValueError("specimens_for_power: a difference of 0 cannot be detected")
    if not math.isfinite(sd) or sd < 0:
        raise ValueError(f"specimens_for_power: the SD of the differences is unknown ({sd:g}); "
                         "it needs at least 2 specimens")
    for n in range(2, n_max + 1):
        if paired_power(n, abs(delta), sd, alpha) >= power:
            return n
    raise ValueError(f"specimens_for_power: more than {n_max} specimens needed "
                     f"(delta {delta:g}, sd {sd:g})")
