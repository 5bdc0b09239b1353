"""Drug-effect machinery: surface moves, BMU remodelling, mineralisation."""

import numpy as np
import pytest

from fem.remodel import surface
from fem.remodel.bmu import BoneState, RemodelParams, simulate
from fem.remodel.mineral import mineralise, mix
from fem.specimen.levelset import bone_volume, move_surface, surface_area, volume_fraction
from fem.specimen.vertebral import HORIZONTAL, VERTICAL, capsule, generate

H = 0.04


def grid(n):
    c = (np.arange(n) + 0.5) * H
    return np.meshgrid(c, c, c, indexing="ij", sparse=True)


def rod_phi(n=30, diameter=0.12, axis="z"):
    """Signed distance of a straight rod along a line of voxel centres of an n^3 cube."""
    x, y, z = grid(n)
    L, m = n * H, (n // 2 + 0.5) * H
    ends = {"z": ((m, m, -1), (m, m, L + 1)), "x": ((-1, m, m), (L + 1, m, m))}[axis]
    return (capsule(*ends, diameter / 2)(x, y, z) + 0 * (x + y + z)).astype(np.float32)


@pytest.fixture(scope="module")
def network():
    return generate(size=2.0, voxel_size=H, bv_tv=0.125, tb_n=1.35, th_horizontal=0.1,
                    strut_fraction=0.6, seed=3)


# --- deterministic moves -------------------------------------------------------

def test_uniform_move_changes_volume_by_surface_times_distance(network):
    phi, sp = network.phi, network.spacing
    d = 0.005
    moved = move_surface(phi, d, sp)
    dv = bone_volume(moved, sp) - bone_volume(phi, sp)
    bs = 0.5 * (surface_area(phi, sp) + surface_area(moved, sp))
    assert dv / (bs * d) == pytest.approx(1.0, abs=0.05)


def test_erosion_then_equal_thickening_returns_the_original(network):
    phi, sp = network.phi, network.spacing
    v0 = bone_volume(phi, sp)
    # Below half a voxel the round trip stays in the sub-voxel band: exact to float32.
    back = move_surface(move_surface(phi, -0.01, sp), 0.01, sp)
    # inside the side faces: the generator's trabeculae cross them, and a cut one may
    # leave partial voxels on the face with no voxel centre in bone, which erosion removes
    inner = (slice(2, -2), slice(2, -2))
    assert np.allclose(volume_fraction(back, sp)[inner], volume_fraction(phi, sp)[inner], atol=1e-5)
    # Beyond it the re-initialised field is the voxel distance transform (half-voxel
    # accurate), and trabeculae eroded through stay lost: volume within 5 %, not above.
    back = move_surface(move_surface(phi, -0.03, sp), 0.03, sp)
    assert bone_volume(back, sp) == pytest.approx(v0, rel=0.05)


def test_thin_trabecula_disappears_under_erosion_deeper_than_half_its_thickness():
    # A trabecula is gone once no voxel centre is left in it: for a rod whose axis runs
    # through voxel centres that is exactly an erosion of half its thickness.
    phi = rod_phi(diameter=0.12)
    sp = (H,) * 3
    assert volume_fraction(move_surface(phi, -0.05, sp), sp).sum() > 0
    assert volume_fraction(move_surface(phi, -0.065, sp), sp).sum() == 0
    # and does not come back when the surface thickens again
    assert volume_fraction(move_surface(move_surface(phi, -0.065, sp), 0.065, sp), sp).sum() == 0


def test_targeted_moves_touch_only_their_trabeculae(network):
    phi, sp = network.phi, network.spacing
    horizontal = surface.select_orientation(phi, sp, "horizontal")
    kind = network.kind
    # the selection finds the struts and leaves the vertical rods and plates
    assert horizontal[kind == HORIZONTAL].mean() > 0.6
    # 0.2, not 0.15: since columns are placed inside the cube rather than on its faces
    # (issue 14) more vertical voxels sit at junctions, whose surface normals tilt
    assert horizontal[kind == VERTICAL].mean() < 0.2
    assert horizontal[kind == HORIZONTAL].mean() > 4 * horizontal[kind == VERTICAL].mean()
    thin = surface.select_thickness(phi, sp, thinner_than=0.11)   # between the 0.08 and 0.12 grid steps
    assert thin[kind == HORIZONTAL].mean() > 2 * thin[kind == VERTICAL].mean()
    # eroding the horizontal ones takes a much larger share of the struts than of the rest
    f0 = volume_fraction(phi, sp)
    lost = f0 - volume_fraction(move_surface(phi, -0.01, sp, where=horizontal), sp)
    share = {k: lost[kind == k].sum() / f0[kind == k].sum() for k in (HORIZONTAL, VERTICAL)}
    assert share[HORIZONTAL] > 4 * share[VERTICAL]


# --- BMU model ---------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    net = generate(size=1.6, voxel_size=H, bv_tv=0.10, tb_n=1.35, th_horizontal=0.1,
                   strut_fraction=0.6, seed=1)
    return net.phi, net.spacing


def test_volume_bookkeeping_is_exact(small):
    state = BoneState.from_levelset(*small)
    history, _ = simulate(state, RemodelParams(activation_frequency=2.0), 1.0, seed=4)
    change = history[0]["bone_volume_mm3"] - history[-1]["bone_volume_mm3"]
    assert history[-1]["activations"] > 20 and history[-1]["formed_mm3"] > 0
    assert change == pytest.approx(history[-1]["resorbed_mm3"] - history[-1]["formed_mm3"], rel=1e-9, abs=1e-12)


def test_same_seed_same_result_other_seed_other_result(small):
    runs = []
    for seed in (5, 5, 6):
        state = BoneState.from_levelset(*small)
        simulate(state, RemodelParams(activation_frequency=2.0), 0.5, seed=seed)
        runs.append(state.phi)
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_zero_activation_changes_nothing(small):
    state = BoneState.from_levelset(*small)
    history, _ = simulate(state, RemodelParams(activation_frequency=0.0), 1.0, seed=1)
    assert np.array_equal(state.phi, small[0])
    assert history[-1]["bmd_mg_cm3"] == history[0]["bmd_mg_cm3"]


def test_mineralisation_reaches_its_asymptote():
    m = np.full(4, 0.6, np.float32)
    mineralise(m, 3.0, tau_secondary=3.0)
    assert m[0] == pytest.approx(1 - 0.4 * np.exp(-1), rel=1e-6)
    mineralise(m, 100.0, tau_secondary=3.0)
    assert m[0] == pytest.approx(1.0, abs=1e-6)
    # mixing 1 part mature bone with 1 part new bone (0.6)
    assert mix(np.float32(1), np.float32(1.0), np.float32(1), 0.6) == pytest.approx(0.8)


def test_new_bone_lowers_bmd_more_than_volume(small):
    # High turnover with exact balance: bone volume stays (formed = resorbed per BMU)
    # while new bone is less mineralised, so BMD falls more than BV/TV.
    state = BoneState.from_levelset(*small)
    h, _ = simulate(state, RemodelParams(activation_frequency=3.0, balance=1.0), 1.0, seed=2)
    dbv = h[-1]["bv_tv"] / h[0]["bv_tv"] - 1
    dbmd = h[-1]["bmd_mg_cm3"] / h[0]["bmd_mg_cm3"] - 1
    assert dbmd < dbv
    assert h[-1]["tmd_relative"] < 1.0
