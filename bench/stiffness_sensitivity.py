"""Does the combination's strength verdict depend on how stiff new bone is?

./bonefem exec python3 bench/stiffness_sensitivity.py [--size 2] [--seeds 0 1] [--out FILE.json]

Tissue modulus E = E_ref q m^k. For primary mineral m_p in {0.6, 0.75} (the remodelling
is re-run: new bone enters at m_p) and exponent k in {1, 2, 2.5, 3} (only the modulus
mapping changes), the 2-year changes of BMD and Pistoia failure load under the
combination minus those of untreated (same specimen and seed: paired), for the early
and the elderly cohort. Solves on 1 rank (uniaxial, 1 % strain, 10 GPa).
"""

import argparse
import dataclasses
import json
import time

import numpy as np

from fem.case import case_from_dict
from fem.pipeline import solve_specimen
from fem.specimen.load import specimen_from_levelset
from fem.remodel.arms import baseline_state, run_arm
from fem.remodel.mineral import tissue_modulus
from fem.remodel.presets import apply_factors, drug_factors, untreated
from fem.specimen.cohorts import load_cohort
from fem.specimen.vertebral import generate

ap = argparse.ArgumentParser()
ap.add_argument("--size", type=float, default=2.0)
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
ap.add_argument("--cohorts", nargs="+", default=["early-postmenopausal", "elderly-osteoporotic"])
ap.add_argument("--out", default=None)
args = ap.parse_args()
EXPONENTS = (1.0, 2.0, 2.5, 3.0)
PRIMARY = (0.6, 0.75)
case = case_from_dict({"specimen": {"synthetic": {}}, "solver": {"rtol": 1e-8}}, source="sensitivity")
t0 = time.perf_counter()
n_solves = 0


def failure(state, k):
    global n_solves
    spec = specimen_from_levelset(state.phi, state.spacing, 0.0)
    spec.modulus = tissue_modulus(10000.0, state.mineral, state.quality, k)
    n_solves += 1
    return solve_specimen(spec, case, log=lambda *a: None)["pistoia"]["failure_load_N"]


def bmd(state):
    from fem.remodel.mineral import bmd as b
    return b(state.fraction, state.mineral)


rows = []
for cohort in args.cohorts:
    for seed in args.seeds:
        net = generate(**dict(load_cohort(cohort)["generator"], size=args.size, voxel_size=0.04, seed=seed))
        for mp in PRIMARY:
            p0 = dataclasses.replace(untreated(cohort), primary_mineral=mp)
            base = baseline_state(net.phi, net.spacing, cohort, seed, params=p0)
            ends = {}
            for arm in ("untreated", "combined"):
                p = apply_factors(p0, drug_factors(arm))
                _, snaps = run_arm(base, cohort, arm, 2.0, seed, params=p, checkpoints=(2.0,))
                ends[arm] = snaps[2.0]
            for k in EXPONENTS:
                f0 = failure(base, k)
                f = {arm: failure(s, k) for arm, s in ends.items()}
                b0 = bmd(base)
                row = {"cohort": cohort, "seed": seed, "primary_mineral": mp, "exponent": k,
                       "du_bmd_pct": 100 * (bmd(ends["combined"]) - bmd(ends["untreated"])) / b0,
                       "du_failure_pct": 100 * (f["combined"] - f["untreated"]) / f0}
                rows.append(row)
                print(row, flush=True)
summary = []
for cohort in args.cohorts:
    for mp in PRIMARY:
        for k in EXPONENTS:
            sel = [r for r in rows if r["cohort"] == cohort and r["primary_mineral"] == mp and r["exponent"] == k]
            summary.append({"cohort": cohort, "primary_mineral": mp, "exponent": k,
                            "du_bmd_pct": float(np.mean([r["du_bmd_pct"] for r in sel])),
                            "du_failure_pct": float(np.mean([r["du_failure_pct"] for r in sel])),
                            "du_failure_per_seed": [round(r["du_failure_pct"], 2) for r in sel]})
            print(summary[-1], flush=True)
print(f"{n_solves} solves, {time.perf_counter() - t0:.0f} s")
if args.out:
    with open(args.out, "w") as fh:
        json.dump({"rows": rows, "summary": summary, "seconds": time.perf_counter() - t0,
                   "size_mm": args.size, "seeds": args.seeds}, fh, indent=1)
