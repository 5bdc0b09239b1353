"""Cohort presets for the synthetic vertebral generator (data files in cohorts/*.toml).

Each preset states every generator value with its source or as an assumption; see
docs/specimens.md for the table.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from fem.errors import BonefemError

FOLDER = Path(__file__).with_name("cohorts")


def cohort_names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.toml"))


def load_cohort(name: str) -> dict:
    """The preset ``name``: {"name", "age", "description", "generator": {...}, "sources": {...}}."""
    path = FOLDER / f"{name}.toml"
    if not path.exists():
        raise BonefemError(f"unknown cohort {name!r}; expected one of {', '.join(cohort_names())}")
    with path.open("rb") as f:
        return tomllib.load(f)
