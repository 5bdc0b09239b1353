"""Read 3-D bone images into ``(array, spacing)``, segment them, crop them, write them.

Arrays are indexed ``[i, j, k]`` along x, y, z (z = loading axis); spacing is the
voxel edge along each axis in mm. Formats (docs/case-files.md, "Image formats"):

- NumPy ``.npy``, ``.npz`` (first array, or the one named ``image``): no voxel size.
- NIfTI ``.nii``, ``.nii.gz``: voxel size and axis order from the header (RAS+).
- MetaImage ``.mha``, ``.mhd`` (+ ``.raw``/``.zraw``): voxel size from ``ElementSpacing``
  (taken as mm, the ITK convention), axis order from ``TransformMatrix``.
- TIFF: a folder of single-page ``.tif``/``.tiff`` files (one z slice each, sorted by name
  with numbers compared as numbers), or one multi-page file. TIFF carries no reliable
  voxel size, so it must be given. A page's columns run along x and its rows along y.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fem.errors import BonefemError

NIFTI = (".nii", ".nii.gz")
NUMPY = (".npy", ".npz")
META = (".mha", ".mhd")
TIFF = (".tif", ".tiff")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _spacing3(value, path) -> tuple[float, float, float]:
    s = np.broadcast_to(np.asarray(value, dtype=float), (3,))
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise BonefemError(f"{path}: voxel size must be positive, got {value!r}")
    return tuple(float(v) for v in s)


def _need_voxel_size(path, what):
    return BonefemError(f"{path}: {what} has no voxel size; give specimen.voxel_size (mm) "
                        "or --voxel-size")


def read_image(path, voxel_size=None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read an image file (or a folder of TIFF slices).

    Parameters
    ----------
    path : str or Path
    voxel_size : float or sequence of 3 floats, mm, optional
        Required for NumPy and TIFF images; for NIfTI and MetaImage it overrides the header.

    Returns
    -------
    image : ndarray, shape (nx, ny, nz)
    spacing : (dx, dy, dz) in mm
    """
    path = Path(path)
    suffix = _suffix(path)
    if not path.exists():
        raise BonefemError(f"{path}: file not found")
    try:
        if path.is_dir() or suffix in TIFF:
            if voxel_size is None:  # before reading what may be thousands of slices
                raise _need_voxel_size(path, "a TIFF image")
            spacing = _spacing3(voxel_size, path)
            image = _read_tiff(path)
        elif suffix in NUMPY:
            image = _read_numpy(path)
            if voxel_size is None:
                raise _need_voxel_size(path, "a NumPy image")
            spacing = _spacing3(voxel_size, path)
        elif suffix in NIFTI or suffix in META:
            image, spacing = (_read_nifti if suffix in NIFTI else _read_meta)(path)
            if voxel_size is not None:
                spacing = _spacing3(voxel_size, path)
        else:
            raise BonefemError(f"{path}: unknown image format {suffix!r}; expected one of "
                               f"{', '.join(NUMPY + NIFTI + META + TIFF)} or a folder of "
                               "TIFF slices")
    except BonefemError:
        raise
    except Exception as err:  # noqa: BLE001 - every reader has its own error classes
        # (nibabel's ImageFileError, tifffile's TiffFileError, zlib/gzip errors...): a file
        # that its reader cannot parse is a user error, reported with the reader's words.
        raise BonefemError(f"{path}: cannot read image ({type(err).__name__}: {err})") from None
    image = np.asarray(image)
    if image.ndim != 3:
        raise BonefemError(f"{path}: expected a 3-D image, got shape {image.shape}")
    if image.size == 0:
        raise BonefemError(f"{path}: the image is empty (shape {image.shape})")
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise BonefemError(f"{path}: the image holds NaN or infinite values")
    return image, spacing


# --- readers -------------------------------------------------------------------------

def _read_numpy(path: Path) -> np.ndarray:
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            names = list(data.keys())
            if not names:
                raise BonefemError(f"{path}: the .npz file holds no array")
            return data["image"] if "image" in names else data[names[0]]
    return data


def _read_nifti(path: Path):
    import nibabel as nib

    img = nib.load(str(path))
    # Reorient to the closest canonical (RAS+) axes so that i, j, k run along x, y, z
    # whatever order the scanner stored them in.
    img = nib.as_closest_canonical(img)
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    # The header stores float32: take the shortest decimal that rounds to it, so a
    # 0.03 mm voxel reads back as 0.03 and not 0.029999999329.
    spacing = tuple(float(str(np.float32(v))) for v in img.header.get_zooms()[:3])
    unit = img.header.get_xyzt_units()[0]
    scale = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3}.get(unit, 1.0)
    return data, tuple(s * scale for s in spacing)


def _meta_header(path: Path) -> dict:
    """The ``key = value`` lines of a MetaImage header, up to ElementDataFile."""
    with open(path, "rb") as f:
        text = f.read(1 << 16).decode("latin-1")
    header = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        header[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    if "DimSize" not in header or "ElementDataFile" not in header:
        raise BonefemError(f"{path}: not a MetaImage header (no DimSize or ElementDataFile)")
    return header


def _read_meta(path: Path):
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOImage import vtkMetaImageReader

    header = _meta_header(path)
    dims = [int(v) for v in header["DimSize"].split()]
    if len(dims) != 3:
        raise BonefemError(f"{path}: expected a 3-D MetaImage, got DimSize {dims}")
    if int(header.get("ElementNumberOfChannels", "1")) != 1:
        raise BonefemError(f"{path}: MetaImage with several channels per voxel; expected one")
    datafile = header["ElementDataFile"]
    # Check a separate data file here: VTK only prints a message and returns no data.
    if datafile not in ("LOCAL", "LIST") and " " not in datafile \
            and not (path.parent / datafile).exists():
        raise BonefemError(f"{path}: its data file {datafile} is missing (expected next to "
                           "the header)")
    reader = vtkMetaImageReader()
    reader.SetFileName(str(path))
    errors = []
    reader.AddObserver("ErrorEvent", lambda obj, event: errors.append(event))
    reader.Update()
    out = reader.GetOutput()
    scalars = out.GetPointData().GetScalars()
    if errors or scalars is None or scalars.GetNumberOfTuples() != int(np.prod(dims)):
        raise BonefemError(f"{path}: VTK could not read the MetaImage data")
    if scalars.GetNumberOfComponents() != 1:
        raise BonefemError(f"{path}: MetaImage with several components per voxel")
    # VTK stores points x fastest: reshape to (nz, ny, nx), then swap to [i, j, k].
    data = vtk_to_numpy(scalars).reshape(dims[::-1]).transpose(2, 1, 0).copy()
    spacing = np.array(out.GetSpacing(), dtype=float)
    return _meta_orient(path, data, spacing, header)


def _meta_orient(path, data, spacing, header):
    """Apply a TransformMatrix that permutes or flips axes (VTK ignores it).

    Row a of the matrix is the direction of image axis a (ITK's convention). Axes are
    reordered and flipped so that i, j, k run along +x, +y, +z of the file's frame.
    """
    text = header.get("TransformMatrix") or header.get("Rotation") or header.get("Orientation")
    if not text:
        return data, tuple(spacing)
    m = np.array([float(v) for v in text.split()]).reshape(3, 3)
    axis = np.argmax(np.abs(m), axis=1)
    if sorted(axis) != [0, 1, 2] or np.any(np.abs(m[np.arange(3), axis]) < 0.999):
        raise BonefemError(f"{path}: oblique TransformMatrix {text!r}; only axis "
                           "permutations and flips are supported (resample the image first)")
    order = np.argsort(axis)  # order[a] = image axis that runs along physical axis a
    data = np.transpose(data, order)
    for a in range(3):
        if m[order[a], a] < 0:
            data = np.flip(data, a)
    return np.ascontiguousarray(data), tuple(float(s) for s in spacing[order])


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    def imread(f):
        try:
            return tifffile.imread(f)
        except tifffile.TiffFileError as err:  # not a ValueError: would escape read_image
            raise BonefemError(f"{f}: not a readable TIFF file ({err})") from None

    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in TIFF
                        and not p.name.startswith(".")), key=lambda p: _natural_key(p.name))
        if not files:
            raise BonefemError(f"{path}: the folder holds no .tif/.tiff files")
        pages = []
        for f in files:
            page = imread(f)
            if page.ndim != 2:
                raise BonefemError(f"{f}: expected one grey-level page per file, got shape "
                                   f"{page.shape}")
            if pages and (page.shape, page.dtype) != (pages[0].shape, pages[0].dtype):
                raise BonefemError(f"{f}: shape {page.shape} {page.dtype} differs from the "
                                   f"first slice ({pages[0].shape} {pages[0].dtype})")
            pages.append(page)
        stack = np.stack(pages)
    else:
        stack = imread(path)
        if stack.ndim == 2:
            raise BonefemError(f"{path}: a single 2-D page; give a multi-page file or a "
                               "folder of slices")
    if stack.ndim != 3:
        raise BonefemError(f"{path}: expected a stack of grey-level pages, got shape "
                           f"{stack.shape}")
    # (slice, row, column) = (z, y, x)  ->  [i, j, k] = (x, y, z)
    return np.ascontiguousarray(stack.transpose(2, 1, 0))


# --- writers -------------------------------------------------------------------------

def _storable(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3:
        raise BonefemError(f"expected a 3-D image, got shape {image.shape}")
    return image.astype(np.uint8) if image.dtype == bool else image


def write_nifti(path, image: np.ndarray, spacing) -> None:
    """Write an image as NIfTI with voxel size in mm (identity orientation)."""
    import nibabel as nib

    affine = np.diag([*map(float, np.broadcast_to(spacing, (3,))), 1.0])
    img = nib.Nifti1Image(_storable(image), affine)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def write_mha(path, image: np.ndarray, spacing) -> None:
    """Write an image as MetaImage with ``ElementSpacing`` = spacing (mm).

    ``.mha``: one file, zlib-compressed data. ``.mhd``: header plus an uncompressed
    ``.raw`` file of the same stem. Boolean images are stored as uint8 (0/1).
    """
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkIOImage import vtkMetaImageWriter

    path = Path(path)
    if _suffix(path) not in META:
        raise BonefemError(f"{path}: a MetaImage file name ends in .mha or .mhd")
    image = _storable(image)
    img = vtkImageData()
    img.SetDimensions(*image.shape)
    img.SetSpacing(*_spacing3(spacing, path))
    # VTK wants x fastest: Fortran order of the [i, j, k] array.
    img.GetPointData().SetScalars(numpy_to_vtk(image.ravel(order="F"), deep=True))
    writer = vtkMetaImageWriter()
    writer.SetFileName(str(path))
    if _suffix(path) == ".mhd":
        writer.SetRAWFileName(str(path.with_suffix(".raw")))
        writer.SetCompression(False)
    writer.SetInputData(img)
    writer.Write()
    if writer.GetErrorCode():
        raise BonefemError(f"{path}: VTK could not write the MetaImage")


def write_tiff_stack(path, image: np.ndarray) -> None:
    """Write an image as TIFF, one page per z slice (no voxel size: TIFF has none).

    ``path`` ending in .tif/.tiff: one multi-page file. Otherwise a folder (created) of
    ``slice_0000.tif``, ``slice_0001.tif``, ...; the folder must not already hold TIFF
    files, which would mix two stacks. Boolean images are stored as uint8 (0/1).
    """
    import tifffile

    path = Path(path)
    pages = _storable(image).transpose(2, 1, 0)  # [i, j, k] -> (slice z, row y, column x)
    if _suffix(path) in TIFF:
        # minisblack: else a last axis of 3 or 4 would be taken for RGB(A) samples
        tifffile.imwrite(path, np.ascontiguousarray(pages), photometric="minisblack")
        return
    path.mkdir(parents=True, exist_ok=True)
    if any(p.suffix.lower() in TIFF for p in path.iterdir()):
        raise BonefemError(f"{path}: the folder already holds TIFF files; write the stack "
                           "to an empty folder")
    width = max(4, len(str(len(pages) - 1)))
    for k, page in enumerate(pages):
        tifffile.imwrite(path / f"slice_{k:0{width}d}.tif", np.ascontiguousarray(page),
                         photometric="minisblack")


# --- segmentation and region of interest ---------------------------------------------

def smooth(image: np.ndarray, sigma) -> np.ndarray:
    """Gaussian-smoothed float image; ``sigma`` in voxels (one value or one per axis)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(np.asarray(image, dtype=float), sigma, mode="nearest")


def otsu_threshold(image: np.ndarray, path="image") -> float:
    """Otsu's grey level (skimage.filters.threshold_otsu): voxels above it are bone."""
    from skimage.filters import threshold_otsu

    image = np.asarray(image)
    if image.min() == image.max():
        raise BonefemError(f"{path}: the image has a single grey level; Otsu's threshold "
                           "needs bone and background")
    return float(threshold_otsu(image))


def segment(image: np.ndarray, threshold=None, path="image", smooth_sigma=None) -> np.ndarray:
    """Bone mask of a grey-level image, shape of ``image``, dtype bool.

    threshold : None -> every nonzero voxel is bone; a number T -> ``image >= T``;
        ``"otsu"`` -> ``image > t`` with Otsu's t (strict, as skimage defines it: for an
        integer image t is a grey level of the background class).
    smooth_sigma : Gaussian smoothing (voxels) applied before thresholding, to suppress
        noise; needs a threshold.
    """
    if smooth_sigma is not None:
        if threshold is None:
            raise BonefemError(f"{path}: smoothing needs a threshold (a grey level or 'otsu')")
        if np.any(np.asarray(smooth_sigma, dtype=float) < 0):
            raise BonefemError(f"{path}: smoothing sigma must be >= 0, got {smooth_sigma!r}")
        image = smooth(image, smooth_sigma)
    if threshold is None:
        return image != 0
    if isinstance(threshold, str):
        if threshold.lower() != "otsu":
            raise BonefemError(f"{path}: threshold must be a number or 'otsu', got "
                               f"{threshold!r}")
        return image > otsu_threshold(image, path)
    return image >= threshold


def crop_cube(image: np.ndarray, origin_ijk, size_voxels: int) -> np.ndarray:
    """Cubic region of interest ``image[i:i+n, j:j+n, k:k+n]`` (a copy), n = size_voxels."""
    image = np.asarray(image)
    origin = np.asarray(origin_ijk)
    if origin.shape != (3,) or origin.dtype.kind not in "iu":
        raise BonefemError(f"crop origin must be 3 integer voxel indices, got {origin_ijk!r}")
    if not isinstance(size_voxels, (int, np.integer)) or size_voxels < 1:
        raise BonefemError(f"crop size must be a positive whole number of voxels, got "
                           f"{size_voxels!r}")
    end = origin + size_voxels
    if np.any(origin < 0) or np.any(end > image.shape):
        raise BonefemError(f"a {size_voxels}-voxel cube at {tuple(int(v) for v in origin)} "
                           f"does not fit in the image of shape {image.shape}")
    return image[origin[0]:end[0], origin[1]:end[1], origin[2]:end[2]].copy()
