"""Physical sanity checks: values that look like a units mistake or a specimen on its side.

Each check takes plain numbers or arrays and returns a list of warning sentences (empty
when all is well). They warn, they do not refuse: a 2 mm voxel or a soft tissue can be
meant. The pipeline prints them and records them in result.json under ``warnings``.

Thresholds (why these):

- voxel edge above 1 mm: micro-CT and HR-pQCT voxels are 0.01-0.1 mm, clinical CT about
  0.3-1 mm; a value such as 40 is micrometres typed as millimetres (a 2.4 m cube).
- tissue modulus below 1000 MPa: trabecular tissue is about 5-20 GPa (nanoindentation,
  Zysset et al. 1999, J Biomech 32:1005; back-calculated, Bayraktar et al. 2004,
  J Biomech 37:27); a value such as 10 is GPa typed as MPa.
- main trabecular direction more than 45 degrees from z: bonefem loads along z, and
  vertebral trabeculae run cranio-caudally; a specimen lying on its side is loaded
  across its trabeculae and comes out several times weaker. Checked only when the
  specimen is clearly anisotropic (MIL ratio c/a >= 1.15), since the main direction of
  a nearly isotropic specimen is noise.
- more than half the bone dropped as islands: the connectivity filter keeps the largest
  piece of bone; losing most of the bone means a threshold or a crop cut the structure.
"""

from __future__ import annotations

import numpy as np

MAX_VOXEL_MM = 1.0
MIN_MODULUS_MPA = 1000.0
MAX_ANGLE_DEG = 45.0
MIN_DA_RATIO = 1.15
MAX_DROPPED = 0.5


def voxel_size_warnings(spacing) -> list[str]:
    """Warn when a voxel edge exceeds 1 mm. ``spacing``: (3,) voxel edges, mm."""
    s = np.atleast_1d(np.asarray(spacing, dtype=float))
    if np.max(s) <= MAX_VOXEL_MM:
        return []
    size = ", ".join(f"{v:g}" for v in s)
    return [f"voxel size ({size}) mm is above {MAX_VOXEL_MM:g} mm, larger than any bone "
            "micro-CT; micrometres given as millimetres? (40 um is voxel_size = 0.04)"]


def modulus_warnings(modulus) -> list[str]:
    """Warn when the tissue modulus (MPa; a number, or per-voxel values whose median is
    taken) is below 1000 MPa."""
    m = np.asarray(modulus, dtype=float)
    e = float(np.median(m)) if m.ndim else float(m)
    if e >= MIN_MODULUS_MPA:
        return []
    return [f"tissue modulus {e:g} MPa is below {MIN_MODULUS_MPA:g} MPa; bone tissue is about "
            "5000-20000 MPa: gigapascals given as megapascals? (10 GPa is modulus = 10000)"]


def direction_warnings(main_direction, da_ratio) -> list[str]:
    """Warn when the main trabecular direction (a unit 3-vector, x y z, e.g.
    fem.specimen.morphometry.fabric's ``main_direction``) is more than 45 degrees from z,
    the load axis, for a clearly anisotropic specimen (``da_ratio`` c/a >= 1.15)."""
    n = np.asarray(main_direction, dtype=float)
    if not np.all(np.isfinite(n)) or np.isnan(da_ratio):
        return []
    if da_ratio < MIN_DA_RATIO:
        return []
    angle = float(np.degrees(np.arccos(min(1.0, abs(n[2]) / np.linalg.norm(n)))))
    if angle <= MAX_ANGLE_DEG:
        return []
    axis = "xyz"[int(np.argmax(np.abs(n)))]
    return [f"the main trabecular direction is {angle:.0f} degrees from z, the load axis "
            f"(nearest axis: {axis}; MIL anisotropy {da_ratio:.2f}); the specimen is loaded across "
            "its trabeculae and will look weak. Is the image's slice axis z? (axes are x, y, z; "
            "transpose the image so the trabeculae run along z)"]


def islands_warnings(voxels_removed: int, voxels_kept: int) -> list[str]:
    """Warn when the connectivity filter dropped more than half the bone voxels."""
    total = voxels_removed + voxels_kept
    if total == 0 or voxels_removed / total <= MAX_DROPPED:
        return []
    return [f"{100 * voxels_removed / total:.0f} % of the bone voxels ({voxels_removed} of {total}) "
            "were dropped as islands not connected to the largest piece; a threshold too high, or "
            "a crop that cut the trabeculae?"]


def main_direction(mask, spacing, max_side: int = 100):
    """Main trabecular direction and MIL ratio of a bone mask (fem.specimen.morphometry.fabric),
    on a block-mean coarsened copy when a side exceeds ``max_side`` voxels: the direction
    survives coarsening and the fabric of a 200^3 image takes ~4 s, of a 100^3 one ~0.5 s.

    Returns ``(direction (3,), da_ratio)``.
    """
    from fem.specimen.morphometry import fabric

    mask = np.asarray(mask, dtype=bool)
    k = max(1, int(np.ceil(max(mask.shape) / max_side)))
    field = mask.astype(np.float32)
    if k > 1:
        shape = [n // k for n in mask.shape]
        field = field[: shape[0] * k, : shape[1] * k, : shape[2] * k]
        field = field.reshape(shape[0], k, shape[1], k, shape[2], k).mean(axis=(1, 3, 5))
    f = fabric(field, np.asarray(spacing, dtype=float) * k)
    return np.asarray(f["main_direction"]), float(f["da_ratio"])


def specimen_warnings(mask, spacing, modulus, voxels_removed: int, direction: bool = True) -> list[str]:
    """All checks for a prepared specimen.

    mask : (nx, ny, nz) bool, the bone kept (islands removed)
    spacing : (3,) voxel edges, mm
    modulus : tissue modulus, MPa (a number or per-voxel array)
    voxels_removed : bone voxels dropped as islands
    direction : also check the main trabecular direction (a fabric analysis: ~0.2-0.5 s)
    """
    if np.ndim(modulus):
        modulus = np.asarray(modulus)[np.asarray(mask, bool)]   # the bone's, not the marrow's
    out = voxel_size_warnings(spacing) + modulus_warnings(modulus)
    if direction:
        out += direction_warnings(*main_direction(mask, spacing))
    return out + islands_warnings(int(voxels_removed), int(np.count_nonzero(mask)))
