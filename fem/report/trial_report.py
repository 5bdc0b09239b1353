"""Everything a finished trial writes: tables, plots, result.json."""

from __future__ import annotations

from pathlib import Path

from fem.analysis.compare import add_changes, bmd_only_exponent, summarise
from fem.case import case_to_dict
from fem.report import plots
from fem.report.result import versions, write_atomic, write_case_toml, write_json
from fem.report.tables import headline_markdown, write_csv


def trial_effort(rows: list[dict]) -> tuple[int, float | None]:
    """Solves behind the rows of a trial over every run that made them (a resumed trial,
    or a batch, reuses rows made earlier), and their solver seconds when the rows carry
    them (``solves`` and ``solve_s`` per row; None otherwise). A row without ``solves``
    took one solve, plus two for the attribution's counterfactuals when it has them."""
    solves, seconds = 0, 0.0
    for r in rows:
        n = r.get("solves")
        if n is None:
            n = 1 + (2 if r.get("strength_mass_pct") is not None else 0)
        solves += int(n)
        seconds = None if seconds is None or r.get("solve_s") is None else seconds + float(r["solve_s"])
    return solves, (None if seconds is None else round(seconds, 1))


def write_trial(rows: list[dict], case, outdir, seconds: float, solves: int) -> dict:
    """Write trial.csv, summary.csv/.md, figures and result.json; return the summary.

    ``seconds`` and ``solves`` are this run's; result.json also gets the whole trial's
    (``trial_solves``, ``trial_solve_seconds``: :func:`trial_effort`)."""
    outdir = Path(outdir)
    t = case.trial
    rows = add_changes(rows)
    summary = summarise(rows)
    final = max(t.checkpoints)
    # solve counts and times are bookkeeping (result.json), not results: a resumed trial's
    # table must equal an uninterrupted one's
    write_csv(outdir / "trial.csv", [{k: v for k, v in r.items() if k not in ("solves", "solve_s")}
                                     for r in rows])
    write_csv(outdir / "summary.csv", summary)
    headline = headline_markdown(summary, final)
    write_atomic(outdir / "summary.md", f"# {case.title or 'Trial'}\n\n" + headline)
    exponents = {c: bmd_only_exponent(rows, c) for c in t.cohorts}
    figures = []
    figures += plots.strength_vs_bmd(rows, exponents, final, outdir / "strength_vs_bmd")
    figures += plots.trajectories(summary, t.cohorts, outdir / "trajectories")
    if t.attribution:
        figures += plots.attribution_bars(summary, t.cohorts, t.arms, final, outdir / "attribution")
    renders = _renders(outdir, t) if case.output.fields else []
    write_case_toml(outdir / "case.toml", case_to_dict(case))
    effort = trial_effort(rows)
    write_json(outdir / "result.json", {
        "units": {"length": "mm", "force": "N", "stress": "MPa", "bmd": "mg HA/cm^3", "changes": "%"},
        "case": case_to_dict(case), "versions": versions(), "seconds": round(seconds, 1),
        "solves": solves, "trial_solves": effort[0], "trial_solve_seconds": effort[1],
        "bmd_only_exponents": exponents, "summary": summary,
        "figures": [p.name for p in figures], "renders": [p.name for p in renders],
        "tables": ["trial.csv", "summary.csv", "summary.md"],
    })
    return {"summary": summary, "headline": headline}


def _renders(outdir: Path, t) -> list[Path]:
    """Von Mises stress of the first specimen of each cohort: baseline and every arm at
    the end, side by side on one colour scale."""
    from fem.report.view import side_by_side

    out = []
    seed, final = t.seeds[0], max(t.checkpoints)
    for cohort in t.cohorts:
        tag = f"{cohort}-s{seed}"
        panels = [(outdir / "fields" / f"{tag}-baseline", "baseline")]
        panels += [(outdir / "fields" / f"{tag}-{arm}-{final:g}y", f"{arm}, {final:g} y") for arm in t.arms]
        panels = [(p, title) for p, title in panels if p.exists()]
        if panels:
            out.append(side_by_side(panels, outdir / f"stress-{cohort}.png", size=(600, 600),
                                    title=f"{cohort} specimen, seed {seed}: von Mises stress at "
                                          f"baseline and after {final:g} years of each arm"))
    return out
