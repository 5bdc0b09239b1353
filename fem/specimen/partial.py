"""Partial volumes in the stiffness: from a voxel's bone fraction to its element's modulus.

A voxel whose bone fraction f lies between 0 and 1 becomes one whole hexahedron. How stiff
it should be depends on where its bone sits, which the voxel does not resolve: bone laid
along the load in a layer (in parallel) carries E x f, the Voigt bound; bone that does not
span the voxel across the load (a gap in series) carries nothing, the Reuss bound.
The rules (measured side by side in bench/partial_volume.py, docs/real-scans.md):

- ``"linear"``: E x f, the Voigt bound. Exact for a layer along the load, but every
  partial voxel joins its neighbours over its whole faces as if its bone filled it in
  parallel, so partial voxels thicken joints and bridge gaps between trabeculae: a grey
  specimen is too stiff at coarse voxels and E_app falls as the voxel shrinks;
- ``"hashin-shtrikman"`` (the default): E x HS(f), the Hashin-Shtrikman upper bound of an
  isotropic mixture of bone (fraction f, Poisson ratio nu) and void. A voxel's
  element is isotropic, and nothing in the scan says how its bone is arranged, so the
  stiffest isotropic material with that much bone is the most such an element can carry;
  HS(f) lies below f and (but for f > 0.995) above f^2: 0.33 at f = 1/2 for nu = 0.3,
  0.14 at f = 1/4. It has no parameter to fit.

Both give 0 at f = 0 and exactly 1 at f = 1, so a binary specimen (every fraction 0 or 1)
is the same under every rule, bit for bit.
"""

from __future__ import annotations

import numpy as np

RULES = ("hashin-shtrikman", "linear")
DEFAULT_RULE = "hashin-shtrikman"


def hashin_shtrikman(f, nu: float) -> np.ndarray:
    """Hashin-Shtrikman upper bound of Young's modulus over the bone's, for bone of volume
    fraction ``f`` (array, in [0, 1]) and Poisson ratio ``nu`` with voids (the other phase
    has no stiffness). Shape of ``f``; 0 at f = 0 and exactly 1 at f = 1.

    Bulk and shear moduli (Hashin & Shtrikman 1963), bone phase k, g and void:
    ``K = k + (1 - f) / (-1/k + 3 f / (3k + 4g))``,
    ``G = g + (1 - f) / (-1/g + 6 f (k + 2g) / (5g (3k + 4g)))``, ``E = 9KG / (3K + G)``.
    """
    f = np.asarray(f, dtype=np.float64)
    k, g = 1.0 / (3.0 * (1.0 - 2.0 * nu)), 1.0 / (2.0 * (1.0 + nu))     # per unit E
    safe = np.where(f > 0, f, 1.0)                   # f = 0 gives 0 below; no 0/0 on the way
    bulk = k + (1 - safe) / (-1 / k + 3 * safe / (3 * k + 4 * g))
    shear = g + (1 - safe) / (-1 / g + 6 * safe * (k + 2 * g) / (5 * g * (3 * k + 4 * g)))
    e = 9 * bulk * shear / (3 * bulk + shear)
    # exact ends: a full voxel is bone (1.0, not 1 - 1e-16), an empty one nothing
    return np.where(f >= 1.0, 1.0, np.where(f > 0, e, 0.0))


def stiffness_fraction(f, rule: str = DEFAULT_RULE, nu: float = 0.3) -> np.ndarray:
    """Element modulus over the tissue modulus for voxels of bone fraction ``f`` (array).

    rule : one of :data:`RULES` (module docstring); nu : the tissue Poisson ratio (used by
        the Hashin-Shtrikman rule)
    """
    if rule == "linear":
        return np.asarray(f, dtype=np.float64)
    if rule == "hashin-shtrikman":
        return hashin_shtrikman(f, nu)
    raise ValueError(f"partial-volume stiffness rule {rule!r}; expected one of: {', '.join(RULES)}")
