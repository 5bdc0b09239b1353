"""Trial tables: CSV for machines, Markdown for people."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fem.report.result import write_atomic


def write_csv(path, rows: list[dict]) -> Path:
    """Rows (dicts) as CSV; the columns are the union of the keys, in first-seen order."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in columns})
    return write_atomic(path, buf.getvalue())


def _pm(s, key, digits=2):
    m, sd = s.get(f"{key}_mean"), s.get(f"{key}_sd")
    if m is None:
        return ""
    return f"{m:+.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def headline_markdown(summary: list[dict], time_years: float) -> str:
    """Markdown table of the changes at ``time_years`` (mean ± SD over specimens, %)."""
    rows = [s for s in summary if abs(s["time_years"] - time_years) < 1e-9 and s["arm"] != "baseline"]
    lines = [f"Changes at {time_years:g} years, % (mean ± SD over specimens; vs baseline unless "
             "marked 'vs untr.')", "",
             "| cohort | arm | n | BMD | BV/TV | failure load | BMD vs untr. | failure load vs untr. "
             "| mass | tissue | architecture | perforations |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in sorted(rows, key=lambda s: (s["cohort"], s["arm"])):
        lines.append(f"| {s['cohort']} | {s['arm']} | {s['n']} | {_pm(s, 'd_bmd_pct')} | "
                     f"{_pm(s, 'd_bv_tv_pct')} | {_pm(s, 'd_failure_load_pct')} | {_pm(s, 'du_bmd_pct')} | "
                     f"{_pm(s, 'du_failure_load_pct')} | {_pm(s, 'strength_mass_pct')} | "
                     f"{_pm(s, 'strength_tissue_pct')} | {_pm(s, 'strength_architecture_pct')} | "
                     f"{_pm(s, 'perforations', 0)} |")
    return "\n".join(lines) + "\n"


def methods_markdown(methods: list[dict] | None, time_years: float) -> str:
    """Markdown tables of the strength changes at ``time_years`` by Pistoia and by the
    nonlinear test and/or the buckling analysis, each with its paired difference from
    Pistoia (mean ± SD over specimens, %); "" when the trial ran neither."""
    if not methods:
        return ""
    rows = [s for s in methods if abs(s["time_years"] - time_years) < 1e-9 and s["arm"] != "baseline"]
    text = _nonlinear_markdown(rows, time_years) if any(
        s.get("d_nl_ultimate_pct_mean") is not None for s in rows) else ""
    if any(s.get("d_buckling_pct_mean") is not None for s in rows):
        text += _buckling_markdown(rows, time_years)
    return text


def _method_table(rows: list[dict], caption: str, columns: dict) -> str:
    """One method's table: ``columns`` maps a header to (summary key, digits)."""
    lines = ["", caption, "", "| cohort | arm | n | " + " | ".join(columns) + " |",
             "| --- " * (3 + len(columns)) + "|"]
    for s in sorted(rows, key=lambda s: (s["cohort"], s["arm"])):
        cells = [_pm(s, key, digits) for key, digits in columns.values()]
        lines.append(f"| {s['cohort']} | {s['arm']} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _buckling_markdown(rows: list[dict], time_years: float) -> str:
    return _method_table(rows, (
        f"Strength changes at {time_years:g} years by the Pistoia failure load and by the "
        "first linear buckling load, % (mean ± SD over specimens); 'buckling − Pistoia' is the "
        "paired difference of the changes, percentage points; 'first mode on' is the share of "
        "the nodes the first buckling mode moves at the end (docs/nonlinear.md)"), {
        "Pistoia": ("d_failure_load_pct", 2), "buckling": ("d_buckling_pct", 2),
        "buckling − Pistoia": ("diff_d_buckling_pct", 2), "Pistoia vs untr.": ("du_failure_load_pct", 2),
        "buckling vs untr.": ("du_buckling_pct", 2),
        "buckling − Pistoia vs untr.": ("diff_du_buckling_pct", 2),
        "first mode on": ("buckling_mode_share", 2)})


def _nonlinear_markdown(rows: list[dict], time_years: float) -> str:
    return _method_table(rows, (
        f"Strength changes at {time_years:g} years by two methods, % (mean ± SD over "
        "specimens): Pistoia failure load, nonlinear ultimate load and 0.2 % offset yield "
        "load; 'nonlinear − Pistoia' is the paired difference of the changes, percentage "
        "points (docs/nonlinear.md)"), {
        "Pistoia": ("d_failure_load_pct", 2), "nonlinear ultimate": ("d_nl_ultimate_pct", 2),
        "nonlinear yield": ("d_nl_yield_pct", 2), "nonlinear − Pistoia": ("diff_d_strength_pct", 2),
        "Pistoia vs untr.": ("du_failure_load_pct", 2), "nonlinear vs untr.": ("du_nl_ultimate_pct", 2),
        "nonlinear − Pistoia vs untr.": ("diff_du_strength_pct", 2),
        "strain at ultimate": ("nl_strain_at_ultimate", 4),
        "yielded at ultimate": ("nl_yielded_fraction", 3)})


def parts_markdown(summary: list[dict], time_years: float) -> str:
    """Markdown table of each arm's strength effect against untreated and its parts
    (paired: arm minus untreated, same specimen; points of the baseline failure load,
    mean ± SD); "" without an attribution. With ``[trial] remodelling_space`` the
    architecture part is split into open cavities and the permanent rest."""
    rows = [s for s in summary if abs(s["time_years"] - time_years) < 1e-9
            and s.get("paired_strength_mass_pts_mean") is not None]
    if not rows:
        return ""
    split = any(s.get("paired_strength_cavities_pts_mean") is not None for s in rows)
    parts = ["mass", "tissue"] + (["cavities", "permanent"] if split else ["architecture"])
    keys = ["paired_d_failure_load_pts"] + [f"paired_strength_{p}_pts" for p in parts]
    lines = ["", f"Parts of each arm's strength effect against untreated at {time_years:g} years, "
             "percentage points of the baseline failure load (arm minus untreated, same specimen; "
             "mean ± SD; they add up to the effect; docs/trial.md, 'Attribution')", "",
             "| cohort | arm | n | effect | " + " | ".join(parts) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in parts) + " |"]
    for s in sorted(rows, key=lambda s: (s["cohort"], s["arm"])):
        cells = " | ".join(_pm(s, k) for k in keys)
        lines.append(f"| {s['cohort']} | {s['arm']} | {s['n']} | {cells} |")
    return "\n".join(lines) + "\n"
