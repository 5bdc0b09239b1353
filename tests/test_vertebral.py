"""The synthetic vertebral generator and its cohort presets."""

import numpy as np
import pytest

from fem.errors import BonefemError
from fem.specimen.cohorts import cohort_names, load_cohort
from fem.specimen.levelset import volume_fraction
from fem.specimen.vertebral import HORIZONTAL, VERTICAL, generate

COHORTS = ["early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic"]


def test_presets_exist_and_state_a_source_for_every_value():
    assert cohort_names() == sorted(COHORTS)
    for name in COHORTS:
        preset = load_cohort(name)
        assert set(preset["generator"]) == set(preset["sources"]), name
        assert all(len(text) > 20 for text in preset["sources"].values())


@pytest.mark.parametrize("name", COHORTS)
@pytest.mark.parametrize("seed", [0, 7])
def test_presets_meet_their_bv_tv_and_thickness(name, seed):
    from fem.specimen.morphometry import tb_th

    g = load_cohort(name)["generator"]
    net = generate(seed=seed, **g)
    bv_tv = volume_fraction(net.phi, net.spacing).mean()
    assert bv_tv == pytest.approx(g["bv_tv"], rel=0.02)
    # Tb.Th (sphere fitting) of each kind of trabecula within half a voxel of its target
    half = g.get("voxel_size", 0.04) / 2
    assert tb_th(net.parts[VERTICAL] > 0, net.spacing)[0] == pytest.approx(g["th_vertical"], abs=half)
    assert tb_th(net.parts[HORIZONTAL] > 0, net.spacing)[0] == pytest.approx(g["th_horizontal"], abs=half)


def test_cohorts_age_the_way_vertebrae_do():
    nets = {n: generate(seed=1, **load_cohort(n)["generator"]) for n in COHORTS}
    c = [nets[n].counts for n in COHORTS]
    # fewer vertical trabeculae, fewer horizontal struts with age
    assert c[0]["vertical_trabeculae"] > c[1]["vertical_trabeculae"] > c[2]["vertical_trabeculae"]
    assert c[0]["horizontal_struts"] > c[1]["horizontal_struts"] > c[2]["horizontal_struts"]


def test_same_seed_same_specimen_other_seed_other_specimen():
    a, b, c = (generate(size=2.0, bv_tv=0.1, seed=s) for s in (4, 4, 5))
    assert np.array_equal(a.phi, b.phi)
    assert not np.array_equal(a.phi, c.phi)


def test_vertical_trabeculae_run_through_the_loaded_faces():
    net = generate(size=2.0, seed=2)
    vertical = net.parts[VERTICAL] > 0
    # every vertical rod crosses both the bottom and top voxel layers
    assert vertical[:, :, 0].any() and vertical[:, :, -1].any()
    assert (net.kind == HORIZONTAL).any() and (net.kind == VERTICAL).any()


def test_inconsistent_parameters_are_a_clear_error():
    with pytest.raises(BonefemError, match="rods and struts alone"):
        generate(size=1.5, bv_tv=0.01, tb_n=2.0)
    with pytest.raises(BonefemError, match="plates on every panel"):
        generate(size=1.5, bv_tv=0.6)


def _apparent_modulus(phi, spacing, case):
    from fem.pipeline import solve_specimen
    from fem.specimen.load import specimen_from_levelset

    spec = specimen_from_levelset(phi, spacing, 10000.0)
    return solve_specimen(spec, case, log=lambda *a: None)["apparent_modulus_MPa"]


def _thinned_to(net, phi):
    """``net``'s level set thinned uniformly (one surface move, by root-finding) to the
    bone volume of ``phi``."""
    from fem.analysis.attribution import matching_move
    from fem.specimen.levelset import bone_volume, move_surface

    target = bone_volume(phi, net.spacing)
    thinned = move_surface(net.phi, matching_move(net.phi, net.spacing, target), net.spacing)
    assert bone_volume(thinned, net.spacing) == pytest.approx(target, rel=1e-4)
    return thinned


def test_removal_against_thinning_as_in_real_bone(case_factory):
    # At equal mass loss, removing a random sample of trabeculae costs more modulus than
    # thinning every trabecula (the porous-bone models' finding: Vajjhala, Kraynik & Gibson
    # 2000), while removing the horizontal trabeculae costs less: on real human bone turned
    # onto its main direction, removing the bone classified horizontal costs 0.19-0.49x
    # what thinning to the same mass costs (bench/removal_real.py, docs/specimens.md,
    # "Horizontal trabeculae of real bone"). The tilted presets (cohorts/tilted), whose
    # bent columns carried the load in bending, fail the second.
    from fem.specimen.levelset import bone_volume

    case = case_factory(solver={"rtol": 1e-6})
    net = generate(size=2.0, seed=3, **{k: v for k, v in load_cohort("early-postmenopausal")["generator"].items()
                                        if k != "size"})
    e0 = _apparent_modulus(net.phi, net.spacing, case)

    def losses(removed):
        assert bone_volume(removed, net.spacing) < 0.9 * bone_volume(net.phi, net.spacing)
        return [1 - _apparent_modulus(p, net.spacing, case) / e0 for p in (removed, _thinned_to(net, removed))]

    # a random sample of 15 % of the trabeculae' volume; on a 2 mm cube one draw may take
    # mostly horizontal trabeculae (3 of 8 draws cost less than thinning), so the claim is
    # on the mean of eight draws
    vol = np.asarray(net.trabecula_volume, float)
    draws = []
    for seed in range(8):
        order = np.random.default_rng(seed).permutation(len(vol))
        draws.append(losses(net.without(order[:np.searchsorted(np.cumsum(vol[order]), 0.15 * vol.sum()) + 1])))
    random_removal, random_thinning = np.mean(draws, axis=0)
    assert random_removal > 1.1 * random_thinning, draws
    horizontal_removal, horizontal_thinning = losses(net.parts[VERTICAL])
    assert horizontal_removal < horizontal_thinning, (horizontal_removal, horizontal_thinning)


def test_trabeculae_can_be_removed_one_by_one():
    net = generate(size=1.5, bv_tv=0.12, tb_n=1.35, seed=5)
    assert np.array_equal(net.without([]), net.phi)
    horizontal = np.flatnonzero(net.trabecula_kind == HORIZONTAL)
    assert len(horizontal) == net.counts["horizontal_struts"] > 0
    assert np.array_equal(net.without(horizontal), net.parts[VERTICAL])
    # one trabecula less: bone is lost, and only inside that trabecula's own volume (the
    # first one with bone in the cube: some of the margin's reach only the band outside)
    one = horizontal[np.flatnonzero(net.trabecula_volume[horizontal] > 0)[0]]
    f0 = volume_fraction(net.phi, net.spacing).sum() * net.spacing[0] ** 3
    f1 = volume_fraction(net.without([one]), net.spacing).sum() * net.spacing[0] ** 3
    assert 0 < f0 - f1 <= net.trabecula_volume[one] + 1e-12


def test_vertical_trabeculae_are_segments_not_columns():
    # Nodes offset sideways and bowed segments: few straight lines of bone along z run
    # through the specimen's vertical trabeculae, so axial load passes through the nodes.
    # The shipped presets' verticals are nearly aligned (node offset SD 0.03 mm): a few
    # voxel lines still run through (8-9 on this 2 mm cube, against 34-36 for straight
    # columns); the tilted presets (0.12 mm) leave none.
    from tests.conftest import ROOT

    def through(**g):
        net = generate(size=2.0, seed=1, **g)
        return (net.parts[VERTICAL] > 0).all(axis=2).sum()

    shipped = {k: v for k, v in load_cohort("early-postmenopausal")["generator"].items() if k != "size"}
    tilted = {k: v for k, v in load_cohort("early-postmenopausal", ROOT / "fem/specimen/cohorts/tilted")
              ["generator"].items() if k != "size"}
    straight = through(**dict(shipped, node_offset=0.0, curvature=0.0))
    assert straight > 20                       # the test can fail
    assert through(**shipped) < straight / 3
    assert through(**tilted) == 0


def test_column_axes_are_as_dense_at_the_edges_as_inside():
    # Without distances wrapped around the square, best-candidate sampling puts the next
    # point on an edge far too often: 12 points in the unit square had 66 % of them in the
    # band within 0.15 of an edge, whose area is 51 %; the columns then crowded the cube's
    # faces and left its middle empty (no lateral load path in the elderly cohort).
    from fem.specimen.vertebral import best_candidate

    band = []
    for seed in range(50):
        p = best_candidate(12, 1.0, np.random.default_rng(seed))
        assert p.min() >= 0 and p.max() <= 1
        band.append(np.mean((p < 0.15).any(axis=1) | (p > 0.85).any(axis=1)))
    assert np.mean(band) == pytest.approx(1 - 0.7 ** 2, abs=0.04)


def test_elderly_morphometry_lies_in_the_measured_human_vertebral_range():
    # Human vertebral cancellous bone, n = 9, BV/TV 0.068 +- 0.025 (PMC3352993 Table 1):
    # the elderly preset has a similar BV/TV (0.072); its architecture must lie within
    # two SD of the measured means (the source's figures, not the generator's).
    from fem.specimen.morphometry import morphometry

    net = generate(size=3.0, seed=0, **load_cohort("elderly-osteoporotic")["generator"])
    m = morphometry(net.phi > 0, net.spacing, fraction=volume_fraction(net.phi, net.spacing))
    for key, mean, sd in (("tb_th_mm", 0.132, 0.0222), ("tb_sp_mm", 1.020, 0.217),
                          ("da_ratio", 1.48, 0.12), ("conn_d_per_mm3", 4.84, 2.26)):
        assert abs(m[key] - mean) <= 2 * sd, (key, m[key])
