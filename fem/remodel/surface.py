"""Where a targeted surface move applies: selections of trabeculae by orientation or thickness.

The move itself is fem.specimen.levelset.move_surface(phi, d, spacing, where=selection)
(re-initialised, so bone that vanished stays gone). Selections:

- by orientation: ``horizontal`` / ``vertical`` trabeculae from the structure tensor of
  the surface normals: a vertical rod or plate has horizontal normals (n_z ~ 0), a
  horizontal strut has normals turning through z;
- by thickness: trabeculae thinner (or thicker) than a given thickness, from the local
  thickness (sphere fitting, fem.specimen.morphometry.local_thickness) of the nearest
  bone voxel.

Units: mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage



def orientation_ratio(phi: np.ndarray, spacing, sigma: float = 0.1) -> np.ndarray:
    """T_zz / trace(T) of the structure tensor T = G_sigma * (grad phi grad phi^T).

    About 0 on vertical trabeculae (rods and plates along z), about 1/2 on horizontal
    rods and about 1 on horizontal plates. ``sigma`` (mm) averages the normals around a
    trabecula's cross-section.
    """
    sp = np.broadcast_to(np.asarray(spacing, float), (3,))
    grads = np.gradient(np.asarray(phi, np.float32), *sp)
    s = [sigma / v for v in sp]
    t = [ndimage.gaussian_filter(g * g, s) for g in grads]
    return t[2] / np.maximum(t[0] + t[1] + t[2], 1e-30)


def select_orientation(phi, spacing, which: str, sigma: float = 0.1) -> np.ndarray:
    """Boolean field: the surroundings of horizontal or of vertical trabeculae."""
    ratio = orientation_ratio(phi, spacing, sigma)
    if which == "horizontal":
        return ratio > 0.25
    if which == "vertical":
        return ratio <= 0.25
    raise ValueError(f"orientation must be 'horizontal' or 'vertical', got {which!r}")


def thickness_field(phi, spacing) -> np.ndarray:
    """Local thickness (mm) of the nearest bone voxel, for every voxel."""
    from fem.specimen.morphometry import local_thickness

    bone = phi > 0
    lt = local_thickness(bone, spacing)
    sampling = np.broadcast_to(np.asarray(spacing, float), (3,))
    _, idx = ndimage.distance_transform_edt(~bone, sampling=sampling, return_indices=True)
    return lt[tuple(idx)]


def select_thickness(phi, spacing, thinner_than=None, thicker_than=None) -> np.ndarray:
    """Boolean field: the surroundings of trabeculae thinner / thicker than a thickness (mm)."""
    t = thickness_field(phi, spacing)
    sel = np.ones(t.shape, bool)
    if thinner_than is not None:
        sel &= t < thinner_than
    if thicker_than is not None:
        sel &= t > thicker_than
    return sel
