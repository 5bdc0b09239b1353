"""`bonefem collect`: one CSV table from the results of many runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fem.analysis.strength import buckling_columns, nonlinear_columns
from fem.errors import BonefemError
from fem.report.tables import write_csv

SINGLE_KEYS = ("reaction_force_N", "stiffness_N_per_mm", "apparent_modulus_MPa", "strain_energy_mJ",
               "bv_tv", "elements", "dofs", "voxels_removed", "ranks")


def single_row(path: Path) -> dict | None:
    """The table row of one single-specimen result.json (None for another kind of
    result.json, e.g. a trial's): its folder, its input file and its numbers."""
    r = json.loads(Path(path).read_text())
    if "reaction_force_N" not in r:
        return None
    row = {"source": str(Path(path).parent), "kind": "single",
           "image": r.get("case", {}).get("specimen", {}).get("image")}
    row.update({k: r.get(k) for k in SINGLE_KEYS})
    row.update({"failure_load_N": r["pistoia"]["failure_load_N"],
                "iterations": r["solver"]["iterations"], "solve_s": r["solver"]["seconds"]})
    row.update(nonlinear_columns(r))
    row.update(buckling_columns(r))
    return row


def collect(folders, out) -> list[dict]:
    """Write ``out`` (CSV) with the rows of every single-specimen result.json and every
    trial.csv below ``folders``; return the rows."""
    rows = []
    for folder in map(Path, folders):
        if not folder.exists():
            raise BonefemError(f"{folder}: no such folder")
        for trial_csv in sorted(folder.rglob("trial.csv")):
            if "jobs" in trial_csv.parts:
                continue      # batch jobs: their merged table is one level up
            with trial_csv.open() as f:
                rows += [{"source": str(trial_csv.parent), "kind": "trial", **r} for r in csv.DictReader(f)]
        for result in sorted(folder.rglob("result.json")):
            if "fields" in result.parts or "jobs" in result.parts:
                continue
            row = single_row(result)
            if row:
                rows.append(row)
    if not rows:
        raise BonefemError(f"no results (result.json or trial.csv) under {', '.join(map(str, folders))}")
    write_csv(out, rows)
    return rows
