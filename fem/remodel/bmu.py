"""Stochastic basic-multicellular-unit (BMU) remodelling of a level-set specimen.

Each time step (default one month):

1. Activation. New BMUs start on the bone surface at the activation frequency Ac.f
   (per year: the fraction of the surface that starts a remodelling cycle per year):
   their number is Poisson(Ac.f x dt x BS / mean cavity area). Sites are surface voxels
   drawn uniformly by a seeded RNG; the site is the voxel centre projected on phi = 0.
2. Resorption. A BMU digs a cavity at once (the 40-day resorption phase is shorter
   than a step): the surface retreats by the depth profile
   ``g(rho) = D (1 - rho^2 / r^2)^3`` for tangential distance rho < r, with maximum
   depth D and footprint area pi r^2 drawn from normal distributions (ANCHORS.md:
   30.1 +- 8.6 um, 80.6 +- 22.2 x 10^3 um^2). The cubic profile makes the cavity
   volume pi r^2 D / 4, which matches the measured mean volume (614 x 10^3 um^3 =
   80.6 x 10^3 um^2 x 30.1 um / 4).
3. Perforation. A cavity perforates when it changes the topology of the bone around it:
   it makes a hole through a plate or severs a rod, i.e. the Euler characteristic or
   the number of bone components in the cavity's box changes. Topology is that of the
   voxels with bone (f > 0), which are the finite elements: the mechanical connectivity. A perforating cavity is
   never refilled (no surface is left to build on; Liu et al. 2008), and bone that the
   perforation disconnects from the specimen is resorbed.
4. Formation. ``resorption_days + formation_days`` (40 + 160 days) after activation the
   cavity is refilled: the surface advances by ``balance x g``. balance < 1 leaves a
   deficit (age-related loss), balance > 1 builds bone (an anabolic BMU). New bone
   enters at the primary mineral content and then mineralises (fem.remodel.mineral).

Units: mm, years. Volume bookkeeping is exact: bone volume(t) = bone volume(0) -
resorbed + formed, with volumes from the voxels' partial-volume fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.measure import euler_number

from fem.remodel.mineral import bmd, mineralise, mix
from fem.specimen.levelset import voxel_edge, volume_fraction


@dataclass
class RemodelParams:
    """BMU model parameters (docs/model.md gives each one's source)."""

    activation_frequency: float = 0.5    # 1/yr
    resorption_depth: float = 0.0301     # mm, mean maximum cavity depth
    resorption_depth_sd: float = 0.0086  # mm
    cavity_area: float = 0.0806          # mm^2, mean footprint
    cavity_area_sd: float = 0.0222       # mm^2
    resorption_days: float = 40.0
    formation_days: float = 160.0
    balance: float = 0.95                # formed / resorbed volume of a BMU
    primary_mineral: float = 0.6         # relative mineral content of new bone
    tau_secondary: float = 3.0           # years, secondary mineralisation
    quality: float = 1.0                 # matrix quality of bone formed now


@dataclass
class Bmu:
    box: tuple          # slices of the cavity's box
    depth: np.ndarray   # (box shape) float32, surface retreat g, mm
    end: float          # time of refill, years


@dataclass
class BoneState:
    """A specimen being remodelled.

    phi : (nx, ny, nz) float32 signed distance to the bone surface, mm (> 0 in bone)
    mineral : (nx, ny, nz) float32 relative mineral content of the bone in each voxel
    quality : (nx, ny, nz) float32 matrix-quality multiplier of the bone in each voxel
    spacing : voxel edge (mm); time : years; bmus : open cavities awaiting formation
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

    @classmethod
    def from_levelset(cls, phi, spacing):
        phi = np.asarray(phi, np.float32)
        ones = np.ones(phi.shape, np.float32)
        return cls(phi.copy(), ones, ones.copy(), tuple(spacing))

    def copy(self) -> "BoneState":
        return BoneState(self.phi.copy(), self.mineral.copy(), self.quality.copy(), self.spacing,
                         self.time, [Bmu(b.box, b.depth, b.end) for b in self.bmus],
                         self.resorbed, self.formed, self.perforations, self.activations)

    @property
    def fraction(self) -> np.ndarray:
        return volume_fraction(self.phi, self.spacing)


def band_surface_area(phi, spacing) -> float:
    """Bone surface (mm^2) as the derivative of bone volume with respect to a surface
    move: (number of partial voxels) x h^2. Cheap, and consistent with the volumes."""
    h = voxel_edge(spacing)
    return float(np.count_nonzero(np.abs(phi) < h / 2)) * h * h


def _cavity(phi, spacing, centre_idx, depth, radius):
    """Box slices and surface-retreat field g of a cavity at a surface voxel."""
    h = voxel_edge(spacing)
    sp = np.asarray(spacing)
    reach = radius + 2 * h
    lo = np.maximum(np.floor((centre_idx * sp - reach) / sp).astype(int), 0)
    hi = np.minimum(np.ceil((centre_idx * sp + reach) / sp).astype(int) + 1, phi.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    local = phi[box]
    i, j, k = (centre_idx - lo)
    # Surface normal (pointing out of bone) by central differences, then the site on phi = 0.
    grad = np.array([np.gradient(local, sp[0], axis=0)[i, j, k], np.gradient(local, sp[1], axis=1)[i, j, k],
                     np.gradient(local, sp[2], axis=2)[i, j, k]])
    norm = np.linalg.norm(grad)
    n = -grad / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    site = (centre_idx + 0.5) * sp + local[i, j, k] * n
    x, y, z = np.meshgrid(*(((np.arange(a, b) + 0.5) * s) for a, b, s in zip(lo, hi, sp)),
                          indexing="ij", sparse=True)
    dx, dy, dz = x - site[0], y - site[1], z - site[2]
    a = dx * n[0] + dy * n[1] + dz * n[2]                  # along the outward normal
    rho2 = dx ** 2 + dy ** 2 + dz ** 2 - a ** 2
    g = depth * np.clip(1.0 - rho2 / radius ** 2, 0.0, None) ** 3
    # A dent from the site's side only: full depth down to a = -D below the site, none
    # below -1.5 D, so the far side of a trabecula thicker than ~1.5 D is untouched and
    # other trabeculae across the marrow never are.
    w = np.clip((a + 1.5 * depth) / (0.5 * depth), 0.0, 1.0)
    return box, (g * w).astype(np.float32)


def _topology(bone_box) -> tuple:
    return euler_number(bone_box, connectivity=1), ndimage.label(bone_box)[1]


def _record(state: BoneState, extra=None) -> dict:
    f = state.fraction
    vox = float(np.prod(state.spacing))
    bone = float(f.sum()) * vox
    row = {
        "time_years": round(state.time, 6),
        "bv_tv": bone / (f.size * vox),
        "bmd_mg_cm3": bmd(f, state.mineral),
        "tmd_relative": float(np.sum(f * state.mineral) / max(f.sum(), 1e-30)),
        "bone_volume_mm3": bone,
        "bs_mm2": band_surface_area(state.phi, state.spacing),
        "open_bmus": len(state.bmus),
        "activations": state.activations,
        "perforations": state.perforations,
        "resorbed_mm3": state.resorbed,
        "formed_mm3": state.formed,
    }
    row.update(extra or {})
    return row


def step(state: BoneState, p: RemodelParams, dt: float, rng) -> None:
    """Advance the state by ``dt`` years (activation, resorption, formation, mineralisation)."""
    h = voxel_edge(state.spacing)
    vox = float(np.prod(state.spacing))
    t_end = state.time + dt

    # Formation of the BMUs whose cycle ends in this step.
    still_open = []
    for b in state.bmus:
        if b.end > t_end:
            still_open.append(b)
            continue
        local = state.phi[b.box]
        f0 = volume_fraction(local, state.spacing)
        local += np.float32(p.balance) * b.depth
        f1 = volume_fraction(local, state.spacing)
        added = f1 - f0
        state.formed += float(added.sum()) * vox
        state.mineral[b.box] = mix(f0, state.mineral[b.box], added, p.primary_mineral)
        state.quality[b.box] = mix(f0, state.quality[b.box], added, p.quality)
    state.bmus = still_open

    # Activation and resorption.
    band = np.flatnonzero(np.abs(state.phi) < h / 2)
    bs = band.size * h * h
    n_new = rng.poisson(p.activation_frequency * dt * bs / p.cavity_area) if band.size else 0
    cycle = (p.resorption_days + p.formation_days) / 365.25
    perforated_any = False
    for idx in rng.choice(band, size=n_new, replace=True) if n_new else []:
        depth = max(rng.normal(p.resorption_depth, p.resorption_depth_sd), 0.2 * p.resorption_depth)
        area = max(rng.normal(p.cavity_area, p.cavity_area_sd), 0.2 * p.cavity_area)
        centre = np.array(np.unravel_index(idx, state.phi.shape))
        box, g = _cavity(state.phi, state.spacing, centre, depth, np.sqrt(area / np.pi))
        local = state.phi[box]
        # Topology of the voxels that are elements (f > 0): the mechanical connectivity.
        before = _topology(local > -h / 2)
        f0 = volume_fraction(local, state.spacing)
        local -= g
        state.resorbed += float((f0 - volume_fraction(local, state.spacing)).sum()) * vox
        state.activations += 1
        if _topology(local > -h / 2) != before:
            state.perforations += 1
            perforated_any = True
        else:
            state.bmus.append(Bmu(box, g, state.time + cycle))
    if perforated_any:
        _resorb_fragments(state)

    mineralise(state.mineral, dt, p.tau_secondary)
    state.time = t_end


def _resorb_fragments(state: BoneState) -> None:
    """Bone cut off from the specimen by perforations is resorbed (counted as resorbed)."""
    h = voxel_edge(state.spacing)
    labels, n = ndimage.label(state.phi > -h / 2)
    if n <= 1:
        return
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    loose = (labels != np.argmax(sizes)) & (labels > 0)
    f = volume_fraction(state.phi[loose], state.spacing)
    state.resorbed += float(f.sum()) * float(np.prod(state.spacing))
    state.phi[loose] = -h


def simulate(state: BoneState, params: RemodelParams, years: float, seed: int,
             dt: float = 1.0 / 12.0, checkpoints=(), on_step=None):
    """Remodel ``state`` in place for ``years``.

    Returns ``(history, snapshots)``: one dict per step (and one for the start) with
    BV/TV, BMD (mg HA/cm^3), relative tissue mineral density, BS, open BMUs and the
    cumulative activations, perforations, resorbed and formed volumes (mm^3); and
    ``{time: BoneState copy}`` at the requested checkpoint times (years from the start
    of this call, rounded to steps). ``on_step(row)`` is called after every step.
    """
    rng = np.random.default_rng(seed)
    n = int(round(years / dt))
    want = {int(round(c / dt)) for c in checkpoints}
    t0 = state.time
    history = [_record(state)]
    snapshots = {0.0: state.copy()} if 0 in want else {}
    for i in range(1, n + 1):
        step(state, params, dt, rng)
        row = _record(state)
        history.append(row)
        if on_step:
            on_step(row)
        if i in want:
            snapshots[round(state.time - t0, 6)] = state.copy()
    return history, snapshots
