"""Morphometry against shapes with known answers (fem/specimen/morphometry.py).

Expected values are analytic (plate and rod geometry, graph Euler characteristics, the
MIL ellipse of a stretched sphere), or a brute-force evaluation of the definition,
never a value the code produced. Images are at most 48^3.
"""

import json

import numpy as np
import pytest

from fem.errors import BonefemError
from fem.specimen import morphometry as mo

ANISO = (0.02, 0.03, 0.05)


def plate(shape, axis, start, t):
    """A slab of ``t`` voxels normal to ``axis``, crossing the whole image."""
    m = np.zeros(shape, bool)
    index = [slice(None)] * 3
    index[axis] = slice(start, start + t)
    m[tuple(index)] = True
    return m


def ellipsoid(shape, radius, stretch, axis, spacing=(1, 1, 1)):
    """Voxels whose centres lie in an ellipsoid (mm), semi-axes radius x stretch along
    ``axis`` and radius across, centred in the image."""
    s = np.asarray(spacing, float)
    x = (np.stack(np.mgrid[:shape[0], :shape[1], :shape[2]], -1) - (np.array(shape) - 1) / 2) * s
    u = np.asarray(axis, float) / np.linalg.norm(axis)
    along = x @ u
    return along ** 2 / (radius * stretch) ** 2 + ((x ** 2).sum(-1) - along ** 2) / radius ** 2 <= 1


def lattice(nodes, period, width, margin):
    """A cubic lattice of square rods: nodes^3 joints, 3 nodes^2 (nodes-1) rods, inside."""
    n = 2 * margin + (nodes - 1) * period + width
    m = np.zeros((n, n, n), bool)
    lo, hi = margin, margin + (nodes - 1) * period + width
    for a in range(nodes):
        for b in range(nodes):
            pa, pb = margin + a * period, margin + b * period
            m[lo:hi, pa:pa + width, pb:pb + width] = True
            m[pa:pa + width, lo:hi, pb:pb + width] = True
            m[pa:pa + width, pb:pb + width, lo:hi] = True
    return m


def test_bv_tv_of_mask_and_fraction():
    m = plate((10, 10, 10), 2, 3, 4)
    assert mo.bv_tv(m) == 0.4
    assert mo.bv_tv(np.full((4, 4, 4), 0.25)) == 0.25
    with pytest.raises(BonefemError, match=r"\[0, 1\]"):
        mo.bv_tv(np.full((2, 2, 2), 1.5))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_plate_thickness_and_surface(axis):
    # An even number of voxels: the two middle layers are the ridge and the local
    # thickness is exact. Anisotropic voxels: the thickness is t x the spacing normal
    # to the plate, which catches a swapped axis.
    t, s = 4, ANISO[axis]
    m = plate((20, 22, 24), axis, 7, t)
    th, sd = mo.tb_th(m, ANISO)
    assert th == pytest.approx(t * s, rel=1e-6) and sd == pytest.approx(0, abs=1e-9)
    # The plate is cut by four image faces; cut faces do not count, so BS/BV = 2 / t.
    assert mo.bs_bv(m, ANISO) == pytest.approx(2 / (t * s), rel=1e-9)
    assert mo.bs_tv(m, ANISO) == pytest.approx(2 / (m.shape[axis] * s), rel=1e-9)


@pytest.mark.parametrize("t", [1, 3, 5])
def test_odd_plate_thickness_is_within_a_voxel(t):
    # Odd plates: the ball on the middle layer reaches the next background centre, half a
    # voxel beyond each face: t + 1 voxels (the documented grid bias).
    th, _ = mo.tb_th(plate((12, 12, 16), 2, 5, t), 1.0)
    assert t <= th <= t + 1 + 1e-6


@pytest.mark.parametrize("d, n", [(8, 35), (8, 36), (12, 35), (12, 36)])
def test_rod_thickness_and_surface(d, n):
    # A digital disc extruded along z, its axis on a voxel centre (n odd) or between
    # four (n even). Measured grid bias of the local thickness against the disc's
    # area-equivalent diameter: +0.04..+0.4 voxel on a centre, -0.7..-1.2 between
    # (docs/morphometry.md); marching cubes overestimates the perimeter by 2-16 %.
    x, y = np.mgrid[:n, :n] - (n - 1) / 2
    disc = x ** 2 + y ** 2 <= (d / 2) ** 2
    rod = np.repeat(disc[:, :, None], 20, axis=2)
    d_eq = 2 * np.sqrt(disc.sum() / np.pi)
    th, _ = mo.tb_th(rod, 0.01)
    assert -1.25 < th / 0.01 - d_eq < 0.5
    assert 0.98 < mo.bs_bv(rod, 0.01) / (4 / (d_eq * 0.01)) < 1.2


def test_spacing_of_parallel_plates():
    # Plates 2 voxels thick, 8 voxels apart, four periods cut at plate mid-planes: the
    # image starts and ends with a 1-voxel half plate. Voxels outside the image are not
    # background, so a half plate at the border counts as the whole plate (2 voxels),
    # and every gap is closed: Tb.Sp = 8 voxels, Tb.Th = 2, Tb.N = 1 / period.
    s, period = 0.025, 10
    k = np.arange(4 * period)
    m = np.broadcast_to(np.isin(k % period, (0, period - 1)), (16, 18, k.size)).copy()
    r = mo.morphometry(m, s)
    assert r["tb_sp_mm"] == pytest.approx(8 * s, rel=1e-6)
    assert r["tb_th_mm"] == pytest.approx(2 * s, rel=1e-6)
    assert r["tb_n_per_mm"] == pytest.approx(1 / (period * s), rel=1e-6)
    assert r["tb_th_plate_mm"] == pytest.approx(2 * s, rel=1e-9)  # 2 BV/BS of flat plates


def test_local_thickness_matches_the_definition():
    # Brute force: at each bone voxel, the largest 2r over all balls B(c, r) that hold
    # it, with r = distance from c to the nearest background centre. The fast version
    # keeps only ridge centres and paints in radius order; the result must be identical.
    rng = np.random.default_rng(5)
    from scipy import ndimage

    m = ndimage.gaussian_filter(rng.standard_normal((14, 15, 16)), 2.0) > 0.05
    for spacing in [(1.0, 1.0, 1.0), (0.02, 0.03, 0.025)]:
        s = np.array(spacing)
        r = ndimage.distance_transform_edt(m, sampling=s)
        pts = np.argwhere(m)
        d = np.sqrt((((pts[:, None, :] - pts[None, :, :]) * s) ** 2).sum(-1))
        rc = r[m][None, :]
        brute = np.where(d <= rc * (1 + 1e-9), 2 * rc, 0).max(axis=1)
        assert np.allclose(mo.local_thickness(m, s)[m], brute, rtol=1e-6)


@pytest.mark.parametrize("nodes", [2, 3])
def test_euler_characteristic_of_a_lattice_inside_the_image(nodes):
    # A lattice of rods is a thickened graph: chi = joints - rods, and loops = 1 - chi.
    m = lattice(nodes, period=6, width=2, margin=2)
    chi = nodes ** 3 - 3 * nodes ** 2 * (nodes - 1)
    assert mo.euler_characteristic(m) == chi
    assert mo.euler_delta(m) == chi  # nothing touches the border: no correction
    tv = m.size * 0.03 ** 3
    assert mo.conn_d(m, 0.03) == pytest.approx((1 - chi) / tv)


@pytest.mark.parametrize("shift", [0, 4])
def test_edge_correction_of_a_periodic_lattice(shift):
    # Cells of 8^3 voxels with one joint and three half-rods each: an infinite lattice
    # has chi = 1 - 3 = -2 per cell. A box of 3^3 whole cells cut from it must give
    # Delta chi = -54, whether the faces cut rods (shift 0) or joints (shift 4); the
    # uncorrected chi treats the box as an isolated object and does not.
    p, w, k = 8, 2, 3
    cell = np.zeros((p, p, p), bool)
    c = p // 2 - w // 2
    cell[:, c:c + w, c:c + w] = cell[c:c + w, :, c:c + w] = cell[c:c + w, c:c + w, :] = True
    box = np.roll(np.tile(cell, (k, k, k)), (shift,) * 3, axis=(0, 1, 2))
    assert mo.euler_delta(box) == -2 * k ** 3
    assert mo.euler_characteristic(box) != -2 * k ** 3
    tv = box.size * 0.02 ** 3
    r = mo.morphometry(box, 0.02)
    assert r["conn_d_per_mm3"] == pytest.approx((1 + 2 * k ** 3) / tv)


def test_euler_characteristic_of_simple_solids():
    solid = np.zeros((9, 9, 9), bool)
    solid[2:7, 2:7, 2:7] = True
    cavity, tunnel = solid.copy(), solid.copy()
    cavity[4, 4, 4] = False
    tunnel[4, 4, :] = False
    corners = np.zeros((4, 4, 4), bool)
    corners[1, 1, 1] = corners[2, 2, 2] = True  # touch at a corner: one object (26-conn.)
    assert [mo.euler_characteristic(a) for a in (solid, cavity, tunnel, corners)] == [1, 2, 0, 1]


@pytest.mark.parametrize("axis", [(0, 0, 1), (np.cos(np.pi / 6), np.sin(np.pi / 6), 0),
                                  (1, 1, 1)])
def test_fabric_of_a_stretched_sphere(axis):
    # A sphere stretched 2x along u: the intercept density is that of the sphere times
    # |A^-1 n|, an exact MIL ellipsoid with radii ratio 2, so DA = 1 - 1/2 and the main
    # direction (longest MIL) is u.
    f = mo.fabric(ellipsoid((40, 40, 40), 6, 2.0, axis), 1.0)
    u = np.asarray(axis) / np.linalg.norm(axis)
    assert f["da"] == pytest.approx(0.5, abs=0.04)
    assert f["da_ratio"] == pytest.approx(2.0, rel=0.1)
    assert abs(np.dot(f["main_direction"], u)) > np.cos(np.radians(2))


def test_fabric_uses_the_spacing():
    # A sphere in mm on anisotropic voxels is isotropic; an ellipsoid along x stays
    # along x whatever the voxel shape.
    s = (1.0, 1.5, 0.75)
    shape = (40, 27, 53)
    assert mo.fabric(ellipsoid(shape, 9, 1.0, (0, 0, 1), s), s)["da"] < 0.05
    f = mo.fabric(ellipsoid(shape, 7, 2.0, (1, 0, 0), s), s)
    assert f["da"] == pytest.approx(0.5, abs=0.05)
    assert abs(f["main_direction"][0]) > np.cos(np.radians(2))


def test_fabric_of_rods_and_plates():
    # Rods along z: test lines along z cross nothing, MIL(z) -> infinity, DA -> 1.
    x, y = np.mgrid[:30, :30]
    disc = np.zeros((30, 30), bool)
    for i in range(4, 30, 10):
        for j in range(4, 30, 10):
            disc |= (x - i) ** 2 + (y - j) ** 2 <= 6.25
    f = mo.fabric(np.repeat(disc[:, :, None], 30, axis=2), 1.0)
    assert f["da"] > 0.95 and f["main_direction"][2] > 0.999
    # Plates normal to x: only lines with an x component cross them, so the main
    # direction lies in the y-z plane.
    plates = np.zeros((30, 30, 30), bool)
    plates[2::8] = plates[3::8] = True
    f = mo.fabric(plates, 1.0)
    assert f["da"] > 0.95 and abs(f["main_direction"][0]) < 1e-3


def test_bmd_of_a_uniform_fraction():
    # BMD = mineral mass / total volume: a quarter of each voxel at 800 mg/cm^3 gives 200,
    # whatever the voxel size; BMC = BMD x TV.
    f = np.full((6, 7, 8), 0.25)
    assert mo.bmd(f, 800.0) == pytest.approx(200.0)
    assert mo.bmc(f, 800.0, 0.1) == pytest.approx(200.0 * 6 * 7 * 8 * 1e-3 / 1000)
    mask = plate((6, 7, 8), 2, 0, 4)  # half the image is bone
    r = mo.morphometry(mask, 0.05, fraction=np.where(mask, 0.8, 0.0), tmd=np.full(mask.shape, 1000.0))
    assert r["bv_tv"] == pytest.approx(0.4)
    assert r["bmd_mg_per_cm3"] == pytest.approx(400.0)
    assert r["tmd_mean_mg_per_cm3"] == pytest.approx(1000.0)
    # partial voxels whose centre lies outside the mask (a level set's outer half-band) count
    f = np.where(mask, 0.8, 0.1)
    assert mo.morphometry(mask, 0.05, fraction=f)["bv_tv"] == pytest.approx(f.mean())


def test_morphometry_is_json_ready_and_handles_empty_images():
    m = lattice(2, period=6, width=2, margin=2)
    r = mo.morphometry(m, 0.03, tmd=1100.0, seed=1)
    json.dumps(r, allow_nan=False)
    for key in ("bv_tv", "bs_bv_per_mm", "tb_th_mm", "tb_th_sd_mm", "tb_sp_mm", "tb_sp_sd_mm", "smi",
                "tb_n_per_mm", "conn_d_per_mm3", "da", "main_direction",
                "fabric_eigenvalues_per_mm2", "bmd_mg_per_cm3"):
        assert r[key] is not None, key
    empty = mo.morphometry(np.zeros((5, 5, 5), bool), 0.03)
    json.dumps(empty, allow_nan=False)
    assert empty["bv_tv"] == 0 and empty["tb_th_mm"] is None and empty["da"] is None
    assert empty["smi"] is None
    with pytest.raises(BonefemError, match="differs from the mask"):
        mo.morphometry(m, 0.03, fraction=np.ones((2, 2, 2)))


@pytest.mark.parametrize("radius", [6, 10])
def test_structure_model_index_of_plate_rod_and_sphere(radius):
    # Analytic SMI = 6 BV (dBS/dr) / BS^2: 0 for a plate (its area does not change on
    # dilation), 3 for a rod crossing the image (cut faces not counted: BS = 2 pi R L,
    # dBS/dr = 2 pi L), 4 for a sphere (8 pi R x 4/3 pi R^3 x 6 / (4 pi R^2)^2).
    n = 48
    g = np.mgrid[:n, :n, :n] - (n - 1) / 2
    sphere = (g ** 2).sum(axis=0) <= radius ** 2
    rod = g[0] ** 2 + g[1] ** 2 <= radius ** 2
    assert mo.smi(plate((n, n, n), 2, 20, radius), 0.05) == pytest.approx(0, abs=1e-9)
    assert mo.smi(rod, 0.05) == pytest.approx(3, abs=0.15)
    assert mo.smi(sphere, 0.05) == pytest.approx(4, abs=0.15)
    # anisotropic voxels: the same rod in mm, sampled finer along z
    rod_z = rod[:, :, ::2]
    assert mo.smi(rod_z, (0.05, 0.05, 0.1)) == pytest.approx(3, abs=0.15)


@pytest.mark.parametrize("diameter_voxels", [3.5, 5.0])
def test_structure_model_index_of_a_thin_rod(diameter_voxels):
    # A trabecula 3.5 voxels across (0.14 mm at 40 um), as a mask and as the level set's
    # partial-volume fraction: still a rod, SMI 3. BV must be the volume inside the
    # smoothed surface that BS and dBS/dr are taken from; with the unsmoothed BV these
    # read 3.5 and 3.8 (the smoothing moves a thin rod's surface inwards). Thinner rods
    # still read high (2.75 voxels: 3.6 from the fraction; docs/morphometry.md).
    from fem.specimen.levelset import volume_fraction

    h, n = 0.04, 24
    r = diameter_voxels * h / 2
    c = (np.arange(n) + 0.5) * h
    x, y = np.meshgrid(c, c, indexing="ij")
    phi = np.repeat((r - np.hypot(x - n * h / 2 - 0.3 * h, y - n * h / 2 - 0.2 * h))[:, :, None], n, axis=2)
    assert mo.smi(phi > 0, h) == pytest.approx(3, abs=0.3)
    assert mo.smi(volume_fraction(phi.astype(np.float32), (h, h, h)), h) == pytest.approx(3, abs=0.3)
