"""Changes of a trial's figures against baseline and against the untreated arm."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

FIGURES = ("bmd_mg_per_cm3", "bv_tv", "tmd_mean_mg_per_cm3", "tb_th_mm", "tb_n_per_mm",
           "conn_d_per_mm3", "apparent_modulus_MPa", "failure_load_N")
SHORT = {"bmd_mg_per_cm3": "bmd", "bv_tv": "bv_tv", "tmd_mean_mg_per_cm3": "tmd",
         "tb_th_mm": "tb_th", "tb_n_per_mm": "tb_n", "conn_d_per_mm3": "conn_d",
         "apparent_modulus_MPa": "modulus", "failure_load_N": "failure_load",
         "nl_ultimate_load_N": "nl_ultimate", "nl_yield_load_N": "nl_yield",
         "buckling_load_N": "buckling"}


# the failure-load change and its attribution parts, % of F(B); their paired differences
# (arm minus untreated, same specimen and time) are the drug's effect and its parts, in
# percentage points that add up like the parts do
PARTS = ("d_failure_load_pct", "strength_mass_pct", "strength_tissue_pct", "strength_architecture_pct",
         "strength_cavities_pct", "strength_permanent_pct")


def _pct(a, b):
    if a is None or b is None or not b:
        return None
    return 100.0 * (a / b - 1.0)


def add_changes(rows: list[dict], figures=FIGURES) -> list[dict]:
    """Add ``d_<figure>_pct`` (vs the same specimen's baseline) and ``du_<figure>_pct``
    (vs the untreated arm of the same specimen at the same time) to each row, for each
    of ``figures`` (keys of SHORT)."""
    base = {(r["cohort"], r["seed"]): r for r in rows if r["arm"] == "baseline"}
    untreated = {(r["cohort"], r["seed"], r["time_years"]): r for r in rows if r["arm"] == "untreated"}
    out = []
    for r in rows:
        r = dict(r)
        b = base.get((r["cohort"], r["seed"]))
        u = untreated.get((r["cohort"], r["seed"], r["time_years"]))
        for f in figures:
            r[f"d_{SHORT[f]}_pct"] = _pct(r.get(f), b.get(f)) if b else None
            r[f"du_{SHORT[f]}_pct"] = _pct(r.get(f), u.get(f)) if (u and r["arm"] != "baseline") else None
        out.append(r)
    untreated = {(r["cohort"], r["seed"], r["time_years"]): r for r in out if r["arm"] == "untreated"}
    for r in out:
        u = untreated.get((r["cohort"], r["seed"], r["time_years"]))
        for k in PARTS:
            paired = u is not None and r["arm"] not in ("baseline", "untreated")
            if paired and r.get(k) is not None and u.get(k) is not None:
                r[f"paired_{k[:-4]}_pts"] = r[k] - u[k]
    return out


def summarise(rows: list[dict], keys=None) -> list[dict]:
    """Mean and SD over specimens for each cohort x arm x time."""
    keys = keys or ["d_bmd_pct", "d_bv_tv_pct", "d_modulus_pct", "d_failure_load_pct",
                    "du_bmd_pct", "du_failure_load_pct", "perforations",
                    "strength_mass_pct", "strength_tissue_pct", "strength_architecture_pct",
                    "strength_cavities_pct", "strength_permanent_pct", "cavity_cost_pct",
                    *(f"paired_{k[:-4]}_pts" for k in PARTS)]
    groups = defaultdict(list)
    for r in rows:
        groups[(r["cohort"], r["arm"], r["time_years"])].append(r)
    out = []
    for (cohort, arm, t), rs in groups.items():
        s = {"cohort": cohort, "arm": arm, "time_years": t, "n": len(rs)}
        for k in keys:
            vals = [r[k] for r in rs if r.get(k) is not None]
            s[f"{k}_mean"] = float(np.mean(vals)) if vals else None
            s[f"{k}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        out.append(s)
    return out


def bmd_only_exponent(rows: list[dict], cohort: str) -> float | None:
    """Exponent k of the specimen's own strength-mass relation F ~ BV^k, from the mass
    counterfactuals of one cohort (``mass_only_pct``: the baseline uniformly thinned or
    thickened to the treated bone volume, nothing else changed)."""
    ks = []
    for r in rows:
        if r["cohort"] != cohort or r.get("mass_only_pct") is None or not r.get("d_bv_tv_pct"):
            continue
        x = math.log1p(r["d_bv_tv_pct"] / 100)
        if abs(x) > 1e-4:
            ks.append(math.log1p(r["mass_only_pct"] / 100) / x)
    return float(np.median(ks)) if ks else None
