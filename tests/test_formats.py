"""Image formats, segmentation and cropping (fem/specimen/io.py).

Round trips use a non-cubic (4, 5, 6) image with distinct values and anisotropic
spacing, so a swapped axis or spacing cannot pass. The axis conventions are also checked
against files written without our writers (a MetaImage header by hand, TIFF pages with
tifffile directly).
"""

import numpy as np
import pytest
import tifffile

from fem.errors import BonefemError
from fem.specimen.io import (crop_cube, otsu_threshold, read_image, segment, write_mha,
                             write_nifti, write_tiff_stack)

SPACING = (0.02, 0.03, 0.05)


@pytest.fixture
def image():
    return np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) * 3 - 50


@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz", "a.mha", "a.mhd"])
def test_formats_with_voxel_size_round_trip(tmp_path, image, name):
    path = tmp_path / name
    (write_nifti if ".nii" in name else write_mha)(path, image, SPACING)
    data, spacing = read_image(path)
    assert data.shape == (4, 5, 6)
    assert np.array_equal(data, image)
    assert spacing == pytest.approx(SPACING, rel=1e-12)
    if name.endswith(".mhd"):
        assert (tmp_path / "a.raw").exists()


@pytest.mark.parametrize("name", ["stack", "stack.tif", "a.npy", "a.npz"])
def test_formats_without_voxel_size_round_trip(tmp_path, image, name):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, image)
    elif name.endswith(".npz"):
        np.savez(path, other=np.zeros(3), image=image)
    else:
        write_tiff_stack(path, image)
    with pytest.raises(BonefemError, match=r"(?s)no voxel size.*specimen\.voxel_size.*--voxel-size"):
        read_image(path)
    data, spacing = read_image(path, voxel_size=SPACING)
    assert data.dtype == image.dtype and np.array_equal(data, image)
    assert spacing == SPACING


def test_boolean_images_are_stored_as_uint8(tmp_path):
    mask = np.zeros((4, 5, 6), bool)
    mask[1:3, 2:, 4] = True
    for path in (tmp_path / "m.mha", tmp_path / "m.tif", tmp_path / "m.nii"):
        (write_tiff_stack(path, mask) if path.suffix == ".tif"
         else (write_mha if path.suffix == ".mha" else write_nifti)(path, mask, SPACING))
        data, _ = read_image(path, 0.01)
        assert data.dtype == np.uint8 and np.array_equal(data, mask)


def test_tiff_folder_axes_and_natural_order(tmp_path):
    # Pages written directly: page k (rows = y, columns = x) is the slice z = k. Names
    # s1, s2, s10 sort by number, not as text (where s10 would come before s2).
    nx, ny = 3, 2
    for k, name in [(0, "s1.tif"), (1, "s2.tif"), (2, "s10.tif")]:
        rows, cols = np.mgrid[:ny, :nx]
        tifffile.imwrite(tmp_path / name, (100 * k + 10 * rows + cols).astype(np.uint16))
    (tmp_path / "notes.txt").write_text("scanner log, not a slice")
    data, spacing = read_image(tmp_path, voxel_size=0.01)
    assert data.shape == (nx, ny, 3)
    i, j, k = np.mgrid[:nx, :ny, :3]
    assert np.array_equal(data, 100 * k + 10 * j + i)
    assert spacing == (0.01, 0.01, 0.01)


def test_tiff_errors_name_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BonefemError, match="no .tif/.tiff files"):
        read_image(tmp_path / "empty", 0.01)
    odd = tmp_path / "odd"
    odd.mkdir()
    tifffile.imwrite(odd / "a0.tif", np.zeros((4, 5), np.uint8))
    tifffile.imwrite(odd / "a1.tif", np.zeros((4, 6), np.uint8))
    with pytest.raises(BonefemError, match=r"a1\.tif: shape \(4, 6\)"):
        read_image(odd, 0.01)
    tifffile.imwrite(tmp_path / "page.tif", np.zeros((4, 5), np.uint8))
    with pytest.raises(BonefemError, match="single 2-D page"):
        read_image(tmp_path / "page.tif", 0.01)
    (tmp_path / "bad.tif").write_bytes(b"not a tiff")
    with pytest.raises(BonefemError, match="bad.tif"):
        read_image(tmp_path / "bad.tif", 0.01)
    with pytest.raises(BonefemError, match="already holds TIFF files"):
        write_tiff_stack(odd, np.zeros((2, 2, 2), np.uint8))


def _handmade_mha(path, data_xyz, spacing, matrix="1 0 0 0 1 0 0 0 1"):
    """A MetaImage written by hand: DimSize x y z, data with x running fastest."""
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = True\n"
              "BinaryDataByteOrderMSB = False\n"
              f"TransformMatrix = {matrix}\n"
              f"ElementSpacing = {' '.join(map(str, spacing))}\n"
              f"DimSize = {' '.join(map(str, data_xyz.shape))}\n"
              "ElementType = MET_SHORT\nElementDataFile = LOCAL\n")
    path.write_bytes(header.encode() + data_xyz.astype("<i2").ravel(order="F").tobytes())


def test_metaimage_axes_spacing_and_orientation(tmp_path, image):
    path = tmp_path / "h.mha"
    _handmade_mha(path, image, SPACING)
    data, spacing = read_image(path)
    assert np.array_equal(data, image) and spacing == pytest.approx(SPACING)
    # Image axis 0 along y, axis 1 along x: the reader swaps them back.
    _handmade_mha(path, image, SPACING, "0 1 0 1 0 0 0 0 1")
    data, spacing = read_image(path)
    assert np.array_equal(data, image.transpose(1, 0, 2))
    assert spacing == pytest.approx((0.03, 0.02, 0.05))
    # Row a of the matrix is the direction of image axis a (ITK): axis 0 along z, axis 1
    # along x, axis 2 along y. A cyclic permutation is not its own inverse.
    _handmade_mha(path, image, SPACING, "0 0 1 1 0 0 0 1 0")
    data, spacing = read_image(path)
    assert np.array_equal(data, image.transpose(1, 2, 0))
    assert spacing == pytest.approx((0.03, 0.05, 0.02))
    # Image axis 0 along -y, axis 1 along +x: swapped, then flipped along y.
    _handmade_mha(path, image, SPACING, "0 -1 0 1 0 0 0 0 1")
    assert np.array_equal(read_image(path)[0], image.transpose(1, 0, 2)[:, ::-1, :])
    _handmade_mha(path, image, SPACING, "0.8 0.6 0 -0.6 0.8 0 0 0 1")
    with pytest.raises(BonefemError, match="oblique TransformMatrix"):
        read_image(path)
    # A voxel size given explicitly overrides the header.
    _handmade_mha(path, image, SPACING)
    assert read_image(path, voxel_size=0.1)[1] == (0.1, 0.1, 0.1)


def test_metaimage_missing_data_file(tmp_path, image):
    write_mha(tmp_path / "a.mhd", image, SPACING)
    (tmp_path / "a.raw").unlink()
    with pytest.raises(BonefemError, match=r"a\.mhd: its data file a\.raw is missing"):
        read_image(tmp_path / "a.mhd")


def test_unknown_format_lists_the_known_ones(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(BonefemError, match=r"unknown image format '\.png'.*\.mha.*\.tif"):
        read_image(tmp_path / "a.png")


def test_otsu_separates_a_two_level_noisy_image():
    rng = np.random.default_rng(3)
    truth = np.zeros((24, 25, 26), bool)
    truth[4:14, 3:20, 5:] = True
    # Levels 200 and 1000 with uniform noise of +-250: the classes span [-50, 450] and
    # [750, 1250]. Any threshold in the gap separates them exactly; Otsu's must be there.
    image = np.where(truth, 1000.0, 200.0) + rng.uniform(-250, 250, truth.shape)
    assert 450 < otsu_threshold(image) < 750
    assert np.array_equal(segment(image, "otsu"), truth)
    assert np.array_equal(segment(image, "OTSU"), truth)
    # Integer two-level image: Otsu's value is the background level itself, so only a
    # strict comparison (image > t) gives the right mask.
    levels = np.where(truth, 100, 0).astype(np.uint8)
    assert np.array_equal(segment(levels, "otsu"), truth)


def test_smoothing_before_otsu_removes_noise():
    rng = np.random.default_rng(4)
    truth = np.zeros((32, 32, 32), bool)
    truth[:, :16, :] = True
    image = np.where(truth, 1.0, 0.0) + rng.normal(0, 0.45, truth.shape)
    raw_errors = np.count_nonzero(segment(image, "otsu") != truth)
    smooth_errors = np.count_nonzero(segment(image, "otsu", smooth_sigma=1.0) != truth)
    assert raw_errors > 0.05 * truth.size          # noise this strong defeats Otsu alone
    assert smooth_errors < 0.005 * truth.size      # a 1-voxel Gaussian fixes almost all
    assert np.array_equal(segment(image, 0.5), image >= 0.5)


def test_segment_errors():
    image = np.ones((3, 3, 3))
    with pytest.raises(BonefemError, match="single grey level"):
        segment(image, "otsu")
    with pytest.raises(BonefemError, match="a number or 'otsu'"):
        segment(image, "median")
    with pytest.raises(BonefemError, match="smoothing needs a threshold"):
        segment(image, None, smooth_sigma=1)
    assert segment(np.array([[[0, 2]]]), None).tolist() == [[[False, True]]]


def test_crop_cube(image):
    cube = crop_cube(image, (1, 2, 3), 2)
    assert np.array_equal(cube, image[1:3, 2:4, 3:5])
    cube[0, 0, 0] = 999  # a copy, not a view
    assert image[1, 2, 3] != 999
    assert crop_cube(image, (0, 0, 0), 4).shape == (4, 4, 4)
    for origin, size, expected in [((0, 0, 0), 5, "does not fit"), ((2, 2, 3), 3, "does not fit"),
                                   ((-1, 0, 0), 2, "does not fit"), ((0, 0), 2, "3 integer"),
                                   ((0.5, 0, 0), 2, "3 integer"), ((0, 0, 0), 0, "positive"),
                                   ((0, 0, 0), 2.5, "positive")]:
        with pytest.raises(BonefemError, match=expected):
            crop_cube(image, origin, size)
