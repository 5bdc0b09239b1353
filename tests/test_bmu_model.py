"""The BMU model's corrections (issue 15): fragments, quiescent activation, turnover,
common random numbers, perforation. Each test failed on the model before them."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import euler_number

from fem.remodel import bmu
from fem.remodel.arms import baseline_state, percent_change, run_arm, steady_state_mineral
from fem.remodel.bmu import BoneState, RemodelParams, simulate
from fem.remodel.cavities import _interp
from fem.remodel.presets import untreated
from fem.specimen.levelset import from_mask
from fem.specimen.vertebral import generate

H = 0.04
EARLY = "early-postmenopausal"


def slab(n=30, thickness_vox=10):
    """A horizontal slab of bone through the whole box (touches the four side faces)."""
    m = np.zeros((n, n, n), bool)
    lo = (n - thickness_vox) // 2
    m[:, :, lo:lo + thickness_vox] = True
    return m


def level_set(mask):
    """Signed distance of a binary image with its surface moved out by a quarter voxel,
    so that the surface voxels are partial (a binary image has no partial voxels)."""
    return from_mask(mask, (H,) * 3) + np.float32(H / 4)


# --- 1. fragments ------------------------------------------------------------

def test_only_pieces_touching_no_face_are_resorbed():
    m = np.zeros((20, 20, 20), bool)
    m[2:6, 2:6, :] = True          # a thick column through the cube
    m[14:16, 14:16, :] = True      # a thin one: also attached beyond both faces
    m[14:16, 2:4, 3:20] = True     # reaches only the top face: attached there
    m[9:11, 9:11, 9:11] = True     # loose
    state = BoneState.from_levelset(from_mask(m, (H,) * 3), (H,) * 3)
    bmu._resorb_fragments(state)
    loose = np.pad(np.ones((2, 2, 2), bool), 9)
    assert np.array_equal(state.fraction > 0, m & ~loose)
    assert state.resorbed == pytest.approx(8 * H ** 3, rel=1e-6)


# --- 2. activation on quiescent surface only -----------------------------------

def test_sites_are_drawn_from_quiescent_surface_only(monkeypatch):
    # High Ac.f on a slab: every new cavity starts where no open BMU (resorbing, reversing
    # or refilling) is; before, 16-33 % of them started on open cavities.
    phi = level_set(slab())
    p = RemodelParams(activation_frequency=2.0, resorption_depth=0.05, resorption_depth_sd=0.0)
    state = BoneState.from_levelset(phi, (H,) * 3)
    sites, real = [], bmu.activate

    def spy(st, params, centre, *args, **kw):
        sites.append((int(st.open_count[centre]), len(st.bmus)))
        return real(st, params, centre, *args, **kw)

    monkeypatch.setattr(bmu, "activate", spy)
    simulate(state, p, 0.5, seed=3)
    assert len(sites) > 20 and max(n for _, n in sites) > 10
    assert all(c == 0 for c, _ in sites)
    # and no cavity digs into the footprint of another: no bone surface retreats by much
    # more than D (a site beside an open cavity has a tilted normal, hence up to ~D / cos;
    # stacked cavities reach 2 D)
    assert (phi - state.phi)[phi > 0].max() <= 1.2 * 0.05


# --- 3. turnover ----------------------------------------------------------------

@pytest.fixture(scope="module")
def early():
    net = generate(size=2.0, voxel_size=H, bv_tv=0.125, tb_n=1.35, th_horizontal=0.11,
                   strut_fraction=0.6, seed=0)
    return net.phi, net.spacing


def test_cavity_volume_is_footprint_times_mean_depth():
    # On a flat surface the flat-bottomed cavity D (1 - (rho/r)^4) holds pi r^2 x 2 D / 3:
    # its mean depth over the footprint is the erosion depth, 2 D / 3.
    n = 40
    m = np.zeros((n, n, n), bool)
    m[:, :, :20] = True
    state = BoneState.from_levelset(level_set(m), (H,) * 3)
    d, r = 0.06, 0.3
    assert not bmu.activate(state, RemodelParams(), (20, 20, 20), d, r)
    assert state.resorbed == pytest.approx(np.pi * r ** 2 * 2 * d / 3, rel=0.03)
    assert state.bmus[0].area == pytest.approx(np.pi * r ** 2, rel=0.05)


def test_cavity_cuts_the_same_bone_at_every_voxel_edge():
    # A cavity beside a concave corner (a floor and a wall meeting at a right angle) cuts
    # wall bone above the floor's tangent plane, up to a height fixed in mm. When that
    # height was 2 voxels, a finer voxel cut less wall and every BMU resorbed less: the
    # trial's BMD changes drifted with the voxel edge (bench/remodel_voxel.py,
    # docs/trial.md). Exact signed distance of the union of the two half-spaces; the
    # same site (0.70, 0.70, 0.81) mm at 40 um and at 40/3 um.
    volumes = []
    for h in (0.04, 0.04 / 3):
        n = int(round(1.6 / h))
        x, y, z = np.meshgrid(*([(np.arange(n) + 0.5) * h] * 3), indexing="ij", sparse=True)
        phi = np.maximum(0.81 - z, 0.61 - x) + 0 * y
        state = BoneState.from_levelset(phi, (h,) * 3)
        centre = tuple(int(round(c / h - 0.5)) for c in (0.70, 0.70, 0.81))
        assert abs(phi[centre]) < h / 2
        assert not bmu.activate(state, RemodelParams(), centre, 0.06, 0.2)
        volumes.append(state.resorbed)
    # the wall part alone is about 0.002 mm^3 of the 0.007 (circle segment 0.025 mm^2 x 0.08 mm)
    assert volumes[1] == pytest.approx(volumes[0], rel=0.05)


def test_activated_surface_per_year_is_acf_times_bs():
    # BFR/BV = Ac.f x W.Th x BS/BV needs Ac.f x BS / area BMUs a year, counted on the
    # whole surface although only quiescent surface is activated.
    n = 60
    m = np.zeros((n, n, 16), bool)
    m[:, :, 4:12] = True
    state = BoneState.from_levelset(level_set(m), (H,) * 3)
    p = RemodelParams(activation_frequency=1.5, resorption_depth=0.05, resorption_depth_sd=0.0)
    h, _ = simulate(state, p, 2.0, seed=5)
    bs = np.mean([r["bs_mm2"] for r in h])
    expect = p.activation_frequency * bs * 2.0 / p.cavity_area
    assert h[-1]["activations"] == pytest.approx(expect, abs=3 * np.sqrt(expect))
    assert np.mean([r["os_bs"] + r["es_bs"] for r in h[7:]]) > 0.3      # much surface is open


def test_refilling_is_progressive():
    phi = level_set(slab())
    p = RemodelParams(resorption_days=30.0, formation_days=150.0, balance=1.0,
                      resorption_depth_sd=0.0, cavity_area_sd=0.0)
    state = BoneState.from_levelset(phi, (H,) * 3)
    assert not bmu.activate(state, p, (15, 15, 19), 0.05, 0.16)
    dug = state.resorbed
    filled = []
    for i in range(1, 7):
        bmu.step(state, RemodelParams(**{**vars(p), "activation_frequency": 0.0}), 1 / 12, 0, i)
        filled.append(state.formed / dug)
    # 30 days resorption, then a fifth of the cavity per 30 days, all of it by 180 days
    expect = np.clip((np.arange(1, 7) / 12 - 30 / 365.25) / (150 / 365.25), 0, 1)
    assert np.allclose(filled, expect, atol=0.03)
    assert not state.bmus


def test_mineral_history_reaches_the_steady_state(early):
    # Bone renewed at random places at rate k has exponential ages, so its mean mineral
    # content is 1 - (1 - m_p) k tau / (1 + k tau) after a few tau.
    p = RemodelParams(activation_frequency=0.5)
    state = BoneState.from_levelset(*early)
    k = bmu.mineral_history(state, p, 3 * p.tau_secondary, seed=0)
    # judged inside the side faces: the generator's trabeculae cross them, and the cut
    # pieces on the faces are renewed less (whole 2 mm specimen: 0.801 against 0.790)
    inner = (slice(3, -3), slice(3, -3))
    f = state.fraction[inner]
    mean = float(np.sum(f * state.mineral[inner]) / f.sum())
    assert 0.1 < k < 1.0
    # 3 tau: the start (all at 1) is forgotten to exp(-3 (1 + k tau)), under 1 %
    assert mean == pytest.approx(steady_state_mineral(p, k), abs=0.01)
    assert np.std(state.mineral[inner][f > 0.5]) > 0.05   # a mosaic, not a uniform deficit


# --- 4. common random numbers ----------------------------------------------------

@pytest.fixture(scope="module")
def early_base(early):
    return baseline_state(*early, EARLY, seed=0)


def _change(base, **factors):
    p = untreated(EARLY)
    p = RemodelParams(**{**vars(p), **{k: getattr(p, k) * v for k, v in factors.items()}})
    h, _ = run_arm(base, EARLY, "custom", 2.0, 0, params=p)
    return percent_change(h)


def test_an_arm_equal_to_untreated_is_identical(early_base):
    h1, _ = run_arm(early_base, EARLY, "untreated", 2.0, 0)
    h2, _ = run_arm(early_base, EARLY, "custom", 2.0, 0, params=untreated(EARLY))
    assert h1 == h2


def test_arms_share_their_bmus(early_base):
    # Thinning: one step from the same baseline, most of the bone dug at Ac.f is also dug
    # at 1.5 Ac.f (an extra BMU can take a neighbouring site first); independent draws
    # would share a few percent (one step digs about 2 % of the surface). Before, a
    # different Poisson count redrew every site.
    p = untreated(EARLY)
    dug = []
    for factor in (1.0, 1.5):
        q = RemodelParams(**{**vars(p), "activation_frequency": p.activation_frequency * factor,
                             "resorption_days": 365.0})
        h, snaps = run_arm(early_base, EARLY, "custom", 1 / 12, 0, params=q, checkpoints=(1 / 12,))
        state = next(iter(snaps.values()))
        dug.append(((early_base.phi - state.phi) > 1e-6) & (early_base.phi > 0))
    assert dug[1].sum() > dug[0].sum() > 0
    assert (dug[0] & dug[1]).sum() > 0.6 * dug[0].sum()


def test_a_tiny_change_of_activation_makes_a_tiny_difference(early_base):
    # Arms share their candidate BMUs: x1.001 on Ac.f accepts at most a few more, so the
    # BMD change moves by a small part of the effect of x2 (one extra BMU is about 1 %
    # of it on this 2 mm specimen), not by a percentage point.
    ref = _change(early_base)
    big = _change(early_base, activation_frequency=2.0)
    assert abs(big - ref) > 5.0
    for tiny in (1.001, 0.999):
        assert abs(_change(early_base, activation_frequency=tiny) - ref) < 0.02 * abs(big - ref)


# --- 5. perforation -------------------------------------------------------------

def test_perforation_needs_the_cavity_to_reach_through():
    sp = (H,) * 3
    p = RemodelParams()
    # A 140 um plate with a knob on a one-voxel neck: a 40 um cavity beside the knob cuts
    # the neck (the voxel topology changes: a new piece) but not the plate.
    m = slab(n=24, thickness_vox=3)
    m[12, 12, 14] = True          # neck
    m[12:14, 12:14, 15] = True    # knob
    state = BoneState.from_levelset(level_set(m), sp)
    bone0 = state.phi > -H / 2
    assert not bmu.activate(state, p, (12, 11, 13), 0.04, 0.16)
    bone1 = state.phi > -H / 2
    topo = [(euler_number(b, connectivity=1), ndimage.label(b)[1]) for b in (bone0, bone1)]
    assert topo[0] != topo[1]                # the old voxel-topology test counted it
    assert state.perforations == 0 and len(state.bmus) == 1
    # The same plate with a cavity deeper than the plate: perforated, never refilled.
    state = BoneState.from_levelset(level_set(slab(n=24, thickness_vox=3)), sp)
    assert bmu.activate(state, p, (6, 6, 13), 0.16, 0.16)
    assert state.perforations == 1 and not state.bmus
    assert state.events[0]["thickness"] == pytest.approx(0.12 + H / 2, abs=H / 4)


@pytest.mark.parametrize("diameter", [0.08, 0.12, 0.2])
def test_local_thickness_of_a_rod_is_its_diameter(diameter):
    from tests.test_remodel import rod_phi

    phi = rod_phi(n=30, diameter=diameter, axis="x")
    sp = (H,) * 3
    c = 15
    site = np.array([(c + 0.5) * H, (c + 0.5) * H, (c + 0.5) * H + diameter / 2])
    t = bmu.local_thickness_at(phi, sp, site, np.array([0.0, 0.0, 1.0]), 0.5)
    assert t == pytest.approx(diameter, abs=H / 8)


def test_intact_bone_has_no_spurious_perforation(early):
    """The surface voxels of an intact generated cube are sites whose chord is a
    thickness. The site used to be the voxel centre moved by phi along its
    central-difference normal; near junctions and on the cube's faces it lay off the
    surface and its chord ended at the first sample (h/4), which counted as a perforation
    for any cavity: 16 of the 1245 surface voxels sampled here (1.3 %). A few real edges
    (plate-hole rims) are thinner than a sample step; on the 3 mm cube 0.1 % of sites
    are, at 40 um as at 20 um (docs/trial.md), hence at most 2 here, not 0."""
    phi, sp = early
    band = np.argwhere(np.abs(phi) < H / 2)
    pick = band[np.random.default_rng(0).choice(len(band), 1245, replace=False)]
    short = off = 0
    for c in pick:
        site, n = bmu._site(phi, sp, tuple(c))
        face = min(c) == 0 or max(c) == phi.shape[0] - 1    # bone may lie beyond it
        off += not face and abs(float(_interp(phi, sp, site[None])[0])) > H / 50
        short += bmu.local_thickness_at(phi, sp, site, n, 0.5) <= H / 4 + 1e-9
    assert short <= 2
    assert off < 0.01 * len(pick)       # 99 % of the inner sites land on the surface (0.2 % off measured)


@pytest.mark.parametrize("thickness", [0.016, 0.03])
def test_a_plate_thinner_than_a_cavity_is_perforated(thickness):
    """A plate thinner than the cavity's depth is perforated, also when it is thinner than
    a sample step (h/4) or than half a voxel, where its interpolated signed distance may
    never reach zero."""
    n = 24
    z = (np.arange(n) + 0.5) * H
    for centre in (12.5 * H, 12.25 * H, 12 * H):       # on a voxel centre, a quarter off, a face
        phi = np.broadcast_to(thickness / 2 - np.abs(z - centre), (n, n, n)).astype(np.float32)
        state = BoneState.from_levelset(phi.copy(), (H,) * 3)
        band = np.argwhere(np.abs(phi) < H / 2)
        k = band[(band[:, 0] == 12) & (band[:, 1] == 12)][0]
        assert bmu.activate(state, RemodelParams(), tuple(k), 0.05, 0.1), centre
        assert state.perforations == 1


def test_real_bone_sites_are_on_its_surface(lhdl_core):
    """The real core's level set (grey levels, not a distance: its gradient is 0.4-0.9 in
    the surface band) as the real-core trial reads it. With the old site a quarter of its
    surface voxels had a chord of one sample (26 % of 4000), so a quarter of all its
    cavities perforated; now under 1 % (0.5 % measured)."""
    from fem.specimen.scan import scan_specimen

    sc = scan_specimen(lhdl_core, 0.0195, 125, 1.0, 2, 3.0)
    phi, sp = sc.phi, sc.spacing
    h = sp[0]
    band = np.argwhere(np.abs(phi) < h / 2)
    pick = band[np.random.default_rng(0).choice(len(band), 800, replace=False)]
    short = sum(bmu.local_thickness_at(phi, sp, *bmu._site(phi, sp, tuple(c)), 0.5) <= h / 4 + 1e-9
                for c in pick)
    assert short < 0.01 * len(pick)
