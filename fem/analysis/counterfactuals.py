"""The counterfactual specimens of the strength attribution (fem.analysis.attribution).

Arrays in, arrays out: the caller turns them into FE specimens and solves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fem.analysis.attribution import baseline_tissue_on, matching_move
from fem.specimen.levelset import bone_volume, move_surface


@dataclass
class Counterfactuals:
    """The two counterfactuals of a treated state against its baseline.

    mass_move : uniform surface move (mm) that gives the baseline the treated bone volume
    mass_phi : (nx, ny, nz) baseline level set moved by ``mass_move``, mm; solved with
        the baseline tissue (mineral, quality): the mass counterfactual
    mineral, quality : (nx, ny, nz) float32 baseline tissue carried onto the treated
        geometry; the treated level set with these is the tissue-fixed counterfactual
    """

    mass_move: float
    mass_phi: np.ndarray
    mineral: np.ndarray
    quality: np.ndarray


def counterfactuals(base_phi, base_mineral, base_quality, treated_phi, spacing) -> Counterfactuals:
    """Counterfactuals of a treated level set ``treated_phi`` against the baseline
    ``base_phi`` with tissue ``base_mineral`` and ``base_quality``; all (nx, ny, nz) on
    the same grid of voxel edges ``spacing`` (mm)."""
    d = matching_move(base_phi, spacing, bone_volume(treated_phi, spacing))
    return Counterfactuals(
        mass_move=d,
        mass_phi=move_surface(base_phi, d, spacing),   # the move matching_move found
        mineral=baseline_tissue_on(treated_phi, base_phi, base_mineral, spacing),
        quality=baseline_tissue_on(treated_phi, base_phi, base_quality, spacing),
    )
