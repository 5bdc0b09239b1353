"""Removal of the horizontal trabeculae against thinning, on real bone (issue 14).

./bonefem exec python3 bench/removal_real.py gen --tag today [--presets FOLDER] [--seeds 0 1 2]
    [--cohorts ...] [--size 3]
./bonefem exec python3 bench/removal_real.py core [--targets 0.063 0.10 0.125 0.15] [--sigma 0.1]
    [--max-angle 45]
./bonefem exec python3 bench/removal_real.py table TAG [TAG ...]

A scan has no labelled trabeculae, so the horizontal bone is found from its shape
(fem.specimen.orientation: the bone's second moments in a Gaussian window of ``--sigma`` mm;
rods more than ``--max-angle`` degrees from z, plates whose normal lies within it).

``gen`` checks that classification on the generator, whose labels are exact: each specimen
(``--size`` mm cube at 40 um) is solved intact, without its labelled horizontal trabeculae,
without the bone the classifier calls horizontal, and thinned uniformly to each of the two
bone volumes (the removal and thinning of bench/validate_specimens.py). ``core`` applies the
classifier to the real human core (../shared/data/lhdl-3155_D_4_bc) turned so that its main
trabecular direction is z (the 2.26 mm cube of ``validate_specimens.py core --align``), or
with ``--unturned`` to the whole 3.9 mm core in its image axes (bone transverse to the image
z, which is 66 deg from the core's main direction), thresholded to each target BV/TV. Linear solves: 10 GPa tissue, 1 % uniaxial compression
along z, E_z and the Pistoia failure load. Rows are appended to
bench/out/removal_real_TAG.json (resumable); ``table`` prints the markdown table of
docs/specimens.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_specimens import (COHORTS, OUT, _case, core_images, prepared,  # noqa: E402
                                removal_vs_thinning, solve)


def compared(phi, removed, spacing, case, base) -> dict:
    """validate_specimens.removal_vs_thinning, with the ratios (removal / thinning) of the
    modulus and failure-load losses and the two solves' seconds instead of the solves."""
    out = removal_vs_thinning(phi, removed, spacing, case, base)
    out["seconds"] = sum(s["seconds"] for s in out.pop("solves"))
    out["ratio_E"] = out["removal_E_loss"] / out["thinning_E_loss"]
    out["ratio_F"] = out["removal_F_loss"] / out["thinning_F_loss"]
    return out


def classified(phi, spacing, sigma, max_angle, guard=1):
    """(level set without the bone classified horizontal, that bone as a bool mask)."""
    from fem.specimen.orientation import horizontal_bone, without

    bone = phi > 0
    h = horizontal_bone(bone, spacing, sigma=sigma, max_angle=max_angle, guard=guard)
    return without(phi, h, spacing), h


def _save(path, rows):
    path.write_text(json.dumps(rows, indent=1))


def gen(args):
    from fem.specimen import vertebral
    from fem.specimen.cohorts import load_cohort

    case = _case()
    path = OUT / f"removal_real_{args.tag}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    done = {(r["cohort"], r["seed"]) for r in rows}
    for name in args.cohorts:
        g = load_cohort(name, args.presets)["generator"]
        for seed in args.seeds:
            if (name, seed) in done:
                continue
            net = vertebral.generate(**dict(g, seed=seed, size=args.size, voxel_size=0.04))
            phi, sp = net.phi, net.spacing
            base = solve(phi, sp, case)
            removed, h = classified(phi, sp, args.sigma, args.max_angle, args.guard)
            bone = prepared(phi, sp) > 0
            exact = bone & (net.kind == vertebral.HORIZONTAL)
            row = {"kind": "generator", "cohort": name, "seed": seed, "size_mm": args.size,
                   "presets": str(args.presets or "shipped"), "sigma": args.sigma, "max_angle": args.max_angle, "guard": args.guard,
                   "base": base,
                   "labelled_share": float(exact.sum() / bone.sum()),
                   "classified_share": float((h & bone).sum() / bone.sum()),
                   "recall": float((h & exact).sum() / max(exact.sum(), 1)),
                   "precision": float((h & exact).sum() / max((h & bone).sum(), 1)),
                   "labelled": compared(phi, net.parts[vertebral.VERTICAL], sp, case, base),
                   "classified": compared(phi, removed, sp, case, base)}
            rows.append(row)
            _save(path, rows)
            lab, cla = row["labelled"], row["classified"]
            print(f"{name} seed {seed}: E_z {base['E_MPa']:.0f} MPa; labelled horizontal "
                  f"{100 * row['labelled_share']:.1f} % of bone, classified {100 * row['classified_share']:.1f} % "
                  f"(recall {row['recall']:.2f}, precision {row['precision']:.2f}); removal/thinning E, F: "
                  f"labelled {lab['ratio_E']:.2f}, {lab['ratio_F']:.2f} (mass {100 * lab['mass_loss']:.1f} %), "
                  f"classified {cla['ratio_E']:.2f}, {cla['ratio_F']:.2f} (mass {100 * cla['mass_loss']:.1f} %)",
                  flush=True)


def core(args):
    from fem.specimen.levelset import from_mask

    case = _case()
    path = OUT / f"removal_real_{args.tag}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    key = (args.sigma, args.max_angle, args.guard, args.unturned)
    done = {(r["target_bv_tv"], r["sigma"], r["max_angle"], r["guard"], r["unturned"]) for r in rows}
    todo = [t for t in args.targets if (t, *key) not in done]
    for bv, mask, sp in core_images(todo, align=not args.unturned):
        phi = from_mask(mask, sp, band=0.2)
        t0 = time.perf_counter()
        base = solve(phi, sp, case)
        removed, h = classified(phi, sp, args.sigma, args.max_angle, args.guard)
        bone = prepared(phi, sp) > 0
        row = {"kind": "core", "target_bv_tv": bv, "size_mm": sp[2] * mask.shape[2], "sigma": args.sigma,
               "max_angle": args.max_angle, "guard": args.guard, "unturned": args.unturned, "base": base,
               "classified_share": float((h & bone).sum() / bone.sum()),
               "classified": compared(phi, removed, sp, case, base), "seconds": time.perf_counter() - t0}
        rows.append(row)
        _save(path, rows)
        c = row["classified"]
        print(f"core BV/TV {bv}: E_z {base['E_MPa']:.0f} MPa, F {base['F_N']:.2f} N; classified horizontal "
              f"{100 * row['classified_share']:.1f} % of bone, removal loses {100 * c['mass_loss']:.1f} %: "
              f"E -{100 * c['removal_E_loss']:.1f} % vs thinning -{100 * c['thinning_E_loss']:.1f} % "
              f"(ratio {c['ratio_E']:.2f}), F ratio {c['ratio_F']:.2f}", flush=True)


def _ms(values, fmt="{:.2f}"):
    v = np.asarray(values, float)
    if v.size == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} +- {fmt.format(v.std(ddof=1))}"


def table(args):
    print("| specimen | n | BV/TV | E_z (MPa) | horizontal bone (% of bone): labelled / classified "
          "| recall / precision | bone lost by removal (%) | removal / thinning, E: labelled | classified "
          "| removal / thinning, F: labelled | classified |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for tag in args.tags:
        rows = json.loads((OUT / f"removal_real_{tag}.json").read_text())
        gens = [r for r in rows if r["kind"] == "generator"]
        for name in dict.fromkeys(r["cohort"] for r in gens):
            rr = [r for r in gens if r["cohort"] == name]
            pct = lambda key, sub=None: _ms([100 * (r[sub][key] if sub else r[key]) for r in rr], "{:.1f}")  # noqa: E731
            print(f"| {tag}: {name} ({rr[0]['size_mm']:g} mm) | {len(rr)} | {_ms([r['base']['bv_tv'] for r in rr], '{:.3f}')} "
                  f"| {_ms([r['base']['E_MPa'] for r in rr], '{:.0f}')} | {pct('labelled_share')} / {pct('classified_share')} "
                  f"| {_ms([r['recall'] for r in rr])} / {_ms([r['precision'] for r in rr])} "
                  f"| {pct('mass_loss', 'labelled')} / {pct('mass_loss', 'classified')} "
                  f"| {_ms([r['labelled']['ratio_E'] for r in rr])} | {_ms([r['classified']['ratio_E'] for r in rr])} "
                  f"| {_ms([r['labelled']['ratio_F'] for r in rr])} | {_ms([r['classified']['ratio_F'] for r in rr])} |")
        for r in (r for r in rows if r["kind"] == "core"):
            c = r["classified"]
            print(f"| {tag}: real core {'in image axes' if r['unturned'] else 'turned'}, {r['size_mm']:.2f} mm, sigma {r['sigma']:g} mm, "
                  f"{r['max_angle']:g} deg, guard {r.get('guard', 0)} "
                  f"| 1 | {r['base']['bv_tv']:.3f} | {r['base']['E_MPa']:.0f} | - / {100 * r['classified_share']:.1f} | - "
                  f"| - / {100 * c['mass_loss']:.1f} | - | {c['ratio_E']:.2f} | - | {c['ratio_F']:.2f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("gen", "core"):
        p = sub.add_parser(name)
        p.add_argument("--tag", default=name)
        p.add_argument("--sigma", type=float, default=0.05, help="window SD, mm")
        p.add_argument("--guard", type=int, default=1, help="voxels of vertical bone kept round it")
        p.add_argument("--max-angle", type=float, default=45.0, help="degrees from z")
    g = sub.choices["gen"]
    g.add_argument("--presets", type=Path, default=None)
    g.add_argument("--cohorts", nargs="+", default=COHORTS)
    g.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    g.add_argument("--size", type=float, default=3.0)
    sub.choices["core"].add_argument("--unturned", action="store_true",
                                     help="the whole core in its image axes (z is then 66 deg from its main direction)")
    sub.choices["core"].add_argument("--targets", nargs="+", type=float, default=[0.068, 0.10, 0.125, 0.15])
    t = sub.add_parser("table")
    t.add_argument("tags", nargs="+")
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    {"gen": gen, "core": core, "table": table}[args.cmd](args)


if __name__ == "__main__":
    main()
