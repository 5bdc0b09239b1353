"""Resorption cavities as geometric objects in mm, independent of the voxel grid.

A cavity is the BMU cavity of fem.remodel.bmu (docs/model.md section 3): at a site on the
bone surface, with outward normal n, it is the region within ``radius`` of the normal
line through the site, from the floor ``depth x (1 - (rho / radius)^4)`` below the
tangent plane (rho the tangential distance from the site) up to ``above`` mm above it.
Its mean depth over the footprint is 2 depth / 3, so in a flat surface it removes
``2/3 pi radius^2 depth``. Carving it into a level set (phi <- min(phi, -c), c the
cavity's signed distance, > 0 inside) removes only bone above the floor.

Here the cavities are placed once per seed, in mm, on the surface of a reference level
set (a fine sampling of the specimen), and then dug into the same specimen sampled at
any voxel edge (:func:`dig`), so that the same cavities can be compared at 40 um and at
10 um (bench/cavity_resolution.py). bmu._cavity builds its cavity through
:func:`cavity_distance` too, with the same ``above`` (:data:`ABOVE`).

Units: mm. Shapes: sites and normals (n, 3), radii and depths (n,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fem.specimen.levelset import voxel_edge, volume_fraction

# How far above the tangent plane a cavity cuts (mm), here and in bmu's cavities: 2
# voxels of the default 40 um trial, fixed in mm so that a cavity cuts the same bone at
# every voxel edge (bmu's was 2 voxels until 7 December 2026, which made BMD changes
# drift with the voxel: bench/remodel_voxel.py, docs/trial.md).
ABOVE = 0.08
# Candidate sites: points drawn uniformly in the box within this distance (mm) of the
# surface are projected onto it; their density per unit area is uniform.
SHELL = 0.01
BATCH = 4096          # candidate points drawn per batch (fixed: the stream is grid-free)


@dataclass
class Cavities:
    """A set of cavities: sites (n, 3) mm on the surface, outward unit normals (n, 3),
    footprint radii (n,) mm, maximum depths (n,) mm, and the local trabecular thickness
    under each site (n,) mm (inf where the chord was longer than the reach)."""

    sites: np.ndarray
    normals: np.ndarray
    radii: np.ndarray
    depths: np.ndarray
    thickness: np.ndarray

    def __len__(self) -> int:
        return len(self.radii)

    def as_dict(self) -> dict:
        return {k: np.asarray(v).tolist() for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Cavities":
        try:
            return cls(*(np.asarray(d[k], float) for k in ("sites", "normals", "radii", "depths", "thickness")))
        except KeyError as e:
            raise ValueError(f"cavities: key {e} missing; expected sites, normals, radii, depths, thickness") from None


def cavity_distance(x, y, z, site, outward, depth: float, radius: float, above: float):
    """Signed distance-like field of one cavity (mm, > 0 inside) at the points (x, y, z)
    (broadcastable arrays, mm): min(floor side, top side, cylinder side), the floor
    ``depth x (1 - (rho / radius)^4)`` below the tangent plane at ``site`` (outward unit
    normal ``outward``), the top ``above`` over it, the cylinder of ``radius`` round the
    normal."""
    dx, dy, dz = x - site[0], y - site[1], z - site[2]
    a = dx * outward[0] + dy * outward[1] + dz * outward[2]      # along the outward normal
    rho = np.sqrt(np.maximum(dx ** 2 + dy ** 2 + dz ** 2 - a ** 2, 0.0))
    floor = depth * np.clip(1.0 - (rho / radius) ** 4, 0.0, None)
    return np.minimum(np.minimum(a + floor, above - a), radius - rho)


def _box(site, reach, spacing, shape):
    sp = np.asarray(spacing, float)
    lo = np.maximum(np.floor((site - reach) / sp).astype(int), 0)
    hi = np.minimum(np.ceil((site + reach) / sp).astype(int) + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    centres = np.meshgrid(*(((np.arange(a, b) + 0.5) * s) for a, b, s in zip(lo, hi, sp)),
                          indexing="ij", sparse=True)
    return box, centres


def dig_one(phi, spacing, site, outward, depth, radius, above=ABOVE) -> float:
    """Carve one cavity into ``phi`` (float32, mm) in place; returns the removed bone
    volume (mm^3, partial-volume fractions)."""
    h = voxel_edge(spacing)
    # every voxel within 2 h of the cavity gets its exact value (partial fractions)
    box, (x, y, z) = _box(np.asarray(site, float), max(radius, depth, above) + 2 * h, spacing, phi.shape)
    if any(s.stop <= s.start for s in box):
        return 0.0
    c = cavity_distance(x, y, z, site, outward, depth, radius, above)
    local = phi[box]
    f0 = volume_fraction(local, spacing)
    np.minimum(local, (-c).astype(np.float32), out=local)
    return float((f0 - volume_fraction(local, spacing)).sum()) * float(np.prod(spacing))


def dig(phi, spacing, cavities: Cavities, above: float = ABOVE) -> np.ndarray:
    """``phi`` (float32 signed distance, mm, at voxel centres of edge ``spacing``) with
    every cavity carved; a new array. The cavities are in mm: any voxel edge will do."""
    out = np.array(phi, dtype=np.float32)
    for s, n, d, r in zip(cavities.sites, cavities.normals, cavities.depths, cavities.radii):
        dig_one(out, spacing, s, n, d, r, above)
    return out


def _interp(phi, spacing, pts):
    """Trilinear interpolation of phi (voxel-centre samples) at points (m, 3) mm."""
    return ndimage.map_coordinates(phi, (pts / np.asarray(spacing, float) - 0.5).T, order=1, mode="nearest")


def _value_and_gradient(phi, spacing, pts):
    """The interpolant (m,) and its central-difference gradient over h (m, 3) at points
    (m, 3) mm, in one interpolation call: the seven points of each are interpolated
    together because the call's overhead, not its arithmetic, dominates for the few
    points of a BMU site (half of a remodelling run's time when they were separate)."""
    h = voxel_edge(spacing)
    m = len(pts)
    shifted = [pts]
    for ax in range(3):
        e = np.zeros(3)
        e[ax] = h / 2
        shifted += [pts + e, pts - e]
    v = _interp(phi, spacing, np.concatenate(shifted)).reshape(7, m)
    g = np.empty_like(pts)
    for ax in range(3):
        g[:, ax] = (v[1 + 2 * ax] - v[2 + 2 * ax]) / h
    return v[0], g


def project(phi, spacing, pts, steps: int = 4):
    """Points (m, 3) mm moved onto the surface phi = 0 of the trilinear interpolant of
    ``phi`` by ``steps`` Newton steps; the interpolant (m,) and its gradient (m, 3) there.

    The interpolant, not ``phi`` x the normal of its voxel, decides where the surface is:
    a voxel's value and central-difference normal place a point off the surface near
    edges, junctions and the cube's faces, and a chord measured from there can end at its
    first sample (bench/remodel_voxel.py, docs/trial.md). Points stay inside the box."""
    extent = np.asarray(phi.shape) * np.asarray(spacing, float)
    pts = np.array(pts, dtype=float)
    for _ in range(steps):
        v, g = _value_and_gradient(phi, spacing, pts)
        g2 = np.maximum(np.sum(g * g, axis=1), 1e-12)
        pts = np.clip(pts - (v / g2)[:, None] * g, 0.0, extent)
    v, g = _value_and_gradient(phi, spacing, pts)
    return pts, v, g


def surface_sites(phi, spacing, rng, count: int, steps: int = 4):
    """``count`` random points on the surface phi = 0 of the level set ``phi`` (mm), uniform
    per unit area, and their outward unit normals: ((count, 3), (count, 3)) mm.

    Points drawn uniformly in the box (in mm, batches of fixed size, so the stream does
    not depend on the grid) are kept when within SHELL of the surface and moved onto it
    by :func:`project`.
    """
    extent = np.asarray(phi.shape) * np.asarray(spacing, float)
    sites, normals, found = [], [], 0
    for _ in range(10000):
        if found >= count:
            break
        pts = rng.random((BATCH, 3)) * extent
        pts, _, g = project(phi, spacing, pts[np.abs(_interp(phi, spacing, pts)) < SHELL], steps)
        norm = np.linalg.norm(g, axis=1)
        keep = norm > 0.5          # a clean surface point (not a ridge where normals cancel)
        sites.append(pts[keep])
        normals.append(-g[keep] / norm[keep, None])
        found += int(keep.sum())
    else:
        raise ValueError(f"cavities: found {found} of {count} surface sites; does the level set hold bone?")
    return np.concatenate(sites)[:count], np.concatenate(normals)[:count]


def place(phi_ref, spacing_ref, fraction: float, seed: int, where: str = "random",
          params=None, pool: int = 20, reach: float = 0.5) -> Cavities:
    """Cavities that remove ``fraction`` of the bone volume of the reference level set
    ``phi_ref`` (mm, voxel edge ``spacing_ref``: a fine sampling of the specimen).

    Candidates are surface sites (:func:`surface_sites`, seeded) with a depth and a
    footprint from the BMU distributions of ``params`` (fem.remodel.bmu.RemodelParams;
    the defaults if None). ``where`` = "random" takes them in drawing order,
    "thinnest" in order of increasing local thickness under the site
    (fem.remodel.bmu.local_thickness_at, chord along the inward normal, up to ``reach``
    mm), out of ``pool`` x as many candidates as the random placement needs. A
    candidate whose footprint overlaps a taken one is skipped (as BMUs do not dig into
    open ones). Cavities are taken until the removed volume, carved into a copy of
    ``phi_ref``, reaches the target. The result is in mm: dig it at any voxel edge.
    """
    from fem.remodel.bmu import RemodelParams, _sizes, local_thickness_at

    if where not in ("random", "thinnest"):
        raise ValueError(f"cavities: where = {where!r}; expected 'random' or 'thinnest'")
    if not 0 < fraction < 1:
        raise ValueError(f"cavities: fraction {fraction}; expected a bone fraction in (0, 1)")
    p = params or RemodelParams()
    rng = np.random.default_rng(seed)
    vox = float(np.prod(spacing_ref))
    target = fraction * float(volume_fraction(phi_ref, spacing_ref).sum()) * vox
    # candidates: enough for the random placement (a cavity on a rod removes a few times
    # less than the flat-surface volume), x pool for the thinnest
    flat = 2.0 / 3.0 * p.cavity_area * p.resorption_depth
    count = int(np.ceil(10 * target / flat)) + 50
    count *= pool if where == "thinnest" else 1
    sites, normals = surface_sites(phi_ref, spacing_ref, rng, count)
    zd, za = rng.standard_normal(count), rng.standard_normal(count)
    sizes = np.array([_sizes(p, a, b) for a, b in zip(zd, za)])       # (depth, radius)
    thick = np.array([local_thickness_at(phi_ref, spacing_ref, s, n, reach) for s, n in zip(sites, normals)])
    order = np.argsort(thick, kind="stable") if where == "thinnest" else np.arange(count)
    work = np.array(phi_ref, dtype=np.float32)
    taken, removed = [], 0.0
    for k in order:
        if removed >= target:
            break
        if taken:
            gap = np.linalg.norm(sites[taken] - sites[k], axis=1)
            if np.any(gap < sizes[taken, 1] + sizes[k, 1]):
                continue
        removed += dig_one(work, spacing_ref, sites[k], normals[k], *sizes[k])
        taken.append(k)
    if removed < target:
        raise ValueError(f"cavities: {len(taken)} cavities remove {removed:.4g} mm^3 < target {target:.4g} "
                         "mm^3; raise pool or lower fraction")
    taken = np.asarray(taken)
    return Cavities(sites[taken], normals[taken], sizes[taken, 1], sizes[taken, 0], thick[taken])
