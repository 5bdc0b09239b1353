"""Attribution of a strength change to mass, tissue and architecture.

For a treated state T and its baseline B (same specimen), with F the Pistoia failure
load of a solve:

- mass: F(B moved uniformly to T's bone volume, B's tissue) - F(B): what the same
  change of bone mass would do as uniform thickening or thinning of the baseline;
- tissue: F(T) - F(T's geometry, B's tissue): the effect of mineral and matrix
  quality with the geometry fixed;
- architecture: the rest, F(T) - F(B) - mass - tissue: perforation, lost
  connectivity, redistribution of bone.

All parts are percent of F(B). The counterfactual specimens are built here; the
caller supplies the solve, so this module stays free of MPI and DOLFINx.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from fem.remodel.surface import move
from fem.specimen.levelset import bone_volume


@dataclass
class Attribution:
    total_pct: float
    mass_pct: float
    tissue_pct: float
    architecture_pct: float
    mass_move_um: float   # uniform surface move of the mass counterfactual, um


def matching_move(phi, spacing, target_volume: float, limit: float = 0.1) -> float:
    """Uniform surface move (mm) after which the level set holds ``target_volume`` mm^3."""
    def gap(d):
        return bone_volume(move(phi, spacing, d), spacing) - target_volume
    lo, hi = -limit, limit
    if gap(0.0) == 0:
        return 0.0
    return float(brentq(gap, lo, hi, xtol=1e-7))


def baseline_tissue_on(treated_phi, baseline_phi, baseline_field, spacing):
    """A per-voxel tissue field (mineral or quality) of the baseline, carried onto a
    treated geometry: baseline values where the baseline had bone, else its bone-weighted mean."""
    from fem.specimen.levelset import volume_fraction

    fb = volume_fraction(baseline_phi, spacing)
    mean = float(np.sum(fb * baseline_field) / max(fb.sum(), 1e-30))
    return np.where(fb > 0, baseline_field, mean).astype(np.float32)


def attribute(f_baseline, f_treated, f_mass, f_tissue_fixed, mass_move=0.0) -> Attribution:
    """Split F(T) - F(B) (percent of F(B)).

    f_mass : F of the baseline moved uniformly to the treated bone volume (baseline tissue)
    f_tissue_fixed : F of the treated geometry with the baseline tissue
    """
    total = 100 * (f_treated / f_baseline - 1)
    mass = 100 * (f_mass / f_baseline - 1)
    tissue = 100 * (f_treated - f_tissue_fixed) / f_baseline
    return Attribution(total, mass, tissue, total - mass - tissue, 1000 * mass_move)
