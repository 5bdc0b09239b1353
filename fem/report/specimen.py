"""`bonefem specimen`: the specimen of a case as an image, its morphometry and a render."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fem.case import Case
from fem.errors import BonefemError
from fem.report.render import render_specimen
from fem.report.result import check_output_folder, write_json
from fem.specimen.io import write_nifti
from fem.specimen.levelset import from_mask
from fem.specimen.load import load_specimen
from fem.specimen.morphometry import morphometry


def export_specimen(case: Case, outdir, render: bool = True) -> list[Path]:
    """Write ``specimen.nii.gz`` (bone volume fraction per voxel, float32, spacing in mm),
    ``morphometry.json`` and ``specimen.png`` into ``outdir``; return the paths."""
    if case.trial is not None:
        raise BonefemError(f"{case.source}: a trial case generates its specimens per cohort and "
                           "seed; `bonefem specimen` needs a case with a [specimen] table (e.g. "
                           "[specimen.vertebral] cohort = \"...\", seed = ...)")
    outdir = Path(outdir)
    check_output_folder(outdir)
    spec = load_specimen(case)
    outdir.mkdir(parents=True, exist_ok=True)
    fraction = spec.fraction if spec.fraction is not None else spec.mask.astype(np.float32)
    files = [outdir / "specimen.nii.gz"]
    write_nifti(files[0], fraction.astype(np.float32), spec.spacing)
    info = morphometry(spec.mask if spec.phi is None else spec.phi > 0, spec.spacing, fraction=fraction)
    info["voxels_removed"] = spec.voxels_removed
    info["image_shape"] = list(spec.mask.shape)
    info["voxel_size_mm"] = list(spec.spacing)
    info.update(spec.info)
    files.append(write_json(outdir / "morphometry.json", info))
    if render:
        phi = spec.phi if spec.phi is not None else from_mask(spec.mask, spec.spacing)
        title = case.title or (case.specimen.vertebral.cohort if case.specimen.vertebral else "")
        files.append(render_specimen(phi, spec.spacing, outdir / "specimen.png", title=title or ""))
    return files
