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
