"""Open cavities at baseline and after each arm of a trial case, and the remodelling-space
split of the strength effect that the trial of the same case measured.

    nice -n 10 ./bonefem run bench/remodelling_space.toml -o OUT      (the solves)
    nice -n 10 ./bonefem exec python3 bench/remodelling_space.py bench/remodelling_space.toml OUT

Remodels each cohort x seed again (the trial's own functions and random streams, no solve)
to count the open BMUs and the remodelling space (volume dug and not refilled over the
bone volume, fem.remodel.histomorphometry) at baseline and at the end of every arm, then
prints them beside the trial's parts (OUT/trial.csv) and what each state's open cavities
cost it alone (F(state) / F(state, cavities closed at equal volume) - 1, %), per seed,
and the mean of the paired differences against untreated (percentage points of the
baseline failure load).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from fem.case import load_case
from fem.remodel.arms import run_arm
from fem.remodel.presets import apply_factors, drug_factors
from fem.trial_cohorts import cohort_baseline, untreated_of

PARTS = ("mass", "tissue", "cavities", "permanent")


def cavities(case) -> dict:
    """{(cohort, seed, arm): (open BMUs, remodelling space fraction)}, arm 'baseline' too."""
    t, out = case.trial, {}
    dt = t.dt_months / 12.0
    for cohort in t.cohorts:
        for seed in t.seeds:
            base = cohort_baseline(t, cohort, seed, dt)
            for arm in t.arms:
                params = apply_factors(untreated_of(t, cohort), drug_factors(arm))
                history = run_arm(base, cohort, arm, t.years, seed, dt, (), params)[0]
                for key, row in (("baseline", history[0]), (arm, history[-1])):
                    out[cohort, seed, key] = (row["open_bmus"], row["remodelling_space"])
    return out


def main(case_path, outdir) -> None:
    case = load_case(case_path)
    final = max(case.trial.checkpoints)
    rows = [r for r in csv.DictReader((Path(outdir) / "trial.csv").open())
            if r["arm"] != "baseline" and abs(float(r["time_years"]) - final) < 1e-9]
    open_ = cavities(case)
    print("| cohort | seed | arm | open BMUs (baseline -> end) | remodelling space % BV | perforations "
          "| failure load % | " + " | ".join(PARTS) + " | cavities' cost, B / T % |")
    print("| --- | --- | --- | --- | --- | --- | --- | " + " | ".join("---" for _ in PARTS) + " | --- |")
    for r in rows:
        key = (r["cohort"], int(r["seed"]))
        (nb, sb), (nt, st) = open_[(*key, "baseline")], open_[(*key, r["arm"])]
        parts = " | ".join(f"{float(r[f'strength_{p}_pct']):+.2f}" for p in PARTS)
        print(f"| {r['cohort']} | {r['seed']} | {r['arm']} | {nb} -> {nt} | {100 * sb:.2f} -> {100 * st:.2f} "
              f"| {r['perforations']} | {float(r['d_failure_load_pct']):+.2f} | {parts} "
              f"| {float(r['cavity_cost_baseline_pct']):+.2f} / {float(r['cavity_cost_pct']):+.2f} |")
    print()
    for (cohort, arm) in sorted({(r["cohort"], r["arm"]) for r in rows if r["arm"] != "untreated"}):
        mine = [r for r in rows if (r["cohort"], r["arm"]) == (cohort, arm)]
        cells = []
        for k in ("d_failure_load",) + tuple(f"strength_{p}" for p in PARTS):
            v = np.array([float(r[f"paired_{k}_pts"]) for r in mine])
            sd = v.std(ddof=1) if len(v) > 1 else 0.0
            cells.append(f"{k.replace('strength_', '')} {v.mean():+.2f} ± {sd:.2f}")
        print(f"{cohort}, {arm} minus untreated (n = {len(mine)}): " + ", ".join(cells))


if __name__ == "__main__":
    main(*sys.argv[1:3])
