"""Synthetic vertebral trabecular bone: a seeded rod-and-plate network of short trabeculae.

The vertebral body's trabecular architecture is anisotropic: vertical trabeculae (rods and
plates) along the cranio-caudal axis z, braced by thinner horizontal ones. Vertical
trabeculae are not straight columns through the body: they are short segments between
nodes where horizontal trabeculae join, misaligned and curved, so that axial load passes
through the nodes and the horizontal trabeculae carry part of it in bending. That is why
losing trabeculae costs far more stiffness and strength than thinning them to the same
mass (docs/specimens.md, validation). With age vertebrae lose trabeculae and
connectivity, horizontal ones first, while Tb.Th stays about the same (Thomsen et al.
2013, Bone 57:47). The generator builds that network as an analytic signed-distance
field (fem.specimen.levelset), so the specimen carries sub-voxel geometry from the start:

1. columns of vertical trabeculae at blue-noise positions in the xy plane, tb_n^2 per
   mm^2, filling a square one column spacing wider than the cube on every side (the
   specimen is cut from a larger bone: trabeculae cross its side faces). Each column is a chain of nodes at jittered levels about
   ``level_spacing`` apart; every node is offset laterally from the column's axis
   (``node_offset``, SD in mm). Between two nodes runs one trabecula, bowed sideways at
   mid-length (``curvature``: SD of the bow over the segment length), its diameter
   th_vertical times a log-normal factor (``thickness_cv``). The first and last nodes lie
   outside the cube, so columns reach both loaded faces;
2. horizontal trabeculae (diameter th_horizontal, same variation and bow) join the nodes
   of neighbouring columns (short Delaunay edges) at the same level, on a fraction
   ``strut_fraction`` of the sites: the connectivity, which falls with age; optionally
   oblique struts and horizontal plates (``oblique_fraction``, ``horizontal_plates``,
   fem.specimen.transverse; off at 0, the default, which leaves specimens unchanged);
3. vertical plates (thickness th_vertical) span panels between two neighbouring columns
   and two node levels, in random order, until the bone volume fraction reaches bv_tv; a
   fraction ``plate_holes`` of them is perforated by a round hole. The plate fraction is
   the one derived figure (reported in ``counts``). With ``plate_span`` m > 1 a plate is a
   wall of m consecutive panels on the same pair of columns, folded at the offset nodes
   (each panel perforated or not on its own).

Every trabecula (segment, strut, plate) has an index; :meth:`Network.without` rebuilds
the level set without chosen trabeculae (their removal by resorption).

Units: mm. Every random choice comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from functools import reduce
from dataclasses import asdict, dataclass, field as dc_field

import numpy as np
from scipy.spatial import Delaunay

from fem.errors import BonefemError

VERTICAL, HORIZONTAL = 1, 2


@dataclass
class VertebralParams:
    """Generator parameters (mm unless stated)."""

    size: float = 4.0            # cube edge
    voxel_size: float = 0.04
    bv_tv: float = 0.12          # target bone volume fraction
    tb_n: float = 1.3            # columns of vertical trabeculae per mm (1 / their mean spacing)
    th_vertical: float = 0.14    # vertical trabecula diameter and plate thickness (mean Tb.Th)
    th_horizontal: float = 0.10  # horizontal trabecula diameter (mean Tb.Th)
    strut_fraction: float = 0.5  # fraction of horizontal trabecula sites occupied (connectivity)
    level_spacing: float = 0.5   # mean length of a vertical trabecula (distance between nodes)
    node_offset: float = 0.06    # SD of a node's lateral offset from its column axis
    curvature: float = 0.05      # SD of a trabecula's mid-length bow / its length (1)
    thickness_cv: float = 0.1    # coefficient of variation of trabecula diameters (1)
    plate_holes: float = 0.5     # fraction of plates perforated by a hole (1)
    # transverse elements of fem.specimen.transverse; 0 = off (today's specimens, bit for bit)
    oblique_fraction: float = 0.0   # fraction of oblique strut sites occupied (1)
    horizontal_plates: float = 0.0  # fraction of horizontal plate sites occupied (1)
    # node intervals one vertical plate spans on its pair of columns: > 1 makes walls that
    # follow the offset nodes (issue 14 screening); 1 = today's specimens, bit for bit
    plate_span: int = 1
    seed: int = 0


@dataclass
class Network:
    """The generated specimen.

    phi : (n, n, n) float32 signed distance to the bone surface, mm (> 0 in bone),
        clamped to +-band
    kind : (n, n, n) int8, VERTICAL (rods and plates) or HORIZONTAL (struts) for the
        voxels whose nearest primitive is of that kind, 0 in marrow (phi <= -h/2)
    spacing : (h, h, h) mm
    counts : numbers of columns (with those of the margin around the cube), vertical
        segments, plates and horizontal struts in the image, sites and panels (with the
        margin), ...
    params : the parameters used
    parts : {VERTICAL: phi of the rods and plates, HORIZONTAL: phi of the struts}
    trabecula_kind : (m,) int8, VERTICAL or HORIZONTAL for each trabecula
    trabecula_volume : (m,) its own bone volume (mm^3, overlaps counted in each)
    """

    phi: np.ndarray
    kind: np.ndarray
    spacing: tuple
    counts: dict
    params: dict
    parts: dict
    trabecula_kind: np.ndarray = dc_field(default_factory=lambda: np.zeros(0, np.int8))
    trabecula_volume: np.ndarray = dc_field(default_factory=lambda: np.zeros(0))
    primitives: list = dc_field(default_factory=list, repr=False)  # (trabecula, kind, lo, hi, sdf)
    band: float = 0.2

    def without(self, trabeculae) -> np.ndarray:
        """The level set (float32, mm) rebuilt without the given trabecula indices."""
        drop = set(int(t) for t in np.atleast_1d(trabeculae))
        return self._field(self.phi.shape[0], self.spacing[0], drop).union()

    def _field(self, n: int, h: float, drop=frozenset()) -> "_Field":
        """The primitives (but the trabeculae in ``drop``) on an n^3 grid of edge h (mm)."""
        f = _Field(n, h, self.band)
        for t, kind, lo, hi, sdf in self.primitives:
            if t not in drop:
                f.add(kind, lo, hi, sdf, measure=False)
        return f

    def sampled(self, voxel_size: float) -> np.ndarray:
        """The same network (its analytic primitives, as generated) sampled at another
        voxel edge (mm): (n', n', n') float32 signed distance, n' = round(size /
        voxel_size). The primitives' sizes were fixed at the generation voxel edge
        (thickness fitting, rods at least one voxel), so every edge shows the one
        geometry; the generator's final uniform thickening (``thickened_mm``), if any,
        is applied too."""
        size = float(self.params["size"])
        n = int(round(size / voxel_size))
        if n < 1 or abs(n * voxel_size - size) > 1e-6 * size:
            raise BonefemError(f"vertebral: voxel edge {voxel_size} mm does not divide the "
                               f"{size} mm specimen into whole voxels; expected size / voxel an integer")
        f = self._field(n, float(voxel_size))
        if self.counts.get("thickened_mm"):
            f.thicken(self.counts["thickened_mm"])
        return f.union()


class _Field:
    """Running union of primitives: phi = max over primitive signed distances."""

    def __init__(self, n: int, h: float, band: float):
        self.h, self.band, self.n = h, band, n
        self.phi = {k: np.full((n, n, n), -band, np.float32) for k in (VERTICAL, HORIZONTAL)}
        self.centres = (np.arange(n) + 0.5) * h

    def _box(self, lo, hi):
        i0 = np.clip(np.floor(np.asarray(lo) / self.h - 0.5).astype(int), 0, self.n)
        i1 = np.clip(np.ceil(np.asarray(hi) / self.h + 0.5).astype(int), 0, self.n)
        return tuple(slice(a, b) for a, b in zip(i0, i1))

    def evaluate(self, lo, hi, sdf):
        """The primitive ``sdf(x, y, z)`` on the voxels of its bounding box [lo, hi] (plus
        the band): (box slices, clamped float32 values), or None outside the image."""
        box = self._box(np.asarray(lo) - self.band, np.asarray(hi) + self.band)
        if any(s.stop <= s.start for s in box):
            return None
        x, y, z = np.meshgrid(*(self.centres[s] for s in box), indexing="ij", sparse=True)
        return box, np.clip(sdf(x, y, z), -self.band, self.band).astype(np.float32)

    def thicken(self, d: float) -> None:
        """Move every surface outward by ``d`` (mm), capped at the band."""
        for k in (VERTICAL, HORIZONTAL):
            self.phi[k] = np.minimum(self.phi[k] + np.float32(d), self.band)

    def _fraction_sum(self, phi) -> float:
        # the linear partial volume of fem.specimen.levelset, summed (float32 is enough)
        return float(np.clip(0.5 + phi / np.float32(self.h), 0, 1).sum(dtype=np.float64))

    def change(self, box, new):
        """(change of the summed voxel fractions if ``new`` were added, its own sum)."""
        touched = new > -self.h / 2           # only voxels the primitive reaches can change
        new = new[touched]
        before = np.maximum(self.phi[VERTICAL][box][touched], self.phi[HORIZONTAL][box][touched])
        return (self._fraction_sum(np.maximum(before, new)) - self._fraction_sum(before),
                self._fraction_sum(new))

    def apply(self, kind, box, new):
        np.maximum(self.phi[kind][box], new, out=self.phi[kind][box])

    def add(self, kind, lo, hi, sdf, measure=True):
        """Union a primitive; returns :meth:`change` (zeros without ``measure``)."""
        ev = self.evaluate(lo, hi, sdf)
        if ev is None:
            return 0.0, 0.0
        out = self.change(*ev) if measure else (0.0, 0.0)
        self.apply(kind, *ev)
        return out

    def union(self):
        return np.maximum(self.phi[VERTICAL], self.phi[HORIZONTAL])


def capsule(p0, p1, r):
    """Signed distance (mm) of a rod of radius r around the segment p0-p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    dd = float(d @ d)

    def sdf(x, y, z):
        t = ((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / dd
        t = np.clip(t, 0.0, 1.0)
        return r - np.sqrt((x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2
                           + (z - p0[2] - t * d[2]) ** 2)
    return sdf


def bent_rod(p0, p1, bow, r):
    """Signed distance of a rod of radius r from p0 to p1 whose middle is displaced by the
    vector ``bow`` (mm): two capsules meeting at the displaced mid-point."""
    m = (np.asarray(p0, float) + np.asarray(p1, float)) / 2 + np.asarray(bow, float)
    a, b = capsule(p0, m, r), capsule(m, p1, r)
    return lambda x, y, z: np.maximum(a(x, y, z), b(x, y, z))


def _triangle_distance(p, a, b, c):
    """Distance (mm) from points p = (x, y, z) (broadcast arrays) to the filled triangle
    a, b, c: the distance to its plane combined with the in-plane distance outside it,
    which is the distance to the edge line beside an edge and to the vertex in a vertex's
    region (outside both of its edges)."""
    nor = np.cross(b - a, c - a)
    nor /= np.linalg.norm(nor)
    v = [p[i] - a[i] for i in range(3)]
    normal = v[0] * nor[0] + v[1] * nor[1] + v[2] * nor[2]
    edge = []
    for u, w in ((a, b), (b, c), (c, a)):
        e = np.cross(w - u, nor)          # in-plane, pointing out of the triangle
        e /= np.linalg.norm(e)
        edge.append((p[0] - u[0]) * e[0] + (p[1] - u[1]) * e[1] + (p[2] - u[2]) * e[2])
    outside = np.maximum(np.maximum(edge[0], edge[1]), edge[2])
    for vertex, i, j in ((b, 0, 1), (c, 1, 2), (a, 2, 0)):
        corner = (edge[i] > 0) & (edge[j] > 0)
        if corner.any():
            d2 = sum((p[k] - vertex[k]) ** 2 for k in range(3)) - normal ** 2
            outside = np.where(corner, np.sqrt(np.maximum(d2, 0.0)), outside)
    return np.sqrt(normal ** 2 + np.maximum(outside, 0.0) ** 2)


def plate(corners, thickness, hole=None):
    """Signed distance of a plate over the quadrilateral ``corners`` (4, 3) (two triangles)
    or the triangle ``corners`` (3, 3), thickness ``thickness`` with rounded edges,
    optionally perforated by a round hole ``(centre (3,), radius)`` through its whole
    thickness."""
    if len(corners) == 3:
        a, b, c = (np.asarray(q, float) for q in corners)
        d = None
        nor = np.cross(b - a, c - a)
    else:
        a, b, c, d = (np.asarray(q, float) for q in corners)
        nor = np.cross(b - a, d - a) + np.cross(d - c, b - c)
    nor /= np.linalg.norm(nor)

    def sdf(x, y, z):
        p = (x, y, z)
        dist = _triangle_distance(p, a, b, c)
        if d is not None:
            dist = np.minimum(dist, _triangle_distance(p, a, c, d))
        out = thickness / 2 - dist
        if hole is not None:
            o, radius = hole
            v = [p[i] - o[i] for i in range(3)]
            along = v[0] * nor[0] + v[1] * nor[1] + v[2] * nor[2]
            axis = np.sqrt(np.maximum(v[0] ** 2 + v[1] ** 2 + v[2] ** 2 - along ** 2, 0.0))
            out = np.minimum(out, axis - radius)
        return out
    return sdf


def vertical_plate(a, b, z0, z1, thickness):
    """Signed distance of a vertical plate: the rectangle over segment a-b (xy) for
    z in [z0, z1], thickened by thickness/2 with rounded edges."""
    return plate([(*a, z0), (*b, z0), (*b, z1), (*a, z1)], thickness)


def best_candidate(count: int, size: float, rng, candidates: int = 20) -> np.ndarray:
    """Blue-noise points in the square [0, size]^2, shape (count, 2): each new point is
    the farthest of ``candidates`` random ones from the points already placed. Distances
    wrap around the square (a torus): without the wrap the farthest candidate lies on the
    square's edge far too often, and the points crowd the edges and leave gaps inside."""
    pts = np.empty((count, 2))
    pts[0] = rng.uniform(0, size, 2)
    for i in range(1, count):
        cand = rng.uniform(0, size, (candidates, 2))
        d = np.abs(cand[:, None, :] - pts[None, :i])
        d = np.minimum(d, size - d)
        pts[i] = cand[np.argmax(np.min((d ** 2).sum(axis=2), axis=1))]
    return pts


def generate(params: VertebralParams | None = None, band: float = 0.2, **overrides) -> Network:
    """Generate a vertebral trabecular specimen (see the module docstring).

    ``th_vertical`` and ``th_horizontal`` are met as the measured mean local thickness
    (Tb.Th, sphere fitting) of the vertical and of the horizontal trabeculae: junctions
    are thicker than either trabecula and thin rods read thinner on the grid, so the
    primitives' own thicknesses are scaled (a few fixed-point steps) until each
    measurement is within a quarter voxel of its target. ``band`` (mm) is how far from
    the surface the signed distance is kept exact; surface moves beyond it are not
    representable.
    """
    from fem.specimen.morphometry import tb_th

    p = params or VertebralParams()
    if overrides:
        p = VertebralParams(**{**asdict(p), **overrides})
    scale = np.array([0.85, 0.9])   # junctions read thicker, thin rods thinner: start near
    target = np.array([p.th_vertical, p.th_horizontal])
    for _ in range(4):
        net = _build(p, band, scale)
        measured = np.array([tb_th(net.parts[k] > 0, net.spacing)[0] for k in (VERTICAL, HORIZONTAL)])
        measured = np.where(np.isfinite(measured), measured, target)   # no struts at all
        if np.all(np.abs(measured - target) <= p.voxel_size / 4):
            break
        scale *= target / measured
    net.counts.update({"vertical_primitive_mm": round(float(p.th_vertical * scale[0]), 5),
                       "horizontal_primitive_mm": round(float(p.th_horizontal * scale[1]), 5),
                       "tb_th_vertical_mm": round(float(measured[0]), 5),
                       "tb_th_horizontal_mm": round(float(measured[1]), 5)})
    return net


def _lateral(rng, sd, shape=()):
    """Random lateral (xy) vectors with normal components of SD ``sd``, as (..., 3)."""
    v = np.zeros((*shape, 3))
    v[..., :2] = rng.normal(0.0, sd, (*shape, 2))
    return v


def _union(sdfs):
    """Signed distance of the union of the panels ``sdfs`` (the largest value: bone is > 0)."""
    return lambda x, y, z: reduce(np.maximum, (f(x, y, z) for f in sdfs))


def perpendicular(rng, d, sd):
    """A random vector perpendicular to ``d`` with normal components of SD ``sd``."""
    v = rng.normal(0.0, sd, 3)
    u = d / np.linalg.norm(d)
    return v - (v @ u) * u


def _build(p: VertebralParams, band: float, scale) -> Network:
    """One generation with primitive thicknesses ``scale x (th_vertical, th_horizontal)``."""
    rng = np.random.default_rng(p.seed)
    h, size = p.voxel_size, p.size
    n = int(round(size / h))
    field = _Field(n, h, band)
    total = float(n ** 3)
    prims, kinds, volumes = [], [], []
    bone = 0.0

    def lognormal(count):
        s2 = np.log(1 + p.thickness_cv ** 2)
        return rng.lognormal(-s2 / 2, np.sqrt(s2), count)   # mean 1, CV thickness_cv

    def radius(mean, factor):
        # At least one voxel: a thinner rod holds no voxel centre on parts of its length
        # (not resolved at this voxel size; it would vanish under the first erosion).
        return max(mean * factor, h)

    def add(kind, pts, pad, sdf, accept=None):
        """Add a primitive around the points ``pts`` (padded by ``pad`` mm); with
        ``accept(step)`` only if it returns True. Returns whether it was added (None if
        it lies outside the image)."""
        nonlocal bone
        pts = np.asarray(pts)
        lo, hi = pts.min(axis=0) - pad, pts.max(axis=0) + pad
        ev = field.evaluate(lo, hi, sdf)
        if ev is None:
            return None
        step, own = field.change(*ev)
        if accept is not None and not accept(step):
            return False
        field.apply(kind, *ev)
        bone += step
        prims.append((len(kinds), kind, lo, hi, sdf))
        kinds.append(kind)
        volumes.append(own * h ** 3)
        return True

    # 1. Columns: blue-noise axes (Mitchell's best candidate), so the pattern is irregular
    #    but columns keep a minimum distance, as in real bone; nodes jittered along z and
    #    offset sideways; one bowed trabecula between consecutive nodes.
    # The specimen is cut from a larger bone: columns fill a square one column spacing
    # wider than the cube on every side, so trabeculae run through the side faces as they
    # do in a cored specimen, and the columns' pattern is the same at the faces as inside.
    s = 1.0 / p.tb_n
    margin = s
    count = max(int(round(((size + 2 * margin) * p.tb_n) ** 2)), 3)
    xy = best_candidate(count, size + 2 * margin, rng) - margin
    nl = max(int(round(size / p.level_spacing)), 1)
    dz = size / nl
    levels = (np.arange(-1, nl + 1) + 0.5) * dz
    nodes = np.concatenate([np.broadcast_to(xy[:, None, :], (count, nl + 2, 2)),
                            np.broadcast_to(levels[None, :, None], (count, nl + 2, 1))], axis=2).copy()
    nodes[:, :, 2] += rng.uniform(-0.2 * dz, 0.2 * dz, (count, nl + 2))
    nodes += _lateral(rng, p.node_offset, (count, nl + 2))
    r_v = scale[0] * p.th_vertical / 2
    for rod, f in zip(nodes, lognormal(count * (nl + 1)).reshape(count, nl + 1)):
        for a, b, fk in zip(rod[:-1], rod[1:], f):
            bow = _lateral(rng, p.curvature * np.linalg.norm(b - a))
            r = radius(r_v, fk)
            add(VERTICAL, [a, b, (a + b) / 2 + bow], r, bent_rod(a, b, bow, r))
    segments = len(kinds)

    # Neighbouring columns: short Delaunay edges in the xy plane.
    tri = Delaunay(xy)
    edges = {tuple(sorted((int(t[i]), int(t[(i + 1) % 3])))) for t in tri.simplices for i in range(3)}
    long_edges = sorted(e for e in edges if np.linalg.norm(xy[e[0]] - xy[e[1]]) >= 1.5 * s)
    edges = sorted(e for e in edges if np.linalg.norm(xy[e[0]] - xy[e[1]]) < 1.5 * s)

    # 2. Horizontal trabeculae node to node on a fraction strut_fraction of the sites
    #    (neighbour pair x level): the connectivity, which falls with age.
    r_h = scale[1] * p.th_horizontal / 2
    sites = [(e, k) for e in edges for k in range(1, nl + 1)]
    chosen = rng.permutation(len(sites))[:int(round(p.strut_fraction * len(sites)))]
    for c, f in zip(chosen, lognormal(len(chosen))):
        (i, j), k = sites[c]
        a, b = nodes[i, k], nodes[j, k]
        bow = perpendicular(rng, b - a, p.curvature * np.linalg.norm(b - a))
        r = radius(r_h, f)
        add(HORIZONTAL, [a, b, (a + b) / 2 + bow], r, bent_rod(a, b, bow, r))
    n_struts = len(kinds) - segments    # those that reach into the cube

    # 2b. Oblique struts and horizontal plates (off unless their fractions are > 0).
    from fem.specimen import transverse
    n_oblique = transverse.add_oblique_struts(p, nodes, edges, rng, add, lognormal, radius, r_h)
    h_plates = transverse.add_horizontal_plates(
        p, nodes, transverse.neighbour_triangles(tri.simplices, edges), rng, add, lognormal,
        radius, 2 * r_h) if p.horizontal_plates > 0 else (0, 0)
    if p.oblique_fraction > 0 or p.horizontal_plates > 0:
        counts_extra = {"oblique_struts": n_oblique, "horizontal_plates": h_plates[0],
                        "perforated_horizontal_plates": h_plates[1]}
    else:
        counts_extra = {}
    rods_struts_bv_tv = bone / total
    if rods_struts_bv_tv > p.bv_tv * 1.02:
        raise BonefemError(
            f"vertebral generator: the rods and struts alone have BV/TV {rods_struts_bv_tv:.4f} > "
            f"target {p.bv_tv}; lower tb_n, the thicknesses, strut_fraction, oblique_fraction or "
            "horizontal_plates")

    # 3. Vertical plates on panels (neighbour pair x interval between node levels), in
    #    random order, until BV/TV reaches the target: the plate fraction is what is free.
    #    A plate covers plate_span consecutive intervals from its panel's (a wall).
    m = max(int(p.plate_span), 1)
    if m > nl + 1:
        raise BonefemError(f"vertebral generator: plate_span {p.plate_span} > the {nl + 1} node "
                           "intervals of the specimen; expected an integer 1 <= plate_span <= that")
    panels = [(e, k) for e in edges for k in range(nl + 2 - m)]
    plates = holes = stacked = 0
    t_v = 2 * r_v
    occupied = set()
    order = rng.permutation(len(panels))
    n_panels = len(panels)
    # fallback panels on the longer Delaunay edges (only a specimen of a few columns needs them)
    panels += [(e, k) for e in long_edges for k in range(nl + 2 - m)]
    # A plate spans m node intervals: first only panels with no plate directly above or
    # below on the same pair of columns, so plates do not stack into walls through the
    # specimen; stacked panels only when those cannot reach BV/TV (small or dense specimens).
    for stacking in (False, True):
        # the fallback order is drawn only when needed, so that it leaves the rest unchanged
        for c in (np.concatenate([order, n_panels + rng.permutation(len(panels) - n_panels)])
                  if stacking else order):
            if bone / total >= p.bv_tv:
                break
            (i, j), k = panels[c]
            covered = [((i, j), k + q) for q in range(m)]
            if any(q in occupied for q in covered) or (not stacking and (
                    ((i, j), k - 1) in occupied or ((i, j), k + m) in occupied)):
                continue
            sdfs, hole_count = [], 0
            for q in range(m):
                corners = np.array([nodes[i, k + q], nodes[j, k + q], nodes[j, k + q + 1],
                                    nodes[i, k + q + 1]])
                hole = None
                if rng.uniform() < p.plate_holes and not stacking:   # the fallback fills, unperforated
                    u, v = rng.uniform(0.4, 0.6, 2)
                    centre = ((1 - u) * (1 - v) * corners[0] + u * (1 - v) * corners[1]
                              + u * v * corners[2] + (1 - u) * v * corners[3])
                    width = min(np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[3] - corners[0]))
                    hole = (centre, rng.uniform(0.15, 0.25) * width)   # rim >= 0.15 width
                sdfs.append(plate(corners, t_v, hole))
                hole_count += hole is not None
            sdf = sdfs[0] if m == 1 else _union(sdfs)
            wall = np.concatenate([nodes[i, k:k + m + 1], nodes[j, k:k + m + 1]])
            # Take the last plate only if it brings BV/TV closer to the target.
            added = add(VERTICAL, wall, t_v, sdf,
                        accept=lambda step: (bone + step) / total - p.bv_tv <= p.bv_tv - bone / total)
            if added is False:
                break
            if added:
                plates += 1
                holes += hole_count
                stacked += stacking
                occupied.update(covered)
        else:
            continue
        break
    if bone / total < p.bv_tv * 0.9:
        raise BonefemError(
            f"vertebral generator: plates on every panel give BV/TV {bone / total:.4f} < target "
            f"{p.bv_tv}; raise tb_n, the thicknesses or strut_fraction")
    if bone / total < p.bv_tv * 0.98:
        # A specimen of a few columns has few panels: thicken everything uniformly (a
        # surface move, found by root-finding) by the last few percent of bone.
        from scipy.optimize import brentq

        def gap(d):
            return field._fraction_sum(np.maximum(field.phi[VERTICAL], field.phi[HORIZONTAL]) + d) / total - p.bv_tv
        d = brentq(gap, 0.0, h, xtol=1e-7)
        field.thicken(d)
        bone = field._fraction_sum(field.union())
        counts_extra["thickened_mm"] = round(float(d), 6)

    phi = field.union()
    kind = np.where(field.phi[VERTICAL] >= field.phi[HORIZONTAL], VERTICAL, HORIZONTAL).astype(np.int8)
    kind[phi <= -h / 2] = 0
    counts = {"vertical_trabeculae": count, "vertical_segments": segments,
              "horizontal_struts": n_struts, "strut_sites": len(sites), "plates": plates,
              "perforated_plates": holes, "stacked_plates": stacked, "panels": n_panels,
              "plate_fraction": round(plates / max(n_panels, 1), 4),
              "rods_struts_bv_tv": round(rods_struts_bv_tv, 5), "bv_tv": round(bone / total, 5),
              **counts_extra}
    return Network(phi, kind, (h, h, h), counts, asdict(p), field.phi,
                   np.asarray(kinds, np.int8), np.asarray(volumes), prims, band)
