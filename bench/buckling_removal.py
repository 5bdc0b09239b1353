"""Removal against thinning with the linear buckling load as the strength measure (issues 14, 16).

./bonefem exec python3 bench/buckling_removal.py --cohort early-postmenopausal --seed 0
    [--size 2] [--presets fem/specimen/cohorts/tilted] [--tag today]
./bonefem exec python3 bench/buckling_removal.py --table today candidate

For one generated specimen (``--size`` mm cube, 40 um voxels, the cohort preset from
``--presets`` or fem/specimen/cohorts/) it builds the intact specimen, the specimen without
its horizontal trabeculae, and the intact one thinned uniformly to the same bone volume
(bench/validate_specimens.removed_and_thinned: fem.analysis.attribution.matching_move), and
for each solves

- the linear uniaxial compression of the default case (tissue 10 GPa, Hashin-Shtrikman
  partial voxels, 1 % strain): apparent modulus E_z (MPa) and Pistoia failure load (N);
- the linear buckling analysis of that prestress (fem.solve.buckling, MUMPS): the first
  load factor lambda; the buckling load is lambda x the reference reaction force (N).

The buckling modes are sought with the bottom face also held sideways (x, y), the top
face frictionless as in the solve: the platens alone join the vertical pieces that remain
once the horizontal trabeculae are gone, and each such piece would otherwise slide freely
(a zero-stiffness mode of K and K_G alike, which the eigenproblem cannot take).

It prints the losses and the removal / thinning loss ratio for each measure and appends
the row to bench/out/buckling_removal_<tag>.json (done (cohort, seed) pairs are skipped).
``--table TAG [TAG ...]`` prints the Markdown table of saved runs (docs/nonlinear.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "bench" / "out"
MEASURES = ("E_MPa", "F_N", "buckling_N")


def strengths(spec, case, comm=None) -> dict:
    """Linear compression and first buckling load of a prepared Specimen (serial): the
    pipeline's solve with ``[analysis] buckling = true`` (fem.solve.buckling.specimen_buckling).

    Returns {"E_MPa": apparent modulus, "F_N": Pistoia failure load, "buckling_N": first
    buckling load = lambda x |reference reaction| (N), "factor": lambda at the case's
    strain, "mode_share": the first mode's participation ratio (share of the nodes it
    moves: 1 uniform, near 0 a single strut), "bv_tv", "dofs", "seconds"}.
    """
    from dataclasses import replace

    from mpi4py import MPI

    from fem.pipeline import solve_specimen

    case = replace(case, analysis=replace(case.analysis, buckling=True),
                   output=replace(case.output, fields=False))
    t0 = time.perf_counter()
    result = solve_specimen(spec, case, None, comm or MPI.COMM_SELF, log=lambda *a, **k: None)
    b = result["buckling"]
    return {"E_MPa": abs(result["apparent_modulus_MPa"]), "F_N": abs(result["pistoia"]["failure_load_N"]),
            "buckling_N": b["load_N"], "factor": b["factor"], "mode_share": b["mode_share"],
            "bv_tv": result["bv_tv"], "dofs": result["dofs"], "seconds": time.perf_counter() - t0}


def loss_ratios(intact: dict, removed: dict, thinned: dict) -> dict:
    """Per measure: fractional loss of removal and of thinning, and removal / thinning."""
    out = {}
    for key in MEASURES:
        r, t = 1 - removed[key] / intact[key], 1 - thinned[key] / intact[key]
        out[key] = {"removal_loss": r, "thinning_loss": t, "ratio": r / t if t != 0 else float("inf")}
    return out


def _specimen_strengths(phi, spacing, case):
    from validate_specimens import E_TISSUE

    from fem.errors import BonefemError
    from fem.specimen.load import specimen_from_levelset

    try:
        spec = specimen_from_levelset(phi, spacing, E_TISSUE)
    except BonefemError:   # nothing spans the loaded faces: it carries nothing
        return dict.fromkeys((*MEASURES, "factor", "mode_share", "bv_tv", "dofs", "seconds"), 0.0)
    return strengths(spec, case)


def run(args):
    import fem.specimen.vertebral as gen
    from validate_specimens import _case, removed_and_thinned

    from fem.specimen.cohorts import load_cohort

    case = _case()
    OUT.mkdir(exist_ok=True)
    path = OUT / f"buckling_removal_{args.tag}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    if any(r["cohort"] == args.cohort and r["seed"] == args.seed and r["size_mm"] == args.size for r in rows):
        print(f"{args.cohort} seed {args.seed} {args.size} mm: done in {path.name}")
        return
    g = load_cohort(args.cohort, args.presets)["generator"]
    net = gen.generate(**dict(g, seed=args.seed, size=args.size, voxel_size=0.04))
    removed, thinned, loss, d = removed_and_thinned(net.phi, net.parts[gen.VERTICAL], net.spacing)
    solves = {name: _specimen_strengths(phi, net.spacing, case)
              for name, phi in (("intact", net.phi), ("removed", removed), ("thinned", thinned))}
    row = {"cohort": args.cohort, "seed": args.seed, "size_mm": args.size, "presets": args.presets,
           "mass_loss": loss, "thinning_um": 1000 * d, **solves,
           "ratios": loss_ratios(solves["intact"], solves["removed"], solves["thinned"])}
    rows.append(row)
    path.write_text(json.dumps(rows, indent=1))
    print(f"{args.cohort} seed {args.seed}, {args.size} mm, mass loss {100 * loss:.1f} % "
          f"(thinning {1000 * d:.1f} um):")
    for name, s in solves.items():
        print(f"  {name:8s} E_z {s['E_MPa']:7.1f} MPa  F {s['F_N']:7.2f} N  buckling {s['buckling_N']:8.2f} N "
              f"(lambda {s['factor']:.3g}, mode on {100 * s['mode_share']:.0f} % of nodes, {s['dofs']} DOF, "
              f"{s['seconds']:.1f} s)")
    for key, r in row["ratios"].items():
        print(f"  {key:10s} removal -{100 * r['removal_loss']:.1f} %  thinning -{100 * r['thinning_loss']:.1f} %"
              f"  ratio {r['ratio']:.2f}")


def table(tags) -> str:
    """Markdown table of the saved runs ``bench/out/buckling_removal_<tag>.json``: per tag
    and cohort the means over seeds of the intact, removed and thinned solves, and of the
    removal / thinning loss ratios their mean ± SD, median and how many exceed 1."""
    def ms(values, fmt):
        v = np.asarray(values, float)
        return f"{v.mean():{fmt}} ± {v.std(ddof=1):{fmt}}" if len(v) > 1 else f"{v.mean():{fmt}}"

    lines = ["| generator | cohort | n | mass lost | E_z intact / removed / thinned (MPa) | "
             "Pistoia F (N) | buckling load (N) | first mode on (% of nodes, intact / removed) | "
             "removal ÷ thinning: E_z | Pistoia F | buckling |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for tag in tags:
        rows = json.loads((OUT / f"buckling_removal_{tag}.json").read_text())
        for cohort in dict.fromkeys(r["cohort"] for r in rows):
            rs = [r for r in rows if r["cohort"] == cohort]
            cells = [tag, cohort.split("-")[0], str(len(rs)), ms([100 * r["mass_loss"] for r in rs], ".0f") + " %"]
            for key, fmt in (("E_MPa", ".0f"), ("F_N", ".2f"), ("buckling_N", ".1f")):
                cells.append(" / ".join(f"{np.mean([r[s][key] for r in rs]):{fmt}}"
                                        for s in ("intact", "removed", "thinned")))
            cells.append(" / ".join(f"{100 * np.mean([r[s]['mode_share'] for r in rs]):.0f}"
                                    for s in ("intact", "removed")))
            for key in MEASURES:
                ratio = [r["ratios"][key]["ratio"] for r in rs]
                cells.append(f"{ms(ratio, '.2f')} (median {np.median(ratio):.2f}; "
                             f"{sum(x > 1 for x in ratio)}/{len(rs)} > 1)")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cohort", help="cohort preset name (required unless --table)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=float, default=2.0, help="cube edge (mm); 40 um voxels")
    p.add_argument("--presets", help="folder of cohort presets (*.toml), e.g. fem/specimen/cohorts/tilted")
    p.add_argument("--tag", default="today", help="results file bench/out/buckling_removal_<tag>.json")
    p.add_argument("--table", nargs="+", metavar="TAG", help="print the Markdown table of saved runs instead")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table))
    elif not args.cohort:
        p.error("--cohort is required (or --table TAG ...)")
    else:
        run(args)


if __name__ == "__main__":
    main()
