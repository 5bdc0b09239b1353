"""The untreated noise floor: how much a 2-year change varies from randomness alone.

./bonefem exec nice -n 5 python3 bench/noise_floor.py [--size 2] [--voxel 0.04] [--seeds 0 1 2 3]
    [--arms untreated combined] [--rows FILE.jsonl] [--table]
(docs/model.md section 12: --size 3 --seeds 0 1 2 3 (combined; 18-210 s per row on the
loaded machine), the same with --arms untreated alfacalcidol --rows
bench/out/noise_floor_alfacalcidol.jsonl and with menatetrenone, and --size 2)

Per cohort, the trial's own machinery (fem.trial_cohorts.cohort_baseline, run_arm,
fem.trial.specimen_of, the FE solve) on small specimens:

- **remodelling**: one specimen (specimen seed 0, spun up as in the trial), remodelled
  for ``--years`` with each remodelling seed in ``--seeds``: the spread that remodelling
  randomness alone gives the same bone;
- **specimen**: one specimen per seed in ``--seeds``, each remodelled with its own
  seed as the trial does: the spread between specimens (architecture and remodelling).

For each run: the % change from its baseline of BMD (mg HA/cm^3, morphometry),
apparent modulus (MPa) and Pistoia failure load (N). Every arm after the first runs
with the same seed (common random numbers), so ``du_*`` = the arm against untreated on
the same specimen and seed: the paired drug effect whose spread is its own floor.

Rows are appended to ``--rows`` as they finish (a rerun skips finished ones);
``--table`` prints the Markdown table of mean, SD, 95 % CI (t), n per cohort, set and
figure. Serial, one core.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from fem.case import case_from_dict
from fem.pipeline import solve_specimen
from fem.remodel.arms import run_arm
from fem.remodel.presets import arm_params
from fem.trial import measure, specimen_of
from fem.trial_cohorts import cohort_baseline

COHORTS = ("early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic")
FIGURES = {"bmd": "bmd_mg_per_cm3", "modulus": "apparent_modulus_MPa", "failure_load": "failure_load_N"}

ap = argparse.ArgumentParser()
ap.add_argument("--size", type=float, default=2.0, help="specimen edge, mm")
ap.add_argument("--voxel", type=float, default=0.04, help="voxel edge, mm")
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
ap.add_argument("--cohorts", nargs="+", default=list(COHORTS))
ap.add_argument("--arms", nargs="+", default=["untreated", "combined"])
ap.add_argument("--years", type=float, default=2.0)
ap.add_argument("--rows", default="bench/out/noise_floor.jsonl")
ap.add_argument("--table", action="store_true", help="only print the table of --rows")
args = ap.parse_args()
rows_path = Path(args.rows)


def _cell(x):
    """mean +- SD (95 % CI of the mean, t) of a sample, percent."""
    if len(x) < 2:
        return "", 0
    m, sd = x.mean(), x.std(ddof=1)
    h = stats.t.ppf(0.975, len(x) - 1) * sd / np.sqrt(len(x))
    return f"{m:+.2f} ± {sd:.2f} ({m - h:+.1f} to {m + h:+.1f})", len(x)


def table(rows):
    """Markdown: per cohort and figure, mean +- SD (95 % CI of the mean) over the
    remodelling seeds of one specimen and over specimens, with n."""
    out = ["| cohort | 2-year change, % | over remodelling seeds (one specimen) | over specimens | n | specimen |",
           "| --- | --- | --- | --- | --- | --- |"]
    for cohort in [c for c in COHORTS if any(r["cohort"] == c for r in rows)]:
        rs = [r for r in rows if r["cohort"] == cohort]
        for key, arm, label in [(f"d_{f}_pct", "untreated", f"untreated {f}") for f in FIGURES] + \
                               [(f"du_{f}_pct", a, f"{a} - untreated, {f}")
                                for a in args.arms[1:] for f in FIGURES]:
            cells = [_cell(np.array([r[key][arm] for r in rs if kind in r["sets"] and arm in r[key]]))
                     for kind in ("remodelling", "specimen")]
            out.append(f"| {cohort} | {label} | {cells[0][0]} | {cells[1][0]} | {cells[0][1]} / {cells[1][1]} | "
                       f"{rs[0]['size_mm']:g} mm, {1000 * rs[0]['voxel_mm']:g} um |")
    return "\n".join(out)


rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()] \
    if rows_path.exists() else []
# this size and voxel only (one rows file can hold several)
rows = [r for r in rows if r["size_mm"] == args.size and r["voxel_mm"] == args.voxel]
if args.table:
    print(table(rows))
    raise SystemExit(0)

case = case_from_dict({
                       "trial": {"cohorts": list(args.cohorts), "years": args.years,
                                 "checkpoints": [args.years],
                                 "specimen": {"size": args.size, "voxel_size": args.voxel}}},
                      source="noise_floor")
t = case.trial
dt = t.dt_months / 12.0
e_ref = case.material.modulus
done = {(r["cohort"], r["specimen_seed"], r["remodel_seed"]) for r in rows}
rows_path.parent.mkdir(parents=True, exist_ok=True)
quiet = lambda *a, **k: None  # noqa: E731


def solve(state) -> dict:
    r = solve_specimen(specimen_of(state, e_ref), case, None, log=quiet)
    m = measure(state)
    return {"bmd_mg_per_cm3": m["bmd_mg_per_cm3"], "apparent_modulus_MPa": r["apparent_modulus_MPa"],
            "failure_load_N": r["pistoia"]["failure_load_N"], "dofs": r["dofs"]}


# (specimen seed, remodelling seed) pairs: each specimen with its own remodelling seed (as
# in the trial) and specimen 0 with the other remodelling seeds, interleaved so that a run
# stopped early has both sets.
s0 = args.seeds[0]
runs = [(s0, s0)] + [pair for s in args.seeds[1:] for pair in ((s, s), (s0, s))]
bases = {}
for spec_seed, rem_seed in runs:
    for cohort in args.cohorts:
        if (cohort, spec_seed, rem_seed) in done:
            continue
        t0 = time.perf_counter()
        if (cohort, spec_seed) not in bases:
            base = cohort_baseline(t, cohort, spec_seed, dt)
            bases[(cohort, spec_seed)] = (base, solve(base))
        base, b = bases[(cohort, spec_seed)]
        end = {}
        for arm in args.arms:
            snaps = run_arm(base, cohort, arm, args.years, rem_seed, dt, (args.years,),
                            arm_params(cohort, arm))[1]
            end[arm] = solve(snaps[min(snaps, key=lambda y: abs(y - args.years))])
        row = {"cohort": cohort, "specimen_seed": spec_seed, "remodel_seed": rem_seed,
               "sets": (["specimen"] if spec_seed == rem_seed else []) +
                       (["remodelling"] if spec_seed == args.seeds[0] else []),
               "size_mm": args.size, "voxel_mm": args.voxel, "years": args.years,
               "dofs": b["dofs"], "baseline": b, "end": end,
               "seconds": round(time.perf_counter() - t0, 1)}
        for short, key in FIGURES.items():
            row[f"d_{short}_pct"] = {a: 100 * (e[key] / b[key] - 1) for a, e in end.items()}
            row[f"du_{short}_pct"] = {a: 100 * (e[key] / end["untreated"][key] - 1)
                                      for a, e in end.items() if a != "untreated"}
        with rows_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
        print(f"{cohort} specimen {spec_seed} remodel {rem_seed}: {row['seconds']} s, "
              f"{b['dofs']} DOF, dBMD {row['d_bmd_pct']}", flush=True)
print(table(rows))
