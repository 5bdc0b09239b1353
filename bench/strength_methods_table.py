"""docs/results.md's "Buckling beside Pistoia" and "Nonlinear strength beside Pistoia" tables
from a run of cases/trial-buckling.toml or cases/trial-nonlinear.toml.

./bonefem exec python3 bench/strength_methods_table.py results/buckling/trial-buckling
./bonefem exec python3 bench/strength_methods_table.py results/nonlinear/trial-nonlinear --method nonlinear

Reads the trial folder's trial.csv and prints Markdown: per cohort, the 2-year changes of
BMD, Pistoia failure load and the other method's load (the first buckling load, or the
nonlinear test's ultimate load) (untreated against baseline; combined
against untreated, paired within each specimen seed as fem.analysis.paired does it), each
as mean [95 % t interval] over seeds; the paired difference between the methods' verdicts
on the combination (buckling effect minus Pistoia effect, per seed); the cohort x arm
interaction of each (early minus elderly, Welch); and the first buckling mode's share of
the nodes, or the tissue yielded at the nonlinear test's last point.
"""

import argparse
import csv
from pathlib import Path

import numpy as np

from fem.analysis.compare import add_changes
from fem.analysis.compare_methods import add_method_changes
from fem.analysis.paired import CONTROL, arm_changes, cohort_interactions, paired_effects
from fem.analysis.stats import mean_interval

# method -> (its change name (fem.analysis.compare.SHORT), label, per-specimen extra column, its label)
METHODS = {"buckling": ("buckling", "buckling load", "buckling_mode_share", "first buckling mode: share of the nodes it moves"),
           "nonlinear": ("nl_ultimate", "nonlinear ultimate load", "nl_yielded_fraction",
                         "tissue yielded at the last point")}


def read_rows(folder: Path) -> list[dict]:
    def value(v):
        try:
            return float(v) if v not in ("", None) else None
        except ValueError:
            return v

    rows = [{k: value(v) for k, v in r.items()} for r in csv.DictReader((folder / "trial.csv").open())]
    for r in rows:
        r["seed"] = int(r["seed"])
    # recompute every change from the rows' own figures
    keep = ("cohort", "seed", "arm", "time_years", "bmd_mg_per_cm3", "failure_load_N",
            "apparent_modulus_MPa", "buckling_load_N", "buckling_mode_share", "nl_ultimate_load_N",
            "nl_yield_load_N", "nl_yielded_fraction", "perforations", "bv_tv")
    return add_method_changes(add_changes([{k: r.get(k) for k in keep} for r in rows]))


def ci(e: dict, digits=1) -> str:
    if e["n"] < 2:
        return f"{e['mean']:+.{digits}f} (n = 1)"
    return f"{e['mean']:+.{digits}f} [{e['ci_low']:+.{digits}f}, {e['ci_high']:+.{digits}f}]"


def tables(rows: list[dict], method: str = "buckling") -> str:
    short, label, extra, extra_label = METHODS[method]
    figures = {"bmd": "BMD", "failure_load": "Pistoia failure load", short: label}
    t = max(r["time_years"] for r in rows)
    cohorts = list(dict.fromkeys(r["cohort"] for r in rows))
    effects = paired_effects(rows, t, tuple(figures))
    name = label.split()[0]
    out = [f"Changes at {t:g} years, % of baseline, mean [95 % t interval] over specimen seeds:", "",
           f"| cohort | n | untreated: BMD | Pistoia | {name} | combined − untreated: BMD | Pistoia | "
           f"{name} | {name} − Pistoia (combined − untreated) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in cohorts:
        untr = [mean_interval(list(arm_changes(rows, c, CONTROL, t, f).values())) for f in figures]
        eff = {e["figure"]: e for e in effects if e["cohort"] == c and e["arm"] == "combined"}
        diff = mean_interval(np.subtract(eff[short]["differences"], eff["failure_load"]["differences"]))
        out.append(f"| {c} | {eff['bmd']['n']} | " + " | ".join(ci(u) for u in untr) + " | "
                   + " | ".join(ci(eff[f]) for f in figures) + f" | {ci(diff)} |")
    out += ["", "Cohort x arm interaction of the combination's effect (first cohort minus second, "
            "points, Welch's 95 % interval):", "", "| figure | cohorts | difference | p |",
            "| --- | --- | --- | --- |"]
    for it in cohort_interactions(effects, tuple(figures)):
        for pair in it["pairs"]:
            out.append(f"| {figures[it['figure']]} | {' − '.join(pair['cohorts'])} | "
                       f"{pair['difference']:+.1f} [{pair['ci_low']:+.1f}, {pair['ci_high']:+.1f}] | "
                       f"{pair['p']:.3g} |")
    out += ["", f"{extra_label[0].upper() + extra_label[1:]} (median, range over seeds) and "
            "perforations (mean):", "", f"| cohort | arm | {extra_label} | perforations |",
            "| --- | --- | --- | --- |"]
    for c in cohorts:
        for arm in ("baseline", CONTROL, "combined"):
            rs = [r for r in rows if r["cohort"] == c and r["arm"] == arm]
            v = [r[extra] for r in rs]
            out.append(f"| {c} | {arm} | {100 * np.median(v):.1f} % ({100 * min(v):.1f}-"
                       f"{100 * max(v):.1f}) | {np.mean([r['perforations'] or 0 for r in rs]):.0f} |")
    return "\n".join(out)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trial", type=Path, help="a trial folder (holds trial.csv)")
    p.add_argument("--method", choices=tuple(METHODS), default="buckling")
    args = p.parse_args()
    print(tables(read_rows(args.trial), args.method))
