"""Read 3-D bone images into ``(array, spacing)``.

Arrays are indexed ``[i, j, k]`` along x, y, z (z = loading axis); spacing is the
voxel edge along each axis in mm. Formats: .npy, .npz (first array, or the one named
``image``), NIfTI (.nii, .nii.gz; spacing and axis order from the header).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fem.errors import BonefemError

NIFTI = (".nii", ".nii.gz")
NUMPY = (".npy", ".npz")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _spacing3(value, path) -> tuple[float, float, float]:
    s = np.broadcast_to(np.asarray(value, dtype=float), (3,))
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise BonefemError(f"{path}: voxel size must be positive, got {value!r}")
    return tuple(float(v) for v in s)


def read_image(path, voxel_size=None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read an image file.

    Parameters
    ----------
    path : str or Path
    voxel_size : float or sequence of 3 floats, mm, optional
        Required for NumPy files; for NIfTI it overrides the header.

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
        if suffix in NUMPY:
            image = _read_numpy(path)
            if voxel_size is None:
                raise BonefemError(f"{path}: a NumPy image has no voxel size; give "
                                   "specimen.voxel_size (mm) or --voxel-size")
            spacing = _spacing3(voxel_size, path)
        elif suffix in NIFTI:
            image, spacing = _read_nifti(path)
            if voxel_size is not None:
                spacing = _spacing3(voxel_size, path)
        else:
            raise BonefemError(f"{path}: unknown image format {suffix!r}; expected one of "
                               f"{', '.join(NUMPY + NIFTI)}")
    except (OSError, ValueError) as err:
        raise BonefemError(f"{path}: cannot read image ({err})") from None
    image = np.asarray(image)
    if image.ndim != 3:
        raise BonefemError(f"{path}: expected a 3-D image, got shape {image.shape}")
    if image.size == 0:
        raise BonefemError(f"{path}: the image is empty (shape {image.shape})")
    if image.dtype.kind == "f" and not np.all(np.isfinite(image)):
        raise BonefemError(f"{path}: the image holds NaN or infinite values")
    return image, spacing


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


def write_nifti(path, image: np.ndarray, spacing) -> None:
    """Write an image as NIfTI with voxel size in mm (identity orientation)."""
    import nibabel as nib

    affine = np.diag([*map(float, np.broadcast_to(spacing, (3,))), 1.0])
    img = nib.Nifti1Image(np.asarray(image), affine)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def segment(image: np.ndarray, threshold=None, path="image") -> np.ndarray:
    """Bone mask: ``image >= threshold``, or ``image != 0`` when threshold is None."""
    if threshold is None:
        return image != 0
    return image >= threshold
