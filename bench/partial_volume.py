"""Partial volumes in the stiffness: does a grey specimen's E_app converge with the voxel size?

./bonefem exec python3 bench/partial_volume.py SPECIMEN RULE [RULE ...] [--out FILE]

SPECIMEN: cell-N (docs/conformal.md's strut cell at N voxels per mm, with a conformal
reference E_app of 1289.6 MPa), lhdl-39, lhdl-19.5 (the LHDL core of ../shared/data, Gaussian sigma 1 at 19.5 um,
block mean to 39 um or not, 3 mm region, threshold 125: the trial's preparation), or
gen-40, gen-20 (a generated vertebral specimen, 3 mm, BV/TV 0.13, seed 0, made at 20 um;
the 40 um one is the 2 x 2 x 2 block mean of its bone fractions read as a grey image,
so both are the same physical bone); gen-40-s1-b0.10 etc. for seed 1 at BV/TV 0.10.

RULE: how a voxel's bone fraction f becomes stiffness (fem.specimen.partial):
  binary     the thresholded level set: elements where phi > 0, modulus E (no partial volumes)
  linear     E x f on whole voxels (the rule before this bench)
  hs         E x the Hashin-Shtrikman upper bound HS(f) (fem.specimen.partial, the default now)
  ramp       E x clip((f - 1/4) / (1/2), 0, 1): a cut-off, fractions below 1/4 void, above 3/4 full
  sc         E x the self-consistent estimate of bone with spherical voids (about 2 f - 1,
             0 below f = 1/2)
  power2     E x f^2 (a power law, not justified: for comparison only)
  ssvoigt    E x (fraction of the voxel's s^3 = 8 sub-cells with phi > 0 on the trilinearly
             interpolated level set), whole voxels
  fine2, fine3   the mesh at h/2 (h/3): sub-cells of the interpolated level set, each E x its
             own sub-cell fraction
Each solve is uniaxial z, 1 % strain, E = 10 GPa, rtol 1e-6, one rank. One JSON line per
solve (E_app, Pistoia failure load, BV/TV, elements, DOF, CG iterations, seconds, peak memory) is printed and
appended to --out. `bench/partial_volume.py table --out FILE` prints the Markdown table of
docs/real-scans.md from FILE.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from fem.case import case_from_dict
from fem.pipeline import solve_specimen
from fem.specimen import islands
from fem.specimen.grey import levelset_from_grey
from fem.specimen.levelset import volume_fraction
from fem.specimen.load import Specimen, specimen_from_levelset

E = 10000.0
LHDL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lhdl-3155_D_4_bc"


def level_set(name: str):
    """(phi, spacing) of a named specimen (module docstring)."""
    if name.startswith("cell-"):
        # docs/conformal.md's cubic lattice cell (1 mm, struts of radius 0.2 and 0.12 mm),
        # each voxel's fraction from 4^3 sub-samples, as phi = (f - 1/2) h
        from fem.mesh.struts import cubic_cell, voxelise

        n = int(name[5:])
        f = voxelise(cubic_cell(1.0, radius=0.2, horizontal_radius=0.12), n, samples=4)
        return ((f - 0.5) / n).astype(np.float32), (1.0 / n,) * 3
    if name.startswith("lhdl"):
        from fem.specimen.scan import scan_specimen

        k = {"lhdl-39": 2, "lhdl-19.5": 1}[name]
        scan = scan_specimen(LHDL, 0.0195, 125.0, smooth_sigma=1.0, coarsen=k, roi_size=3.0)
        return scan.phi, scan.spacing
    from fem.specimen.vertebral import generate

    # gen-20, gen-40, or with another seed and BV/TV: gen-40-s1-b0.10
    parts = name.split("-")
    opts = {p[0]: p[1:] for p in parts[2:]}
    net = generate(size=3.0, voxel_size=0.02, bv_tv=float(opts.get("b", 0.13)), seed=int(opts.get("s", 0)))
    if parts[1] == "20":
        return net.phi, net.spacing
    f = volume_fraction(net.phi, net.spacing)
    n = f.shape[0] // 2
    grey = f[:2 * n, :2 * n, :2 * n].reshape(n, 2, n, 2, n, 2).mean(axis=(1, 3, 5))
    spacing = (0.04,) * 3
    return levelset_from_grey(grey, spacing, 0.5, 0.0, 1.0), spacing


def refine(phi: np.ndarray, spacing, s: int) -> tuple[np.ndarray, tuple]:
    """The level set on a grid s times finer (trilinear between voxel centres, edge values
    held outside them) and its spacing (mm)."""
    # grid_mode: the image is cells (sub-cell k of voxel i is centred at i + (k + 1/2)/s - 1/2)
    fine = ndimage.zoom(np.asarray(phi, np.float32), s, order=1, mode="nearest", grid_mode=True)
    return fine, tuple(float(d) / s for d in spacing)


def self_consistent(f, nu, iterations=3000):
    """Self-consistent estimate (Hill 1965, Budiansky 1965) of Young's modulus / E of bone
    (fraction f, array) with spherical voids: 0 for f <= 1/2, 2 f - 1 exactly for nu = 0.2.
    Damped fixed-point iteration on the bulk and shear moduli."""
    k, g = 1 / (3 * (1 - 2 * nu)), 1 / (2 * (1 + nu))
    f = np.asarray(f, float)
    K, G = k * f, g * f
    np.seterr(divide="ignore", invalid="ignore")     # f = 0 (no stiffness): handled at the end
    for _ in range(iterations):
        Gs = np.maximum(G, 1e-300)
        Kn = 1 / (f / (k + 4 * Gs / 3) + (1 - f) / (4 * Gs / 3)) - 4 * Gs / 3
        z = Gs * (9 * K + 8 * Gs) / (6 * (K + 2 * Gs))
        Gn = 1 / (f / (g + z) + (1 - f) / z) - z
        K, G = 0.5 * (K + np.maximum(Kn, 0)), 0.5 * (G + np.maximum(Gn, 0))
    return np.where(G > 1e-12, 9 * K * G / (3 * K + G), 0.0)


def specimen(phi, spacing, rule: str) -> tuple[Specimen, str]:
    """The specimen to solve under a rule (module docstring), and the case's
    ``[material] partial_volume`` to solve it with."""
    if rule.startswith("fine"):           # sub-cells at E x their own fraction
        fine, sp = refine(phi, spacing, int(rule[4:]))
        return specimen_from_levelset(fine, sp, E), "linear"
    if rule == "binary":
        mask, removed = islands.held_by_platens(phi > 0)
        return Specimen(mask, tuple(spacing), E, removed), "linear"
    spec = specimen_from_levelset(phi, spacing, E)
    f = spec.fraction
    if rule in ("linear", "hs"):
        return spec, {"hs": "hashin-shtrikman"}.get(rule, rule)
    # the rules below go into the modulus image, solved as E x f
    if rule.startswith("ramp"):       # ramp2: width 1/2, ramp4: width 1/4 about f = 1/2
        w = 1.0 / int(rule[4:] or 2)
        g = np.clip(0.5 + (f - 0.5) / w, 0.0, 1.0)
    elif rule == "sc":
        table = np.linspace(0.0, 1.0, 2001)
        g = np.interp(f, table, self_consistent(table, 0.3))
    elif rule == "power2":
        g = f ** 2
    elif rule == "ssvoigt":
        fine, _ = refine(phi, spacing, 2)
        n = phi.shape
        g = (fine > 0).reshape(n[0], 2, n[1], 2, n[2], 2).mean(axis=(1, 3, 5))
        g[~spec.mask] = 0.0
    else:
        raise SystemExit(f"unknown rule {rule}")
    # voxels left with no stiffness are no elements (else the matrix is singular there)
    if np.any(spec.mask & (g <= 0)):
        mask, removed = islands.held_by_platens(spec.mask & (g > 0))
        spec = Specimen(mask, spec.spacing, E, spec.voxels_removed + removed,
                        np.where(mask, f, 0.0), spec.phi)
        g = np.where(mask, g, 0.0)
    # element modulus = modulus image x fraction: put E g / f in the modulus image
    spec.modulus = np.where(f > 0, E * g / np.where(f > 0, f, 1.0), 0.0)
    return spec, "linear"


PAIRS = (("lhdl-39", "lhdl-19.5"), ("gen-40", "gen-20"), ("gen-40-s1-b0.10", "gen-20-s1-b0.10"))


def table(path) -> str:
    """Markdown table of the JSON lines in ``path``: each rule at both voxel sizes of a pair."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    got = {(r["specimen"], r["rule"]): r for r in rows}        # the last solve of each wins
    out = ["| specimen | rule | E_app coarse (MPa) | E_app fine (MPa) | coarse / fine - 1 "
           "| fine / binary fine - 1 | failure load coarse, fine (N) | BV/TV coarse, fine "
           "| DOF coarse, fine | s coarse, fine |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for coarse, fine in PAIRS:
        ref = got.get((fine, "binary"))
        for rule in dict.fromkeys(r for s, r in got if s in (coarse, fine)):
            a, b = got.get((coarse, rule)), got.get((fine, rule))
            cell = lambda r, k, f="{:.1f}": "-" if r is None or k not in r else f.format(r[k])  # noqa: E731
            ratio = "-" if a is None or b is None else f"{100 * (a['E_app_MPa'] / b['E_app_MPa'] - 1):+.1f} %"
            vs = "-" if b is None or ref is None else f"{100 * (b['E_app_MPa'] / ref['E_app_MPa'] - 1):+.1f} %"
            out.append(f"| {coarse} / {fine} | {rule} | {cell(a, 'E_app_MPa')} | {cell(b, 'E_app_MPa')} | "
                       f"{ratio} | {vs} | {cell(a, 'failure_load_N', '{:.2f}')}, "
                       f"{cell(b, 'failure_load_N', '{:.2f}')} | {cell(a, 'bv_tv', '{:.4f}')}, {cell(b, 'bv_tv', '{:.4f}')} | "
                       f"{cell(a, 'dofs', '{:,}')}, {cell(b, 'dofs', '{:,}')} | "
                       f"{cell(a, 'seconds', '{:.0f}')}, {cell(b, 'seconds', '{:.0f}')} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specimen", help="a specimen name, or 'table' to print --out's table")
    ap.add_argument("rules", nargs="*")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.specimen == "table":
        print(table(a.out))
        return
    phi, spacing = level_set(a.specimen)
    for rule in a.rules:
        t0 = time.perf_counter()
        spec, partial_volume = specimen(phi, spacing, rule)
        case = case_from_dict({"specimen": {"synthetic": {}}, "solver": {"rtol": 1e-6},
                               "material": {"partial_volume": partial_volume},
                               "output": {"fields": False}}, "bench")
        r = solve_specimen(spec, case, log=lambda *x: None)
        row = {"specimen": a.specimen, "rule": rule, "E_app_MPa": round(r["apparent_modulus_MPa"], 2),
               "failure_load_N": round(r["pistoia"]["failure_load_N"], 3),
               "bv_tv": round(r["bv_tv"], 5), "elements": r["elements"], "dofs": r["dofs"],
               "cg": r["solver"]["iterations"], "seconds": round(time.perf_counter() - t0, 1),
               "peak_rss_GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}
        print(json.dumps(row), flush=True)
        if a.out:
            with open(a.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
