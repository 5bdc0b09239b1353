"""Specimen size study (issue 20, section 1): the 2-year % changes of BMD, apparent modulus
and failure load, untreated and combined, against the edge of the generated specimen.

One trial per edge (fem.trial.run_trial, the trial machinery itself: same generator,
spin-up, remodelling and solves), with the untreated and combined arms, solved after
`--years`, no attribution; seeds are added one round at a time over every edge, so a run
stopped early still covers every edge. Each edge's trial folder resumes (rows.jsonl).

    ./bonefem exec nice -n 5 python3 bench/size_study.py -o results/size-study \\
        --edges 2 3 4 --seeds 0 1 2 --cohorts early-postmenopausal
    ./bonefem exec python3 bench/size_study.py -o results/size-study --collect   # figure only

Writes OUT/size_study.csv, OUT/size_study.md and OUT/size_study.png/.svg (mean and 95 %
t interval over seeds against edge; n = 1: the point alone).
"""

from __future__ import annotations

import argparse
import math
import resource
import time
from pathlib import Path

from fem.analysis.compare import add_changes
from fem.analysis.paired import FIGURES, change_intervals, paired_effects
from fem.case import case_from_dict
from fem.specimen.partial import RULES
from fem.report.plots import size_study as plot_size_study
from fem.report.result import write_atomic
from fem.report.store import ROWS, read_rows
from fem.report.tables import write_csv
from fem.trial import run_trial

ARMS = ["untreated", "combined"]


def case_for(edge: float, seeds, cohorts, years: float, voxel: float,
             partial_volume: str = "hashin-shtrikman"):
    """The trial case of one edge (mm); ``partial_volume`` as the case key [material]."""
    return case_from_dict({
        "title": f"size study: {edge:g} mm",
        "trial": {"cohorts": list(cohorts), "arms": ARMS, "years": years, "checkpoints": [years],
                  "seeds": list(seeds), "spinup_years": 1.0, "attribution": False,
                  "specimen": {"size": edge, "voxel_size": voxel}},
        "material": {"partial_volume": partial_volume},
        "solver": {"rtol": 1e-6}, "output": {"fields": False}}, source="size_study")


def folder(out: Path, edge: float) -> Path:
    return out / f"edge-{edge:g}mm"


def collect(out: Path, years: float) -> list[dict]:
    """One table row per edge x cohort x (arm or combined-minus-untreated) x figure."""
    subs = sorted(out.glob("edge-*mm"), key=lambda p: float(p.name[5:-2]))
    return tabulate([({"edge_mm": float(sub.name[5:-2])}, sub) for sub in subs], years)


def tabulate(folders, years: float) -> list[dict]:
    """Rows of ``collect`` from (labels, trial folder) pairs; ``labels`` (e.g. the edge in mm)
    head every row of that folder, and the table is sorted by them, then by cohort."""
    table = []
    for labels, sub in folders:
        rows = add_changes(read_rows(sub / ROWS))

        def common(cohort):
            dofs = [r["dofs"] for r in rows if r["arm"] == "baseline" and r["cohort"] == cohort]
            return {**labels, "dofs_baseline": round(sum(dofs) / len(dofs)) if dofs else None}
        for c in change_intervals(rows, years):
            table.append({**common(c["cohort"]), **{k: c[k] for k in ("cohort", "arm", "figure", "n", "mean",
                                                                      "sd", "ci_low", "ci_high")}})
        for e in paired_effects(rows, years):
            table.append({**common(e["cohort"]), "cohort": e["cohort"], "arm": f"{e['arm']} - untreated",
                          **{k: e[k] for k in ("figure", "n", "mean", "sd", "ci_low", "ci_high", "p")}})
    # labels, then cohort, then untreated, treated arms, differences (stable sort)
    return sorted(table, key=lambda r: (*(r[k] for k in folders[0][0]), r["cohort"]) if folders else 0)


def markdown(table: list[dict], years: float, label: str = "edge_mm", heading: str = "edge mm") -> str:
    def cell(r):
        if r["n"] < 2 or math.isnan(r["ci_low"]):
            return f"{r['mean']:+.2f} (n = 1: no interval)"
        return f"{r['mean']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
    keys = list(dict.fromkeys((r[label], r["cohort"], r["arm"]) for r in table))
    lines = [f"{years:g}-year change from baseline, % (mean [95 % t interval] over seeds); "
             "'combined - untreated': paired difference, percentage points", "",
             f"| {heading} | DOF (baseline) | cohort | arm | n | " + " | ".join(FIGURES.values()) + " |",
             "| --- " * (5 + len(FIGURES)) + "|"]
    for edge, cohort, arm in keys:
        rs = {r["figure"]: r for r in table if (r[label], r["cohort"], r["arm"]) == (edge, cohort, arm)}
        first = next(iter(rs.values()))
        dof = first["dofs_baseline"]
        lines.append(f"| {edge:g} | {dof if dof is not None else ''} | {cohort} | {arm} | {first['n']} | "
                     + " | ".join(cell(rs[f]) if f in rs else "" for f in FIGURES) + " |")
    return "\n".join(lines) + "\n"


def study_arguments(ap: argparse.ArgumentParser, cohorts: list[str]) -> argparse.Namespace:
    """Parse the options a study shares (output, seeds, cohorts, years, partial-volume rule,
    --collect) after the study's own ones."""
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cohorts", nargs="+", default=cohorts)
    ap.add_argument("--years", type=float, default=2.0)
    ap.add_argument("--partial-volume", default="hashin-shtrikman", choices=RULES,
                    help="[material] partial_volume (docs/trial.md's rows of 7 Dec 2026: linear)")
    ap.add_argument("--collect", action="store_true", help="only tabulate and plot finished rows")
    return ap.parse_args()


def run_rounds(args, values, label, folder_of, case_of) -> None:
    """One trial per value (edge or voxel), one more seed per round over every value, so an
    interrupted study has every value at the same seeds; each value's folder resumes."""
    t0 = time.perf_counter()
    for k in range(1, len(args.seeds) + 1):
        for value in values:
            print(f"== {label(value)}, seeds {args.seeds[:k]} ({time.perf_counter() - t0:.0f} s)", flush=True)
            run_trial(case_of(value, args.seeds[:k]), folder_of(value),
                      log=lambda *a, **kw: print(*a, flush=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edges", type=float, nargs="+", default=[2.0, 3.0, 4.0, 6.0])
    ap.add_argument("--voxel", type=float, default=0.04, help="voxel edge, mm")
    args = study_arguments(ap, ["early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic"])
    t0 = time.perf_counter()
    if not args.collect:
        run_rounds(args, args.edges, lambda edge: f"{edge:g} mm", lambda edge: folder(args.out, edge),
                   lambda edge, seeds: case_for(edge, seeds, args.cohorts, args.years, args.voxel,
                                                args.partial_volume))
    table = collect(args.out, args.years)
    write_csv(args.out / "size_study.csv", table)
    write_atomic(args.out / "size_study.md", markdown(table, args.years))
    plot_size_study(table, args.years, args.out / "size_study")
    print(markdown(table, args.years))
    print(f"total {time.perf_counter() - t0:.0f} s, {peak_mib():.0f} MiB peak resident", flush=True)


def peak_mib() -> float:
    """Peak resident memory of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
