"""The trial's paired statistics as text: arms against untreated with 95 % intervals, the
cohort x arm interaction and the trial size a power calculation asks for.

Input: the dicts of fem.analysis.paired (also stored in result.json under "paired").
"""

from __future__ import annotations

import math

from fem.analysis.compare import add_changes
from fem.analysis.paired import (ALPHA, FIGURES, POWER, POWER_TARGETS, change_intervals,
                                 cohort_interactions, paired_effects)

# Figures whose change from baseline gets an interval and a direction in the summary.
DIRECTION_FIGURES = ("bmd", "failure_load")


def paired_statistics(rows, time_years: float) -> dict:
    """{"effects", "interactions"} of a trial's rows (with or without add_changes' columns)
    at ``time_years``; JSON-ready (NaN where a spread is unknown)."""
    if rows and "d_bmd_pct" not in rows[0]:
        rows = add_changes(rows)
    effects = paired_effects(rows, time_years)
    return _no_nan({"time_years": time_years, "effects": effects,
                    "interactions": cohort_interactions(effects),
                    "changes": change_intervals(rows, time_years, DIRECTION_FIGURES)})


def _no_nan(v):
    """NaN (unknown spread) -> None, so result.json stays standard JSON."""
    if isinstance(v, dict):
        return {k: _no_nan(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_no_nan(x) for x in v]
    return None if isinstance(v, float) and math.isnan(v) else v


def _num(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def interval_text(e: dict, digits: int = 2, say_n: bool = True) -> str:
    """'+1.23 [+0.40, +2.06]' (mean and 95 % interval), or '+1.23 (n = 1: no interval)'
    (without the note if not ``say_n``)."""
    m = f"{e['mean']:+.{digits}f}"
    if e["n"] < 2 or not _num(e.get("ci_low")):
        return f"{m} (n = {e['n']}: no interval)" if say_n else m
    return f"{m} [{e['ci_low']:+.{digits}f}, {e['ci_high']:+.{digits}f}]"


def direction(e: dict) -> str:
    """'falls' or 'rises' where the 95 % interval of a change excludes 0, else 'not resolved'
    (also with n < 2: no interval)."""
    if e["n"] < 2 or not _num(e.get("ci_low")):
        return "not resolved"
    if e["ci_high"] < 0:
        return "falls"
    return "rises" if e["ci_low"] > 0 else "not resolved"


def changes_markdown(stats: dict) -> str:
    """Markdown: each cohort x arm's change from baseline (BMD, failure load) with its 95 %
    interval and the direction that interval supports; "" for statistics without them."""
    changes, t = stats.get("changes"), stats["time_years"]
    if not changes:
        return ""
    figures = [f for f in DIRECTION_FIGURES if any(c["figure"] == f for c in changes)]
    lines = [f"How sure each direction is: change from baseline at {t:g} years, % (mean [95 % t "
             "interval] over the cohort's specimens). 'falls' or 'rises' where the interval excludes "
             "0; 'not resolved' where it spans 0 or there is one specimen (no interval): more or "
             "larger specimens would be needed to tell the direction.", "",
             "| cohort | arm | n | " + " | ".join(f"{FIGURES[f]} | direction" for f in figures) + " |",
             "| --- " * (3 + 2 * len(figures)) + "|"]
    keys = list(dict.fromkeys((c["cohort"], c["arm"]) for c in changes))
    for cohort, arm in keys:
        by = {c["figure"]: c for c in changes if (c["cohort"], c["arm"]) == (cohort, arm)}
        n = max(c["n"] for c in by.values())
        cells = [f"{interval_text(by[f], say_n=False)} | {direction(by[f])}" if f in by else " | "
                 for f in figures]
        lines.append(f"| {cohort} | {arm} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _power_text(n) -> str:
    return "" if n is None else ("> 10000" if n < 0 else str(n))


def paired_markdown(stats: dict) -> str:
    """Markdown: the paired table, the interaction tests and the power line."""
    effects, t = stats["effects"], stats["time_years"]
    if not effects:
        return "No arm to compare with untreated.\n"
    figures = list(dict.fromkeys(e["figure"] for e in effects))
    targets = [f for f in figures if f in POWER_TARGETS]
    lines = [f"Against untreated at {t:g} years: paired differences (same cohort and specimen seed, "
             "the arm's % change from baseline minus the untreated arm's, percentage points): "
             "mean [95 % t interval] over specimens, n specimens, p of the paired t-test of the "
             "failure load, and the specimens per cohort a paired t-test needs for "
             f"{POWER * 100:g} % power (two-sided {ALPHA:g}) at the target effect with this SD. "
             "(A headline table's 'vs untr.' columns are the ratio to the same specimen's untreated "
             "state, mean ± SD, without an interval.)", "",
             "| cohort | arm | n | " + " | ".join(FIGURES.get(f, f) for f in figures) + " | p (failure load) | "
             + " | ".join(f"n for {POWER_TARGETS[f][0]:g} points of {FIGURES.get(f, f)}" for f in targets) + " |",
             "| --- " * (4 + len(figures) + len(targets)) + "|"]
    keys = list(dict.fromkeys((e["cohort"], e["arm"]) for e in effects))
    for cohort, arm in keys:
        by = {e["figure"]: e for e in effects if (e["cohort"], e["arm"]) == (cohort, arm)}
        n = max(e["n"] for e in by.values())
        p = by.get("failure_load", {}).get("p")
        lines.append(f"| {cohort} | {arm} | {n} | "
                     + " | ".join(interval_text(by[f]) if f in by else "" for f in figures)
                     + f" | {f'{p:.3g}' if _num(p) else ''} | "
                     + " | ".join(_power_text(by[f].get("power_n")) if f in by else "" for f in targets) + " |")
    lines += ["", *interaction_lines(stats["interactions"]), *power_lines(effects), ""]
    return "\n".join(lines)


def interaction_lines(interactions: list[dict]) -> list[str]:
    """One line per arm and figure: does the arm's effect differ between cohorts?"""
    out = []
    for it in interactions:
        label = f"{it['arm']}, {FIGURES.get(it['figure'], it['figure'])}"
        ns = ", ".join(f"{c} {n}" for c, n in it["n"].items())
        if not _num(it.get("p")):
            out.append(f"- Cohort x arm interaction ({label}): not testable, it needs 2 or more "
                       f"specimens in 2 or more cohorts (n: {ns}).")
            continue
        pairs = "; ".join(f"{a} - {b} {p['difference']:+.2f}"
                          + (f" [{p['ci_low']:+.2f}, {p['ci_high']:+.2f}], p {p['p']:.3g}"
                             if _num(p.get("p")) else " (no interval)")
                          for p in it["pairs"] for a, b in [p["cohorts"]])
        out.append(f"- Cohort x arm interaction ({label}): does the effect differ between cohorts? "
                   f"F = {it['F']:.3g}, p = {it['p']:.3g} (one-way ANOVA of the per-specimen paired "
                   f"effects across the cohorts with 2 or more specimens; n: {ns}). Between cohorts (Welch, "
                   f"95 % interval): {pairs}.")
    return out


def power_lines(effects: list[dict]) -> list[str]:
    """Trial size: the most specimens per cohort any arm x cohort needs for each target."""
    out = []
    for figure, (delta, why) in POWER_TARGETS.items():
        known = [e for e in effects if e["figure"] == figure and e.get("power_n") is not None]
        if not known:
            if any(e["figure"] == figure for e in effects):
                out.append(f"- Power, {FIGURES[figure]}: n = 1: no SD of the paired differences, "
                           "so no trial size.")
            continue
        worst = max(known, key=lambda e: math.inf if e["power_n"] < 0 else e["power_n"])
        out.append(f"- Power, {FIGURES[figure]}: to detect {delta:g} points ({why}) with "
                   f"{POWER * 100:g} % power at two-sided {ALPHA:g}, a trial needs "
                   f"{_power_text(worst['power_n'])} specimens per cohort, with the observed SD of the "
                   f"paired differences (the largest need: {worst['arm']} in {worst['cohort']}, SD "
                   f"{worst['sd']:.2f} points from n = {worst['n']}; an SD from few specimens is itself "
                   "uncertain).")
    return out
