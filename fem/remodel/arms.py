"""One specimen through the arms of a trial: spin-up, then each drug from the same state.

A fresh synthetic specimen has no remodelling history (no open cavities, all bone
fully mineralised), so it is first remodelled untreated for ``spinup_years``; that
state is the baseline (time 0) of every arm, and every arm then draws the same random
numbers (same seed), so arms differ only by the drug.
"""

from __future__ import annotations

import numpy as np

from fem.remodel.bmu import BoneState, simulate
from fem.remodel.presets import arm_params, untreated


def baseline_state(phi, spacing, cohort: str, seed: int, spinup_years: float = 1.0,
                   dt: float = 1.0 / 12.0) -> BoneState:
    """Spin a fresh level-set specimen up to the cohort's untreated remodelling state."""
    state = BoneState.from_levelset(phi, spacing)
    params = untreated(cohort)
    if spinup_years > 0:
        history, _ = simulate(state, params, spinup_years, seed=seed, dt=dt)
        # Turnover: bone formed per year over the bone volume (second half of the spin-up,
        # when formation has started).
        half = len(history) // 2
        formed = history[-1]["formed_mm3"] - history[half]["formed_mm3"]
        years = history[-1]["time_years"] - history[half]["time_years"]
        turnover = formed / years / history[-1]["bone_volume_mm3"] if years > 0 else 0.0
        _equilibrate_mineral(state, params, turnover)
    state.time = 0.0
    state.resorbed = state.formed = 0.0
    state.activations = state.perforations = 0
    # Open cavities keep their refill times relative to the new time origin.
    for b in state.bmus:
        b.end -= spinup_years
    return state


def steady_state_mineral(params, turnover: float) -> float:
    """Mean relative mineral content of bone renewed at ``turnover`` (1/yr) at steady state.

    Bone age is exponential with rate k = turnover; each piece mineralises as
    m(a) = 1 - (1 - m_p) exp(-a / tau), so the mean is 1 - (1 - m_p) k tau / (1 + k tau).
    """
    k_tau = turnover * params.tau_secondary
    return 1.0 - (1.0 - params.primary_mineral) * k_tau / (1.0 + k_tau)


def _equilibrate_mineral(state: BoneState, params, turnover: float) -> None:
    """Bring the bone's mean mineral content to the steady state of its turnover.

    A fresh specimen starts fully mineralised, and secondary mineralisation takes years
    (tau ~ 3 yr), far longer than the spin-up: without this the baseline would keep
    losing BMD through mineral alone. The bone formed during the spin-up keeps its
    young, low mineral content (so the baseline already has the soft new-bone patches
    that every later state has); the older bone (still at m = 1) gets the deficit that
    makes the bone-weighted mean equal the steady state.
    """
    f = state.fraction
    old = state.mineral >= 1.0
    total = float(f.sum())
    young_deficit = float(np.sum(f * (1.0 - state.mineral) * ~old))
    old_volume = float(np.sum(f * old))
    target = (1.0 - steady_state_mineral(params, turnover)) * total
    if old_volume > 0:
        state.mineral[old] = np.float32(1.0 - max(target - young_deficit, 0.0) / old_volume)


def run_arm(baseline: BoneState, cohort: str, arm: str, years: float, seed: int,
            dt: float = 1.0 / 12.0, checkpoints=(), params=None, on_step=None):
    """Remodel a copy of ``baseline`` under ``arm``; returns (history, snapshots)."""
    state = baseline.copy()
    p = params or arm_params(cohort, arm)
    return simulate(state, p, years, seed=seed + 1, dt=dt, checkpoints=checkpoints, on_step=on_step)


def percent_change(history, key="bmd_mg_cm3") -> float:
    """Change of ``key`` from the first to the last row of a history, percent."""
    return 100.0 * (history[-1][key] / history[0][key] - 1.0)
