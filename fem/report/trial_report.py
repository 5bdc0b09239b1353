"""Everything a finished trial writes: tables, plots, result.json."""

from __future__ import annotations

from pathlib import Path

from fem.analysis.compare import add_changes, bmd_only_exponent, summarise
from fem.analysis.compare_methods import add_method_changes, summarise_methods
from fem.case import case_to_dict
from fem.report import plots
from fem.report.paired_report import changes_markdown, paired_markdown, paired_statistics
from fem.report.result import versions, write_atomic, write_case_toml, write_json
from fem.report.store import fields_folder
from fem.report.tables import headline_markdown, methods_markdown, parts_markdown, write_csv
from fem.report.view import side_by_side


def write_trial(rows: list[dict], case, outdir, this_run: dict | None = None, roots=None) -> dict:
    """Write trial.csv, summary.csv/.md, figures and result.json; return the summary.

    rows : the trial's rows; each row's "cost" {"solves", "seconds"} is what it took to
        compute, whichever run (or batch job) did it, so the totals in result.json count
        the whole trial however often it was resumed
    this_run : {"solves", "seconds"} of the run that writes this (resumed work excluded)
    roots : {(cohort, seed): trial folder holding that specimen's ``fields/``}; None: all
        in ``outdir`` (a batch's specimens each have their own job folder)
    """
    outdir = Path(outdir)
    t = case.trial
    costs = [r.get("cost", {}) for r in rows]
    total = {"solves": sum(c.get("solves", 0) for c in costs),
             "seconds": round(sum(c.get("seconds", 0.0) for c in costs), 1)}
    rows = add_changes([{k: v for k, v in r.items() if k != "cost"} for r in rows])
    rows = add_method_changes(rows)          # nonlinear strength, where it ran
    methods = summarise_methods(rows)
    summary = summarise(rows)
    final = max(t.checkpoints)
    write_csv(outdir / "trial.csv", rows)
    write_csv(outdir / "summary.csv", summary)
    paired = paired_statistics(rows, final)
    headline = (headline_markdown(summary, final) + "\n" + changes_markdown(paired)
                + methods_markdown(methods, final)
                + parts_markdown(summary, final) + "\n" + paired_markdown(paired))
    write_atomic(outdir / "summary.md", f"# {case.title or 'Trial'}\n\n" + headline)
    exponents = {c: bmd_only_exponent(rows, c) for c in t.cohorts}
    figures = []
    figures += plots.strength_vs_bmd(rows, exponents, final, outdir / "strength_vs_bmd")
    figures += plots.trajectories(summary, t.cohorts, outdir / "trajectories")
    figures += _paired_figure(paired, outdir)
    if t.attribution:
        figures += plots.attribution_bars(summary, t.cohorts, t.arms, final, outdir / "attribution")
    renders = _renders(outdir, t, roots or {}) if case.output.fields else []
    write_case_toml(outdir / "case.toml", case_to_dict(case))
    write_json(outdir / "result.json", {
        "units": {"length": "mm", "force": "N", "stress": "MPa", "bmd": "mg HA/cm^3", "changes": "%"},
        "case": case_to_dict(case), "versions": versions(), **total,
        **({"this_run": this_run} if this_run is not None else {}), "bmd_only_exponents": exponents, "summary": summary,
        **({"strength_methods": methods} if methods else {}),
        "paired": paired, "figures": [p.name for p in figures], "renders": [p.name for p in renders],
        "tables": ["trial.csv", "summary.csv", "summary.md"],
    })
    return {"summary": summary, "headline": headline}


def _paired_figure(paired: dict, outdir: Path) -> list[Path]:
    """paired.png/.svg: every arm minus untreated with its interval (none without arms)."""
    return plots.paired_differences(paired["effects"], outdir / "paired") if paired["effects"] else []


def _renders(outdir: Path, t, roots: dict) -> list[Path]:
    """Von Mises stress of the first specimen of each cohort: baseline and every arm at
    the end, side by side on one colour scale."""
    out = []
    seed, final = t.seeds[0], max(t.checkpoints)
    for cohort in t.cohorts:
        root = roots.get((cohort, seed), outdir)
        panels = [(fields_folder(root, cohort, seed), "baseline")]
        panels += [(fields_folder(root, cohort, seed, arm, final), f"{arm}, {final:g} y")
                   for arm in t.arms]
        panels = [(p, title) for p, title in panels if p.exists()]
        if panels:
            out.append(side_by_side(panels, outdir / f"stress-{cohort}.png",
                                    size=(420 * len(panels), 480)))
    return out
