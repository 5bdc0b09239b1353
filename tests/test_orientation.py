"""fem.specimen.orientation: which bone runs along the load, from the bone's shape alone."""

import numpy as np
import pytest
from scipy import ndimage

from fem.specimen.orientation import axial_extent, horizontal_bone, local_moments, without

H = 0.04
N = 75


def _grid():
    c = np.arange(N) * H + H / 2
    return np.meshgrid(c, c, c, indexing="ij")


def rod(p0, p1, radius):
    """Voxels within ``radius`` mm of the segment p0-p1 (mm)."""
    x, y, z = _grid()
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    length = np.linalg.norm(d)
    d /= length
    q = np.stack([x - p0[0], y - p0[1], z - p0[2]], -1)
    t = np.clip(q @ d, 0, length)
    return np.linalg.norm(q - t[..., None] * d, axis=-1) <= radius


@pytest.fixture(scope="module")
def lattice():
    """Nine vertical columns (radius 70 um) braced at three levels by horizontal rods
    (radius 50 um): (vertical voxels, horizontal voxels)."""
    v = np.zeros((N,) * 3, bool)
    h = np.zeros_like(v)
    for cx in (0.5, 1.5, 2.5):
        for cy in (0.5, 1.5, 2.5):
            v |= rod((cx, cy, -0.1), (cx, cy, 3.1), 0.07)
    for level in (0.75, 1.5, 2.25):
        for c in (0.5, 1.5, 2.5):
            h |= rod((0.5, c, level), (2.5, c, level), 0.05)
            h |= rod((c, 0.5, level), (c, 2.5, level), 0.05)
    return v, h & ~v


def test_lattice_rods_sorted(lattice):
    v, h = lattice
    found = horizontal_bone(v | h, (H,) * 3)
    far = h & (ndimage.distance_transform_edt(~v, sampling=H) > 0.15)
    assert found[far].all()                 # horizontal rods away from the columns
    assert found[h].mean() > 0.8            # junction ends read as the column's node
    assert not found[v].any()               # no column voxel is taken


def test_plates_and_angles():
    plate = np.zeros((N,) * 3, bool)
    plate[20:55, 20:55, 36:40] = True       # flat, normal along z
    assert horizontal_bone(plate, (H,) * 3)[plate].mean() > 0.95
    wall = np.zeros((N,) * 3, bool)
    wall[20:55, 36:40, 10:65] = True        # upright, normal along y
    assert horizontal_bone(wall, (H,) * 3)[wall].mean() < 0.1
    centre = np.full(3, 1.5)
    for angle, expected in ((20, False), (35, False), (55, True), (70, True)):
        a = np.radians(angle)
        d = np.array([np.sin(a), 0.0, np.cos(a)])
        r = rod(centre - 1.2 * d, centre + 1.2 * d, 0.07)
        share = horizontal_bone(r, (H,) * 3, max_angle=45)[r].mean()
        assert share == (1.0 if expected else 0.0), (angle, share)
        # the extent is |cos| of the angle to z, within the window's sampling error
        extent = axial_extent(r, (H,) * 3)
        core = r & (ndimage.distance_transform_edt(r, sampling=H) > 0.04)
        assert abs(np.median(extent[core]) - np.cos(a)) < 0.03, angle


def test_other_axis_and_moments():
    r = rod((0.2, 1.5, 1.5), (2.8, 1.5, 1.5), 0.07)   # along x
    assert horizontal_bone(r, (H,) * 3)[r].all()
    assert not horizontal_bone(r, (H,) * 3, axis=0)[r].any()
    # the covariance of a long rod along its axis is the window's variance sigma^2
    where, cov = local_moments(r, (H,) * 3, sigma=0.1)
    mid = np.unravel_index(where, r.shape)[0] == N // 2
    assert np.allclose(cov[mid, 0, 0], 0.1 ** 2, rtol=0.02)
    with pytest.raises(ValueError, match="max_angle"):
        horizontal_bone(r, (H,) * 3, max_angle=90)


def test_without_removes_exactly_the_voxels():
    from fem.specimen.levelset import bone_volume, from_mask

    v = rod((1.5, 1.5, 0.0), (1.5, 1.5, 3.0), 0.2)
    phi = from_mask(v, (H,) * 3, band=0.2)
    cut = v & (_grid()[2] > 1.0) & (_grid()[2] < 1.4)
    out = without(phi, cut, (H,) * 3)
    assert np.isclose(bone_volume(out, (H,) * 3), (v.sum() - cut.sum()) * H ** 3)
    assert np.array_equal(out > 0, v & ~cut)


def test_generator_labels_recovered():
    """On a generated specimen, whose horizontal trabeculae are labelled, the classifier
    finds most of their bone and little else."""
    from fem.specimen import vertebral
    from fem.specimen.cohorts import load_cohort

    g = load_cohort("early-postmenopausal")["generator"]
    net = vertebral.generate(**dict(g, seed=0, size=2.0, voxel_size=0.04))
    bone = net.phi > 0
    labelled = bone & (net.kind == vertebral.HORIZONTAL)
    found = horizontal_bone(bone, net.spacing)
    recall = (found & labelled).sum() / labelled.sum()
    precision = (found & labelled).sum() / (found & bone).sum()
    assert recall > 0.7 and precision > 0.7, (recall, precision)
