"""Connectivity filters: which pieces of bone stay, in the remodelling model and in the solve.

A specimen is a cube cut from a larger bone. Its pieces are found with face
connectivity (6-connectivity, as Faim and ParOSol filter), and two questions are asked
of them:

- Remodelling (:func:`attached_to_boundary`): a piece that reaches any face of the cube
  is attached to the rest of the vertebral body beyond that face and stays; only a
  piece touching no face has lost every connection and is resorbed (a loose fragment).
- Solving (:func:`held_by_platens`): in a compression test along an axis only the two
  loaded faces are constrained. A piece touching one loaded face, or only side faces,
  carries no load and is free to move (in a frictionless test even along the axis), so
  it would make the stiffness matrix singular: it goes. Every piece that spans both
  loaded faces carries load and stays. (Between frictionless platens such a piece is
  still free to slide sideways; the right-hand side is consistent, so CG converges on
  the resulting positive semi-definite system: tests/test_islands.py solves two
  separate columns to the exact modulus.)

:func:`largest_component` is the older, stricter filter (one piece only).
"""

import numpy as np
from scipy import ndimage


def _components(mask):
    mask = np.asarray(mask, dtype=bool)
    labels, n = ndimage.label(mask)  # default structure = face connectivity
    return mask, labels, n


def _labels_on(labels, faces) -> np.ndarray:
    """Labels (> 0) present on each of the given faces, as a list of sets."""
    out = []
    for axis, side in faces:
        sl = [slice(None)] * 3
        sl[axis] = 0 if side == 0 else -1
        out.append(set(np.unique(labels[tuple(sl)]).tolist()) - {0})
    return out


def _keep(mask, labels, keep_labels) -> tuple[np.ndarray, int]:
    keep = np.isin(labels, sorted(keep_labels)) if keep_labels else np.zeros(mask.shape, bool)
    return keep, int(mask.sum() - keep.sum())


def largest_component(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep the largest 6-connected component of a boolean mask.

    Returns the filtered mask and the number of voxels removed.
    """
    mask, labels, n = _components(mask)
    if n <= 1:
        return mask, 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return _keep(mask, labels, {int(np.argmax(sizes))})


def attached_to_boundary(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Keep every 6-connected piece of a (nx, ny, nz) mask that touches a face of the box.

    Returns the filtered mask and the number of voxels removed (the loose pieces).
    """
    mask, labels, n = _components(mask)
    if n == 0:
        return mask, 0
    on_faces = set().union(*_labels_on(labels, [(a, s) for a in range(3) for s in (0, 1)]))
    if len(on_faces) == n:
        return mask, 0
    return _keep(mask, labels, on_faces)


def held_by_platens(mask: np.ndarray, axis: int = 2) -> tuple[np.ndarray, int]:
    """Keep every 6-connected piece that touches both loaded faces (index 0 and -1 along
    ``axis``). Returns the filtered mask and the number of voxels removed."""
    mask, labels, n = _components(mask)
    if n == 0:
        return mask, 0
    low, high = _labels_on(labels, [(axis, 0), (axis, 1)])
    spanning = low & high
    if len(spanning) == n:
        return mask, 0
    return _keep(mask, labels, spanning)


def spans_z(mask: np.ndarray) -> bool:
    """True if the mask touches both the bottom (k = 0) and top (k = nz-1) layers."""
    return bool(mask[:, :, 0].any() and mask[:, :, -1].any())
