"""Pistoia failure-load criterion (Pistoia et al. 2002, Bone 30:842).

Failure when ``critical_volume`` percent (2 %) of the bone volume exceeds the critical
effective strain (0.7 %); effective strain EES = sqrt(2 SED / E) per element, with the SED
of the element-centre strain (fem.solve.elasticity.element_fields), as Faim and ParOSol
compute it, the tools the criterion was calibrated against (docs/method.md). Being
linear, the failure load is the applied load scaled by critical_strain / EES_crit,
where EES_crit is the effective strain exceeded by exactly critical_volume percent of
the bone volume. For a solid cube in uniaxial stress every element has EES = |strain|,
so the failure stress is critical_strain * E = 0.007 E.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PistoiaResult:
    critical_volume_percent: float
    critical_strain: float
    ees_at_critical_volume: float
    factor: float
    failure_load_N: float


def ees_at_volume(ees: np.ndarray, volume: np.ndarray, percent: float) -> float:
    """Smallest effective strain e such that the volume with EES > e is <= percent % of the total.

    ees, volume : (n_elements,) for all elements (gathered), volume in mm^3.
    """
    order = np.argsort(ees)[::-1]
    cum = np.cumsum(volume[order])
    limit = percent / 100.0 * cum[-1]
    # Elements strictly above the returned value hold at most `limit` volume.
    k = int(np.searchsorted(cum, limit, side="right"))
    return float(ees[order[min(k, len(order) - 1)]])


def pistoia(reaction_force: float, ees: np.ndarray, volume: np.ndarray,
            critical_volume=2.0, critical_strain=0.007) -> PistoiaResult:
    """Failure load (N, positive) from the applied load (N) and the element EES."""
    e = ees_at_volume(ees, volume, critical_volume)
    if not e > 0:
        raise ValueError("all effective strains are zero: the specimen carries no load")
    factor = critical_strain / e
    return PistoiaResult(critical_volume, critical_strain, e, factor, abs(reaction_force) * factor)
