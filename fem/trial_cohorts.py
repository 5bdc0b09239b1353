"""What a trial cohort provides: its specimen's baseline state and its turnover.

A cohort is a preset name (fem/specimen/cohorts/: the generator's architecture and, in
fem/remodel/presets/untreated.toml, its remodelling) or a ``[trial.cohort.NAME]`` table
(fem.case.TrialCohort): micro-CT images (fem.specimen.scan) or the preset's generator at
another BV/TV, with the turnover of a named preset or its own numbers. Every arm of a
cohort x seed starts from the same baseline, whichever kind it is.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

from fem.case import Trial
from fem.remodel.arms import baseline_state
from fem.remodel.bmu import RemodelParams
from fem.remodel.mineral import MATURE_TMD
from fem.remodel.presets import untreated
from fem.specimen.cohorts import FOLDER as COHORTS, cohort_network
from fem.specimen.scan import scan_specimen


def turnover_of(t: Trial, cohort: str) -> str | None:
    """The preset whose untreated remodelling (and drug response) the cohort takes: with a
    turnover given as numbers, their base preset (None without one)."""
    table = t.cohort_tables.get(cohort)
    return cohort if table is None else table.turnover


def untreated_of(t: Trial, cohort: str) -> RemodelParams:
    """The cohort's untreated BMU parameters: its own numbers, or its preset's."""
    table = t.cohort_tables.get(cohort)
    if table is not None and table.params is not None:
        return RemodelParams(**table.params)
    return untreated(turnover_of(t, cohort))


def image_of(t: Trial, cohort: str, seed: int) -> str | None:
    """The image of a cohort's specimen ``seed`` (image ``seed mod n``), None if generated."""
    table = t.cohort_tables.get(cohort)
    if table is None or table.images is None:
        return None
    return table.images[seed % len(table.images)]


def cohort_source(t: Trial, cohort: str, seed: int) -> str:
    """Everything a cohort's specimen depends on, for the trial's job keys: the preset
    text, and a table's values and its image's size and time of change (a scan replaced
    in place is a new specimen)."""
    table = t.cohort_tables.get(cohort)
    name = turnover_of(t, cohort)
    preset = None if name is None else (COHORTS / f"{name}.toml").read_text()
    if table is None:
        return preset
    image = image_of(t, cohort, seed)
    stamp = None
    if image is not None:
        st = os.stat(image)
        files = [os.stat(e.path) for e in os.scandir(image)] if os.path.isdir(image) else [st]
        stamp = [image, sum(f.st_size for f in files), max(f.st_mtime_ns for f in files)]
    # params only when given, so that trials written before it existed keep their keys
    values = {k: v for k, v in asdict(table).items() if not (k == "params" and v is None)}
    return json.dumps([preset, values, stamp], sort_keys=True, default=str)


def cohort_baseline(t: Trial, cohort: str, seed: int, dt: float):
    """The baseline BoneState of a cohort x seed: the specimen, given the cohort's mineral
    history (or the scan's measured mineral) and spun up untreated for ``t.spinup_years``."""
    table = t.cohort_tables.get(cohort)
    turnover = turnover_of(t, cohort)
    mineral = None
    if table is not None and table.images is not None:
        scan = scan_specimen(image_of(t, cohort, seed), table.voxel_size, table.threshold,
                             table.smooth_sigma, table.coarsen, table.roi_size, table.roi_centre,
                             table.density_slope, table.density_intercept,
                             table.mineral_from_grey, MATURE_TMD)
        phi, spacing, mineral = scan.phi, scan.spacing, scan.mineral
    else:
        extra = {} if table is None or table.bv_tv is None else {"bv_tv": table.bv_tv}
        net = cohort_network(turnover, seed, t.specimen.size, t.specimen.voxel_size, **extra)
        phi, spacing = net.phi, net.spacing
    return baseline_state(phi, spacing, turnover, seed, t.spinup_years, dt,
                          params=untreated_of(t, cohort), mineral=mineral)
