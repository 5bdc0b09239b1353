"""Order-free attribution of a strength change (Shapley value over mass, architecture,
tissue): sums to the total, does not depend on the order, and splits constructed cases
where the answer is known."""

import itertools

import numpy as np
import pytest

from fem.analysis.attribution import COUNTERFACTUALS, PLAYERS, attribute, coalitions, shapley
from fem.pipeline import solve_specimen
from fem.remodel.bmu import BoneState
from fem.specimen.levelset import move_surface
from fem.specimen.vertebral import generate
from fem.trial import specimen_of

E = 10000.0


def test_shapley_sums_to_the_total_and_ignores_the_order():
    rng = np.random.default_rng(0)
    table = {frozenset(c): float(rng.normal())
             for r in range(4) for c in itertools.combinations(PLAYERS, r)}
    parts = shapley(table)
    full = table[frozenset(PLAYERS)] - table[frozenset()]
    assert sum(parts.values()) == pytest.approx(full, abs=1e-12)
    for order in itertools.permutations(PLAYERS):
        assert shapley(table, order) == pytest.approx(parts, abs=1e-12)
    # it is the mean of the six sequential splits, which differ from each other
    seq = []
    for order in itertools.permutations(PLAYERS):
        have, s = frozenset(), {}
        for p in order:
            s[p] = table[have | {p}] - table[have]
            have = have | {p}
        seq.append(s)
    assert np.ptp([s["mass"] for s in seq]) > 0.1
    assert parts["mass"] == pytest.approx(np.mean([s["mass"] for s in seq]), abs=1e-12)


def test_multiplicative_effects_share_their_cross_term():
    # F = g(mass) x q(tissue): Shapley gives each its own change plus half the cross term.
    g, q = 0.9, 1.2
    table = {frozenset(c): (g if "mass" in c else 1.0) * (q if "tissue" in c else 1.0)
             for r in range(4) for c in itertools.combinations(PLAYERS, r)}
    parts = shapley(table)
    assert parts["architecture"] == 0.0
    assert parts["mass"] == pytest.approx((g - 1) + 0.5 * (g - 1) * (q - 1))
    assert parts["tissue"] == pytest.approx((q - 1) + 0.5 * (g - 1) * (q - 1))


@pytest.fixture(scope="module")
def base():
    net = generate(size=1.6, voxel_size=0.04, bv_tv=0.12, tb_n=1.35, th_horizontal=0.1,
                   strut_fraction=0.6, seed=2)
    state = BoneState.from_levelset(net.phi, net.spacing)
    state.mineral[:] = 0.95
    return state


def _split(base, treated, case):
    """Solve all eight coalitions of ``treated`` against ``base`` and split, as the trial does."""
    specs, d = coalitions(base.phi, (base.mineral, base.quality), treated.phi,
                          (treated.mineral, treated.quality), base.spacing)
    assert set(specs) == {frozenset(), frozenset(PLAYERS), *COUNTERFACTUALS}
    loads = {k: solve_specimen(specimen_of(base, E, m, q, phi), case, log=lambda *a: None)
             ["pistoia"]["failure_load_N"] for k, (phi, (m, q)) in specs.items()}
    return attribute(loads, d), loads


def test_uniform_thinning_is_all_mass_and_the_parts_sum_to_the_total(base, case_factory):
    case = case_factory(solver={"rtol": 1e-10})
    treated = base.copy()
    treated.phi = move_surface(base.phi, -0.004, base.spacing)
    parts, loads = _split(base, treated, case)
    # the total is the trial's own change, from the two end solves alone
    assert parts.total_pct == pytest.approx(
        100 * (loads[frozenset(PLAYERS)] / loads[frozenset()] - 1), abs=1e-12)
    assert parts.total_pct < -2
    assert parts.mass_pct + parts.architecture_pct + parts.tissue_pct == pytest.approx(parts.total_pct, abs=1e-12)
    assert parts.mass_move_um == pytest.approx(-4.0, abs=0.01)
    assert parts.mass_pct == pytest.approx(parts.total_pct, abs=0.02)
    assert parts.mass_only_pct == pytest.approx(parts.total_pct, abs=0.02)
    assert abs(parts.tissue_pct) < 1e-6 and abs(parts.architecture_pct) < 0.02


def test_modulus_change_is_all_tissue(base, case_factory):
    case = case_factory(solver={"rtol": 1e-10})
    treated = base.copy()
    treated.mineral[:] = 0.9          # geometry fixed, less mineral: E x (0.9/0.95)^2.5
    parts, _ = _split(base, treated, case)
    assert parts.total_pct == pytest.approx(100 * ((0.9 / 0.95) ** 2.5 - 1), abs=1e-4)
    assert parts.tissue_pct == pytest.approx(parts.total_pct, abs=1e-6)
    assert abs(parts.mass_pct) < 1e-6 and abs(parts.architecture_pct) < 1e-6


def test_thinning_plus_less_mineral_has_no_architecture_part(base, case_factory):
    treated = base.copy()
    treated.phi = move_surface(base.phi, -0.004, base.spacing)
    treated.mineral[:] = 0.9
    parts, f = _split(base, treated, case_factory(solver={"rtol": 1e-10}))
    m = frozenset(["mass"])
    assert parts.mass_pct + parts.tissue_pct + parts.architecture_pct == pytest.approx(parts.total_pct, abs=1e-9)
    assert abs(parts.architecture_pct) < 0.05
    # uniform mineral: F scales by (0.9 / 0.95)^2.5 on any geometry, so the tissue part is
    # that factor times the mean of F(B) and F(B thinned), over F(B)
    k = (0.9 / 0.95) ** 2.5 - 1
    expect = 100 * k * 0.5 * (f[frozenset()] + f[m]) / f[frozenset()]
    assert parts.tissue_pct == pytest.approx(expect, abs=0.05)
    assert parts.mass_move_um == pytest.approx(-4.0, abs=0.01)


def test_attribute_refuses_a_missing_coalition():
    loads = {frozenset(c): 1.0 for r in range(4) for c in itertools.combinations(PLAYERS, r)}
    del loads[frozenset(["tissue"])]
    with pytest.raises(ValueError, match="missing"):
        attribute(loads)


# --- remodelling space: open cavities as a fourth part (nested in architecture) ---------

from fem.analysis.attribution import CLOSED, cavity_part, closed_geometry  # noqa: E402
from fem.remodel.bmu import RemodelParams, activate, refilled, step  # noqa: E402
from fem.specimen.levelset import bone_volume  # noqa: E402

SIDE_B = [frozenset(c) for r in range(3) for c in itertools.combinations(("mass", "tissue"), r)]
SIDE_T = [s | {"architecture"} for s in SIDE_B]


def _additive(mass, tissue, permanent, pen_b, pen_t):
    """F of every coalition (plain and closed) for F(B) = 100 plus known effects: the
    baseline's open cavities cost pen_b on the baseline side, the treated ones pen_t on
    the treated side (parts are % of F(B), so the effects come back as they are)."""
    table = {}
    for s in SIDE_B + SIDE_T:
        arch = "architecture" in s
        f = 100 - pen_b + mass * ("mass" in s) + tissue * ("tissue" in s) + permanent * arch
        table[s] = f + (pen_t if arch else pen_b)
        table[s | {CLOSED}] = f
    return table


def test_an_additive_strength_gives_back_each_effect():
    parts = attribute(_additive(mass=-3.0, tissue=2.5, permanent=-1.25, pen_b=-4.0, pen_t=-1.5))
    assert parts.mass_pct == pytest.approx(-3.0, abs=1e-12)
    assert parts.tissue_pct == pytest.approx(2.5, abs=1e-12)
    # fewer open cavities at T than at B: +2.5 points; the rest of architecture is permanent
    assert parts.cavities_pct == pytest.approx(2.5, abs=1e-12)
    assert parts.permanent_pct == pytest.approx(-1.25, abs=1e-12)
    # each state's own cavities: F(B) = 100 against 104 closed; F(T) against F(T) + 1.5
    assert parts.cavity_cost_base_pct == pytest.approx(100 * (100 / 104 - 1), abs=1e-12)
    f_t = 100 + 4.0 - 3.0 + 2.5 - 1.25 - 1.5
    assert parts.cavity_cost_pct == pytest.approx(100 * (f_t / (f_t + 1.5) - 1), abs=1e-12)


def test_the_four_parts_sum_to_the_total():
    rng = np.random.default_rng(3)
    table = {k: 100 + float(rng.normal(0, 5)) for k in SIDE_B + SIDE_T}
    table.update({k | {CLOSED}: 100 + float(rng.normal(0, 5)) for k in SIDE_B + SIDE_T})
    p = attribute(table)
    assert p.cavities_pct != 0
    four = p.mass_pct + p.tissue_pct + p.cavities_pct + p.permanent_pct
    assert four == pytest.approx(p.total_pct, abs=1e-12)


def test_without_open_cavities_the_cavity_part_is_zero_and_the_rest_unchanged():
    rng = np.random.default_rng(4)
    plain = {k: 100 + float(rng.normal(0, 5)) for k in SIDE_B + SIDE_T}
    three = attribute(plain)
    assert three.cavities_pct == 0.0
    # one side with cavities: that side's closed values; none on the other side
    with_t = {**plain, **{k | {CLOSED}: plain[k] + 1.0 for k in SIDE_T}}
    four = attribute(with_t)
    assert (four.mass_pct, four.tissue_pct, four.architecture_pct) == (
        three.mass_pct, three.tissue_pct, three.architecture_pct)
    # closing T's cavities would raise F by 1 N everywhere on its side: they cost 1 N
    assert four.cavities_pct == pytest.approx(-100.0 / plain[frozenset()], abs=1e-12)
    # closed values equal to the plain ones: exactly no cavity part
    same = {**plain, **{k | {CLOSED}: plain[k] for k in SIDE_B + SIDE_T}}
    assert attribute(same).cavities_pct == 0.0


def test_cavity_part_refuses_a_side_with_some_closed_values_missing():
    table = _additive(-1, 1, 0, -1, -1)
    del table[frozenset(["architecture", "mass", CLOSED])]
    with pytest.raises(ValueError, match="closed-cavity"):
        cavity_part(table)


def _plate(thickness, h=0.02, n=(50, 50, 40)):
    """A horizontal plate of bone (signed distance, mm) and a surface voxel on its top."""
    z = (np.arange(n[2]) + 0.5) * h
    zc = z[n[2] // 2] + 0.25 * h
    phi = np.broadcast_to((thickness / 2 - np.abs(z - zc)).astype(np.float32), n).copy()
    top = int(np.argmin(np.abs(phi[0, 0, n[2] // 2:]))) + n[2] // 2
    state = BoneState.from_levelset(phi, (h, h, h))
    return state, (n[0] // 2, n[1] // 2, top)


def test_refilling_an_open_cavity_restores_the_level_set():
    state, centre = _plate(0.4)
    before = state.phi.copy()
    p = RemodelParams(balance=1.0)
    assert not activate(state, p, centre, 0.06, 0.15)
    assert np.abs(state.phi - before).max() > 0.03
    np.testing.assert_allclose(refilled(state, p), before, atol=1e-6)
    assert len(state.bmus) == 1 and np.abs(state.phi - before).max() > 0.03   # state unchanged


def test_a_perforating_cavity_is_not_refilled():
    state, centre = _plate(0.08)
    before = state.phi.copy()
    assert activate(state, RemodelParams(balance=1.0), centre, 0.1, 0.15)
    assert not state.bmus
    again = refilled(state, RemodelParams(balance=1.0))
    np.testing.assert_array_equal(again, state.phi)
    assert np.abs(again - before).max() > 0.05


def test_refilled_is_what_formation_will_do():
    # a deficit balance: refilled() must leave the same deficit that the BMU model leaves
    state, centre = _plate(0.4)
    p = RemodelParams(balance=0.9, activation_frequency=0.0)
    activate(state, p, centre, 0.06, 0.15)
    expect = refilled(state, p)
    for i in range(8):                  # 8 months > 40 + 160 days: the cavity closes
        step(state, p, 1 / 12, seed=0, step_index=i + 1)
    assert not state.bmus
    np.testing.assert_allclose(expect, state.phi, atol=1e-6)


def test_refilling_stops_at_the_dug_surface_when_formation_overfills():
    # balance 1.3: formation will build 30 % more than was dug; closing the cavity
    # restores the surface it was dug into, the overfill is not remodelling space
    state, centre = _plate(0.4)
    before = state.phi.copy()
    p = RemodelParams(balance=1.3, activation_frequency=0.0)
    activate(state, p, centre, 0.06, 0.15)
    np.testing.assert_allclose(refilled(state, p), before, atol=1e-6)
    for i in range(4):                  # part of the formation period: partly refilled
        step(state, p, 1 / 12, seed=0, step_index=i + 1)
    assert 0 < state.bmus[0].filled < 1
    np.testing.assert_allclose(refilled(state, p), before, atol=1e-6)
    for i in range(4, 6):               # filled beyond the dug surface, still open
        step(state, p, 1 / 12, seed=0, step_index=i + 1)
    assert state.bmus and state.bmus[0].filled > 1
    np.testing.assert_array_equal(refilled(state, p), state.phi)


def test_closed_geometry_keeps_the_bone_volume():
    state, centre = _plate(0.4)
    p = RemodelParams(balance=1.0)
    activate(state, p, centre, 0.06, 0.15)
    closed = closed_geometry(state.phi, refilled(state, p), state.spacing)
    volume = bone_volume(state.phi, state.spacing)
    assert bone_volume(closed, state.spacing) == pytest.approx(volume, rel=1e-6)
    assert bone_volume(refilled(state, p), state.spacing) > 1.003 * bone_volume(state.phi, state.spacing)
