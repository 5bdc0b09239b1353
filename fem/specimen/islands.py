"""Connectivity filter: keep the largest face-connected piece of bone.

A piece of bone that touches the rest only at an edge or a corner, or not at all,
would float in the finite-element model and make the stiffness matrix singular.
This is the filter Faim and ParOSol apply (6-connectivity).
"""

import numpy as np
from scipy import ndimage


def largest_component(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep the largest 6-connected component of a boolean mask.

    Returns the filtered mask and the number of voxels removed.
    """
    mask = np.asarray(mask, dtype=bool)
    labels, n = ndimage.label(mask)  # default structure = face connectivity
    if n <= 1:
        return mask, 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = labels == np.argmax(sizes)
    return keep, int(mask.sum() - keep.sum())


def spans_z(mask: np.ndarray) -> bool:
    """True if the mask touches both the bottom (k = 0) and top (k = nz-1) layers."""
    return bool(mask[:, :, 0].any() and mask[:, :, -1].any())
