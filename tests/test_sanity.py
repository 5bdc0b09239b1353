"""Physical sanity warnings (fem.analysis.sanity): each fires on the units mistake or the
specimen on its side that it is for, and stays quiet on sensible input."""

import numpy as np
import pytest

from fem.analysis import sanity
from fem.specimen.foam import trabecular_foam


def test_voxel_size_in_micrometres_is_flagged():
    assert sanity.voxel_size_warnings((0.04, 0.04, 0.04)) == []
    assert sanity.voxel_size_warnings([1.0]) == []          # the limit itself is allowed
    (w,) = sanity.voxel_size_warnings((40, 40, 40))
    assert "40" in w and "0.04" in w


def test_modulus_in_gigapascals_is_flagged():
    assert sanity.modulus_warnings(10000.0) == []
    (w,) = sanity.modulus_warnings(10.0)
    assert "10 MPa" in w and "10000" in w
    # per-voxel moduli: the median decides, a few soft voxels do not
    e = np.full(100, 12000.0)
    e[:10] = 50.0
    assert sanity.modulus_warnings(e) == []


def test_dropping_most_of_the_bone_as_islands_is_flagged():
    assert sanity.islands_warnings(400, 600) == []
    (w,) = sanity.islands_warnings(600, 400)
    assert "60 %" in w
    assert sanity.islands_warnings(0, 0) == []


def test_direction_check_needs_a_clear_anisotropy():
    assert sanity.direction_warnings([1.0, 0.0, 0.0], 1.05) == []     # noise, isotropic
    assert sanity.direction_warnings([0.0, 0.3, 0.95], 2.0) == []
    (w,) = sanity.direction_warnings([0.9, 0.1, 0.2], 2.0)
    assert "from z" in w and "nearest axis: x" in w
    assert sanity.direction_warnings([np.nan] * 3, np.nan) == []


@pytest.fixture(scope="module")
def foam_along_z():
    # trabeculae elongated along z (correlation length 3x longer along z)
    return trabecular_foam(size=2.0, voxel_size=0.04, bv_tv=0.2, spacing=0.5, anisotropy=3.0, seed=1)


def test_a_specimen_on_its_side_is_flagged(foam_along_z):
    spacing = (0.04,) * 3
    d, ratio = sanity.main_direction(foam_along_z, spacing)
    assert ratio > 1.15 and abs(d[2]) > 0.9
    assert sanity.specimen_warnings(foam_along_z, spacing, 10000.0, 0) == []
    on_side = np.transpose(foam_along_z, (2, 1, 0))          # trabeculae along x
    (w,) = sanity.specimen_warnings(on_side, spacing, 10000.0, 0)
    assert "nearest axis: x" in w
    # and an isotropic foam says nothing about direction
    iso = trabecular_foam(size=2.0, voxel_size=0.04, bv_tv=0.2, spacing=0.5, anisotropy=1.0, seed=1)
    assert sanity.specimen_warnings(iso, spacing, 10000.0, 0) == []


def test_the_real_core_upright_is_quiet_and_on_its_side_is_flagged(lhdl_core):
    from fem.specimen.io import read_image, segment

    image, spacing = read_image(lhdl_core, 0.0195)
    mask = segment(image, 63)
    assert sanity.specimen_warnings(mask, spacing, 18000.0, 0) == []
    (w,) = sanity.specimen_warnings(np.transpose(mask, (2, 1, 0)), spacing, 18000.0, 0)
    assert "nearest axis: x" in w


def test_all_checks_together():
    mask = np.ones((4, 4, 4), bool)
    w = sanity.specimen_warnings(mask, (40, 40, 40), 10.0, 100, direction=False)
    assert len(w) == 3
