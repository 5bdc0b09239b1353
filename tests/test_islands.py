"""Which pieces of bone stay: attached to the specimen's faces (remodelling) and held by
the platens (solve)."""

import numpy as np
import pytest

from fem.pipeline import solve_specimen
from fem.specimen.load import specimen_from_levelset
from fem.specimen import islands
from fem.specimen.levelset import from_mask

H = 0.05


def pieces():
    """12^3 box: two columns spanning z (3x3 and 2x2 voxels), a column standing on the
    bottom only, a bar attached to a side face only, and a loose blob."""
    m = np.zeros((12, 12, 12), bool)
    m[1:4, 1:4, :] = True          # column A, 9 voxels per layer
    m[8:10, 8:10, :] = True        # column B, 4 voxels per layer
    m[8:10, 1:3, :6] = True        # stands on the bottom face only
    m[:3, 8:10, 5:7] = True        # touches the x = 0 face only
    m[5:7, 5:7, 5:7] = True        # loose
    return m


def test_attached_to_boundary_keeps_every_piece_reaching_a_face():
    m = pieces()
    kept, removed = islands.attached_to_boundary(m)
    assert removed == 8
    assert not kept[5:7, 5:7, 5:7].any()
    assert np.array_equal(kept, m & ~np.pad(np.ones((2, 2, 2), bool), ((5, 5), (5, 5), (5, 5))))


def test_held_by_platens_keeps_the_pieces_spanning_both_loaded_faces():
    m = pieces()
    kept, removed = islands.held_by_platens(m)
    spanning = np.zeros_like(m)
    spanning[1:4, 1:4, :] = spanning[8:10, 8:10, :] = True
    assert np.array_equal(kept, spanning)
    assert removed == m.sum() - spanning.sum()
    # the stricter filter drops column B too
    assert islands.largest_component(m)[0].sum() == 9 * 12


def test_two_separate_columns_carry_the_load_together(case_factory):
    # Uniaxial (frictionless platens): E_app = E x area fraction of both columns,
    # exactly; before, the solver kept only the larger column (9/144 instead of 13/144).
    phi = from_mask(pieces(), (H,) * 3)
    spec = specimen_from_levelset(phi, (H,) * 3, 10000.0)
    assert spec.mask.sum() == 13 * 12
    case = case_factory(load={"test": "uniaxial"}, solver={"rtol": 1e-10})
    r = solve_specimen(spec, case, log=lambda *a: None)
    assert r["apparent_modulus_MPa"] == pytest.approx(10000.0 * 13 / 144, rel=1e-6)
