"""Partial volumes in the stiffness (fem.specimen.partial): the bound itself, layers of
partial voxels in parallel and in series, and convergence with the voxel size."""

import numpy as np
import pytest

from fem.pipeline import solve_specimen
from fem.specimen import islands
from fem.specimen.grey import levelset_from_grey
from fem.specimen.levelset import volume_fraction
from fem.specimen.load import Specimen, specimen_from_levelset
from fem.specimen.partial import hashin_shtrikman, stiffness_fraction

E, NU = 10000.0, 0.3


def test_hashin_shtrikman_is_the_closed_form_for_voids_and_below_voigt():
    # Closed forms with a void phase, written out independently of the module's general
    # two-phase form: K = 4 f K1 G1 / (4 G1 + 3 K1 (1 - f)),
    # G = f G1 (9 K1 + 8 G1) / (9 K1 + 8 G1 + 6 (1 - f)(K1 + 2 G1)).
    f = np.linspace(0.0, 1.0, 101)
    k1, g1 = E / (3 * (1 - 2 * NU)), E / (2 * (1 + NU))
    k = 4 * f * k1 * g1 / (4 * g1 + 3 * k1 * (1 - f))
    g = f * g1 * (9 * k1 + 8 * g1) / (9 * k1 + 8 * g1 + 6 * (1 - f) * (k1 + 2 * g1))
    with np.errstate(invalid="ignore"):
        expected = np.where(f > 0, 9 * k * g / (3 * k + g), 0.0)
    hs = hashin_shtrikman(f, NU)
    np.testing.assert_allclose(E * hs, expected, rtol=1e-12, atol=1e-9)
    assert hs[0] == 0.0 and hs[-1] == 1.0          # exact ends: binary specimens unchanged
    assert np.all(hs[1:-1] < f[1:-1])              # strictly below Voigt (E x f) inside
    assert np.all(np.diff(hs) > 0)                 # monotonic: a thicker voxel is stiffer
    np.testing.assert_array_equal(stiffness_fraction(f, "linear"), f)
    with pytest.raises(ValueError, match="expected one of"):
        stiffness_fraction(f, "cubic")


def _layers(fractions, axis, n=6, h=0.05):
    """A specimen of n^3 voxels whose bone fraction varies along ``axis`` only (layers),
    seen by a noiseless scanner (grey linear in fraction) and read by the grey path."""
    shape = [1, 1, 1]
    shape[axis] = n
    frac = np.broadcast_to(np.asarray(fractions, float).reshape(shape), (n, n, n))
    image = 40.0 + 160.0 * frac
    phi = levelset_from_grey(image, (h,) * 3, 120.0, 40.0, 200.0)
    np.testing.assert_allclose(volume_fraction(phi, (h,) * 3), frac, atol=1e-6)
    return specimen_from_levelset(phi, (h,) * 3, E)


@pytest.mark.parametrize("rule", ["hashin-shtrikman", "linear"])
def test_partial_layers_in_parallel(case_factory, rule):
    # A plate along the load (layers across x) with a partial voxel on each side: every
    # column is strained alike and all share nu, so E_app = E x mean of the columns'
    # element moduli, exactly. Linear gives E x BV/TV (Voigt, exact for this plate);
    # Hashin-Shtrikman less, since it does not know the bone lies along the load.
    fractions = [0.0, 0.35, 1.0, 1.0, 0.8, 0.0]
    spec = _layers(fractions, axis=0)
    r = solve_specimen(spec, case_factory(solver={"rtol": 1e-10}, material={"partial_volume": rule}),
                       log=lambda *a: None)
    expected = E * stiffness_fraction(np.array(fractions), rule, NU).mean()
    assert r["apparent_modulus_MPa"] == pytest.approx(expected, rel=1e-6)
    assert r["apparent_modulus_MPa"] <= E * np.mean(fractions) * (1 + 1e-9)   # Voigt
    assert r["bv_tv"] == pytest.approx(np.mean(fractions), rel=1e-6)


def test_gap_bridged_by_a_partial_layer_in_series(case_factory):
    # A solid column cut across the load by a layer only 30 % bone: a gap of 0.7 voxel
    # (the thresholded mask says gap). Whatever the rule, the layers are in series, so
    # E_app lies between the Reuss and Voigt means of the element moduli (the soft layer's
    # lateral mismatch lifts it 9 % above Reuss here). With the gap layer at E x HS(0.3)
    # the column carries less than the series (Reuss) estimate of a layer at E x f, the
    # most a bridging layer with 30 % bone laid along the load could give in series;
    # with E x f it carries more.
    f = 0.3
    fractions = [1.0, 1.0, f, 1.0, 1.0, 1.0]
    moduli = {}
    for rule in ("hashin-shtrikman", "linear"):
        spec = _layers(fractions, axis=2)
        r = solve_specimen(spec, case_factory(solver={"rtol": 1e-10}, material={"partial_volume": rule}),
                           log=lambda *a: None)
        layer = stiffness_fraction(np.array(fractions), rule, NU)
        reuss, voigt = E / np.mean(1 / layer), E * layer.mean()
        assert reuss <= r["apparent_modulus_MPa"] <= voigt
        moduli[rule] = r["apparent_modulus_MPa"]
    series_linear = E / np.mean(1 / np.array(fractions))
    assert moduli["hashin-shtrikman"] < series_linear < moduli["linear"]


def test_generated_bone_converges_with_voxel_size(case_factory):
    # The same bone at 20 um and at 40 um (the 2 x 2 x 2 block mean of its 20 um bone
    # fractions, read as a grey image, as a scanner would see it). E x f's partial voxels
    # bridge and thicken joints at 40 um; the Hashin-Shtrikman element moduli change far
    # less between the two sizes, and at 20 um agree with the binary (thresholded) mesh.
    # (1.2 mm, seed 0: fast; docs/real-scans.md has 3 mm specimens and the real core.)
    from fem.specimen.vertebral import generate

    net = generate(size=1.2, voxel_size=0.02, bv_tv=0.13, seed=0)
    f = volume_fraction(net.phi, net.spacing)
    n = f.shape[0] // 2
    grey = f.reshape(n, 2, n, 2, n, 2).mean(axis=(1, 3, 5))
    coarse = levelset_from_grey(grey, (0.04,) * 3, 0.5, 0.0, 1.0)
    case = {rule: case_factory(solver={"rtol": 1e-8}, material={"partial_volume": rule})
            for rule in ("hashin-shtrikman", "linear")}
    e = {}
    for rule in case:
        for h, phi in ((40, coarse), (20, net.phi)):
            spec = specimen_from_levelset(phi, (h / 1000,) * 3, E)
            e[rule, h] = solve_specimen(spec, case[rule], log=lambda *a: None)["apparent_modulus_MPa"]
    mask, _ = islands.held_by_platens(net.phi > 0)
    binary = solve_specimen(Specimen(mask, net.spacing, E), case["linear"], log=lambda *a: None)
    change = {rule: e[rule, 40] / e[rule, 20] - 1 for rule in ("hashin-shtrikman", "linear")}
    assert change["linear"] > 0.03                          # the over-stiffening to remove
    assert abs(change["hashin-shtrikman"]) < 0.5 * change["linear"]
    assert abs(change["hashin-shtrikman"]) < 0.03
    assert e["hashin-shtrikman", 20] == pytest.approx(binary["apparent_modulus_MPa"], rel=0.03)


def test_real_core_converges_with_voxel_size(lhdl_core, case_factory):
    # The LHDL core's central 1.2 mm as a trial prepares it (Gaussian sigma 1 at 19.5 um,
    # threshold 125), at 39 um (2 x 2 x 2 block mean) and at 19.5 um. Measured when written:
    # E x f +14 % between the sizes, HS +4 %, HS at 19.5 um 2 % below the binary mesh.
    from fem.specimen.scan import scan_specimen

    case = {rule: case_factory(solver={"rtol": 1e-8}, material={"partial_volume": rule})
            for rule in ("hashin-shtrikman", "linear")}
    e = {}
    for k in (2, 1):
        scan = scan_specimen(lhdl_core, 0.0195, 125.0, smooth_sigma=1.0, coarsen=k, roi_size=1.2)
        for rule in case:
            spec = specimen_from_levelset(scan.phi, scan.spacing, E)
            e[rule, k] = solve_specimen(spec, case[rule], log=lambda *a: None)["apparent_modulus_MPa"]
    mask, _ = islands.held_by_platens(scan.phi > 0)
    binary = solve_specimen(Specimen(mask, scan.spacing, E), case["linear"], log=lambda *a: None)
    change = {rule: e[rule, 2] / e[rule, 1] - 1 for rule in ("hashin-shtrikman", "linear")}
    assert change["linear"] > 0.05
    assert abs(change["hashin-shtrikman"]) < 0.5 * change["linear"]
    assert e["hashin-shtrikman", 1] == pytest.approx(binary["apparent_modulus_MPa"], rel=0.03)


def test_binary_specimens_keep_their_moduli_bit_for_bit():
    # Full voxels get the tissue modulus itself (not E x 0.9999...), under every rule: a
    # binary image, with or without a level set, solves exactly as before the rule existed.
    from fem.mesh.voxel import voxel_grid

    rng = np.random.default_rng(1)
    mask = rng.random((6, 7, 8)) < 0.5
    tissue = rng.uniform(5000.0, 20000.0, mask.shape)
    grid = voxel_grid(mask, (0.05,) * 3)
    for fraction in (None, mask.astype(float)):
        for rule in ("hashin-shtrikman", "linear"):
            spec = Specimen(mask, (0.05,) * 3, tissue, fraction=fraction)
            np.testing.assert_array_equal(spec.element_modulus(grid, 0.3, rule), tissue.ravel()[grid.voxels])


def test_the_rule_is_a_case_key_with_a_clear_error(case_factory):
    from fem.errors import CaseError

    assert case_factory().material.partial_volume == "hashin-shtrikman"
    with pytest.raises(CaseError, match=r"\[material.partial_volume\].*linear"):
        case_factory(material={"partial_volume": "voigt"})
