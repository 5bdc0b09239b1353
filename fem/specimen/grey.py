"""Grey-level micro-CT kept below the voxel: partial volumes, level set and mineral density.

A thresholded mask throws away what a scanner measures at the bone surface: a voxel that
is 30 % bone has a grey level about 30 % of the way from marrow to bone. The level set of
a specimen (:mod:`fem.specimen.levelset`) defines each voxel's bone fraction as
``f = clip(1/2 + phi / h, 0, 1)``, so a grey image gives its level set directly:

- the bone/marrow boundary is the threshold iso-surface ``I = T`` (the same surface the
  binary segmentation ``I >= T`` uses, so both agree on which voxels are mostly bone);
- in the one-voxel band where the segmentation changes between neighbours, a voxel whose
  grey level lies between the marrow and bone levels is a partial volume: its fraction is
  read from the grey level with a piecewise-linear partial-volume model: ``f = 1/2`` at
  ``T``, ``f = 1`` at the bone level ``B`` and ``f = 0`` at the marrow level ``M``,
  and ``phi = (f - 1/2) h`` there, which :func:`fem.specimen.levelset.volume_fraction`
  maps back to ``f`` exactly;
- away from the surface the signed distance of the binary segmentation is used, so a
  binary image gives exactly :func:`fem.specimen.levelset.from_mask`.

Only the surface band is read as partial volume: inside thick bone or marrow, grey-level
noise is noise, not partial volume.

Scanner calibration: Scanco and XtremeCT headers carry a linear density calibration,
``density (mg HA/cm^3) = slope x grey + intercept``. With it, BMD is absolute and the
tissue mineral density of each bone voxel (TMD) follows from its grey level.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from fem.errors import BonefemError
from fem.specimen.io import otsu_threshold
from fem.specimen.levelset import from_mask, voxel_edge


def surface_band(mask: np.ndarray) -> np.ndarray:
    """Voxels whose segmentation differs from at least one face neighbour, (nx, ny, nz) bool."""
    mask = np.asarray(mask, bool)
    six = ndimage.generate_binary_structure(3, 1)
    # border_value=1: the image border cuts bone, it is not bone surface.
    inner = mask & ~ndimage.binary_erosion(mask, six, border_value=1)
    outer = ~mask & ndimage.binary_dilation(mask, six)
    return inner | outer


def phase_levels(image: np.ndarray, threshold: float, margin: int = 2) -> tuple[float, float]:
    """Marrow and bone grey levels ``(M, B)``: medians of each phase away from the surface.

    Voxels within ``margin`` voxels of the threshold surface are left out, so that partial
    volumes do not pull the levels towards the threshold. A phase with no voxel that deep
    (trabeculae under 2 ``margin`` + 1 voxels thick, e.g. a bone-fraction image of thin
    bone) takes its extreme grey level instead (the image's maximum for bone, minimum for
    marrow): its purest voxel, exact for a noiseless fraction image.

    Raises
    ------
    BonefemError
        When a phase is empty (the image is all bone or all marrow at the threshold).
    """
    image = np.asarray(image, np.float64)
    bone = image >= threshold
    if bone.all() or not bone.any():
        raise BonefemError(f"grey levels: the image is all {'bone' if bone.any() else 'marrow'} "
                           f"at threshold {threshold:g}")
    levels = []
    for phase, extreme in ((~bone, np.min), (bone, np.max)):
        deep = ndimage.binary_erosion(phase, iterations=margin, border_value=1)
        levels.append(float(np.median(image[deep])) if deep.any() else float(extreme(image)))
    return levels[0], levels[1]


def partial_volume(image: np.ndarray, threshold: float, marrow_level: float,
                   bone_level: float) -> np.ndarray:
    """Bone fraction in [0, 1] of each voxel from its grey level (piecewise linear).

    ``f = 1/2 + 1/2 (I - T) / (B - T)`` above the threshold T, ``1/2 - 1/2 (T - I) / (T - M)``
    below it, clipped to [0, 1].
    """
    if not marrow_level < threshold < bone_level:
        raise BonefemError(f"grey levels: need marrow level < threshold < bone level, got "
                           f"{marrow_level:g} < {threshold:g} < {bone_level:g}")
    image = np.asarray(image, np.float64)
    above = 0.5 + 0.5 * (image - threshold) / (bone_level - threshold)
    below = 0.5 - 0.5 * (threshold - image) / (threshold - marrow_level)
    return np.clip(np.where(image >= threshold, above, below), 0.0, 1.0)


def surface_level(image: np.ndarray, threshold, where: str = "image") -> float:
    """The grey level T of the bone surface (``image >= T`` is bone): a number as given, or
    for ``'otsu'`` the next float above Otsu's level (skimage's level belongs to the marrow
    class, bone is ``> t``), so that both segment as fem.specimen.io.segment does."""
    if threshold == "otsu":
        return float(np.nextafter(otsu_threshold(image, where), np.inf))
    return float(threshold)


def is_grey(image: np.ndarray) -> bool:
    """True when the image holds more than two grey levels (a binary image holds two)."""
    lo, hi = image.min(), image.max()
    return bool(np.count_nonzero((image != lo) & (image != hi)))


def levelset_from_grey(image: np.ndarray, spacing, threshold: float,
                       marrow_level: float | None = None, bone_level: float | None = None,
                       band: float | None = None) -> np.ndarray:
    """Signed distance (mm, float32, > 0 in bone) of a grey image, sub-voxel at the surface.

    Parameters
    ----------
    image : (nx, ny, nz) grey levels (already smoothed if wanted)
    spacing : (dx, dy, dz) mm
    threshold : grey level of the bone surface; ``image >= threshold`` is bone
    marrow_level, bone_level : grey levels of pure marrow and pure bone; by default
        :func:`phase_levels` reads them from the image
    band : optional clamp of |phi| (mm), as :func:`fem.specimen.levelset.from_mask`
    """
    image = np.asarray(image, np.float64)
    mask = image >= threshold
    phi = from_mask(mask, spacing, band)
    if mask.all() or not mask.any():
        return phi
    if marrow_level is None or bone_level is None:
        m, b = phase_levels(image, threshold)
        marrow_level = m if marrow_level is None else marrow_level
        bone_level = b if bone_level is None else bone_level
    near = surface_band(mask)
    f = partial_volume(image[near], threshold, marrow_level, bone_level)
    # Only true partial volumes replace the binary distance: a band voxel at the pure bone
    # or marrow level keeps it, so a binary image gives exactly from_mask. A partial voxel
    # stays on its side of the surface (f >= 1/2 exactly where I >= T).
    partial = (f > 0.0) & (f < 1.0)
    values = phi[near]
    values[partial] = ((f[partial] - 0.5) * voxel_edge(spacing)).astype(np.float32)
    phi[near] = values
    return phi


def density(image: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Calibrated density (mg HA/cm^3) of each voxel: ``slope x grey + intercept``."""
    return slope * np.asarray(image, np.float64) + intercept


def relative_mineral(image: np.ndarray, mask: np.ndarray, slope: float, intercept: float,
                     tmd_mature: float, margin: int = 1) -> np.ndarray:
    """Mineral content m = TMD / TMD_mature of each bone voxel, in (0, 1], from the scan.

    A voxel's grey level measures its mean density, which in a partial-volume surface
    voxel mixes bone with marrow. Its tissue mineral density is therefore taken from the
    voxel itself only deep in bone (``margin`` voxels from the surface); surface voxels get
    the mean TMD of the deep bone voxels nearest to them. Values are clipped to
    (0.05, 1] (denser than ``tmd_mature`` is treated as fully mineralised).

    Returns
    -------
    (nx, ny, nz) float32; 0 outside ``mask``.
    """
    mask = np.asarray(mask, bool)
    deep = ndimage.binary_erosion(mask, iterations=margin, border_value=1)
    if not deep.any():
        raise BonefemError("mineral from grey levels: no bone voxel lies deeper than "
                           f"{margin} voxel(s) below the surface; the scan is too coarse to "
                           "read tissue mineral density from it")
    tmd = density(image, slope, intercept)
    # Nearest deep voxel for every voxel (feature transform of the complement of deep).
    idx = ndimage.distance_transform_edt(~deep, return_distances=False, return_indices=True)
    nearest = tmd[tuple(idx)]
    m = np.clip(np.where(deep, tmd, nearest) / tmd_mature, 0.05, 1.0)
    return np.where(mask, m, 0.0).astype(np.float32)
