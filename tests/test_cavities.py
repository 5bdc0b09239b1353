"""Cavities in mm (fem.remodel.cavities): carved volume against the analytic cavity volume,
placement independent of the voxel grid, seeded."""

import numpy as np
import pytest

from fem.remodel import bmu
from fem.remodel.cavities import ABOVE, cavity_distance, dig_one, place

EDGE = 0.6      # mm, box edge (divisible by 20 and 10 um)
TOP = 0.3937    # mm, slab top surface, off the voxel faces


def slab(h):
    """Bone for z in [0.1, TOP] (mm), exact signed distance at voxel centres of edge h."""
    n = int(round(EDGE / h))
    z = (np.arange(n) + 0.5) * h
    phi = np.minimum(z - 0.1, TOP - z).astype(np.float32)
    return np.broadcast_to(phi, (n, n, n)).copy()


def rod(h, size=1.0, radius=0.15):
    """A rod along x through the middle of a size-mm box: phi = radius - distance to the axis."""
    n = int(round(size / h))
    c = (np.arange(n) + 0.5) * h
    y, z = np.meshgrid(c, c, indexing="ij")
    phi = (radius - np.hypot(y - size / 2, z - size / 2)).astype(np.float32)
    return np.broadcast_to(phi, (n, n, n)).copy()


@pytest.mark.parametrize("h", [0.02, 0.01])
def test_carved_volume_is_the_analytic_cavity_volume(h):
    # floor depth (1 - (rho/r)^4) below a flat surface: volume pi r^2 depth (1 - 1/3)
    depth, radius = 0.065, 0.16
    exact = np.pi * radius ** 2 * depth * 2.0 / 3.0
    phi = slab(h)
    site = np.array([0.3071, 0.2893, TOP])
    removed = dig_one(phi, (h,) * 3, site, np.array([0.0, 0.0, 1.0]), depth, radius)
    assert removed == pytest.approx(exact, rel=0.02)
    # the floor is where it should be: bone again just below the deepest point
    k = int((TOP - depth - 0.5 * h) / h)   # the voxel centre just below the floor
    i, j = int(site[0] / h), int(site[1] / h)
    assert phi[i, j, k] > 0 > phi[i, j, k + 2]


def test_bmu_cavity_is_the_shared_geometry():
    # bmu digs the same cavity as cavity_distance with the cap ABOVE (0.08 mm) over the
    # surface, fixed in mm like the rest of the cavity (it was 2 h: 0.04 mm here)
    h = 0.02
    phi = slab(h)
    centre = (15, 14, int(TOP / h))
    box, c, site, n = bmu._cavity(phi, (h,) * 3, centre, 0.065, 0.16)
    x, y, z = np.meshgrid(*((np.arange(s.start, s.stop) + 0.5) * h for s in box), indexing="ij", sparse=True)
    assert np.array_equal(c, cavity_distance(x, y, z, site, n, 0.065, 0.16, ABOVE).astype(np.float32))
    assert n == pytest.approx([0, 0, 1], abs=1e-6)


def test_placement_is_the_same_in_mm_at_every_voxel_edge():
    sets = {h: place(rod(h), (h,) * 3, 0.1, seed=4) for h in (0.02, 0.01)}
    a, b = sets[0.02], sets[0.01]
    assert len(a) >= 3 and abs(len(a) - len(b)) <= 1
    k = min(len(a), len(b))
    assert np.abs(a.sites[:k] - b.sites[:k]).max() < 0.002          # mm
    assert np.abs(a.radii[:k] - b.radii[:k]).max() == 0.0             # sizes drawn, not measured
    for cav in (a, b):
        # on the rod's surface, normals pointing out radially (independent of the sampling)
        radial = cav.sites[:, 1:] - 0.5
        dist = np.linalg.norm(radial, axis=1)
        assert np.abs(dist - 0.15).max() < 0.002
        assert np.abs(cav.normals[:, 1:] - radial / dist[:, None]).max() < 0.03
        assert np.abs(cav.normals[:, 0]).max() < 0.03
        # the chord through a rod of radius 0.15 mm along its normal is its diameter
        assert np.median(cav.thickness) == pytest.approx(0.3, abs=0.01)
    other = place(rod(0.02), (0.02,) * 3, 0.1, seed=5)
    assert np.abs(other.sites[0] - a.sites[0]).max() > 0.01


def test_thinnest_placement_prefers_thin_trabeculae():
    # two rods, radius 0.08 and 0.2 mm: the thinnest placement digs only the thin one
    h = 0.02
    thin, thick = rod(h, 1.0, 0.08), rod(h, 1.0, 0.2)
    phi = np.concatenate([thin, thick], axis=0)        # thin for x < 1, thick for x > 1
    cav = place(phi, (h,) * 3, 0.05, seed=1, where="thinnest")
    assert len(cav) >= 2 and np.all(cav.sites[:, 0] < 1.0)
    rnd = place(phi, (h,) * 3, 0.05, seed=1)
    assert np.any(rnd.sites[:, 0] > 1.0)
    assert ABOVE == pytest.approx(0.08)   # two 40 um voxels: bmu's cap in the default trial


def test_network_sampled_at_another_voxel_edge():
    from fem.errors import BonefemError
    from fem.specimen.levelset import bone_volume
    from fem.specimen.vertebral import generate

    net = generate(size=1.2, seed=2, voxel_size=0.04)
    assert np.array_equal(net.sampled(0.04), net.phi)       # the generation edge: the same field
    fine = net.sampled(0.02)
    assert fine.shape == (60, 60, 60)
    # the same geometry: bone volume within 3 % and the coarse samples near the fine ones
    assert bone_volume(fine, (0.02,) * 3) == pytest.approx(bone_volume(net.phi, (0.04,) * 3), rel=0.03)
    centres = fine[1::2, 1::2, 1::2]     # fine voxel centres 10 um from the coarse ones along each axis
    near = np.abs(net.phi) < 0.1
    assert np.abs(centres - net.phi)[near].mean() < 0.01
    with pytest.raises(BonefemError, match="whole voxels"):
        net.sampled(0.035)
