"""Stochastic basic-multicellular-unit (BMU) remodelling of a level-set specimen.

Each time step (default one month):

1. Formation. Every open BMU past its resorption phase refills its cavity
   progressively: at age a the surface has advanced by
   ``balance x clip((a - Rs.P) / FP, 0, 1) x g``, so a cavity is refilled at a constant
   rate over the formation period FP (not in one deposit at the end). balance < 1
   leaves a deficit, balance > 1 builds bone. New bone enters at the primary mineral
   content and then mineralises (fem.remodel.mineral). A BMU closes at age Rs.P + FP.
2. Activation. Candidates are a Poisson point process in the whole box at a fixed
   maximum rate ``ACF_MAX`` (per year, per unit of bone surface); a candidate that
   falls on a quiescent surface voxel (|phi| < h/2 and no open BMU there: reversal and
   formation surfaces are not resorbed) is accepted with probability
   ``Ac.f / ACF_MAX x BS / QS`` (thinning; the BS / QS factor keeps Ac.f the fraction of
   the whole surface activated per year). Candidates, their acceptance numbers and
   their cavity sizes come from a stream of their own for each step
   (``default_rng([seed, step, purpose])``) and do not depend on the state, so two
   arms with the same seed share their candidates: an arm with a slightly higher Ac.f
   accepts the same BMUs plus a few (common random numbers).
3. Resorption. A BMU digs its cavity at once (the 40-day resorption phase is about one
   step): bone is carved away down to a flat-bottomed floor ``D (1 - (rho / r)^4)``
   below the tangent plane at the site, for tangential distance rho < r, whose mean
   depth over the footprint is 2 D / 3 (the erosion depth E.De). Carving (phi <-
   min(phi, -c), c the cavity's signed distance) removes only bone above the floor, so
   the far side of the trabecula and trabeculae across the marrow are untouched; the
   retreat field is stored and refilled. The cavity does not dig into the footprint of
   another open BMU. Its footprint area pi r^2 and maximum depth D are drawn from normal
   distributions (docs/model.md: sources).
4. Perforation. A cavity perforates when its depth at the site reaches through the
   local thickness of the trabecula, measured along the inward normal at the site (2 x
   the largest signed distance on that ray). A perforating cavity is never refilled (no
   surface is left to build on; Liu et al. 2008). Pieces of bone then left touching no
   face of the specimen are resorbed (fem.specimen.islands.attached_to_boundary): a
   piece that reaches a face is attached to the rest of the vertebral body beyond it.

Units: mm, years. Volume bookkeeping is exact: bone volume(t) = bone volume(0) -
resorbed + formed, with volumes from the voxels' partial-volume fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from fem.remodel.cavities import ABOVE, cavity_distance, project
from fem.remodel.histomorphometry import record as _record
from fem.remodel.mineral import mineralise, mix
from fem.specimen.islands import attached_to_boundary
from fem.specimen.levelset import voxel_edge, volume_fraction

# Maximum activation frequency of the candidate process (1/yr). Every arm thins the same
# candidates, so it must be the same for all of them and above every arm's Ac.f x BS/QS
# (beyond it activation saturates).
ACF_MAX = 8.0
# Signed distance given to resorbed loose pieces: deeper than any refill can reach.
GONE = -1.0
# Streams of random numbers, one per purpose and step.
CANDIDATES, MINERAL_HISTORY = 1, 2


@dataclass
class RemodelParams:
    """BMU model parameters (docs/model.md gives each one's source)."""

    activation_frequency: float = 0.3    # 1/yr, fraction of the bone surface activated per year
    resorption_depth: float = 0.065      # mm, maximum cavity depth D (mean depth 2 D / 3)
    resorption_depth_sd: float = 0.015   # mm
    cavity_area: float = 0.0806          # mm^2, mean footprint
    cavity_area_sd: float = 0.0222       # mm^2
    resorption_days: float = 40.0
    formation_days: float = 160.0
    balance: float = 0.95                # formed / resorbed volume of a BMU
    primary_mineral: float = 0.6         # relative mineral content of new bone
    tau_secondary: float = 3.0           # years, secondary mineralisation
    quality: float = 1.0                 # matrix quality of bone formed now
    # Mechanism search (docs/model.md section 15), off by default: when thickness_ref
    # (mm) is set, a BMU's balance is balance + thickness_shift x min(T, 2 ref) / ref,
    # T the local thickness under its site when it was dug (cavities dug before, with
    # no T, take T = ref).
    thickness_ref: float | None = None
    thickness_shift: float = 0.0
    # Mechanism search, off by default: when thin_ref (mm) is set, an extra activation
    # frequency thin_activation (1/yr) starts BMUs only on surface whose local thickness
    # is below thin_ref (the drug's extra resorption goes to thin trabeculae).
    thin_ref: float | None = None
    thin_activation: float = 0.0


@dataclass
class Bmu:
    box: tuple           # slices of the cavity's box
    depth: np.ndarray    # (box shape) float32, surface retreat g dug by the cavity, mm
    start: float         # activation time, years
    resorbed: float      # mm^3 dug
    area: float          # mm^2, bone surface in the footprint when dug
    filled: float = 0.0  # fraction of g refilled so far
    formed: float = 0.0  # mm^3 refilled so far
    thickness: float | None = None  # mm, local thickness at the site (thickness_ref only)


@dataclass
class BoneState:
    """A specimen being remodelled.

    phi : (nx, ny, nz) float32 signed distance to the bone surface, mm (> 0 in bone)
    mineral : (nx, ny, nz) float32 relative mineral content of the bone in each voxel
    quality : (nx, ny, nz) float32 matrix-quality multiplier of the bone in each voxel
    open_count : (nx, ny, nz) int16 number of open BMUs whose footprint covers a voxel
    spacing : voxel edge (mm); time : years; bmus : open cavities
    """

    phi: np.ndarray
    mineral: np.ndarray
    quality: np.ndarray
    spacing: tuple
    time: float = 0.0
    bmus: list = field(default_factory=list)
    resorbed: float = 0.0     # mm^3 since the start
    formed: float = 0.0       # mm^3 since the start
    perforations: int = 0
    activations: int = 0
    open_count: np.ndarray | None = None
    # Completed cycles: sums of resorbed and formed volume and footprint area (E.De, W.Th).
    closed: dict = field(default_factory=lambda: {"n": 0, "resorbed": 0.0, "formed": 0.0, "area": 0.0})
    events: list = field(default_factory=list)   # perforations: time, depth, thickness (mm)

    def __post_init__(self):
        if self.open_count is None:
            self.open_count = np.zeros(self.phi.shape, np.int16)

    @classmethod
    def from_levelset(cls, phi, spacing):
        phi = np.asarray(phi, np.float32)
        ones = np.ones(phi.shape, np.float32)
        return cls(phi.copy(), ones, ones.copy(), tuple(spacing))

    def copy(self) -> "BoneState":
        return BoneState(self.phi.copy(), self.mineral.copy(), self.quality.copy(), self.spacing,
                         self.time, [Bmu(**vars(b)) for b in self.bmus], self.resorbed, self.formed,
                         self.perforations, self.activations, self.open_count.copy(),
                         dict(self.closed), list(self.events))

    @property
    def fraction(self) -> np.ndarray:
        return volume_fraction(self.phi, self.spacing)


def band_surface_area(phi, spacing) -> float:
    """Bone surface (mm^2) as the derivative of bone volume with respect to a surface
    move: (number of partial voxels) x h^2. Cheap, and consistent with the volumes."""
    h = voxel_edge(spacing)
    return float(np.count_nonzero(np.abs(phi) < h / 2)) * h * h


def _normal(phi, spacing, idx) -> np.ndarray:
    """Unit normal pointing out of bone at voxel ``idx`` (central differences)."""
    sp = np.asarray(spacing, float)
    grad = np.zeros(3)
    for ax in range(3):
        lo, hi = list(idx), list(idx)
        lo[ax] = max(idx[ax] - 1, 0)
        hi[ax] = min(idx[ax] + 1, phi.shape[ax] - 1)
        if hi[ax] > lo[ax]:
            grad[ax] = (phi[tuple(hi)] - phi[tuple(lo)]) / ((hi[ax] - lo[ax]) * sp[ax])
    norm = np.linalg.norm(grad)
    return -grad / norm if norm > 0 else np.array([0.0, 0.0, 1.0])


def _site(phi, spacing, idx):
    """The surface point (mm, (3,)) of surface voxel ``idx`` and the outward unit normal
    there: the voxel centre moved onto the trilinear surface phi = 0 (cavities.project).

    A voxel's value along its central-difference normal places the point off the
    surface near edges, junctions and the cube's faces, and a chord measured from there
    can end at its first sample: a spurious perforation (docs/trial.md, "Spurious
    perforations"). Where the projection does not land on a clean surface point (a
    ridge, or a field far from a distance), the voxel's own placement is kept.
    """
    h = voxel_edge(spacing)
    centre = (np.asarray(idx) + 0.5) * np.asarray(spacing, float)
    pts, v, g = project(phi, spacing, centre[None, :], steps=8)
    site, grad = pts[0], g[0]
    norm = float(np.linalg.norm(grad))
    # The interpolant's gradient is shorter than 1 near kinks and on a scan's grey-level
    # level set (0.4-0.9), so Newton needs more steps and can land a little farther than
    # the voxel's own |phi| <= h/2: up to 1.5 h is the same surface.
    if (norm > 0.1 and np.linalg.norm(site - centre) <= 1.5 * h
            and abs(float(v[0])) < h / 50):
        return site, -grad / norm
    n = _normal(phi, spacing, tuple(idx))
    return centre + float(phi[tuple(idx)]) * n, n


def _cavity(phi, spacing, centre_idx, depth, radius):
    """The cavity of a BMU at a surface voxel: box slices, the signed distance field
    ``c`` of the cavity region in that box (mm, > 0 inside), the site (mm) and the
    outward normal.

    The cavity is the region within ``radius`` of the normal through the site, from
    ``depth x (1 - (rho / r)^4)`` below the tangent plane up to ABOVE (0.08 mm, fixed in
    mm so that a cavity cuts the same bone at every voxel edge) above it. Carving it
    (phi <- min(phi, -c)) removes only bone above the cavity floor: the far side of a
    trabecula thicker than the cavity, and trabeculae across the marrow, are untouched.
    """
    h = voxel_edge(spacing)
    sp = np.asarray(spacing, float)
    site, n = _site(phi, spacing, centre_idx)
    reach = max(radius, depth) + 3 * h
    lo = np.maximum(np.floor((site - reach) / sp).astype(int), 0)
    hi = np.minimum(np.ceil((site + reach) / sp).astype(int) + 1, phi.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    x, y, z = np.meshgrid(*(((np.arange(a, b) + 0.5) * s) for a, b, s in zip(lo, hi, sp)),
                          indexing="ij", sparse=True)
    c = cavity_distance(x, y, z, site, n, depth, radius, ABOVE)
    return box, c.astype(np.float32), site, n


def carve(local_phi, c) -> np.ndarray:
    """Surface retreat (mm, >= 0) that carving the cavity ``c`` makes in ``local_phi``."""
    return np.maximum(local_phi + c, 0.0).astype(np.float32)


def local_thickness_at(phi, spacing, site, normal, reach) -> float:
    """Thickness (mm) of the trabecula under a surface site: the chord along the inward
    normal from where the ray enters bone to where the signed distance first turns
    negative again (sampled every h/4, linearly interpolated). A chord is robust to a
    normal a few degrees off (it shortens as the cosine), unlike twice the largest
    distance on the ray.

    ``inf`` if the ray is still in bone ``reach`` mm deep, if it leaves the box while in
    bone (a trabecula cut by the cube's face is not thin because it is cut), or if it
    leaves the box before it enters bone (a site on the cube's face whose bone lies
    beyond it); none of these was a thickness, and each counted as a perforation until
    8 December 2026 (docs/trial.md, "Spurious perforations"). A site on the surface whose
    first sample is already out of bone gives h/4; a site on a partial voxel whose
    interpolant nowhere reaches zero gives the voxel's bone, h/2 + phi (< h/2).
    """
    sp = np.asarray(spacing, float)
    h = voxel_edge(spacing)
    s = np.arange(h / 4, reach + h / 4, h / 4)
    pts = site[None, :] - s[:, None] * normal[None, :]
    vals = ndimage.map_coordinates(phi, (pts / sp - 0.5).T, order=1, mode="nearest")
    inside = np.all((pts >= 0.0) & (pts <= np.asarray(phi.shape) * sp), axis=1)
    at_site = float(ndimage.map_coordinates(phi, (site / sp - 0.5)[:, None], order=1, mode="nearest")[0])
    lead = s <= h / 2 + 1e-12
    bone = np.flatnonzero(vals >= 0)
    if at_site >= -h / 50:
        # on the surface: bone thinner than a sample step gives a chord of h/4
        k0 = 0
    elif bone.size and lead[bone[0]] and np.all(inside[:bone[0] + 1]):
        k0 = bone[0]                 # off the surface: start where the ray enters bone
    elif not np.all(inside[lead]):
        return float("inf")          # a site on the cube's face, its bone beyond it
    else:
        # bone no sample reaches: a partial voxel whose interpolant stays below zero,
        # as thick as its bone fraction (fem.specimen.levelset) makes it
        return float(np.clip(h / 2 + at_site, 0.0, h / 2))
    if k0 == 0:
        entry = 0.0
    else:     # zero crossing between samples k0-1 (< 0) and k0 (>= 0)
        entry = float(s[k0 - 1] + (s[k0] - s[k0 - 1]) * vals[k0 - 1] / (vals[k0 - 1] - vals[k0]))
    out = k0 + np.flatnonzero(vals[k0:] < 0)
    if out.size == 0 or not np.all(inside[:out[0] + 1]):
        return float("inf")
    k = out[0]
    if k == 0:
        return float(s[0])
    # zero crossing between samples k-1 (>= 0) and k (< 0)
    return float(s[k - 1] + (s[k] - s[k - 1]) * vals[k - 1] / (vals[k - 1] - vals[k])) - entry


def _candidates(state: BoneState, dt: float, area: float, seed: int, step: int, purpose: int):
    """Candidate sites of one step: voxel indices, acceptance numbers, normal deviates
    for depth and area. Independent of the state's geometry (common random numbers)."""
    h = voxel_edge(state.spacing)
    shape = np.asarray(state.phi.shape)
    volume = float(np.prod(shape * np.asarray(state.spacing)))
    # Points per mm^3 such that the surface band (BS x h) receives ACF_MAX dt BS / area.
    rate = ACF_MAX * dt / (area * h)
    rng = np.random.default_rng([seed, step, purpose])
    n = rng.poisson(rate * volume)
    idx = np.minimum((rng.random((n, 3)) * shape).astype(int), shape - 1)
    u, zd, za = rng.random(n), rng.standard_normal(n), rng.standard_normal(n)
    return idx, u, zd, za


def _sizes(p: RemodelParams, zd, za):
    depth = max(p.resorption_depth + p.resorption_depth_sd * zd, 0.2 * p.resorption_depth)
    area = max(p.cavity_area + p.cavity_area_sd * za, 0.2 * p.cavity_area)
    return depth, np.sqrt(area / np.pi)


def _balance(p: RemodelParams, b: Bmu) -> float:
    """Formed / resorbed volume of one BMU (p.balance unless thickness_ref is set)."""
    if p.thickness_ref is None:
        return p.balance
    t = p.thickness_ref if b.thickness is None else min(b.thickness, 2.0 * p.thickness_ref)
    return p.balance + p.thickness_shift * t / p.thickness_ref


def _form(state: BoneState, p: RemodelParams, t_end: float, vox: float) -> None:
    """Progressive refilling of every open BMU to its fill at ``t_end``; closes finished ones."""
    rs, fp = p.resorption_days / 365.25, p.formation_days / 365.25
    still_open = []
    for b in state.bmus:
        age = t_end - b.start
        target = _balance(p, b) * min(max((age - rs) / fp, 0.0), 1.0)
        if target > b.filled:
            local = state.phi[b.box]
            f0 = volume_fraction(local, state.spacing)
            local += np.float32(target - b.filled) * b.depth
            added = volume_fraction(local, state.spacing) - f0
            b.filled = target
            dv = float(added.sum()) * vox
            b.formed += dv
            state.formed += dv
            state.mineral[b.box] = mix(f0, state.mineral[b.box], added, p.primary_mineral)
            state.quality[b.box] = mix(f0, state.quality[b.box], added, p.quality)
        if age >= rs + fp:
            state.open_count[b.box] -= (b.depth > 0).astype(np.int16)
            c = state.closed
            c["n"] += 1
            c["resorbed"] += b.resorbed
            c["formed"] += b.formed
            c["area"] += b.area
        else:
            still_open.append(b)
    state.bmus = still_open


def refilled(state: BoneState, p: RemodelParams) -> np.ndarray:
    """The level set of ``state`` with every open cavity closed: the remodelling space.

    Each open BMU's surface is raised by the retreat it has dug and not yet refilled, as
    :func:`_form` raises it (``phi += (target - filled) x depth`` in its box), to the
    target min(balance, 1): a BMU's deficit (balance < 1) is a permanent loss, not open
    space, and its overfill (balance > 1) is new bone still to come, not a cavity.
    Perforating cavities are not among the open BMUs (never refilled), so they stay.
    Returns a new (nx, ny, nz) float32 array, mm; the state is not changed.
    """
    phi = state.phi.copy()
    for b in state.bmus:
        target = min(_balance(p, b), 1.0)
        if target > b.filled:
            phi[b.box] += np.float32(target - b.filled) * b.depth
    return phi


def activate(state: BoneState, p: RemodelParams, centre, depth: float, radius: float,
             band=None) -> bool:
    """Dig one cavity (maximum depth ``depth``, footprint radius ``radius``, mm) at the
    surface voxel ``centre``; returns True if it perforated (then it is not refilled)."""
    h = voxel_edge(state.spacing)
    vox = float(np.prod(state.spacing))
    band = np.abs(state.phi) < h / 2 if band is None else band
    box, c, site, normal = _cavity(state.phi, state.spacing, centre, depth, radius)
    g = carve(state.phi[box], c)
    g[state.open_count[box] > 0] = 0.0       # no digging into another open BMU
    # The perforation test needs the chord only up to the depth; the thickness-scaled
    # balance needs it up to 2 x thickness_ref (beyond, it is capped).
    reach = 1.5 * depth if p.thickness_ref is None else max(1.5 * depth, 2.0 * p.thickness_ref)
    thickness = local_thickness_at(state.phi, state.spacing, site, normal, reach)
    local = state.phi[box]
    f0 = volume_fraction(local, state.spacing)
    area = float(np.count_nonzero(band[box] & (g > 0))) * h * h
    local -= g
    dv = float((f0 - volume_fraction(local, state.spacing)).sum()) * vox
    state.resorbed += dv
    state.activations += 1
    if thickness <= depth:
        state.perforations += 1
        state.events.append({"time": state.time, "depth": depth, "thickness": thickness})
        return True
    state.open_count[box] += (g > 0).astype(np.int16)
    state.bmus.append(Bmu(box, g, state.time, dv, area,
                          thickness=None if p.thickness_ref is None else thickness))
    return False


def step(state: BoneState, p: RemodelParams, dt: float, seed: int, step_index: int) -> None:
    """Advance the state by ``dt`` years: formation, activation, resorption, mineralisation.

    ``seed`` and ``step_index`` select this step's candidates (common random numbers).
    """
    h = voxel_edge(state.spacing)
    vox = float(np.prod(state.spacing))
    t_end = state.time + dt
    _form(state, p, t_end, vox)

    band = np.abs(state.phi) < h / 2
    quiescent = band & (state.open_count == 0)
    n_band, n_q = int(band.sum()), int(quiescent.sum())
    idx, u, zd, za = _candidates(state, dt, p.cavity_area, seed, step_index, CANDIDATES)
    if n_q == 0 or p.activation_frequency <= 0:
        accept_below = 0.0
    else:
        # Saturates when nearly all the surface is open (Ac.f x BS/QS > ACF_MAX): then
        # every candidate on quiescent surface starts a BMU and the realised Ac.f is lower.
        accept_below = min(p.activation_frequency / ACF_MAX * n_band / n_q, 1.0)
    # Extra candidates above accept_below start BMUs on thin surface only (thin_ref set);
    # the others are those of an arm without the option (common random numbers).
    accept_thin = accept_below
    if p.thin_ref is not None and n_q > 0:
        accept_thin = min((p.activation_frequency + p.thin_activation) / ACF_MAX * n_band / n_q, 1.0)
    perforated_any = False
    for k in np.flatnonzero(u < accept_thin):
        centre = tuple(idx[k])
        if quiescent[centre] and not state.open_count[centre]:
            if u[k] >= accept_below and not _is_thin(state, centre, p.thin_ref):
                continue
            perforated_any |= activate(state, p, centre, *_sizes(p, zd[k], za[k]), band=band)
    if perforated_any:
        _resorb_fragments(state)

    mineralise(state.mineral, dt, p.tau_secondary)
    state.time = t_end


def _is_thin(state: BoneState, centre, ref: float) -> bool:
    """Whether the trabecula under surface voxel ``centre`` is thinner than ``ref`` (mm)."""
    site, n = _site(state.phi, state.spacing, centre)
    return local_thickness_at(state.phi, state.spacing, site, n, ref) < ref


def _resorb_fragments(state: BoneState) -> None:
    """Bone touching no face of the specimen is resorbed (counted as resorbed)."""
    h = voxel_edge(state.spacing)
    bone = state.phi > -h / 2
    kept, removed = attached_to_boundary(bone)
    if not removed:
        return
    loose = bone & ~kept
    f = volume_fraction(state.phi[loose], state.spacing)
    state.resorbed += float(f.sum()) * float(np.prod(state.spacing))
    state.phi[loose] = GONE


def simulate(state: BoneState, params: RemodelParams, years: float, seed: int,
             dt: float = 1.0 / 12.0, checkpoints=(), on_step=None):
    """Remodel ``state`` in place for ``years``.

    Returns ``(history, snapshots)``: one dict per step (and one for the start) with
    BV/TV, BMD (mg HA/cm^3), relative tissue mineral density, BS, open BMUs, ES/BS,
    OS/BS, remodelling space (fraction of BV), mean erosion depth and wall thickness of
    the completed cycles (mm) and the cumulative activations, perforations, resorbed and
    formed volumes (mm^3); and ``{time: BoneState copy}`` at the requested checkpoint
    times (years from the start of this call, rounded to steps). ``on_step(row)`` is
    called after every step. Step i of a call draws the stream ``[seed, i, purpose]``.
    """
    n = int(round(years / dt))
    want = {int(round(c / dt)) for c in checkpoints}
    t0 = state.time
    history = [_record(state, params)]
    snapshots = {0.0: state.copy()} if 0 in want else {}
    for i in range(1, n + 1):
        step(state, params, dt, seed, i)
        row = _record(state, params)
        history.append(row)
        if on_step:
            on_step(row)
        if i in want:
            snapshots[round(state.time - t0, 6)] = state.copy()
    return history, snapshots


def mineral_history(state: BoneState, params: RemodelParams, years: float, seed: int,
                    dt: float = 1.0 / 12.0) -> float:
    """Give the bone the mineral mosaic of ``years`` of past remodelling, geometry unchanged.

    Cavities are drawn as in :func:`simulate` (stream MINERAL_HISTORY) and replaced at
    once by new bone at the primary mineral content (balance 1, no change of phi), which
    then mineralises. After about three tau the mean and the spread of the mineral
    content are those of the steady state of the turnover, with a patchwork of packets
    of different ages instead of a uniform deficit. Returns the renewal rate (bone volume
    renewed per year over the bone volume, 1/yr).
    """
    h = voxel_edge(state.spacing)
    n = int(round(years / dt))
    renewed_total = 0.0
    for i in range(1, n + 1):
        band = np.abs(state.phi) < h / 2
        idx, u, zd, za = _candidates(state, dt, params.cavity_area, seed, i, MINERAL_HISTORY)
        for k in np.flatnonzero(u < params.activation_frequency / ACF_MAX):
            centre = tuple(idx[k])
            if not band[centre]:
                continue
            depth, radius = _sizes(params, zd[k], za[k])
            box, c, _, _ = _cavity(state.phi, state.spacing, centre, depth, radius)
            local = state.phi[box]
            g = carve(local, c)
            f0 = volume_fraction(local, state.spacing)
            renewed = f0 - volume_fraction(local - g, state.spacing)
            renewed_total += float(renewed.sum())
            state.mineral[box] = mix(f0 - renewed, state.mineral[box], renewed, params.primary_mineral)
        mineralise(state.mineral, dt, params.tau_secondary)
    return renewed_total / max(years, 1e-30) / max(float(state.fraction.sum()), 1e-30)
