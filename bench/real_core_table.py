"""The "Real scan vs generated bone" tables of docs/results.md from a run of cases/real-core.toml.

./bonefem exec python3 bench/real_core_table.py RESULTS_DIR [--per-seed]
RESULTS_DIR: a `run` folder or a `batch` folder's real-core/; every rows.jsonl below it is
read. Prints three Markdown tables: the baseline after spin-up (mean +- SD over seeds), the
2-year changes (mean with its 95 % t interval over seeds; untreated against baseline and
combined against untreated are paired within each seed) and real minus generated (Welch's
difference of the means with its 95 % interval). ``--per-seed`` prints one row per seed.
"""

import json
import sys
from pathlib import Path

import numpy as np

from fem.analysis.stats import mean_interval, welch_difference


def rows_of(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(Path(folder).rglob("rows.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def pct(a, b):
    return 100.0 * (a / b - 1.0)


def table(rows: list[dict]) -> str:
    by = {}
    for r in rows:
        by.setdefault((r["cohort"], r["seed"]), {})[r["arm"]] = r
    out = ["| specimen | turnover | baseline BV/TV | Tb.Th (mm) | Conn.D (/mm^3) | failure load (N) "
           "| untreated: BMD, failure load vs baseline (%) | combined: BMD, failure load vs untreated (%) "
           "| perforations untreated / combined | seconds |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (cohort, seed), arms in sorted(by.items(), key=lambda kv: (kv[0][0].split("-")[1], kv[0][0])):
        b, u, c = arms.get("baseline"), arms.get("untreated"), arms.get("combined")
        if not (b and u and c):
            continue
        kind, turnover = cohort.split("-", 1)
        secs = sum(a.get("cost", {}).get("seconds", 0) for a in (b, u, c))
        out.append(
            f"| {kind} (seed {seed}) | {turnover} | {b['bv_tv']:.3f} | {b['tb_th_mm']:.3f} | "
            f"{b['conn_d_per_mm3']:.2f} | {b['failure_load_N']:.2f} | "
            f"{pct(u['bmd_mg_per_cm3'], b['bmd_mg_per_cm3']):+.1f}, {pct(u['failure_load_N'], b['failure_load_N']):+.1f} | "
            f"{pct(c['bmd_mg_per_cm3'], u['bmd_mg_per_cm3']):+.1f}, {pct(c['failure_load_N'], u['failure_load_N']):+.1f} | "
            f"{u['perforations']} / {c['perforations']} | {secs:.0f} |")
    return "\n".join(out)


def _changes(rows: list[dict]) -> dict:
    """{(kind, turnover): {figure: per-seed array}} of the 2-year changes and the baseline."""
    by = {}
    for r in rows:
        by.setdefault((r["cohort"], r["seed"]), {})[r["arm"]] = r
    out = {}
    for (cohort, seed), arms in sorted(by.items()):
        b, u, c = arms.get("baseline"), arms.get("untreated"), arms.get("combined")
        if not (b and u and c):
            continue
        kind, turnover = cohort.split("-", 1)
        d = out.setdefault((kind, turnover), {})
        values = {
            "bv_tv": b["bv_tv"], "tb_th": b["tb_th_mm"], "conn_d": b["conn_d_per_mm3"],
            "e_z": b["apparent_modulus_MPa"], "load": b["failure_load_N"],
            "u_bmd": pct(u["bmd_mg_per_cm3"], b["bmd_mg_per_cm3"]),
            "u_load": pct(u["failure_load_N"], b["failure_load_N"]),
            # combined against untreated, both at 2 years, as % of baseline: paired points
            "c_bmd": 100 * (c["bmd_mg_per_cm3"] - u["bmd_mg_per_cm3"]) / b["bmd_mg_per_cm3"],
            "c_load": 100 * (c["failure_load_N"] - u["failure_load_N"]) / b["failure_load_N"],
            "perf_u": u["perforations"], "perf_c": c["perforations"]}
        for k, v in values.items():
            d.setdefault(k, []).append(v)
    return {k: {f: np.asarray(v, float) for f, v in d.items()} for k, d in out.items()}


def _sd(x, fmt):
    return f"{np.mean(x):{fmt}} +- {np.std(x, ddof=1):{fmt.lstrip('+')}}" if x.size > 1 else f"{x[0]:{fmt}}"


def _ci(x):
    m = mean_interval(x)
    return f"{m['mean']:+.1f} [{m['ci_low']:+.1f}, {m['ci_high']:+.1f}]"


def _welch(a, b):
    """Difference of the means a - b with Welch's 95 % interval."""
    w = welch_difference(a, b)
    return f"{w['difference']:+.1f} [{w['ci_low']:+.1f}, {w['ci_high']:+.1f}]"


def summary(rows: list[dict]) -> str:
    """The three tables of docs/results.md's real-core section (see the module docstring)."""
    ch = _changes(rows)
    order = sorted(ch, key=lambda k: (("early", "late", "elderly").index(k[1].split("-")[0]), k[0]))
    base = ["| specimen | turnover | n | baseline BV/TV | Tb.Th (mm) | Conn.D (/mm^3) | E_app z (MPa) "
            "| failure load (N) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    after = ["| specimen | turnover | n | untreated: BMD vs baseline (%) | untreated: failure load vs "
             "baseline (%) | combined - untreated: BMD (points) | combined - untreated: failure load "
             "(points) | perforations untreated / combined |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for k in order:
        d = ch[k]
        n = d["bv_tv"].size
        base.append(f"| {k[0]} | {k[1]} | {n} | {_sd(d['bv_tv'], '.3f')} | {_sd(d['tb_th'], '.3f')} | "
                    f"{_sd(d['conn_d'], '.2f')} | {_sd(d['e_z'], '.0f')} | {_sd(d['load'], '.2f')} |")
        after.append(f"| {k[0]} | {k[1]} | {n} | {_ci(d['u_bmd'])} | {_ci(d['u_load'])} | {_ci(d['c_bmd'])} | "
                     f"{_ci(d['c_load'])} | {_sd(d['perf_u'], '.0f')} / {_sd(d['perf_c'], '.0f')} |")
    diff = ["| turnover | untreated: BMD (points) | untreated: failure load (points) | combined - "
            "untreated: BMD (points) | combined - untreated: failure load (points) |",
            "| --- | --- | --- | --- | --- |"]
    for turnover in dict.fromkeys(k[1] for k in order):
        r, g = ch.get(("real", turnover)), ch.get(("generated", turnover))
        if r is None or g is None or min(r["bv_tv"].size, g["bv_tv"].size) < 2:
            continue
        diff.append(f"| {turnover} | " + " | ".join(_welch(r[f], g[f]) for f in
                                                     ("u_bmd", "u_load", "c_bmd", "c_load")) + " |")
    return "\n".join(["Baseline (after spin-up), mean +- SD over seeds:", "", *base, "",
                      "After 2 years, mean [95 % interval] over seeds:", "", *after, "",
                      "Real minus generated, difference of the means [Welch 95 % interval]:", "", *diff])


if __name__ == "__main__":
    rows = rows_of(Path(sys.argv[1]))
    print(table(rows) if "--per-seed" in sys.argv[2:] else summary(rows))
