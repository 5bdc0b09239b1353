"""Histomorphometry of a remodelling state: what a biopsy of the simulated bone would show.

ES/BS is the surface of BMUs in their resorption phase, OS/BS the surface of BMUs in
formation (fractions of the partial-voxel surface band), the remodelling space the volume
dug and not yet refilled over the bone volume; erosion depth and wall thickness are the
volume dug and refilled over the footprint surface of the completed cycles. Units: mm,
mm^2, mm^3, years; BMD mg HA/cm^3.
"""

from __future__ import annotations

import numpy as np

from fem.remodel.mineral import bmd
from fem.specimen.levelset import voxel_edge


def record(state, p=None, extra=None) -> dict:
    """One row of a remodelling history: bone volume and BMD, the surfaces and spaces of
    the open BMUs (ES/BS, OS/BS, remodelling space; ``p`` gives the resorption period) and
    the erosion depth and wall thickness of the cycles completed so far (mm).

    state : fem.remodel.bmu.BoneState; p : fem.remodel.bmu.RemodelParams or None
    """
    f = state.fraction
    vox = float(np.prod(state.spacing))
    h = voxel_edge(state.spacing)
    bone = float(f.sum()) * vox
    band = np.abs(state.phi) < h / 2
    n_band = max(int(band.sum()), 1)
    eroded = forming = 0
    space = 0.0
    if state.bmus and p is not None:
        rs = p.resorption_days / 365.25
        mark = np.zeros(state.phi.shape, np.int8)
        for b in state.bmus:
            phase = 1 if state.time - b.start < rs else 2
            region = b.depth > 0
            sub = mark[b.box]
            sub[region] = np.maximum(sub[region], phase)
            space += max(b.resorbed - b.formed, 0.0)
        eroded = int(np.count_nonzero(band & (mark == 1)))
        forming = int(np.count_nonzero(band & (mark == 2)))
    c = state.closed
    row = {
        "time_years": round(state.time, 6),
        "bv_tv": bone / (f.size * vox),
        "bmd_mg_cm3": bmd(f, state.mineral),
        "tmd_relative": float(np.sum(f * state.mineral) / max(f.sum(), 1e-30)),
        "bone_volume_mm3": bone,
        "bs_mm2": n_band * h * h,
        "open_bmus": len(state.bmus),
        "activations": state.activations,
        "perforations": state.perforations,
        "resorbed_mm3": state.resorbed,
        "formed_mm3": state.formed,
        "es_bs": eroded / n_band,               # eroded (resorption / reversal) surface
        "os_bs": forming / n_band,              # forming (osteoid) surface
        "remodelling_space": space / max(bone, 1e-30),
        "erosion_depth_mm": c["resorbed"] / c["area"] if c["area"] else None,
        "wall_thickness_mm": c["formed"] / c["area"] if c["area"] else None,
    }
    row.update(extra or {})
    return row
