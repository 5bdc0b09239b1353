"""Histomorphometry of the simulated remodelling, per cohort and arm, for docs/model.md.

./bonefem exec python3 bench/remodel_validation.py [--seeds 0 1 2] [--size 3] [--out FILE.json]

For each cohort x arm: 2 years from the untreated baseline (calibrate.Setting
specimens), averaged over seeds and over the monthly steps:
BFR/BV and resorbed/BV (%/yr), the identity Ac.f x W.Th x BS/BV (%/yr), ES/BS and
OS/BS (%), remodelling space (% BV), mean erosion depth and wall thickness of the
completed cycles (um), perforations, and the 2-year change of BMD, BV, Tb.Th, Tb.N and
Conn.D (morphometry of phi > 0). Then the remodelling transient: BMD against time in
the first year when the activation frequency is halved (and under alfacalcidol), as
the difference from untreated (same seed, common random numbers). Serial, one core.
"""

import argparse
import json
import time

import numpy as np

from fem.remodel.arms import percent_change, run_arm
from fem.remodel.calibrate import Setting, baseline
from fem.remodel.presets import arm_params
from fem.specimen.morphometry import morphometry

COHORTS = ("early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic")
ARMS = ("untreated", "alfacalcidol", "menatetrenone", "combined")

ap = argparse.ArgumentParser()
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
ap.add_argument("--size", type=float, default=3.0)
ap.add_argument("--out", default=None)
ap.add_argument("--no-morphometry", action="store_true")
args = ap.parse_args()
setting = Setting(size=args.size, seeds=tuple(args.seeds))
t0 = time.perf_counter()


def morph(state):
    m = morphometry(state.phi > 0, state.spacing)
    return {k: m[k] for k in ("tb_th_mm", "tb_n_per_mm", "conn_d_per_mm3")}


def summary(cohort, arm):
    rows = []
    for seed in setting.seeds:
        base = baseline(cohort, seed, setting)
        p = arm_params(cohort, arm)
        h, snaps = run_arm(base, cohort, arm, setting.years, seed, checkpoints=(setting.years,))
        end = snaps[round(setting.years, 6)]
        years = setting.years
        bv = np.mean([r["bone_volume_mm3"] for r in h])
        bs = np.mean([r["bs_mm2"] for r in h])
        r = {
            "bfr_bv_pct_yr": 100 * h[-1]["formed_mm3"] / years / bv,
            "rs_bv_pct_yr": 100 * h[-1]["resorbed_mm3"] / years / bv,
            "identity_pct_yr": 100 * p.activation_frequency * (h[-1]["wall_thickness_mm"] or 0) * bs / bv,
            "es_bs_pct": 100 * np.mean([x["es_bs"] for x in h[1:]]),
            "os_bs_pct": 100 * np.mean([x["os_bs"] for x in h[1:]]),
            "space_pct_bv": 100 * np.mean([x["remodelling_space"] for x in h[1:]]),
            "erosion_depth_um": 1000 * (h[-1]["erosion_depth_mm"] or np.nan),
            "wall_thickness_um": 1000 * (h[-1]["wall_thickness_mm"] or np.nan),
            "bs_bv_per_mm": bs / bv,
            "perforations": h[-1]["perforations"],
            "activations": h[-1]["activations"],
            "d_bmd_pct": percent_change(h),
            "d_bv_pct": percent_change(h, "bone_volume_mm3"),
            "d_tmd_pct": percent_change(h, "tmd_relative"),
        }
        if arm == "untreated" and not args.no_morphometry:
            m0, m1 = morph(base), morph(end)
            r.update({f"d_{k}_pct": 100 * (m1[k] / m0[k] - 1) for k in m0})
        rows.append(r)
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | \
        {"sd_d_bmd_pct": float(np.std([r["d_bmd_pct"] for r in rows], ddof=1)) if len(rows) > 1 else None}


def transient(cohort, factor=0.5, arm="untreated"):
    """Monthly BMD difference from untreated (percent of baseline BMD), first year."""
    diffs = []
    for seed in setting.seeds:
        base = baseline(cohort, seed, setting)
        hu, _ = run_arm(base, cohort, "untreated", 1.0, seed)
        p = arm_params(cohort, arm)
        if factor != 1.0:
            from dataclasses import replace
            p = replace(p, activation_frequency=p.activation_frequency * factor)
        ht, _ = run_arm(base, cohort, "custom", 1.0, seed, params=p)
        b0 = hu[0]["bmd_mg_cm3"]
        diffs.append([100 * (t["bmd_mg_cm3"] - u["bmd_mg_cm3"]) / b0 for t, u in zip(ht, hu)])
    return np.mean(diffs, axis=0).round(3).tolist()


out = {"setting": {"size_mm": setting.size, "voxel_mm": setting.voxel_size, "seeds": list(setting.seeds),
                   "years": setting.years}, "arms": {}, "transient": {}}
for cohort in COHORTS:
    for arm in ARMS:
        s = summary(cohort, arm)
        out["arms"][f"{cohort}/{arm}"] = s
        print(f"{cohort:22s} {arm:14s} " + " ".join(f"{k}={v:.2f}" for k, v in s.items() if v is not None),
              flush=True)
    out["transient"][f"{cohort}/acf x0.5"] = transient(cohort, 0.5)
    out["transient"][f"{cohort}/alfacalcidol"] = transient(cohort, 1.0, "alfacalcidol")
    print(cohort, "transient acf x0.5:", out["transient"][f"{cohort}/acf x0.5"], flush=True)
out["seconds"] = round(time.perf_counter() - t0, 1)
print(f"total {out['seconds']} s")
if args.out:
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
