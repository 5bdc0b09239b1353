"""Physics of the voxel micro-FE solve against analytic values.

Every structure here is a prism along z or a layered solid, for which linear
elasticity has a closed-form uniaxial answer that the trilinear elements reproduce
exactly (uniform strain), so the tolerances are solver tolerances, not
discretisation errors.
"""

import numpy as np
import pytest

from fem.pipeline import solve_specimen
from fem.specimen.load import Specimen
from tests.conftest import prism

E = 10000.0


def solve(mask, case, spacing=(0.05, 0.05, 0.05), modulus=E):
    return solve_specimen(Specimen(np.asarray(mask, bool), spacing, modulus), case, log=lambda *a: None)


@pytest.fixture
def tight(case_factory):
    def make(test="uniaxial", poisson=0.3, strain=-0.01):
        return case_factory(material={"poisson": poisson}, load={"test": test, "strain": strain},
                            solver={"rtol": 1e-12})
    return make


def test_solid_cube_uniaxial_gives_tissue_modulus_and_pistoia_0007E(tight):
    r = solve(np.ones((5, 5, 5)), tight())
    assert r["apparent_modulus_MPa"] == pytest.approx(E, rel=1e-6)
    area = 0.25 * 0.25
    assert r["pistoia"]["failure_load_N"] / area == pytest.approx(0.007 * E, rel=1e-6)
    assert r["pistoia"]["ees_at_critical_volume"] == pytest.approx(0.01, rel=1e-6)
    # Strain energy of uniform uniaxial stress: 0.5 E eps^2 V (mJ).
    assert r["strain_energy_mJ"] == pytest.approx(0.5 * E * 1e-4 * 0.25 ** 3, rel=1e-6)
    assert r["solver"]["converged_reason"].startswith("CONVERGED")
    assert (r["elements"], r["nodes"], r["dofs"]) == (125, 216, 648)


def test_axial_is_stiffer_than_uniaxial(tight):
    cube = np.ones((6, 6, 4))
    uni = solve(cube, tight("uniaxial"))["apparent_modulus_MPa"]
    axial = solve(cube, tight("axial"))["apparent_modulus_MPa"]
    assert axial > uni * 1.02
    # Bonded platens can at most reach the confined (oedometric) modulus.
    nu = 0.3
    assert axial < E * (1 - nu) / ((1 + nu) * (1 - 2 * nu))


def test_column_lattice_gives_modulus_times_area_fraction(tight):
    # Square columns (2x2 voxels, pitch 4) joined by one-voxel walls: a connected
    # prism, so uniaxial stress is uniform and E_app = E * area fraction exactly.
    xs = np.zeros((12, 12), bool)
    for i in range(0, 12, 4):
        for j in range(0, 12, 4):
            xs[i:i + 2, j:j + 2] = True
    xs[0, :] = True
    xs[:, 0] = True
    r = solve(prism(xs, 5), tight())
    assert r["voxels_removed"] == 0
    assert r["apparent_modulus_MPa"] == pytest.approx(E * xs.mean(), rel=1e-6)
    assert r["bv_tv"] == pytest.approx(xs.mean())


def test_layers_in_series_give_reuss_modulus(tight):
    # With nu = 0 the layers do not constrain each other laterally, so the series
    # (Reuss) bound is the exact answer (with nu != 0 it is only a bound).
    e1, e2 = 4000.0, 12000.0
    modulus = np.full((4, 4, 6), e1)
    modulus[:, :, 3:] = e2
    r = solve(np.ones((4, 4, 6)), tight(poisson=0.0), modulus=modulus)
    assert r["apparent_modulus_MPa"] == pytest.approx(1 / (0.5 / e1 + 0.5 / e2), rel=1e-6)


def test_layers_side_by_side_give_voigt_modulus(tight):
    # Same axial strain and same lateral strain (-nu eps) in both: exact for any nu.
    e1, e2 = 4000.0, 12000.0
    modulus = np.full((6, 4, 5), e1)
    modulus[3:] = e2
    r = solve(np.ones((6, 4, 5)), tight(), modulus=modulus)
    assert r["apparent_modulus_MPa"] == pytest.approx(0.5 * (e1 + e2), rel=1e-6)


def test_floating_cluster_is_removed_and_changes_nothing(tight, tmp_path):
    from fem.case import case_from_dict
    from fem.specimen.load import load_specimen
    from fem.specimen.islands import largest_component
    from fem.specimen.foam import trabecular_foam

    bone = trabecular_foam(size=0.6, voxel_size=0.03, bv_tv=0.3, seed=3)
    clean, _ = largest_component(bone)
    dirty = clean.copy()
    # A 2x2x2 block that touches nothing: clear a shell around it first.
    dirty[8:14, 8:14, 8:14] = False
    dirty[10:12, 10:12, 10:12] = True
    reference, _ = largest_component(dirty)
    np.save(tmp_path / "dirty.npy", dirty)
    case = case_from_dict({"specimen": {"image": "dirty.npy", "voxel_size": 0.03},
                           "solver": {"rtol": 1e-12}}, "test", tmp_path)
    spec = load_specimen(case)
    assert spec.voxels_removed >= 8
    assert np.array_equal(spec.mask, reference)
    a = solve_specimen(spec, case, log=lambda *x: None)
    b = solve(reference, case, spacing=(0.03,) * 3)
    assert a["reaction_force_N"] == pytest.approx(b["reaction_force_N"], rel=1e-12)
    assert a["voxels_removed"] == spec.voxels_removed


def test_same_prism_at_half_the_voxel_size_gives_the_same_modulus(tight):
    # A prism refined 2x in x and y (same geometry) gives the same modulus: the
    # voxel path has no mesh-size bias for prismatic structures.
    xs = np.zeros((6, 6), bool)
    xs[1:5, 2:4] = True
    xs[1, :] = True
    fine = np.kron(xs, np.ones((2, 2), bool))
    a = solve(prism(xs, 4), tight(), spacing=(0.1, 0.1, 0.1))
    b = solve(prism(fine, 8), tight(), spacing=(0.05, 0.05, 0.05))
    assert a["apparent_modulus_MPa"] == pytest.approx(b["apparent_modulus_MPa"], rel=1e-6)
