"""Voxel-size study (issue 20, section 1): do the 2-year % changes of BMD, apparent modulus
and failure load, untreated and combined, depend on the voxel edge more than the effects
the trial reports?

One trial per voxel edge (fem.trial.run_trial through bench/size_study.case_for: the same
generator seed, spin-up, remodelling and solves) on cubes of one edge; seeds are added one
round at a time over every voxel edge, coarsest first, and each folder resumes.

Everything the generator and the remodelling draw is in mm (strut and plate sizes, cavity
depth and footprint, activation per mm^2 of surface), so a finer voxel changes only the
discretisation: the same seed gives the same network, sampled finer, and the same cavity
sizes. Two things differ: the random stream of activation candidates (their density per
mm^3 is set so that the surface band of width h receives the rate, so the number of
points drawn, and the stream after them, depends on h), and the presets' untreated and
drug balances, which were calibrated at 40 um (docs/model.md) and are not re-fitted here.

    ./bonefem exec nice -n 5 python3 bench/voxel_study.py -o results/voxel-study \\
        --voxels 40 30 --seeds 0 1 2
    ./bonefem exec python3 bench/voxel_study.py -o results/voxel-study --collect   # tables only

Writes OUT/voxel_study.csv and .md (as bench/size_study.py, one block per voxel edge),
OUT/voxel_vs_ref.csv and .md (per seed, the value at each voxel edge minus the value at the
reference edge, the first of --voxels: mean, SD, 95 % t interval and n over seeds) and
OUT/voxel_study.png/.svg.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from size_study import ARMS, case_for, markdown, peak_mib, run_rounds, study_arguments, tabulate

from fem.analysis.compare import add_changes
from fem.analysis.paired import FIGURES, arm_changes, paired_effects
from fem.analysis.stats import paired_difference
from fem.report.plots import ARM_COLOURS, COHORT_MARKERS
from fem.report.result import write_atomic
from fem.report.store import ROWS, read_rows
from fem.report.tables import write_csv


def folder(out: Path, um: float) -> Path:
    return out / f"voxel-{um:g}um"


def per_seed(rows, years: float) -> dict:
    """(cohort, arm or 'combined - untreated', figure) -> {seed: % change or points}."""
    out = {}
    for cohort in dict.fromkeys(r["cohort"] for r in rows):
        for figure in FIGURES:
            for arm in ARMS:
                out[(cohort, arm, figure)] = arm_changes(rows, cohort, arm, years, figure)
    for e in paired_effects(rows, years):
        out[(e["cohort"], f"{e['arm']} - untreated", e["figure"])] = dict(zip(e["seeds"], e["differences"]))
    return out


def versus_reference(out: Path, voxels: list[float], years: float) -> list[dict]:
    """Per voxel edge other than the reference (voxels[0]) x cohort x arm x figure: the
    same seed's value at that edge minus at the reference, over the seeds both have."""
    values = {um: per_seed(add_changes(read_rows(folder(out, um) / ROWS)), years)
              for um in voxels if (folder(out, um) / ROWS).exists()}
    ref = voxels[0]
    table = []
    for um in voxels[1:]:
        for key, at in values.get(um, {}).items():
            base = values.get(ref, {}).get(key, {})
            seeds = sorted(set(at) & set(base))
            if not seeds:
                continue
            res = paired_difference([at[s] for s in seeds], [base[s] for s in seeds])
            table.append({"voxel_um": um, "reference_um": ref, "cohort": key[0], "arm": key[1],
                          "figure": key[2], "seeds": " ".join(map(str, seeds)),
                          **{k: res[k] for k in ("n", "mean", "sd", "ci_low", "ci_high")}})
    return table


def versus_markdown(table: list[dict]) -> str:
    def cell(r):
        if r["n"] < 2:
            return f"{r['mean']:+.2f} (n = 1)"
        return f"{r['mean']:+.2f} (SD {r['sd']:.2f}) [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
    keys = list(dict.fromkeys((r["voxel_um"], r["cohort"], r["arm"]) for r in table))
    lines = ["Value at the voxel edge minus the same seed's value at the reference voxel edge, "
             "percentage points (mean (SD) [95 % t interval] over seeds)", "",
             "| voxel um | vs um | cohort | arm | n | " + " | ".join(FIGURES.values()) + " |",
             "| --- " * (5 + len(FIGURES)) + "|"]
    for um, cohort, arm in keys:
        rs = {r["figure"]: r for r in table if (r["voxel_um"], r["cohort"], r["arm"]) == (um, cohort, arm)}
        first = next(iter(rs.values()))
        lines.append(f"| {um:g} | {first['reference_um']:g} | {cohort} | {arm} | {first['n']} | "
                     + " | ".join(cell(rs[f]) if f in rs else "" for f in FIGURES) + " |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict], years: float, path: Path):
    """Mean and 95 % t interval over seeds against voxel edge, one panel per figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series = list(dict.fromkeys((r["cohort"], r["arm"]) for r in table))
    # only the figures the rows have (a trial without buckling solves has no buckling panel)
    shown = {f: t for f, t in FIGURES.items() if any(r["figure"] == f for r in table)}
    fig, axes = plt.subplots(1, len(shown), figsize=(4.3 * len(shown), 4.2), layout="constrained",
                             squeeze=False)
    axes = axes[0]
    for ax, (figure, title) in zip(axes, shown.items()):
        for i, (cohort, arm) in enumerate(series):
            rs = sorted((r for r in table if (r["cohort"], r["arm"], r["figure"]) == (cohort, arm, figure)),
                        key=lambda r: r["voxel_um"])
            x = [r["voxel_um"] + 0.3 * (i - (len(series) - 1) / 2) for r in rs]   # apart
            err = [[r["mean"] - r["ci_low"] if r["n"] > 1 else 0 for r in rs],
                   [r["ci_high"] - r["mean"] if r["n"] > 1 else 0 for r in rs]]
            paired = arm.endswith(" - untreated")   # as the size study: black, dashed
            ax.errorbar(x, [r["mean"] for r in rs], yerr=err, capsize=3, ms=5,
                        marker=COHORT_MARKERS.get(cohort, "o"), color="k" if paired else ARM_COLOURS.get(arm, "0.2"),
                        ls="--" if paired else "-", label=f"{cohort}: {arm}")
        ax.axhline(0, color="0.85", lw=0.8)
        ax.set_xlabel("voxel edge (um)")
        ax.set_title(title)
    axes[0].set_ylabel(f"{years:g}-year change (%, points for differences)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8)
    for ext in ("png", "svg"):
        fig.savefig(path.with_suffix(f".{ext}"), dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voxels", type=float, nargs="+", default=[40.0, 30.0],
                    help="voxel edges, um; the first is the reference")
    ap.add_argument("--edge", type=float, default=3.0, help="specimen edge, mm")
    args = study_arguments(ap, ["early-postmenopausal", "elderly-osteoporotic"])
    t0 = time.perf_counter()
    if not args.collect:
        run_rounds(args, sorted(args.voxels, reverse=True), lambda um: f"{um:g} um",
                   lambda um: folder(args.out, um),
                   lambda um, seeds: case_for(args.edge, seeds, args.cohorts, args.years, um / 1000,
                                              args.partial_volume))
    present = [um for um in args.voxels if (folder(args.out, um) / ROWS).exists()]
    table = tabulate([({"voxel_um": um}, folder(args.out, um)) for um in sorted(present, reverse=True)],
                     args.years)
    write_csv(args.out / "voxel_study.csv", table)
    write_atomic(args.out / "voxel_study.md", markdown(table, args.years, "voxel_um", "voxel um"))
    vs = versus_reference(args.out, args.voxels, args.years)
    write_csv(args.out / "voxel_vs_ref.csv", vs)
    write_atomic(args.out / "voxel_vs_ref.md", versus_markdown(vs))
    plot(table, args.years, args.out / "voxel_study")
    print(markdown(table, args.years, "voxel_um", "voxel um"))
    print(versus_markdown(vs))
    print(f"total {time.perf_counter() - t0:.0f} s, {peak_mib():.0f} MiB peak resident", flush=True)


if __name__ == "__main__":
    main()
