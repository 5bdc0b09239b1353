"""Re-calibrate the shipped presets: each cohort's untreated balance to its loss, then
each drug's balance_shift (one set of factors for every cohort) on the early
postmenopausal cohort only; then print every drug x cohort change (the other cohorts
are predictions).

./bonefem exec python3 bench/calibrate_presets.py [--skip-untreated] [--only ARM]
Serial (one core); 3 mm specimens at 40 um, seeds 0-2, 2 years (calibrate.Setting).
"""

import argparse
import json
import time

import numpy as np

from fem.remodel.calibrate import Setting, arm_change, fit, write_calibrated
from fem.remodel.presets import FOLDER, preset_path

EARLY, LATE, ELDERLY = "early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic"
UNTREATED_LOSS = {EARLY: -3.2, LATE: -2.6, ELDERLY: -2.0}
DRUG_TARGET = {"alfacalcidol": 0.0, "menatetrenone": 0.135, "combined": 4.92}
BOUNDS = {"alfacalcidol": (-0.1, 0.3), "menatetrenone": (-0.1, 0.3), "combined": (-0.1, 0.5)}

ap = argparse.ArgumentParser()
ap.add_argument("--skip-untreated", action="store_true")
ap.add_argument("--only", default=None)
args = ap.parse_args()
setting = Setting()
t0 = time.perf_counter()
if not args.skip_untreated:
    for cohort, target in UNTREATED_LOSS.items():
        rec = fit("untreated", ["balance"], [(0.85, 1.05)], {cohort: target}, setting)
        write_calibrated("untreated", rec, FOLDER / "untreated.toml")
        print("untreated", cohort, rec["fitted"], rec["achieved_percent"], rec["seconds"], "s", flush=True)
for arm, target in DRUG_TARGET.items():
    if args.only and arm != args.only:
        continue
    rec = fit(arm, ["balance_shift"], [BOUNDS[arm]], {EARLY: target}, setting)
    write_calibrated(arm, rec, preset_path(arm))
    print(arm, rec["fitted"], rec["achieved_percent"], rec["seconds"], "s", flush=True)
table = {}
for arm in ("untreated", "alfacalcidol", "menatetrenone", "combined"):
    for cohort in (EARLY, LATE, ELDERLY):
        v = arm_change(cohort, arm, setting)
        table[f"{arm}/{cohort}"] = {"mean": float(np.mean(v)), "per_seed": [round(x, 3) for x in v]}
        print(f"{arm:14s} {cohort:22s} {np.mean(v):+6.2f} %  seeds {np.round(v, 2)}", flush=True)
print(json.dumps(table))
print(f"total {time.perf_counter() - t0:.0f} s")
