"""Local orientation of trabecular bone, voxel by voxel: which bone runs along the load.

Used to take the horizontal trabeculae out of a scan as the generator takes out its own
(issue 14: does removing them cost more stiffness than thinning to the same mass, on real
bone?). A scan has no labelled trabeculae, so each bone voxel is classified by the shape of
the bone around it: the second moments of the bone in a Gaussian window (standard deviation
``sigma`` mm) about the window's own centroid, C = sum w m (q - c)(q - c)^T / sum w m. A rod
gives one large eigenvalue (along its axis), a plate two (in its plane). Westin's measures
sort them: linear c_l = (l1 - l2) / l1 against planar c_p = (l2 - l3) / l1.

The bone's *extent along the axis* is then |cos| of the angle between a rod's axis and the
axis, or the sine of the angle between a plate's normal and it: 1 for a vertical rod or a
vertical plate, 0 for a horizontal rod or a horizontal plate. A voxel is *horizontal* when
its extent is below cos(``max_angle``): a rod more than ``max_angle`` degrees from the axis,
or a plate whose normal is within ``max_angle`` of it.

At a node the window holds the column and the star of horizontal trabeculae that meet it,
and the star wins: the column's own voxels there read as a horizontal plate, and taking
them away would cut the column. So horizontal voxels within ``guard`` voxels (face
neighbours) of vertical bone are kept. Checked against the generator's labelled
trabeculae (tests/test_orientation.py, docs/specimens.md): without the guard about a third
of the voxels taken were the columns' (precision 0.5-0.7), and removal cost the modulus of
cut columns.

The moments are separable Gaussian filters (SciPy), so the cost is ten 1-D filter passes
per axis over the image; windows are mirrored at the image faces (a trabecula cut by a face
keeps its direction).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _kernels(sigma: float, step: float):
    """1-D Gaussian window sampled at the voxel offsets, times r^0, r^1, r^2 (r in mm)."""
    k = max(1, int(np.ceil(3.0 * sigma / step)))
    r = np.arange(-k, k + 1) * step
    g = np.exp(-0.5 * (r / sigma) ** 2)
    return g, g * r, g * r * r


def local_moments(mask, spacing, sigma: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Centred second moments of the bone around every voxel of ``mask``.

    Parameters
    ----------
    mask : (nx, ny, nz) bool, bone
    spacing : (dx, dy, dz) mm
    sigma : standard deviation (mm) of the Gaussian window

    Returns
    -------
    where : (n,) flat indices of the bone voxels
    cov : (n, 3, 3) mm^2, the window's bone covariance about its centroid at each of them
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 3:
        raise ValueError(f"local_moments: expected a 3-D mask, got shape {mask.shape}")
    s = np.broadcast_to(np.asarray(spacing, float), (3,))
    kern = [_kernels(sigma, h) for h in s]
    m = mask.astype(np.float64)
    where = np.flatnonzero(mask)

    def moment(powers):
        out = m
        for a, p in enumerate(powers):
            out = ndimage.correlate1d(out, kern[a][p], axis=a, mode="reflect")
        return out.ravel()[where]

    m0 = moment((0, 0, 0))
    eye = np.eye(3, dtype=int)
    m1 = np.stack([moment(tuple(eye[i])) for i in range(3)], axis=1) / m0[:, None]
    cov = np.empty((where.size, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            cov[:, i, j] = cov[:, j, i] = moment(tuple(eye[i] + eye[j])) / m0 - m1[:, i] * m1[:, j]
    return where, cov


def axial_extent(mask, spacing, sigma: float = 0.05, axis: int = 2) -> np.ndarray:
    """How far the bone at each voxel extends along ``axis`` (0 = x, 1 = y, 2 = z).

    Returns an array of the mask's shape: in [0, 1] on bone (1 along the axis, 0 across
    it; see the module's docstring), NaN on marrow.
    """
    mask = np.asarray(mask, bool)
    where, cov = local_moments(mask, spacing, sigma)
    lam, vec = np.linalg.eigh(cov)           # ascending: l3 <= l2 <= l1
    l3, l2, l1 = lam[:, 0], lam[:, 1], np.maximum(lam[:, 2], 1e-30)
    rod = (l1 - l2) >= (l2 - l3)
    along = np.abs(vec[:, axis, 2])          # the rod's axis against the load axis
    normal = np.abs(vec[:, axis, 0])         # the plate's normal against it
    extent = np.where(rod, along, np.sqrt(np.clip(1.0 - normal ** 2, 0.0, 1.0)))
    out = np.full(mask.shape, np.nan)
    out.ravel()[where] = extent
    return out


def horizontal_bone(mask, spacing, sigma: float = 0.05, max_angle: float = 45.0,
                    axis: int = 2, guard: int = 1) -> np.ndarray:
    """Bone voxels whose local structure is transverse to ``axis``: rods more than
    ``max_angle`` degrees from it, plates whose normal is within ``max_angle`` of it,
    except within ``guard`` voxels of vertical bone. Bool array of the mask's shape."""
    if not 0.0 < max_angle < 90.0:
        raise ValueError(f"horizontal_bone: max_angle must lie in (0, 90) degrees, got {max_angle}")
    mask = np.asarray(mask, bool)
    extent = axial_extent(mask, spacing, sigma, axis)
    with np.errstate(invalid="ignore"):
        across = extent < np.cos(np.radians(max_angle))
        along = extent >= np.cos(np.radians(max_angle))
    if guard > 0:
        across &= ~ndimage.binary_dilation(along, iterations=guard)
    return across


def without(phi, remove, spacing, band: float = 0.2) -> np.ndarray:
    """The level set ``phi`` (mm, > 0 in bone) with the voxels of ``remove`` (bool) turned
    to marrow: the minimum of ``phi`` and the signed distance of the complement of
    ``remove``, so the rest of the surface keeps its sub-voxel position."""
    from fem.specimen.levelset import from_mask

    return np.minimum(phi, from_mask(~np.asarray(remove, bool), spacing, band=band))
