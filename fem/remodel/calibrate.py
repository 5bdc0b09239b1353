"""Fit preset parameters so the simulated 2-year BMD change matches clinical targets.

BMD is what trials measure and strength is what the engine predicts, so drug presets
are calibrated on BMD: a few named parameters of one preset are fitted (bounded
Nelder-Mead on the squared error, mean over several seeded specimens per cohort) to
target BMD changes in one or more cohorts. Every evaluation uses the same seeds
(common random numbers), so the objective is deterministic.
"""

from __future__ import annotations

import dataclasses
import time
from functools import lru_cache

import numpy as np
from scipy.optimize import minimize

from fem.remodel.arms import baseline_state, percent_change, run_arm
from fem.remodel.presets import FACTORS, apply_factors, drug_factors, untreated
from fem.specimen.cohorts import load_cohort
from fem.specimen.vertebral import generate


@dataclasses.dataclass(frozen=True)
class Setting:
    """The small specimens a calibration (or its check) simulates."""

    size: float = 3.0          # mm cube
    voxel_size: float = 0.04   # mm
    seeds: tuple = (0, 1, 2)
    years: float = 2.0
    spinup_years: float = 1.0


@lru_cache(maxsize=64)
def _network(cohort: str, seed: int, size: float, voxel_size: float):
    g = dict(load_cohort(cohort)["generator"], size=size, voxel_size=voxel_size, seed=seed)
    return generate(**g)


@lru_cache(maxsize=64)
def _baseline(cohort: str, seed: int, setting: Setting, untreated_key: tuple):
    net = _network(cohort, seed, setting.size, setting.voxel_size)
    return baseline_state(net.phi, net.spacing, cohort, seed, setting.spinup_years)


def bmd_change(cohort: str, params, setting: Setting = Setting()) -> list[float]:
    """2-year (setting.years) BMD change, percent, for each seed, under BMU ``params``."""
    key = tuple(dataclasses.astuple(untreated(cohort)))
    out = []
    for seed in setting.seeds:
        base = _baseline(cohort, seed, setting, key)
        history, _ = run_arm(base, cohort, "custom", setting.years, seed, params=params)
        out.append(percent_change(history))
    return out


def arm_change(cohort: str, arm: str, setting: Setting = Setting(), factors=None) -> list[float]:
    """BMD change per seed for a shipped or user arm (or explicit factors)."""
    factors = factors if factors is not None else drug_factors(arm, cohort)
    return bmd_change(cohort, apply_factors(untreated(cohort), factors), setting)


def fit(arm: str, names: list[str], bounds: list[tuple], targets: dict, setting=Setting(),
        log=print, max_evaluations: int = 40) -> dict:
    """Fit drug factors ``names`` (within ``bounds``) to ``targets`` {cohort: percent}.

    For arm 'untreated' the names are BMU parameters of the one target cohort.
    Returns a record: fitted values, achieved mean changes, evaluations, seconds.
    """
    t0 = time.perf_counter()
    if arm == "untreated":
        if len(targets) != 1:
            raise ValueError("untreated parameters belong to one cohort: give one target")
        (cohort,) = targets
        base = untreated(cohort)
        start = [getattr(base, n) for n in names]

        def changes(x):
            return {cohort: np.mean(bmd_change(cohort, dataclasses.replace(base, **dict(zip(names, x))),
                                               setting))}
    else:
        # One target cohort: fit that cohort's own values; several: the shared factors.
        factors = drug_factors(arm, next(iter(targets)) if len(targets) == 1 else None)
        unknown = set(names) - set(FACTORS)
        if unknown:
            raise ValueError(f"cannot fit {sorted(unknown)}; drug factors are {sorted(FACTORS)}")
        start = [factors[n] for n in names]

        def changes(x):
            f = {**factors, **dict(zip(names, x))}
            return {c: np.mean(arm_change(c, arm, setting, f)) for c in targets}

    evaluations = []

    def objective(x):
        got = changes(x)
        err = sum((got[c] - t) ** 2 for c, t in targets.items())
        evaluations.append({"x": [float(v) for v in x], "changes": {c: float(v) for c, v in got.items()},
                            "error": float(err)})
        log(f"  {dict(zip(names, np.round(x, 4).tolist()))} -> "
            f"{ {c: round(float(v), 2) for c, v in got.items()} } (targets {targets})")
        return err

    start = np.clip(start, [b[0] for b in bounds], [b[1] for b in bounds])
    res = minimize(objective, start, method="Nelder-Mead", bounds=bounds,
                   options={"maxfev": max_evaluations, "xatol": 1e-3, "fatol": 0.01,
                            "initial_simplex": _simplex(start, bounds)})
    best = min(evaluations, key=lambda e: e["error"])
    return {"arm": arm, "fitted": dict(zip(names, best["x"])), "targets_percent": targets,
            "achieved_percent": best["changes"], "evaluations": len(evaluations),
            "seconds": round(time.perf_counter() - t0, 1), "setting": dataclasses.asdict(setting),
            "converged": bool(res.success)}


def _simplex(start, bounds):
    """Initial simplex: a step of a tenth of each bounded range."""
    start = np.asarray(start, float)
    pts = [start]
    for i, (lo, hi) in enumerate(bounds):
        p = start.copy()
        step = 0.1 * (hi - lo)
        p[i] = p[i] + step if p[i] + step <= hi else p[i] - step
        pts.append(p)
    return np.array(pts)


def write_calibrated(arm: str, record: dict, out_path, source_path=None) -> None:
    """Write the preset of ``arm`` with the fitted values and a [calibration] record."""
    import tomllib

    import tomli_w

    from fem.remodel.presets import FOLDER, preset_path
    from fem.report.result import write_atomic

    src = source_path or (FOLDER / "untreated.toml" if arm == "untreated" else preset_path(arm))
    with open(src, "rb") as f:
        data = tomllib.load(f)
    if arm == "untreated":
        (cohort,) = record["targets_percent"]
        data["cohort"][cohort].update({k: round(v, 5) for k, v in record["fitted"].items()})
        data.setdefault("calibration", {})[cohort] = record
    elif len(record["targets_percent"]) == 1:
        (cohort,) = record["targets_percent"]
        data.setdefault("cohort", {}).setdefault(cohort, {}).update(
            {k: round(v, 5) for k, v in record["fitted"].items()})
        data.setdefault("calibration", {})[cohort] = record
    else:
        data["factors"].update({k: round(v, 5) for k, v in record["fitted"].items()})
        data["calibration"] = record
    header = f"# Calibrated by `bonefem calibrate` from {src.name}; see [calibration].\n"
    write_atomic(out_path, header + tomli_w.dumps(data))
