"""Mineralisation of new bone and the tissue modulus that follows it.

Mineral content is tracked per voxel as ``m``, the mean mineral content of the bone in
that voxel relative to fully mineralised (interstitial) bone, m in (0, 1]. New bone is
laid down as osteoid that mineralises quickly to ``primary`` (primary mineralisation,
days to weeks, folded into one time step), then slowly towards 1 (secondary
mineralisation, first order with time constant ``tau_secondary`` years). Because the
kinetics are linear in the deficit 1 - m, the voxel mean of a mixture of old and new
bone follows the same law, so one number per voxel is exact for that model.

Values (docs/model.md): primary 0.6 and tau_secondary 3 years are assumptions in the
range reported for human bone (primary mineralisation reaches about 50-70 % of the
final content within days; secondary mineralisation takes years; Bala et al. 2010,
Boivin & Meunier 2002 [U: not checked]).

Tissue modulus: E = E_ref x quality x m ** exponent (MPa). The exponent 2.5 is an
assumption (modulus rises steeply with mineral content; Currey 1988 reports
exponents of about 2-3 against calcium content [U]). ``quality`` is a multiplier for
matrix quality at equal mineral (1 for untreated bone), used by the menatetrenone
preset (vitamin K2 raised modulus without changing mineral content in rats,
Kobayashi 2005 [V]).
"""

from __future__ import annotations

import numpy as np

MATURE_TMD = 1100.0  # mg HA / cm^3 of fully mineralised bone (assumed; scales BMD only)


def mineralise(m: np.ndarray, years: float, tau_secondary: float, out=None) -> np.ndarray:
    """Advance secondary mineralisation by ``years``: m -> 1 - (1 - m) exp(-years / tau)."""
    keep = np.float32(np.exp(-years / tau_secondary))
    out = m if out is None else out
    np.subtract(1.0, m, out=out)
    out *= keep
    np.subtract(1.0, out, out=out)
    return out


def mix(old_fraction, old_value, new_fraction, new_value):
    """Volume-weighted mean of a voxel's old bone and newly formed bone."""
    total = old_fraction + new_fraction
    with np.errstate(invalid="ignore", divide="ignore"):
        mixed = (old_fraction * old_value + new_fraction * new_value) / total
    return np.where(total > 0, mixed, new_value).astype(np.float32)


def tissue_modulus(e_ref: float, m, quality=1.0, exponent: float = 2.5):
    """Tissue Young's modulus (MPa) from relative mineral content m (and quality)."""
    return e_ref * np.asarray(quality) * np.power(np.asarray(m, np.float64), exponent)


def bmd(fraction: np.ndarray, m: np.ndarray, tmd_mature: float = MATURE_TMD) -> float:
    """Volumetric BMD (mg HA/cm^3): mineral mass over total volume of the image."""
    return float(np.sum(fraction * m, dtype=np.float64) / fraction.size * tmd_mature)
