"""A case's specimen, ready to mesh: read or generate the bone, remove floating pieces.

Every kind of voxel specimen (an image file, the foam generator, the vertebral
generator, a remodelled level set) ends here as one :class:`Specimen`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from fem.errors import BonefemError
from fem.specimen import islands
from fem.specimen.foam import trabecular_foam
from fem.specimen.grey import is_grey, levelset_from_grey, surface_band, surface_level
from fem.specimen.io import read_image, segment
from fem.specimen.levelset import volume_fraction
from fem.specimen.partial import DEFAULT_RULE, stiffness_fraction
from fem.specimen.vertebral import VertebralParams, generate

if TYPE_CHECKING:       # the case only describes the specimen; nothing of it is run here
    from fem.case import Case


@dataclass
class Specimen:
    """A prepared specimen.

    mask : (nx, ny, nz) bool, voxels that become elements (islands already removed)
    spacing : (dx, dy, dz) voxel edge, mm
    modulus : tissue Young's modulus, MPa: one value, or an (nx, ny, nz) image
    voxels_removed : voxels dropped by the connectivity filter
    fraction : (nx, ny, nz) bone volume fraction of each voxel in [0, 1], or None for
        a binary specimen (every mask voxel is full bone). An element's modulus is
        the tissue modulus times a function of its fraction (``element_modulus``).
    phi : (nx, ny, nz) signed distance to the bone surface, mm, when the specimen has
        sub-voxel geometry (fem.specimen.levelset); None for a plain binary image
    info : how it was made (the vertebral generator's counts of rods, plates, struts)
    """

    mask: np.ndarray
    spacing: tuple
    modulus: float | np.ndarray
    voxels_removed: int = 0
    fraction: np.ndarray | None = None
    phi: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def element_fraction(self, grid) -> np.ndarray:
        """Bone volume fraction of each element of ``grid`` (a fem.mesh.voxel.VoxelGrid
        of this specimen's mask), shape (n_cells,)."""
        if self.fraction is None:
            return np.ones(len(grid.voxels))
        return np.asarray(self.fraction, dtype=float).ravel()[grid.voxels]

    def element_modulus(self, grid, poisson: float = 0.3, rule: str = DEFAULT_RULE) -> np.ndarray:
        """Modulus of each element of ``grid`` (MPa), shape (n_cells,): the tissue modulus
        times the stiffness of the element's bone fraction under ``rule`` (a rule of
        fem.specimen.partial; a case's ``[material] partial_volume``; ``poisson`` is the
        tissue Poisson ratio it may use). Full voxels get the tissue modulus exactly."""
        if np.ndim(self.modulus) == 0:
            tissue = np.full(len(grid.voxels), float(self.modulus))
        else:
            tissue = np.asarray(self.modulus, dtype=float).ravel()[grid.voxels]
        return tissue * stiffness_fraction(self.element_fraction(grid), rule, poisson)

    @property
    def bone_volume_fraction(self) -> float:
        """BV/TV: bone volume over the image's total volume."""
        if self.fraction is None:
            return float(self.mask.mean())
        return float(np.where(self.mask, self.fraction, 0.0).mean())


def load_specimen(case: Case, log=print, check_size=None) -> Specimen:
    """Read or generate the bone image of a case and remove floating bone.

    check_size : called as ``check_size(mask, spacing, where)`` once the bone mask is
        known and before anything the size of the model is built (the connectivity
        filter, the grid); raises to refuse a model too large for the machine
    """
    spec = case.specimen
    where = f"{case.source or 'case'}: [specimen.{'vertebral' if spec.vertebral else 'synthetic'}]"
    if spec.vertebral is not None:
        v = spec.vertebral       # resolved by fem.case: every generator value is set
        net = generate(VertebralParams(**{f.name: getattr(v, f.name) for f in fields(VertebralParams)}))
        if check_size is not None:
            check_size(net.phi > 0, net.spacing, where)
        specimen = specimen_from_levelset(net.phi, net.spacing, case.material.modulus, where)
        specimen.info["generator"] = net.counts
        return specimen
    if spec.synthetic is not None:
        s = spec.synthetic
        mask = trabecular_foam(s.size, s.voxel_size, s.bv_tv, s.spacing, s.anisotropy, s.seed)
        spacing = (s.voxel_size,) * 3
    else:
        image, spacing = read_image(spec.image, spec.voxel_size)
        where = f"{spec.image}"
        threshold = _threshold(image, spec.threshold, where)
        mask = segment(image, threshold, where)
        if threshold is not None and mask.any() and not mask.all() and is_grey(image):
            return _grey_specimen(image, spacing, threshold, mask, case.material.modulus, where,
                                  check_size)
        del image
    if not mask.any():
        raise BonefemError(f"{where}: the image holds no bone"
                           + ("" if spec.threshold is None else f" at threshold {spec.threshold}"))
    if check_size is not None:
        check_size(mask, spacing, where)
    # Every piece the platens hold stays (a cube cut from a vertebra is held through its
    # loaded faces); pieces touching one platen or none would float in the solve.
    mask, removed = islands.held_by_platens(mask)
    if mask.all():
        log(f"{where}: note: the image is fully solid (BV/TV = 1); solving it as a solid block")
    if not mask.any() or not islands.spans_z(mask):
        raise BonefemError(f"{where}: no bone path between the loaded faces (no connected "
                           "piece of bone touches both z = 0 and z = top)")
    return Specimen(mask, tuple(spacing), case.material.modulus, removed)


def _grey_specimen(image, spacing, threshold, mask, modulus, where, check_size) -> Specimen:
    """A grey image's specimen with its partial volumes kept, as a trial's scan
    (fem.specimen.scan): the level set of the threshold iso-surface, each surface voxel's
    bone fraction from its grey level (fem.specimen.grey)."""
    if check_size is not None:
        # elements: every voxel with bone in it, i.e. the mask and at most its outer band
        check_size(mask | surface_band(mask), spacing, where)
    try:
        phi = levelset_from_grey(image, spacing, surface_level(image, threshold, where))
    except BonefemError as err:
        raise BonefemError(f"{where}: {err}") from None
    return specimen_from_levelset(phi, spacing, modulus, where)


def _threshold(image: np.ndarray, threshold, where: str):
    """The threshold to segment with: a grey image needs one to be asked for.

    A binary image (0 and one other value) is bone where nonzero. A grey-level image
    without a threshold would become a solid block of "bone" wherever the scan is not
    exactly 0, which is never what was meant.
    """
    if threshold == "nonzero":
        return None
    if threshold is not None:
        return threshold
    top = image.max()
    if np.count_nonzero((image != 0) & (image != top)):
        raise BonefemError(f"{where}: a grey-level image (values from {image.min():g} to {top:g}) "
                           "and no threshold: did you forget --threshold? Give a grey level "
                           "(bone >= T), 'otsu', or 'nonzero' to take every nonzero voxel as bone")
    return None


def specimen_from_levelset(phi, spacing, modulus, where="specimen") -> Specimen:
    """A Specimen from a signed-distance field: elements where the bone fraction is > 0,
    floating pieces removed (their level set is cut back to marrow)."""
    fraction = volume_fraction(phi, spacing)
    mask, removed = islands.held_by_platens(fraction > 0)  # every piece spanning the loaded faces
    if not mask.any():
        raise BonefemError(f"{where}: the specimen holds no bone")
    if not islands.spans_z(mask):
        raise BonefemError(f"{where}: no bone path between the loaded faces")
    # in place on one copy of phi and on the fraction: no full-size temporaries
    phi = np.array(phi, dtype=np.float32)
    np.minimum(phi, -min(spacing) / 2, out=phi, where=~mask)   # the removed pieces: marrow
    fraction[~mask] = 0.0
    return Specimen(mask, tuple(spacing), modulus, removed, fraction, phi)
