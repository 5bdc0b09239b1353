"""docs/results.md, generated from a finished trial folder (no hand-written numbers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fem.errors import BonefemError
from fem.report.paired_report import changes_markdown, direction, interval_text, paired_markdown, paired_statistics
from fem.report.result import write_atomic
from fem.report.store import trial_rows
from fem.report.tables import headline_markdown, methods_markdown

# Strength ~ apparent density^2 (Carter and Hayes 1977, J Bone Joint Surg Am 59:954), for a
# cohort whose own exponent is missing.
DEFAULT_EXPONENT = 2.0


def _get(summary, cohort, arm, t, key):
    for s in summary:
        if s["cohort"] == cohort and s["arm"] == arm and abs(s["time_years"] - t) < 1e-9:
            return s.get(f"{key}_mean")
    return None


def _f(v, digits=1):
    return "n/a" if v is None else f"{v:+.{digits}f} %"


def strength_beyond_bmd(d_bmd_pct: float, d_strength_pct: float, k: float) -> tuple[float, float]:
    """The strength change (%) that a BMD change (%) predicts through F ~ BMD^k, and the
    actual change minus it (percentage points; > 0: stronger than the BMD change shows).

    Unlike the ratio of the two changes, its sign means the same when both are losses:
    -17.7 % BMD and -23.2 % strength is a ratio of 1.31 (> 1 read as "more strength")
    but, with k = 1.27, 1.3 points less strength than the BMD loss predicts.
    """
    predicted = 100.0 * ((1.0 + d_bmd_pct / 100.0) ** k - 1.0)
    return predicted, d_strength_pct - predicted


def versus_untreated(effects: list[dict], cohort: str, arm: str) -> str:
    """'BMD +1.20 [+0.30, +2.10] points, failure load ... (n = 3)': one arm's paired
    differences against untreated in one cohort (fem.analysis.paired effects)."""
    by = {e["figure"]: e for e in effects if e["cohort"] == cohort and e["arm"] == arm}
    if not by:
        return f"{arm}: no paired specimens"
    n = max(e["n"] for e in by.values())
    parts = [f"{label} {interval_text(by[f], say_n=False)} points"
             for f, label in (("bmd", "BMD"), ("failure_load", "failure load")) if f in by]
    return f"{arm}: " + ", ".join(parts) + (f" (n = {n})" if n > 1 else " (n = 1: no interval)")


def findings(summary, cohorts, arms, t, exponents=None, paired=None) -> list[str]:
    """Plain sentences read off the summary: what the engine says about the hypothesis.

    paired : fem.report.paired_report.paired_statistics of the trial; the changes against
        untreated are then its paired differences with their 95 % intervals (without it,
        the summary's mean changes relative to untreated)."""
    out = []
    for c in cohorts:
        parts = []
        for arm in arms:
            if arm == "untreated":
                continue
            if paired is not None:
                parts.append(versus_untreated(paired["effects"], c, arm))
                continue
            bmd = _get(summary, c, arm, t, "du_bmd_pct")
            fl = _get(summary, c, arm, t, "du_failure_load_pct")
            parts.append(f"{arm}: BMD {_f(bmd)}, failure load {_f(fl)}")
        base_bmd = _get(summary, c, "untreated", t, "d_bmd_pct")
        base_fl = _get(summary, c, "untreated", t, "d_failure_load_pct")
        against = ("paired differences (arm minus untreated, same specimens; mean [95 % interval])"
                   if paired is not None else "")
        untreated = f"BMD {_f(base_bmd)}, failure load {_f(base_fl)} vs baseline"
        changes = {x["figure"]: x for x in (paired or {}).get("changes", [])
                   if x["cohort"] == c and x["arm"] == "untreated"}
        if changes:
            untreated = ", ".join(f"{label} {interval_text(changes[f], say_n=False)} % ({direction(changes[f])})"
                                  for f, label in (("bmd", "BMD"), ("failure_load", "failure load"))
                                  if f in changes) + " vs baseline"
        out.append(f"- **{c}** (untreated: {untreated}). "
                   f"Against the untreated arm at {t:g} years, {against}{': ' if against else ''}"
                   + "; ".join(parts) + ".")
    # thick versus thin: the combination's architecture part per cohort
    arch = {c: _get(summary, c, "combined", t, "strength_architecture_pct") for c in cohorts}
    perf = {c: _get(summary, c, "combined", t, "perforations") for c in cohorts}
    if all(v is not None for v in arch.values()):
        out.append("- The combination's architecture part of the strength change (perforation, lost "
                   "connectivity) by cohort: " + ", ".join(f"{c} {_f(v)}" for c, v in arch.items())
                   + "; perforations per specimen: "
                   + ", ".join(f"{c} {perf[c]:.0f}" for c in cohorts if perf[c] is not None) + ".")
    k_of = {c: ((exponents or {}).get(c) or DEFAULT_EXPONENT) for c in cohorts}
    beyond = []
    for arm in arms:
        if arm == "untreated":
            continue
        per = []
        for c in cohorts:
            b = _get(summary, c, arm, t, "du_bmd_pct")
            f = _get(summary, c, arm, t, "du_failure_load_pct")
            if b is None or f is None:
                continue
            predicted, excess = strength_beyond_bmd(b, f, k_of[c])
            per.append(f"{c} {excess:+.1f} (BMD {b:+.1f} % predicts {predicted:+.1f} %, "
                       f"failure load {f:+.1f} %)")
        if per:
            beyond.append(f"{arm}: " + ", ".join(per))
    if beyond:
        ks = ", ".join(f"{c} {k:.2f}" for c, k in k_of.items())
        out.append("- Strength change beyond what the BMD change predicts, both against untreated, in "
                   "percentage points: the failure-load change minus the change that F ~ BMD^k predicts "
                   f"for the BMD change (k: {ks}; each cohort's own strength-mass exponent, from the same "
                   "specimens thickened or thinned uniformly, fem/analysis/compare.py; where missing "
                   f"k = {DEFAULT_EXPONENT:g}, the density-squared law of Carter and Hayes 1977, J Bone "
                   "Joint Surg Am 59:954). Positive: stronger than its BMD shows; negative: weaker. "
                   + "; ".join(beyond) + ".")
    gaps = []
    for c in cohorts:
        for arm in arms:
            if arm == "untreated":
                continue
            b = _get(summary, c, arm, t, "du_bmd_pct")
            f = _get(summary, c, arm, t, "du_failure_load_pct")
            if b is not None and f is not None and abs(b) < 1.0 and f > 1.0:
                gaps.append(f"{arm} in {c} (BMD {_f(b)}, failure load {_f(f)})")
    if gaps:
        out.append("- Strength gained with BMD nearly flat (|BMD change| < 1 %, failure load > +1 % vs "
                   "untreated): " + "; ".join(gaps) + ".")
    else:
        out.append("- No arm gained more than 1 % strength against untreated with BMD within 1 % of it.")
    return out


def strength_methods_section(result: dict, final: float) -> list[str]:
    """Lines of the 'Strength by two methods' section (Pistoia beside the nonlinear test
    and/or the buckling analysis, with their paired differences); none when the trial ran
    neither."""
    methods = result.get("strength_methods")
    if not methods:
        return []
    out = ["## Strength by two methods", "", methods_markdown(methods, final).lstrip("\n")]
    if any(s.get("d_nl_ultimate_pct_mean") is not None for s in methods):
        out.append("The nonlinear test loads each specimen past tissue yield (docs/nonlinear.md). A "
                   "difference of the changes that is not zero means the two methods disagree on what "
                   "the treatment did to strength; where lost struts matter more than the linear "
                   "solve sees, the nonlinear change is the lower one. Small strain only: it has no "
                   "buckling, so it can still miss what perforation does to bracing.")
    if any(s.get("d_buckling_pct_mean") is not None for s in methods):
        out.append("The buckling load is the first linear buckling load factor of the compressed "
                   "specimen times its reaction force (docs/nonlinear.md): it sees a strut that lost "
                   "its bracing, which the Pistoia estimate does not. Its first mode is often local "
                   "(one or a few struts: 'first mode on' is small), so it is a weakest-strut measure "
                   "and scatters more between specimens than the Pistoia load.")
    return out + [""]


def effort_text(result: dict) -> str:
    """'N solves ...' for the whole trial, over every run that made its rows.

    ``result["solves"]`` and ``result["seconds"]`` count every row's cost whichever run
    (or batch job) computed it; ``result["this_run"]`` is what the run that wrote
    result.json did itself (a resumed trial's last run, or a batch's merge, makes only
    some rows or none)."""
    total, seconds = result.get("solves"), result.get("seconds") or 0.0
    text = f"{total} solves over all runs of the trial"
    if seconds > 0:
        text += f", {seconds:.0f} s of solving"
    run = result.get("this_run") or {}
    last, last_s = run.get("solves"), run.get("seconds") or 0.0
    if last is not None and last != total and last_s > 0:
        text += f"; the last run made {last} of them and took {last_s:.0f} s"
    return text


def paired_of(trial_dir: Path, result: dict, final: float) -> dict:
    """The trial's paired statistics: from result.json, or (a trial written before they
    were) from its rows."""
    if "paired" in result and "changes" in result["paired"]:
        return result["paired"]
    # in the case's cohort order (a batch's job folders come in name order)
    order = {c: i for i, c in enumerate(result["case"]["trial"]["cohorts"])}
    rows = sorted(trial_rows(trial_dir), key=lambda r: order.get(r["cohort"], len(order)))
    return paired_statistics(rows, final)


def write_results_doc(trial_dir, out="docs/results.md") -> Path:
    """Write the results document from ``trial_dir`` (result.json, figures) to ``out``."""
    trial_dir, out = Path(trial_dir), Path(out)
    try:
        result = json.loads((trial_dir / "result.json").read_text())
    except FileNotFoundError:
        raise BonefemError(f"{trial_dir}: no result.json; run `bonefem run TRIAL.toml -o {trial_dir}` first") from None
    case, summary = result["case"], result["summary"]
    t = case["trial"]
    final = max(t["checkpoints"])
    paired = paired_of(trial_dir, result, final)
    figdir = out.parent / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figures = []
    for name in result["figures"] + result.get("renders", []):
        src = trial_dir / name
        if src.suffix == ".png" and src.exists():
            shutil.copyfile(src, figdir / src.name)
            figures.append(src.name)
    lines = [
        "# Results: strength versus BMD under alfacalcidol, menatetrenone and their combination",
        "",
        f"Generated by `bonefem report {trial_dir}` from a run of `{case.get('title') or 'the trial'}` "
        f"(bonefem {result['versions']['bonefem']}, DOLFINx {result['versions']['dolfinx']}, "
        f"{effort_text(result)}). Do not edit by hand: rerun the trial and this command.",
        "",
        f"Trial: cohorts {', '.join(t['cohorts'])}; arms {', '.join(t['arms'])}; {t['years']:g} years, "
        f"solved at {', '.join(f'{c:g}' for c in t['checkpoints'])} years; seeds {t['seeds']}; "
        f"specimens {t['specimen']['size']:g} mm cubes at {1000 * t['specimen']['voxel_size']:g} um; "
        f"{t['spinup_years']:g} year untreated spin-up; {case['load']['test']} compression, "
        f"tissue modulus {case['material']['modulus']:g} MPa.",
        "",
        "## Headline table",
        "",
        headline_markdown(summary, final),
        "Strength is the Pistoia failure load; 'mass', 'tissue' and 'architecture' split its change "
        "(docs/model.md, fem/analysis/attribution.py).",
        "",
        changes_markdown(paired),
        *strength_methods_section(result, final),
        "## Against untreated: paired differences, interaction, trial size",
        "",
        paired_markdown(paired),
        "",
        "## What the engine says about the combination hypothesis",
        "",
        "The hypothesis (a clinical review, Keio J Med 2003, 52(3):147-150): alfacalcidol and "
        "menatetrenone together raise bone formation as well as resorption, and help most in "
        "younger women with mild osteoporosis and least (BMD fell) in elderly women with "
        "established osteoporosis. The engine tests the mechanism proposed for this: the extra "
        "resorption thickens thick trabeculae but perforates thin ones.",
        "",
        *findings(summary, t["cohorts"], t["arms"], final, result.get("bmd_only_exponents"), paired),
        "",
        "## Figures",
        "",
        *[f"![{f}](figures/{f})\n" for f in figures],
        "## Limits",
        "",
        "- Linear elasticity; strength from the Pistoia criterion, calibrated on the human distal "
        "radius: it ranks specimens, it does not give absolute vertebral strength.",
        "- Trabecular cubes only; lumbar DXA BMD also sees the cortical shell and posterior elements.",
        "- The drug presets encode that review's hypothesis, calibrated to the 2-year lumbar BMD "
        "changes it reports (e.g. combined +4.92 % in early postmenopausal women, Ushiroyama et al. "
        "2002, Maturitas 41:211); several parameters are assumptions (docs/model.md). Some vitamin "
        "K2 trials were retracted (Torgerson 2018, JAMA Intern Med 178:863) and a meta-analysis "
        "finds no clear vertebral fracture benefit (Mott et al. 2019, Osteoporos Int 30:1543): these "
        "numbers are a model's consequences, not evidence of efficacy.",
        "- Few specimens per cohort: the SD columns show the spread between specimens, not a "
        "population's; the paired intervals and the power line rest on that spread "
        "(docs/trial.md, specimen size).",
        *voxel_limits(t["specimen"]["voxel_size"]),
        "",
    ]
    return write_atomic(out, "\n".join(lines) + _kept_tail(out))


# Voxel edge (mm) that resolves a resorption cavity's cost to within about 1 point of a
# 10 um solve (docs/trial.md, "Cavity resolution": 0.1 point at random sites, 0.8 on the
# thinnest trabeculae, per 2 % of bone in cavities).
CAVITY_RESOLVED_MM = 0.02


def voxel_limits(voxel_mm: float) -> list[str]:
    """The Limits bullet for a trial whose voxel edge (mm) does not resolve the cavities."""
    if voxel_mm <= CAVITY_RESOLVED_MM + 1e-9:
        return []
    return [f"- Voxels of {1000 * voxel_mm:g} um do not resolve a resorption cavity (mean depth "
            "about 43 um): it enters as a softer partial voxel, not as a notch. The arms' own "
            "changes against baseline understate the cost of cavities and perforations. At 20-30 um "
            "the untreated arm lost 3-9 points more failure load than at 40 um. The paired "
            "differences against untreated held within their seed spread (docs/trial.md, "
            "'Voxel size' and 'Cavity resolution')."]


# Sections that other runs write into docs/results.md (e.g. the real-scan comparison of
# cases/real-core.toml) follow this line; regenerating the trial's part keeps them.
KEEP_MARK = "<!-- bonefem report keeps what follows: sections written from other runs -->"


def _kept_tail(out: Path) -> str:
    """The part of an existing ``out`` from KEEP_MARK on ("" without the mark)."""
    try:
        old = out.read_text()
    except FileNotFoundError:
        return ""
    return "\n" + old[old.index(KEEP_MARK):] if KEEP_MARK in old else ""
