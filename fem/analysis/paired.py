"""A trial's arms against its untreated arm, specimen by specimen (paired statistics).

Every arm starts from the same specimens as the untreated arm (same cohort and seed, same
random streams), so an arm's effect is measured within each specimen: the arm's % change
from baseline minus the untreated arm's, in percentage points of the baseline. These
functions take a trial's rows (fem.analysis.compare.add_changes) and return plain dicts
made by fem.analysis.stats.
"""

from __future__ import annotations

import math

import numpy as np

from fem.analysis.stats import interaction, mean_interval, paired_difference, specimens_for_power

CONTROL = "untreated"
# short name (the d_<name>_pct column of add_changes) -> label
# (buckling: only where the trial ran [analysis] buckling; a figure no row has is skipped)
FIGURES = {"bmd": "BMD", "modulus": "apparent modulus", "failure_load": "failure load",
           "buckling": "buckling load"}
# Effects a trial should be able to detect, percentage points of the 2-year change between
# arms: the design target for strength, and the smallest BMD effect the clinical
# review behind the presets reports (combined, late postmenopausal women: +1.35 % in 2 years,
# Iwamoto, in Keio J Med 2003, 52(3):147-150).
POWER_TARGETS = {"failure_load": (2.0, "the trial's design target"),
                 "bmd": (1.35, "the review's smallest BMD effect: combined, late postmenopausal, +1.35 %")}
POWER, ALPHA = 0.8, 0.05


def _at(time_years: float, t: float) -> bool:
    return abs(t - time_years) < 1e-9


def arm_changes(rows, cohort: str, arm: str, time_years: float, figure: str) -> dict[int, float]:
    """seed -> % change of ``figure`` from baseline of one cohort x arm at ``time_years``."""
    key = f"d_{figure}_pct"
    return {r["seed"]: r[key] for r in rows
            if r["cohort"] == cohort and r["arm"] == arm and _at(time_years, r["time_years"])
            and r.get(key) is not None}


def paired_effects(rows, time_years: float, figures=tuple(FIGURES)) -> list[dict]:
    """Per cohort x treated arm x figure: the paired difference against untreated.

    Returns
    -------
    list of dicts with ``cohort``, ``arm``, ``figure``, ``time_years``, ``seeds`` (the
    specimens both arms have), ``differences`` (per seed, points), the fields of :func:`stats.paired_difference` (percentage
    points; NaN spread with n = 1) and ``power_n``: specimens per cohort a paired t-test
    needs for 80 % power at the figure's POWER_TARGETS effect with this SD (None where
    the SD is unknown or no target is set; -1 if more than 10,000).
    """
    cohorts = list(dict.fromkeys(r["cohort"] for r in rows))
    arms = [a for a in dict.fromkeys(r["arm"] for r in rows) if a not in ("baseline", CONTROL)]
    out = []
    for cohort in cohorts:
        for arm in arms:
            for figure in figures:
                treated = arm_changes(rows, cohort, arm, time_years, figure)
                control = arm_changes(rows, cohort, CONTROL, time_years, figure)
                seeds = sorted(set(treated) & set(control))
                if not seeds:
                    continue
                a, b = [treated[s] for s in seeds], [control[s] for s in seeds]
                res = paired_difference(a, b)
                out.append({"cohort": cohort, "arm": arm, "figure": figure, "time_years": time_years,
                            "seeds": seeds, "differences": [x - y for x, y in zip(a, b)], **res,
                            "power_n": power_n(figure, res["sd"])})
    return out


def power_n(figure: str, sd: float) -> int | None:
    """Specimens per cohort for 80 % power (two-sided 5 %) to detect the figure's target
    effect when paired differences have SD ``sd``; None if unknown, -1 if > 10,000."""
    if figure not in POWER_TARGETS or not math.isfinite(sd):
        return None
    try:
        return specimens_for_power(POWER_TARGETS[figure][0], sd, POWER, ALPHA)
    except ValueError:
        return -1


def cohort_interactions(effects: list[dict], figures=("bmd", "failure_load", "buckling")) -> list[dict]:
    """Per treated arm and figure: does the arm's paired effect differ between cohorts?
    (the cohort x arm interaction, :func:`stats.interaction` on the per-specimen
    differences of :func:`paired_effects`)."""
    out = []
    arms = list(dict.fromkeys(e["arm"] for e in effects))
    for arm in arms:
        for figure in figures:
            per = {e["cohort"]: np.asarray(e["differences"], float) for e in effects
                   if e["arm"] == arm and e["figure"] == figure}
            if len(per) >= 2:
                out.append({"arm": arm, "figure": figure, **interaction(per),
                            "n": {k: int(v.size) for k, v in per.items()}})
    return out


def change_intervals(rows, time_years: float, figures=tuple(FIGURES)) -> list[dict]:
    """Per cohort x arm (untreated included) x figure: mean % change from baseline over
    specimens with its 95 % t interval (:func:`stats.mean_interval`)."""
    out = []
    cohorts = list(dict.fromkeys(r["cohort"] for r in rows))
    arms = [a for a in dict.fromkeys(r["arm"] for r in rows) if a != "baseline"]
    for cohort in cohorts:
        for arm in arms:
            for figure in figures:
                v = arm_changes(rows, cohort, arm, time_years, figure)
                if v:
                    out.append({"cohort": cohort, "arm": arm, "figure": figure,
                                "time_years": time_years, **mean_interval(list(v.values()))})
    return out
