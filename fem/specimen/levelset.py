"""Sub-voxel specimen representation: a signed-distance (level-set) field.

Clinical BMD changes of 1-5 % are surface moves of a few micrometres, far below a
20-40 um voxel, so a binary image cannot show them. A specimen therefore carries
``phi``, the signed distance to the bone surface in mm (positive inside bone),
sampled at voxel centres. From it:

- the bone volume fraction of each voxel is the linear partial-volume estimate
  ``f = clip(1/2 + phi / h, 0, 1)`` with h the voxel edge. For a surface parallel
  to a voxel face this is the exact fraction; for other orientations it is exact on
  average over the surface, and its derivative with respect to a surface move d is
  the surface area, so BV changes by BS x d to first order;
- moving every surface outwards by d (thickening; d < 0 erodes) is ``phi + d``;
- the voxels with f > 0 become finite elements, with modulus E_tissue x f.

A binary image gives ``phi = +-(distance to the nearest voxel of the other phase - h/2)``,
so that f is exactly 0 or 1 and the solve reproduces the binary result at d = 0.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def voxel_edge(spacing) -> float:
    """The voxel edge h (mm) used for partial volumes: the smallest edge.

    With the smallest edge every voxel of a binary image keeps f = 0 or 1 at d = 0
    even for anisotropic voxels.
    """
    return float(np.min(spacing))


def from_mask(mask: np.ndarray, spacing, band: float | None = None) -> np.ndarray:
    """Signed distance (mm, float32, > 0 in bone) of a binary image.

    Parameters
    ----------
    mask : (nx, ny, nz) bool
    spacing : (dx, dy, dz) mm
    band : optional clamp |phi| <= band (mm); distances beyond it are not needed
    """
    mask = np.asarray(mask, bool)
    h = voxel_edge(spacing)
    sampling = np.broadcast_to(np.asarray(spacing, float), (3,))
    inside = ndimage.distance_transform_edt(mask, sampling=sampling) if (~mask).any() \
        else np.full(mask.shape, np.inf)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling) if mask.any() \
        else np.full(mask.shape, np.inf)
    phi = np.where(mask, inside - h / 2, -(outside - h / 2)).astype(np.float32)
    if band is not None:
        np.clip(phi, -band, band, out=phi)
    return phi


def reinitialise(phi: np.ndarray, spacing) -> np.ndarray:
    """Signed distance again after a surface move.

    Values within two voxels of the surface (|phi| < 2h) and within two voxels (26-connected) of a voxel
    whose centre is in bone are kept, so sub-voxel moves round-trip exactly; elsewhere
    the field becomes :func:`from_mask` of the voxels with centres in bone (accurate to
    about half a voxel). A trabecula that no longer holds any voxel centre (eroded
    deeper than half its thickness) is gone: its partial-volume remnant is dropped and
    it does not grow back when the surface later thickens.
    """
    h = voxel_edge(spacing)
    bone = phi > 0
    if not bone.any():            # everything eroded: nothing to remember
        return np.full(phi.shape, -float(np.abs(phi).max()) - h, np.float32)
    if bone.all():
        return phi.astype(np.float32)
    far = from_mask(bone, spacing)
    far = np.where(bone, far, np.minimum(far, -h / 2))
    # 2 h, 26-connected: inclined surfaces (bowed rods, offset nodes) round-trip too
    keep = ndimage.binary_dilation(bone, np.ones((3, 3, 3), bool), iterations=2) & (np.abs(phi) < 2 * h)
    return np.where(keep, phi, far).astype(np.float32)


def volume_fraction(phi: np.ndarray, spacing) -> np.ndarray:
    """Bone volume fraction of each voxel, in [0, 1], from the signed distance (mm)."""
    h = voxel_edge(spacing)
    # one float64 array, worked on in place (the image may be hundreds of millions of
    # voxels); the same numbers as clip(0.5 + phi / h, 0, 1)
    f = np.divide(phi, h, dtype=np.float64)
    f += 0.5
    np.clip(f, 0.0, 1.0, out=f)
    # phi is float32 (1e-7 relative): snap fractions within 1e-6 of 0 or 1, so that a
    # binary image stays exactly binary (and its voxels exactly full or empty).
    f[f > 1.0 - 1e-6] = 1.0
    f[f < 1e-6] = 0.0
    return f


def move_surface(phi: np.ndarray, distance: float, spacing=None, where=None) -> np.ndarray:
    """Move the bone surface outwards by ``distance`` mm (negative erodes).

    The one surface move of the project. With ``spacing`` (the physical move) the field
    is re-initialised (:func:`reinitialise`), so bone that vanished stays gone; ``where``
    (bool field) limits the move to part of the specimen. Without ``spacing`` it is the
    plain shift ``phi + distance``, identical as long as no trabecula vanishes (|d| below
    half the thinnest trabecula) and kept for callers that move by less.
    """
    d = np.float32(distance)
    shift = d if where is None else np.where(where, d, np.float32(0))
    moved = (phi + shift).astype(np.float32)
    if spacing is None:
        if where is not None:
            raise ValueError("a targeted move (where=...) needs the spacing to re-initialise")
        return moved
    return reinitialise(moved, spacing)


def bone_volume(phi: np.ndarray, spacing) -> float:
    """Bone volume (mm^3) of a level set: the sum of the voxel fractions times the voxel volume."""
    return float(volume_fraction(phi, spacing).sum() * np.prod(spacing))


def surface_area(phi: np.ndarray, spacing, cut_faces: bool = False) -> float:
    """Area (mm^2) of the bone surface phi = 0, by marching cubes on the level set.

    The image covers the box [0, n h] while its samples lie at the voxel centres, so the
    level set is extended by one voxel (edge values) and only triangles whose centroid
    lies inside the box are counted. With ``cut_faces`` False (the default, as BoneJ)
    the faces where the image border cuts bone are not counted: they are not bone
    surface and do not move when the surface does.
    """
    from skimage import measure

    phi = np.asarray(phi, np.float32)
    spacing = np.asarray(spacing, float)
    if cut_faces:
        padded = np.pad(phi, 1, constant_values=min(float(phi.min()), 0.0) - float(spacing.max()))
    else:
        padded = np.pad(phi, 1, mode="edge")
    verts, faces, _, _ = measure.marching_cubes(padded, 0.0, spacing=tuple(spacing))
    verts -= 0.5 * spacing     # padded index j sits at (j - 1/2) h
    centroid = verts[faces].mean(axis=1)
    inside = np.all((centroid >= 0) & (centroid <= np.asarray(phi.shape) * spacing), axis=1)
    return float(measure.mesh_surface_area(verts, faces[inside]))
