"""A simple seeded trabecular-like specimen for demos and tests.

Band-pass filtered Gaussian noise, longer-correlated along z than across, thresholded
at the quantile that gives the target BV/TV. The result is an irregular, connected,
vertically oriented foam. It is a stand-in, not a vertebral model: it has no separate
rods and plates and its thickness is not a parameter.
"""

import numpy as np
from scipy import ndimage


def trabecular_foam(size=2.4, voxel_size=0.03, bv_tv=0.15, spacing=0.6,
                    anisotropy=2.0, seed=0) -> np.ndarray:
    """Boolean bone image, shape (n, n, n) with n = round(size / voxel_size).

    Parameters
    ----------
    size : cube edge, mm
    voxel_size : voxel edge, mm
    bv_tv : target bone volume fraction (met to one voxel: the threshold is a quantile)
    spacing : mean distance between trabeculae, mm (sets the noise wavelength)
    anisotropy : correlation length along z divided by the one across
    seed : random seed
    """
    n = int(round(size / voxel_size))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, n, n))
    sigma = spacing / voxel_size / 4.0
    sig = (sigma, sigma, sigma * anisotropy)
    # Band-pass (difference of Gaussians) so the structure has one dominant
    # wavelength (~spacing); a thin band around the zero level gives struts.
    field = ndimage.gaussian_filter(noise, sig, mode="wrap") \
        - ndimage.gaussian_filter(noise, [2 * s for s in sig], mode="wrap")
    closeness = -np.abs(field)
    level = np.quantile(closeness, 1.0 - bv_tv)
    return closeness >= level
