"""Strut-and-plate models: cylinders and boxes in a cube (mm), and their voxelisation.

A :class:`StrutModel` is meshed conformally by fem.mesh.strut_mesh (gmsh) or voxelised
by :func:`voxelise` for the voxel path, which is how the voxel micro-FE is verified
against the conformal mesh (docs/conformal.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fem.errors import BonefemError


@dataclass
class StrutModel:
    """A strut-and-plate structure in the cube [0, size]^3 (mm).

    size : cube edge L, mm; the union is clipped to [0, L]^3
    struts : list of (p0, p1, radius): cylinder with axis from p0 (3,) to p1 (3,) mm,
        flat ends, radius mm. Let struts that end on a face of the cube run past it:
        the clip then leaves a flat cut face instead of a face that merely touches.
    plates : list of (lo, hi): axis-aligned boxes with corners lo (3,) and hi (3,), mm
    """

    size: float
    struts: list = field(default_factory=list)
    plates: list = field(default_factory=list)

    def __post_init__(self):
        if not self.size > 0:
            raise BonefemError(f"strut model: size must be > 0 mm, got {self.size}")
        for p0, p1, r in self.struts:
            if not r > 0 or np.allclose(p0, p1):
                raise BonefemError(f"strut model: strut {p0} -> {p1} with radius {r} is degenerate")
        for lo, hi in self.plates:
            if not np.all(np.asarray(hi, float) > np.asarray(lo, float)):
                raise BonefemError(f"strut model: plate {lo} -> {hi} needs hi > lo on every axis")
        if not (self.struts or self.plates):
            raise BonefemError("strut model: no struts and no plates")


def column(size=1.0, radius=0.2) -> StrutModel:
    """One vertical strut through the centre of the cube, spanning it (analytic check)."""
    c, m = size / 2, 0.1 * size
    return StrutModel(size, struts=[((c, c, -m), (c, c, size + m), radius)])


def cubic_cell(size=1.0, radius=0.2, horizontal_radius=None) -> StrutModel:
    """Cubic lattice cell: three orthogonal struts through the centre, each spanning the
    cube; the two horizontal ones have ``horizontal_radius`` (default ``radius``)."""
    c, m = size / 2, 0.1 * size
    struts = []
    for axis in range(3):
        p0, p1 = np.full(3, c), np.full(3, c)
        p0[axis], p1[axis] = -m, size + m
        r = radius if axis == 2 or horizontal_radius is None else horizontal_radius
        struts.append((tuple(p0), tuple(p1), r))
    return StrutModel(size, struts=struts)


def rod_lattice(size=1.0, radius=0.15, n=2, horizontal_radius=None) -> StrutModel:
    """n x n vertical rods (pitch size/n, centred in their columns) tied at mid-height by
    horizontal rods along x and y through the same rows; all rods span the cube."""
    rh = radius if horizontal_radius is None else horizontal_radius
    m, zc = 0.1 * size, size / 2
    pos = (np.arange(n) + 0.5) * size / n
    struts = [((x, y, -m), (x, y, size + m), radius) for x in pos for y in pos]
    struts += [((-m, y, zc), (size + m, y, zc), rh) for y in pos]
    struts += [((x, -m, zc), (x, size + m, zc), rh) for x in pos]
    return StrutModel(size, struts=struts)


def inside(model: StrutModel, x: np.ndarray) -> np.ndarray:
    """True where points x (k, 3) mm lie in the union of the struts and plates (unclipped)."""
    x = np.asarray(x, dtype=float)
    hit = np.zeros(len(x), dtype=bool)
    for p0, p1, r in model.struts:
        p0, axis = np.asarray(p0, float), np.asarray(p1, float) - np.asarray(p0, float)
        t = (x - p0) @ axis / (axis @ axis)
        radial = x - p0 - t[:, None] * axis
        hit |= (t >= 0) & (t <= 1) & (np.einsum("ij,ij->i", radial, radial) <= r * r)
    for lo, hi in model.plates:
        hit |= np.all((x >= np.asarray(lo, float)) & (x <= np.asarray(hi, float)), axis=1)
    return hit


def voxelise(model: StrutModel, n: int, samples=1) -> np.ndarray:
    """Bone volume fraction of the n^3 voxels (edge L/n mm) of the model's cube.

    samples : points per voxel edge; 1 samples the voxel centre (a binary image, the
        usual segmentation), s > 1 averages s^3 sub-voxel centres (partial volume).
    Returns (n, n, n) float64 in [0, 1], axes x, y, z.
    """
    h = model.size / n
    sub = (np.arange(n * samples) + 0.5) * h / samples        # sub-voxel centres, mm
    X, Y = np.meshgrid(sub, sub, indexing="ij")
    out = np.empty((n, n, n))
    for k in range(n):                                       # one voxel layer at a time
        z = sub[k * samples:(k + 1) * samples]
        pts = np.column_stack([np.repeat(X[..., None], samples, 2).ravel(),
                               np.repeat(Y[..., None], samples, 2).ravel(),
                               np.broadcast_to(z, X.shape + (samples,)).ravel()])
        hit = inside(model, pts).reshape(n, samples, n, samples, samples)
        out[:, :, k] = hit.mean(axis=(1, 3, 4))
    return out
