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
