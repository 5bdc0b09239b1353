"""One specimen through the arms of a trial: spin-up, then each drug from the same state.

A fresh synthetic specimen has no remodelling history (no open cavities, all bone
fully mineralised). It is first given the mineral mosaic of ``3 tau`` years of past
untreated remodelling (fem.remodel.bmu.mineral_history: packets of every age, so the
mineral distribution is in its steady state, not a uniform deficit), then remodelled
untreated for ``spinup_years`` so that open cavities of every age exist. That state is
the baseline (time 0) of every arm; every arm then draws the same candidate BMUs (same
seed, common random numbers), so arms differ only by the drug.
"""

from __future__ import annotations

from fem.remodel.bmu import BoneState, mineral_history, simulate
from fem.remodel.presets import arm_params, untreated


def baseline_state(phi, spacing, cohort: str, seed: int, spinup_years: float = 1.0,
                   dt: float = 1.0 / 12.0, mineral_years: float | None = None,
                   params=None, mineral=None) -> BoneState:
    """Spin a fresh level-set specimen up to the cohort's untreated remodelling state.

    ``mineral_years`` of mineral history (default 3 x tau_secondary), then
    ``spinup_years`` of untreated remodelling (``params``: the cohort's untreated
    parameters unless given). ``mineral``: a measured mineral field (a calibrated scan,
    fem.specimen.scan) that replaces the simulated history.
    """
    state = BoneState.from_levelset(phi, spacing)
    params = params or untreated(cohort)
    years = 3.0 * params.tau_secondary if mineral_years is None else mineral_years
    if mineral is not None:
        state.mineral[:] = mineral
        years = 0.0
    if years > 0:
        mineral_history(state, params, years, seed, dt)
    if spinup_years > 0:
        simulate(state, params, spinup_years, seed=seed, dt=dt)
    state.time = 0.0
    state.resorbed = state.formed = 0.0
    state.activations = state.perforations = 0
    state.closed = {"n": 0, "resorbed": 0.0, "formed": 0.0, "area": 0.0}
    state.events = []
    # Open cavities keep their ages relative to the new time origin.
    for b in state.bmus:
        b.start -= spinup_years
    return state


def steady_state_mineral(params, turnover: float) -> float:
    """Mean relative mineral content of bone renewed at ``turnover`` (1/yr) at steady state.

    Bone age is exponential with rate k = turnover; each piece mineralises as
    m(a) = 1 - (1 - m_p) exp(-a / tau), so the mean is 1 - (1 - m_p) k tau / (1 + k tau).
    """
    k_tau = turnover * params.tau_secondary
    return 1.0 - (1.0 - params.primary_mineral) * k_tau / (1.0 + k_tau)


def run_arm(baseline: BoneState, cohort: str, arm: str, years: float, seed: int,
            dt: float = 1.0 / 12.0, checkpoints=(), params=None, on_step=None):
    """Remodel a copy of ``baseline`` under ``arm``; returns (history, snapshots)."""
    state = baseline.copy()
    p = params or arm_params(cohort, arm)
    return simulate(state, p, years, seed=seed + 1, dt=dt, checkpoints=checkpoints, on_step=on_step)


def percent_change(history, key="bmd_mg_cm3") -> float:
    """Change of ``key`` from the first to the last row of a history, percent."""
    return 100.0 * (history[-1][key] / history[0][key] - 1.0)
