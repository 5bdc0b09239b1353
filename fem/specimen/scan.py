"""A micro-CT image as a trial specimen: grey levels kept, cropped, optionally calibrated.

The steps, in order (docs/real-scans.md):

1. read the image (fem.specimen.io.read_image: NumPy, NIfTI, MetaImage, TIFF or a folder
   of TIFF slices);
2. optional Gaussian smoothing, ``smooth_sigma`` in voxels of the image as read;
3. optional block-mean coarsening by an integer factor (a 19.5 um scan to 39 um with 2):
   the mean of a block is the partial volume of the coarse voxel, so grey levels stay
   linear in bone fraction;
4. a cubic region of interest of edge ``roi_size`` mm centred at ``roi_centre`` mm;
5. the level set from the grey levels (fem.specimen.grey.levelset_from_grey), floating
   bone cut away (fem.specimen.load.specimen_from_levelset);
6. with a scanner calibration (``density = slope x grey + intercept``, mg HA/cm^3): the
   scan's BMD, and optionally the relative tissue mineral of each bone voxel
   (fem.specimen.grey.relative_mineral).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fem.errors import BonefemError
from fem.specimen.grey import density, levelset_from_grey, relative_mineral, surface_level
from fem.specimen.io import crop_cube, read_image, smooth
from fem.specimen.load import specimen_from_levelset


@dataclass
class Scan:
    """A prepared scan.

    phi : (nx, ny, nz) float32 signed distance to the bone surface, mm (> 0 in bone)
    spacing : (dx, dy, dz) mm
    mineral : (nx, ny, nz) float32 relative tissue mineral m = TMD / TMD_mature of each
        bone voxel from the calibrated grey levels, or None
    info : threshold, marrow and bone grey levels, BV/TV, shape, scan BMD (mg HA/cm^3)
    """

    phi: np.ndarray
    spacing: tuple
    mineral: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def expand_images(images, base_dir=".") -> list[str]:
    """Absolute paths of a cohort's images: each entry a file, a folder of TIFF slices (one
    image) or a glob pattern (sorted matches), relative to ``base_dir``."""
    out = []
    for entry in [images] if isinstance(images, str) else images:
        path = Path(entry) if Path(entry).is_absolute() else Path(base_dir) / entry
        if glob.has_magic(str(path)):
            matches = sorted(glob.glob(str(path)))
            if not matches:
                raise BonefemError(f"no file matches {path}")
            out += [str(Path(m).resolve()) for m in matches]
        elif not path.exists():
            raise BonefemError(f"file not found: {path}")
        else:
            out.append(str(path.resolve()))
    if not out:
        raise BonefemError("expected at least one image")
    return out


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor``^3 block (float64); a remainder at the far faces is dropped."""
    if factor == 1:
        return np.asarray(image, np.float64)
    n = [s // factor for s in image.shape]
    if min(n) < 1:
        raise BonefemError(f"cannot coarsen an image of shape {image.shape} by {factor}")
    a = np.asarray(image, np.float64)[:n[0] * factor, :n[1] * factor, :n[2] * factor]
    return a.reshape(n[0], factor, n[1], factor, n[2], factor).mean(axis=(1, 3, 5))


def crop_roi(image: np.ndarray, spacing, size=None, centre=None) -> np.ndarray:
    """Cubic region of interest: edge ``size`` mm (default the image's shortest edge) about
    ``centre`` (mm from the image corner, default the image centre), snapped to voxels."""
    h = float(min(spacing))
    if not np.allclose(spacing, h, rtol=1e-6):
        raise BonefemError(f"a cubic region of interest needs isotropic voxels, got {spacing}")
    shape = np.array(image.shape)
    n = int(round(size / h)) if size is not None else int(shape.min())
    c = np.asarray(centre, float) / h if centre is not None else shape / 2.0
    origin = np.round(c - n / 2.0).astype(int)
    return crop_cube(image, origin, n)


def _levels(image, threshold, where):
    """(threshold, marrow level, bone level): given/Otsu threshold with levels read from the
    image, or for a binary image its two values."""
    lo, hi = float(image.min()), float(image.max())
    if threshold is None:
        values = np.unique(image)
        if values.size > 2:
            raise BonefemError(f"{where}: a grey-level image (values from {lo:g} to {hi:g}) and no "
                               "threshold: give threshold (a grey level, bone >= T, or 'otsu')")
        if values.size < 2:
            raise BonefemError(f"{where}: the image has a single grey level ({lo:g}): no bone surface")
        return (lo + hi) / 2.0, lo, hi
    return surface_level(image, threshold, where), None, None


def scan_specimen(path, voxel_size=None, threshold=None, smooth_sigma=None, coarsen: int = 1,
                  roi_size=None, roi_centre=None, density_slope=None, density_intercept=None,
                  mineral_from_grey: bool = False, tmd_mature: float = 1100.0) -> Scan:
    """Read and prepare one scan as a specimen (module docstring for the steps).

    Parameters
    ----------
    path : image file or folder of TIFF slices
    voxel_size : mm, for formats without one in their header
    threshold : grey level of the bone surface (after smoothing and coarsening), 'otsu',
        or None for a binary image
    smooth_sigma : Gaussian sigma in voxels of the image as read, or None
    coarsen : block-mean factor (>= 1)
    roi_size, roi_centre : cubic region of interest, mm
    density_slope, density_intercept : scanner calibration, mg HA/cm^3 per grey level and
        at grey 0
    mineral_from_grey : also return the relative tissue mineral of each bone voxel
        (needs the calibration)
    tmd_mature : mg HA/cm^3 of fully mineralised bone (m = 1)
    """
    where = str(path)
    image, spacing = read_image(path, voxel_size)
    if smooth_sigma:
        image = smooth(image, smooth_sigma)
    image = block_mean(image, coarsen)
    spacing = tuple(s * coarsen for s in spacing)
    try:
        image = crop_roi(image, spacing, roi_size, roi_centre)
    except BonefemError as err:
        raise BonefemError(f"{where}: region of interest (roi_size, roi_centre): {err}") from None
    t, marrow, bone = _levels(image, threshold, where)
    phi = levelset_from_grey(image, spacing, t, marrow, bone)
    spec = specimen_from_levelset(phi, spacing, 0.0, where)
    info = {"image": where, "shape": list(image.shape), "voxel_mm": spacing[0],
            "threshold": t, "bv_tv": spec.bone_volume_fraction,
            "voxels_removed": spec.voxels_removed}
    mineral = None
    if density_slope is not None:
        info["scan_bmd_mg_per_cm3"] = float(density(image, density_slope, density_intercept).mean())
        if mineral_from_grey:
            mineral = relative_mineral(image, spec.mask, density_slope, density_intercept, tmd_mature)
            info["tmd_mean_mg_per_cm3"] = float(np.average(mineral, weights=spec.fraction) * tmd_mature)
    elif mineral_from_grey:
        raise BonefemError(f"{where}: mineral from grey levels needs density_slope and density_intercept")
    return Scan(spec.phi, spacing, mineral, info)
