"""Cohort presets for the synthetic vertebral generator (data files in cohorts/*.toml).

Each preset states every generator value with its source or as an assumption; see
docs/specimens.md for the table.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from fem.errors import BonefemError
from fem.specimen.vertebral import Network, generate

FOLDER = Path(__file__).with_name("cohorts")

# The specimen a cohort's trial (and a calibration) simulates by default: a 3 mm cube of
# 40 um voxels (docs/specimens.md). fem.case.TrialSpecimen takes its defaults from here.
SPECIMEN_SIZE_MM = 3.0
VOXEL_SIZE_MM = 0.04


def cohort_names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.toml"))


def load_cohort(name: str, folder: Path | str | None = None) -> dict:
    """The preset ``name``: {"name", "age", "description", "generator": {...}, "sources": {...}},
    from ``folder`` (default: the shipped presets, cohorts/)."""
    folder = FOLDER if folder is None else Path(folder)
    path = folder / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.toml"))
        raise BonefemError(f"unknown cohort {name!r} in {folder}; expected one of {', '.join(known)}")
    with path.open("rb") as f:
        return tomllib.load(f)


def cohort_network(cohort: str, seed: int, size: float = SPECIMEN_SIZE_MM,
                   voxel_size: float = VOXEL_SIZE_MM, **overrides) -> Network:
    """The vertebral specimen of a cohort preset: its generator values (some replaced by
    ``overrides``, e.g. ``bv_tv``) with the cube edge ``size`` and ``voxel_size`` (mm) and
    the random ``seed``."""
    return generate(**dict(load_cohort(cohort)["generator"], **overrides, size=size,
                           voxel_size=voxel_size, seed=seed))
