"""Markdown table of a solver benchmark run (bench/solver.py ``table``).

One row per specimen, rank count and method; the last two columns are ratios against
the DOLFINx-demo baseline (a) of the same specimen and rank count, measured in the
same run: speed-up of assembly (or hierarchy set-up) + solve (demo seconds / method
seconds) and peak memory per rank (method / demo).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

BEGIN, END = "<!-- bench:table -->", "<!-- /bench:table -->"
LABEL = {"demo": "(a) DOLFINx demo GAMG", "pyamg": "(b) SciPy + PyAMG", "fast": "tuned GAMG",
         "matfree": "**matrix-free GMG**"}


def load(directory: Path) -> list[dict]:
    """All result records of a run; PyAMG records get the specimen's mesh figures."""
    recs = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    by_spec = {r["specimen"]: r for r in recs if "specimen" in r}
    for r in recs:
        if r["method"] == "pyamg":
            spec = r["system"].replace("system_", "specimen_")
            r.update(elements=by_spec.get(spec, {}).get("elements"), specimen=spec,
                     mesh_s=None, assembly_s=None)   # PyAMG reads the exported system
    return [r for r in recs if "specimen" in r]


def table(recs: list[dict]) -> str:
    order = {"demo": 0, "pyamg": 1, "fast": 2, "matfree": 3}
    recs = sorted(recs, key=lambda r: (r["dofs"], r["ranks"], order.get(r["method"], 9)))
    base = {(r["specimen"], r["ranks"]): r for r in recs if r["method"] == "demo"}
    rows = ["| DOF | elements | ranks | method | mesh s | assembly s | solve s | iterations "
            "| peak MiB/rank | E_app MPa | speed-up vs (a) | memory vs (a) |",
            "|" + " --- |" * 12]
    f = lambda x, fmt: "" if x is None else format(x, fmt)
    for r in recs:
        mem = max(r["peak_rss_mb"])
        a = base.get((r["specimen"], r["ranks"]))
        total = lambda rec: rec["solve_s"] + (rec["assembly_s"] or 0.0)
        speed = f"{total(a) / total(r):.1f}x" if a else ""
        memr = f"{mem / max(a['peak_rss_mb']):.2f}" if a else ""
        rows.append(f"| {r['dofs']:,} | {f(r['elements'], ',')} | {r['ranks']} "
                    f"| {LABEL.get(r['method'], r['method'])} | {f(r['mesh_s'], '.1f')} "
                    f"| {f(r['assembly_s'], '.1f')} | {r['solve_s']:.1f} | {r['iterations']} "
                    f"| {mem:,.0f} | {r['apparent_modulus_MPa']:.2f} | {speed} | {memr} |")
    return "\n".join(rows)


def write_table(directory: Path, output: Path):
    """Replace the text between the table markers of ``output`` (append if absent)."""
    text = output.read_text() if output.exists() else ""
    block = f"{BEGIN}\n{table(load(directory))}\n{END}"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    output.write_text(text)
