"""Voxel micro-FE against a conformal tetrahedral reference on the same strut geometry.

./bonefem exec mpirun -n 2 python3 bench/conformal_convergence.py [--quick] [--json FILE]

Geometry: a cubic lattice cell, 1 mm cube, a vertical strut of radius 0.2 mm and two
horizontal struts of radius 0.12 mm through the centre, in uniaxial compression
(E = 10 GPa, nu = 0.3, strain -1 %, CG rtol 1e-10).

Reference: P1 tetrahedra from gmsh at edge h, graded to h/4 at the junction edges
(where stresses are singular), h halving; Richardson extrapolation with order 2 from
the two finest meshes. Voxel path: the same struts voxelised at voxel centres (binary,
the usual segmentation) and with 4^3 sub-samples per voxel (partial volume: element
modulus = E x bone fraction), n = 10 ... 80 voxels per edge.

Each finished solve is stored in the JSON file (default bench/conformal_convergence.json),
so a run that stops halfway resumes where it stopped. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from fem.case import case_from_dict
from fem.mesh.struts import cubic_cell, voxelise
from fem.pipeline import run_strut_model, solve_specimen
from fem.specimen.load import Specimen
from fem.specimen import islands

COMM = MPI.COMM_WORLD
MODEL = cubic_cell(size=1.0, radius=0.2, horizontal_radius=0.12)
CASE = case_from_dict({"specimen": {"synthetic": {}}, "solver": {"rtol": 1e-10},
                       "output": {"fields": False}}, source="bench")


def quiet(*args, **kwargs):
    pass


def tet_run(h: float) -> dict:
    t0 = time.perf_counter()
    r = run_strut_model(MODEL, h, CASE, comm=COMM, log=quiet, h_junction=h / 4)
    return {"h": h, "elements": r["elements"], "dofs": r["dofs"], "E": r["apparent_modulus_MPa"],
            "volume": r["mesh"]["volume_mm3"], "seconds": time.perf_counter() - t0}


def voxel_run(n: int, samples: int) -> dict:
    t0 = time.perf_counter()
    spec = None
    if COMM.rank == 0:
        fraction = voxelise(MODEL, n, samples)
        mask, removed = islands.largest_component(fraction > 0)
        spec = Specimen(mask=mask, spacing=(MODEL.size / n,) * 3, modulus=CASE.material.modulus,
                        voxels_removed=removed, fraction=None if samples == 1 else fraction)
    r = solve_specimen(spec, CASE, comm=COMM, log=quiet)
    return {"n": n, "h": MODEL.size / n, "samples": samples, "elements": r["elements"],
            "dofs": r["dofs"], "E": r["apparent_modulus_MPa"], "bv_tv": r["bv_tv"],
            "seconds": time.perf_counter() - t0}


def cached(store: dict, path: Path, key: str, fn, *args) -> dict:
    if key not in store:
        value = fn(*args)
        if COMM.rank == 0:
            print(f"  {key}: E_app {value['E']:.3f} MPa, {value['elements']} elements, "
                  f"{value['seconds']:.1f} s", flush=True)
            store[key] = value
            path.write_text(json.dumps(store, indent=1) + "\n")
        store[key] = value
    return store[key]


def rates(ns, err):
    """Observed order of each row against the row with half as many voxels per edge
    (n/2: the same grid alignment to the struts, so the digitisation pattern is
    comparable), and the least-squares slope of log|err| against log h over all rows."""
    err = dict(zip(ns, np.abs(err)))
    local = [math.log(err[n // 2] / err[n]) / math.log(2) if n % 2 == 0 and n // 2 in err
             else math.nan for n in ns]
    fit = -np.polyfit(np.log(ns), np.log(list(err.values())), 1)[0]
    return local, fit


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="coarse levels only (a smoke run)")
    ap.add_argument("--json", default="bench/conformal_convergence.json")
    args = ap.parse_args()
    path = Path(args.json)
    store = json.loads(path.read_text()) if path.exists() else {}
    store = COMM.bcast(store, root=0)
    hs = [0.1, 0.05] if args.quick else [0.1, 0.05, 0.025, 0.0125]
    ns = [10, 20] if args.quick else [10, 15, 20, 30, 40, 60, 80]

    voxels = {s: [cached(store, path, f"voxel n={n} s={s}", voxel_run, n, s) for n in ns]
              for s in (1, 4)}
    tets = [cached(store, path, f"tet h={h}", tet_run, h) for h in hs]
    e1, e2 = tets[-2]["E"], tets[-1]["E"]
    ref = e2 + (e2 - e1) / 3.0             # Richardson, order 2, h ratio 2
    ref1 = e2 + (e2 - e1)                  # the same with order 1: a measure of its doubt
    if COMM.rank != 0:
        return

    print(f"\nReference (tetrahedra, Richardson with order 2 from h = {hs[-2]}, {hs[-1]} mm): "
          f"E_ref = {ref:.2f} MPa (order 1 would give {ref1:.2f}, {ref1 / ref - 1:+.2%}); "
          f"BV/TV of the finest mesh {tets[-1]['volume']:.5f}\n")
    print("| tet edge h (mm) | junction edge (mm) | elements | DOF | E_app (MPa) | vs E_ref |")
    print("| --- | --- | --- | --- | --- | --- |")
    for t in tets:
        print(f"| {t['h']:g} | {t['h'] / 4:g} | {t['elements']} | {t['dofs']} | {t['E']:.2f} | "
              f"{t['E'] / ref - 1:+.2%} |")
    for s, label in ((1, "binary (voxel centres)"), (4, "partial volume (4^3 samples)")):
        rows = voxels[s]
        err = [r["E"] / ref - 1 for r in rows]
        local, fit = rates([r["n"] for r in rows], err)
        print(f"\nVoxel path, {label}: least-squares rate over all rows {fit:.2f}\n")
        print("| voxel size (mm) | n | elements | BV/TV | E_app (MPa) | vs E_ref | rate vs n/2 |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r, e, p in zip(rows, err, local):
            print(f"| {r['h']:.4f} | {r['n']} | {r['elements']} | {r['bv_tv']:.4f} | {r['E']:.2f} | "
                  f"{e:+.2%} | {'' if math.isnan(p) else f'{p:.2f}'} |")


if __name__ == "__main__":
    main()
