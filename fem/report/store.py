"""Where a trial's results live: its folder names and its row store (``rows.jsonl``).

One place for both, so a trial run by `bonefem run`, the same trial's specimens run as
separate jobs by `bonefem batch`, and the trial report agree on every path and read the
rows the same way. Layout of a trial folder::

    TRIAL/rows.jsonl                        one JSON row per solve, appended as it finishes
    TRIAL/fields/COHORT-sSEED-baseline/     fields of the first seed's baseline
    TRIAL/fields/COHORT-sSEED-ARM-Ty/       ... and of every arm at the last checkpoint
    TRIAL/jobs/COHORT-sSEED/                batch: one trial folder (as above) per specimen
"""

from __future__ import annotations

import json
from pathlib import Path

from fem.errors import BonefemError
from fem.mesh.external import MESH_SUFFIXES
from fem.report.result import write_problem
from fem.specimen.io import META, NIFTI, NUMPY, TIFF

ROWS = "rows.jsonl"
IMAGE_SUFFIXES = NUMPY + NIFTI + META + TIFF


def result_name(path) -> str:
    """Default result-folder name of an input file: its name without the format's suffix
    (the longest one: "a.nii.gz" -> "a"; "case.toml" -> "case")."""
    name = Path(path).name
    for ext in sorted((*IMAGE_SUFFIXES, *MESH_SUFFIXES, ".toml"), key=len, reverse=True):
        if name.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return Path(name).stem


def specimen_tag(cohort: str, seed: int) -> str:
    """Name of one specimen of a trial: cohort and seed."""
    return f"{cohort}-s{seed}"


def job_folder(trial_dir, cohort: str, seed: int) -> Path:
    """Folder of one specimen of a trial run as a separate batch job."""
    return Path(trial_dir) / "jobs" / specimen_tag(cohort, seed)


def fields_folder(trial_dir, cohort: str, seed: int, arm: str | None = None,
                  years: float | None = None) -> Path:
    """Field folder of a specimen's baseline (``arm`` None) or of an arm at ``years``."""
    name = specimen_tag(cohort, seed) + ("-baseline" if arm is None else f"-{arm}-{years:g}y")
    return Path(trial_dir) / "fields" / name


def read_rows(path) -> list[dict]:
    """Rows of a row store, in order; [] when it does not exist.

    A line cut by a killed run (half a JSON object) is skipped: its solve is simply redone.
    """
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_row(path, row: dict) -> None:
    """Append one row to a row store; BonefemError naming the file if it cannot be written.

    A row is one line written in one call. A file left without a final newline by a
    killed run gets one first, so the cut line stays alone (and skipped) instead of
    swallowing the new row.
    """
    path = Path(path)
    try:
        cut = path.exists() and path.stat().st_size > 0 and not _ends_with_newline(path)
        with path.open("a") as f:
            f.write(("\n" if cut else "") + json.dumps(row) + "\n")
    except OSError as err:
        raise BonefemError(f"{path}: cannot write a result ({write_problem(err)}); the "
                           "rows written before are intact") from None


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def trial_rows(trial_dir) -> list[dict]:
    """Every row of a finished or stopped trial folder: its own row store, and those of its
    specimens' job folders where the trial ran as a batch (:func:`job_folder`)."""
    trial_dir = Path(trial_dir)
    return [r for path in [trial_dir / ROWS, *sorted(trial_dir.glob(f"jobs/*/{ROWS}"))]
            for r in read_rows(path)]
