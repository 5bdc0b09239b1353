"""Mechanism-search options of a drug preset (issue 20; docs/model.md section 15).

Both options are off by default and must then change nothing; switched on, each must
change the balance as its formula says: per cohort for the osteoblast supply
(``balance_shift_acf_ref``), per BMU for the thickness-scaled overfill
(``balance_thickness_ref``). Expected values are computed here by hand, not by the code.
"""

import dataclasses

import numpy as np
import pytest

from fem.remodel import bmu
from fem.remodel.arms import baseline_state, run_arm
from fem.remodel.bmu import BoneState, RemodelParams
from fem.remodel.presets import apply_factors, drug_factors, untreated
from fem.specimen.levelset import from_mask
from fem.specimen.vertebral import generate

H = 0.04
COHORTS = ("early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic")


def test_the_options_are_off_in_every_shipped_preset():
    for arm in ("alfacalcidol", "menatetrenone", "combined"):
        f = drug_factors(arm)
        assert f["balance_shift_acf_ref"] is None and f["balance_thickness_ref"] is None


@pytest.mark.parametrize("cohort", COHORTS)
def test_off_gives_the_plain_factors(cohort):
    # The combination's parameters written out by hand from the preset's factors.
    base, f = untreated(cohort), drug_factors("combined")
    p = apply_factors(base, f)
    assert p.activation_frequency == base.activation_frequency * f["activation_factor"]
    assert p.resorption_depth == base.resorption_depth * f["depth_factor"]
    assert p.balance == base.balance + f["balance_shift"]
    assert p.thickness_ref is None and p.thickness_shift == 0.0


@pytest.mark.parametrize("cohort, acf", [(COHORTS[0], 0.26), (COHORTS[1], 0.39), (COHORTS[2], 0.39)])
def test_supply_divides_the_shift_among_the_cohorts_bmus(cohort, acf):
    # untreated.toml's Ac.f (Recker 2004): 0.26 early, 0.39 late and elderly, so with a
    # reference of 0.26 the per-BMU shift is the full one early and 2/3 of it later.
    base = untreated(cohort)
    assert base.activation_frequency == acf
    f = {**drug_factors("combined"), "balance_shift": 0.3, "balance_shift_acf_ref": 0.26}
    assert apply_factors(base, f).balance == pytest.approx(base.balance + 0.3 * 0.26 / acf, abs=1e-12)


def test_thickness_option_moves_the_shift_to_each_bmu():
    base = untreated(COHORTS[0])
    f = {**drug_factors("combined"), "balance_shift": 0.3, "balance_thickness_ref": 0.14}
    p = apply_factors(base, f)
    assert p.balance == base.balance and p.thickness_shift == 0.3 and p.thickness_ref == 0.14


def _plate(thickness_vox, n=30):
    m = np.zeros((n, n, n), bool)
    lo = (n - thickness_vox) // 2
    m[:, :, lo:lo + thickness_vox] = True
    # surface moved out by H/4 so that it lies in partial voxels: plate thickness n H + H/2
    return from_mask(m, (H,) * 3) + np.float32(H / 4), lo + thickness_vox - 1


@pytest.mark.parametrize("thickness_vox, shift", [(3, 0.2), (10, 0.2), (3, 0.0)])
def test_a_bmus_overfill_scales_with_its_plate(thickness_vox, shift):
    # One cavity in a flat plate of thickness T, refilled to balance 1 + shift x min(T, 2 ref)/ref:
    # T = 0.14 mm gives 1.2, T = 0.42 mm is capped at 2 ref and gives 1.4.
    ref = 0.14
    T = thickness_vox * H + H / 2
    expect = 1.0 + shift * min(T, 2 * ref) / ref
    phi, top = _plate(thickness_vox)
    p = RemodelParams(balance=1.0, thickness_ref=ref, thickness_shift=shift,
                      resorption_depth_sd=0.0, cavity_area_sd=0.0, activation_frequency=0.0)
    state = BoneState.from_levelset(phi, (H,) * 3)
    assert not bmu.activate(state, p, (15, 15, top), 0.05, 0.16)
    if T < 2 * ref:
        assert state.bmus[0].thickness == pytest.approx(T, abs=H / 8)
    else:                           # the ray stops at 2 ref: beyond it the shift is capped
        assert state.bmus[0].thickness > 2 * ref
    dug = state.resorbed
    for i in range(1, 8):           # 40 + 160 days: closed after 7 months
        bmu.step(state, p, 1 / 12, 0, i)
    assert not state.bmus
    assert state.formed / dug == pytest.approx(expect, rel=0.03)


@pytest.fixture(scope="module")
def early_base():
    net = generate(size=2.0, voxel_size=H, bv_tv=0.125, tb_n=1.35, th_horizontal=0.11,
                   strut_fraction=0.6, seed=0)
    return baseline_state(net.phi, net.spacing, COHORTS[0], seed=0)


def test_thickness_option_with_no_shift_is_bit_identical(early_base):
    # Switched on with a zero shift, only the thickness ray reaches further; perforations,
    # every BMU and every history row must be the same as with the option off.
    p = apply_factors(untreated(COHORTS[0]), drug_factors("combined"))
    q = dataclasses.replace(p, thickness_ref=0.14, thickness_shift=0.0, balance=p.balance)
    h1, s1 = run_arm(early_base, COHORTS[0], "custom", 1.0, 0, params=p, checkpoints=(1.0,))
    h2, s2 = run_arm(early_base, COHORTS[0], "custom", 1.0, 0, params=q, checkpoints=(1.0,))
    assert h1 == h2
    assert np.array_equal(s1[1.0].phi, s2[1.0].phi)
    assert h1[-1]["perforations"] > 0      # the case does exercise the perforation test


def test_thin_option_with_no_extra_activation_is_bit_identical(early_base):
    p = apply_factors(untreated(COHORTS[0]), drug_factors("combined"))
    q = dataclasses.replace(p, thin_ref=0.14, thin_activation=0.0)
    h1, _ = run_arm(early_base, COHORTS[0], "custom", 1.0, 0, params=p)
    h2, _ = run_arm(early_base, COHORTS[0], "custom", 1.0, 0, params=q)
    assert h1 == h2


def test_thin_option_moves_the_drugs_extra_activation_to_thin_trabeculae():
    base = untreated(COHORTS[1])                      # Ac.f 0.39
    f = {**drug_factors("combined"), "thin_activation_ref": 0.14}
    p = apply_factors(base, f)
    assert p.activation_frequency == base.activation_frequency
    assert p.thin_activation == pytest.approx(0.39 * (f["activation_factor"] - 1.0), abs=1e-12)
    assert p.thin_ref == 0.14


def test_extra_bmus_start_on_thin_trabeculae_only(monkeypatch):
    # A thick plate (0.30 mm) and a thin one (0.10 mm) in one box; no ordinary activation,
    # only the thin-targeted extra: every BMU must start on the thin plate.
    n = 30
    m = np.zeros((n, n, n), bool)
    m[:, :, 3:10] = True                              # 7 voxels + H/2: 0.30 mm
    m[:, :, 20:22] = True                             # 2 voxels + H/2: 0.10 mm
    phi = from_mask(m, (H,) * 3) + np.float32(H / 4)
    state = BoneState.from_levelset(phi, (H,) * 3)
    p = RemodelParams(activation_frequency=0.0, thin_ref=0.14, thin_activation=3.0,
                      resorption_depth=0.03, resorption_depth_sd=0.0)
    started, real = [], bmu.activate
    monkeypatch.setattr(bmu, "activate", lambda st, pp, centre, *a, **kw:
                        started.append(centre[2]) or real(st, pp, centre, *a, **kw))
    for i in range(1, 4):
        bmu.step(state, p, 1 / 12, 0, i)
    assert len(started) > 5
    assert all(18 <= z <= 23 for z in started)
    # and the same extra activation without the thickness test also digs the thick plate
    started.clear()
    state = BoneState.from_levelset(phi, (H,) * 3)
    q = dataclasses.replace(p, thin_ref=10.0)
    for i in range(1, 4):
        bmu.step(state, q, 1 / 12, 0, i)
    assert any(z < 12 for z in started)
