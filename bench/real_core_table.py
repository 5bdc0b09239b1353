"""The "Real scan vs generated bone" table of docs/results.md from a run of cases/real-core.toml.

./bonefem exec python3 bench/real_core_table.py RESULTS_DIR   (a `run` folder or a `batch`
folder's real-core/): reads every rows.jsonl below it and prints a Markdown table.
"""

import json
import sys
from pathlib import Path


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


if __name__ == "__main__":
    print(table(rows_of(Path(sys.argv[1]))))
