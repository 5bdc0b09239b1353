"""Cavity resolution (issue 20, section 4): do resorption cavities cost more strength than
uniform thinning to the same bone loss once the voxels resolve them?

    ./bonefem exec nice -n 10 python3 bench/cavity_resolution.py [--edges 40 30 20 15 10]
        [--size 1.8] [--seed 0] [--placements 0 ... 5] [--fraction 0.02]
    ./bonefem exec python3 bench/cavity_resolution.py --table      # table and figure only
    ./bonefem exec nice -n 10 python3 bench/cavity_resolution.py --seed 1 --tag seed1   # another specimen

One generated specimen (``--cohort``, default early-postmenopausal; ``--size`` mm cube,
generator seed ``--seed``, built at the trial's 40 um) is sampled at every voxel edge from
its analytic primitives (fem.specimen.vertebral.Network.sampled), so every edge shows the
same geometry. Cavity sets are placed once, in mm (fem.remodel.cavities.place, BMU depth
and footprint distributions of the default RemodelParams), on its sampling at the
reference edge ``--reference`` (10 um) until they remove ``--fraction`` of the bone: at
random surface sites (seeds ``--placements``) and on the thinnest trabeculae (the same
seeds draw the candidate pool). At each voxel edge, in a subprocess of its own (memory),
each set is dug into the level set (fem.remodel.cavities.dig), pieces left floating are
dropped, and the intact specimen thinned uniformly to the same bone volume is the
comparison (bench/validate_specimens.removed_and_thinned); all are solved by the normal
pipeline path (bench/validate_specimens.solve: 1 % compression along z, 10 GPa,
Hashin-Shtrikman partial voxels, rtol 1e-6): apparent modulus and Pistoia failure load.

Writes (with ``--tag T``: cavity_resolution_T...) bench/out/cavity_resolution.json (one row per voxel edge, with seconds and the
peak resident memory VmHWM of its process; done edges are skipped, so a run resumes),
bench/out/cavity_resolution_cavities.json (the cavity sets, mm) and
docs/figures/cavity_resolution.png; prints the Markdown table (docs/model.md, "Cavity
resolution").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "bench" / "out"


def paths(tag: str = ""):
    """(results, cavity sets, figure) of a run; ``tag`` (e.g. "seed1") names another run."""
    t = f"_{tag}" if tag else ""
    return (OUT / f"cavity_resolution{t}.json", OUT / f"cavity_resolution{t}_cavities.json",
            ROOT / "docs" / "figures" / f"cavity_resolution{t}.png")


RESULTS, CAVITIES, FIGURE = paths()
WHERE = ("random", "thinnest")


def network(args):
    """The generated specimen (fem.specimen.vertebral.Network) at the trial's 40 um."""
    import fem.specimen.vertebral as gen
    from fem.specimen.cohorts import load_cohort

    g = load_cohort(args.cohort)["generator"]
    return gen.generate(**dict(g, seed=args.seed, size=args.size, voxel_size=0.04))


def place_all(args) -> dict:
    """The cavity sets (saved, and reused when the settings match)."""
    from fem.remodel.cavities import place

    key = {"cohort": args.cohort, "seed": args.seed, "size_mm": args.size, "fraction": args.fraction,
           "reference_um": args.reference, "placements": args.placements}
    if CAVITIES.exists():
        saved = json.loads(CAVITIES.read_text())
        if saved["key"] == key:
            return saved
    from validate_specimens import prepared

    h = args.reference / 1000
    phi = prepared(network(args).sampled(h), (h,) * 3)     # no cavities on floating pieces
    sets = []
    for where in WHERE:
        for s in args.placements:
            t0 = time.perf_counter()
            cav = place(phi, (h,) * 3, args.fraction, seed=s, where=where)
            print(f"placed {where} seed {s}: {len(cav)} cavities, mean depth {1000 * cav.depths.mean():.0f} um, "
                  f"radius {1000 * cav.radii.mean():.0f} um, thickness under site median "
                  f"{1000 * np.median(cav.thickness):.0f} um ({time.perf_counter() - t0:.0f} s)", flush=True)
            sets.append({"where": where, "seed": s, "cavities": cav.as_dict()})
    saved = {"key": key, "sets": sets}
    OUT.mkdir(exist_ok=True)
    CAVITIES.write_text(json.dumps(saved))
    return saved


def run_edge(args, um: float) -> dict:
    """Every solve at one voxel edge (um); called in a subprocess of its own."""
    from grid_memory import _status
    from validate_specimens import _case, prepared, removed_and_thinned, solve

    from fem.remodel.cavities import Cavities, dig
    from fem.specimen.levelset import bone_volume

    t0 = time.perf_counter()
    case = _case()
    h = um / 1000
    sp = (h, h, h)
    # floating pieces dropped first, as the solve drops them: the thinning then matches the
    # bone the solve sees (matched on the raw level set, it would also have to remove them)
    phi = prepared(network(args).sampled(h), sp)
    intact = solve(phi, sp, case)
    print(f"{um:g} um: intact E {intact['E_MPa']:.2f} MPa, F {intact['F_N']:.3f} N, "
          f"{intact['dofs']} DOF, {intact['seconds']:.0f} s", flush=True)
    v0 = bone_volume(phi, sp)
    sets = []
    saved = json.loads(CAVITIES.read_text())
    for s in saved["sets"]:
        cav = Cavities.from_dict(s["cavities"])
        carved = dig(phi, sp, cav)
        dug = 1 - bone_volume(carved, sp) / v0
        removed, thinned, loss, d = removed_and_thinned(phi, carved, sp)
        c, t = solve(removed, sp, case), solve(thinned, sp, case)
        row = {"where": s["where"], "seed": s["seed"], "n": len(cav), "dug": dug, "mass_loss": loss,
               "thinning_um": 1000 * d, "cavities": c, "thinned": t,
               **{f"{k}_{m}": 100 * (x[m] / intact[m] - 1) for k, x in (("cavity", c), ("thinning", t))
                  for m in ("E_MPa", "F_N")}}
        print(f"  {s['where']:8s} seed {s['seed']}: {len(cav)} cavities dig {100 * dug:.2f} %, lost "
              f"{100 * loss:.2f} %; E {row['cavity_E_MPa']:+.2f} % (thinning {row['thinning_E_MPa']:+.2f} %), "
              f"F {row['cavity_F_N']:+.2f} % (thinning {row['thinning_F_N']:+.2f} %)", flush=True)
        sets.append(row)
    return {"edge_um": um, "size_mm": args.size, "cohort": args.cohort, "seed": args.seed, "key": saved["key"],
            "intact": intact, "sets": sets, "seconds": time.perf_counter() - t0,
            "peak_MiB": _status("VmHWM")}


def _value(s, key):
    """A set's % change, or its excess: cavity change minus thinning change (points;
    negative when the cavities cost more than thinning to the same bone loss)."""
    if key.startswith("excess_"):
        m = key[len("excess_"):]
        return s[f"cavity_{m}"] - s[f"thinning_{m}"]
    return s[key]


def _mean(rows, where, key):
    v = [_value(r, key) for r in rows if r["where"] == where]
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"))


def table(rows) -> str:
    """Markdown: per voxel edge and placement, the mean (SD over placements) % change of
    modulus and failure load by cavities and by thinning to the same loss, and the
    excess (cavities minus thinning, points: mean [95 % t interval] over sets)."""
    from fem.analysis.stats import paired_difference

    lines = ["| voxel um | DOF intact | placement | sets | cavities per set | bone lost % | "
             "E: cavities % | E: thinning % | E: excess | F: cavities % | F: thinning % | F: excess | "
             "time s | peak MiB |",
             "| --- " * 14 + "|"]
    for r in sorted(rows, key=lambda r: -r["edge_um"]):
        for where in WHERE:
            sets = [s for s in r["sets"] if s["where"] == where]
            if not sets:
                continue

            def cell(key):
                if key.startswith("excess_") and len(sets) > 1:    # paired: mean [95 % t interval]
                    m = key[len("excess_"):]
                    d = paired_difference([s[f"cavity_{m}"] for s in sets], [s[f"thinning_{m}"] for s in sets])
                    return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"
                m, sd = _mean(sets, where, key)
                return f"{m:+.2f}" + ("" if np.isnan(sd) else f" ({sd:.2f})")
            lines.append(f"| {r['edge_um']:g} | {r['intact']['dofs']} | {where} | {len(sets)} | "
                         f"{np.mean([s['n'] for s in sets]):.1f} | {100 * np.mean([s['mass_loss'] for s in sets]):.2f} | "
                         f"{cell('cavity_E_MPa')} | {cell('thinning_E_MPa')} | {cell('excess_E_MPa')} | "
                         f"{cell('cavity_F_N')} | {cell('thinning_F_N')} | {cell('excess_F_N')} | "
                         f"{r['seconds']:.0f} | {r['peak_MiB']:.0f} |")
    return "\n".join(lines)


def convergence(rows) -> str:
    """Markdown: per voxel edge and placement, each set's value minus the same set's value
    at the finest edge (points; mean (SD) over sets, and the largest |difference|)."""
    rows = sorted(rows, key=lambda r: -r["edge_um"])
    finest = rows[-1]
    keys = ("cavity_E_MPa", "thinning_E_MPa", "excess_E_MPa", "cavity_F_N", "thinning_F_N", "excess_F_N")
    lines = [f"Each set's value minus its value at {finest['edge_um']:g} um, points: mean (SD) [largest |difference|]",
             "", "| voxel um | placement | " + " | ".join(k.replace("_MPa", "").replace("_N", "").replace("_", ": ")
                                                       for k in keys) + " |", "| --- " * (2 + len(keys)) + "|"]
    ref = {(s["where"], s["seed"]): s for s in finest["sets"]}
    for r in rows[:-1]:
        for where in WHERE:
            sets = [s for s in r["sets"] if s["where"] == where and (where, s["seed"]) in ref]
            if not sets:
                continue
            cells = []
            for k in keys:
                d = np.array([_value(s, k) - _value(ref[(where, s["seed"])], k) for s in sets])
                sd = f" ({d.std(ddof=1):.2f})" if len(d) > 1 else ""
                cells.append(f"{d.mean():+.2f}{sd} [{np.abs(d).max():.2f}]")
            lines.append(f"| {r['edge_um']:g} | {where} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, path: Path):
    """% change of E and F against voxel edge: cavities (solid) and thinning (dashed) per
    placement, mean over placements with the single sets as faint points."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["edge_um"])
    x = [r["edge_um"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), layout="constrained")
    for ax, (m, title) in zip(axes, (("E_MPa", "apparent modulus E_z"), ("F_N", "Pistoia failure load"))):
        for where, colour in zip(WHERE, ("tab:blue", "tab:red")):
            for kind, ls, mk in (("cavity", "-", "o"), ("thinning", "--", "s")):
                key = f"{kind}_{m}"
                ax.plot(x, [_mean(r["sets"], where, key)[0] for r in rows], ls=ls, marker=mk, color=colour,
                        label=f"{where}: {'cavities' if kind == 'cavity' else 'uniform thinning'}")
                for r in rows:
                    v = [s[key] for s in r["sets"] if s["where"] == where]
                    ax.plot([r["edge_um"]] * len(v), v, mk, color=colour, alpha=0.25, ms=3)
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set_xlabel("voxel edge (um)")
        ax.set_ylabel("change vs intact at the same edge (%)")
        ax.set_title(title)
        ax.invert_xaxis()
    ax = axes[2]
    for where, colour in zip(WHERE, ("tab:blue", "tab:red")):
        for m, ls, mk, name in (("E_MPa", "-", "o", "E_z"), ("F_N", ":", "^", "failure load")):
            key = f"excess_{m}"
            mean = [_mean(r["sets"], where, key) for r in rows]
            n = [sum(s["where"] == where for s in r["sets"]) for r in rows]
            se = [0 if np.isnan(v[1]) else v[1] / np.sqrt(k) for v, k in zip(mean, n)]
            ax.errorbar(x, [v[0] for v in mean], yerr=se,
                        ls=ls, marker=mk, color=colour, capsize=3, label=f"{where}: {name}")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.set_xlabel("voxel edge (um)")
    ax.set_ylabel("cavities minus thinning (points; mean ± SE over sets)")
    ax.set_title("excess cost of cavities (< 0: stress risers)")
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{rows[0]['size_mm']:g} mm {rows[0]['cohort']} specimen, seed {rows[0]['seed']}: "
                 "the same cavity sets at every voxel edge", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", default="early-postmenopausal")
    ap.add_argument("--seed", type=int, default=0, help="generator seed")
    ap.add_argument("--size", type=float, default=1.8, help="cube edge, mm (every voxel edge must divide it)")
    ap.add_argument("--edges", type=float, nargs="+", default=[40, 30, 20, 15, 10], help="voxel edges, um")
    ap.add_argument("--placements", type=int, nargs="+", default=list(range(6)), help="cavity placement seeds")
    ap.add_argument("--fraction", type=float, default=0.02, help="bone fraction the cavities remove")
    ap.add_argument("--reference", type=float, default=10.0, help="voxel edge (um) the cavities are placed on")
    ap.add_argument("--tag", default="", help="names the output files of another run (cavity_resolution_TAG*)")
    ap.add_argument("--table", action="store_true", help="only print the table and draw the figure")
    ap.add_argument("--one", type=float, help=argparse.SUPPRESS)   # the subprocess of one voxel edge
    args = ap.parse_args(argv)
    global RESULTS, CAVITIES, FIGURE
    RESULTS, CAVITIES, FIGURE = paths(args.tag)
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    if args.one is not None:
        rows = [r for r in rows if r["edge_um"] != args.one] + [run_edge(args, args.one)]
        RESULTS.write_text(json.dumps(rows, indent=1))
        return
    if not args.table:
        key = place_all(args)["key"]
        for um in sorted(args.edges, reverse=True):
            if any(r["edge_um"] == um and r.get("key") == key for r in rows):
                print(f"{um:g} um: done in {RESULTS.name}")
                continue
            cmd = [sys.executable, __file__, "--one", str(um), "--cohort", args.cohort, "--seed", str(args.seed),
                   "--size", str(args.size), "--fraction", str(args.fraction),
                   "--reference", str(args.reference), "--tag", args.tag,
                   "--placements", *map(str, args.placements)]
            subprocess.run(cmd, check=True)
        rows = json.loads(RESULTS.read_text())
    print(table(rows))
    print()
    print(convergence(rows))
    plot(rows, FIGURE)


if __name__ == "__main__":
    main()
