"""Where the voxel dependence of the remodelling's BMD change comes from (issue 20).

    ./bonefem exec python3 bench/remodel_voxel.py -o bench/out/remodel_voxel.json \\
        --voxels 40 30 25 20 --seeds 0 1 --size 2

For each voxel edge, cohort and seed: the cohort's generated cube at that voxel, spun up
untreated for a year (fem.remodel.arms.baseline_state), then two years of the untreated
and the combined arm (run_arm), remodelling only, no solves. The bone volume change is
split by where it went (mm^3 and % of the baseline bone volume):

- ``cavities``: resorbed by cavities that did not perforate (refilled, in part, later);
- ``perforating``: resorbed by cavities that perforated (never refilled);
- ``fragments``: pieces left touching no face, resorbed (fem.specimen.islands);
- ``formed``: refilled;
- and the counts of activations and perforations.

The totals are checked: the bone volume at the end equals the baseline's minus the
resorbed plus the formed (fem.remodel.bmu keeps exact books), to 1e-9 mm^3.
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

ARMS = ("untreated", "combined")


class Books:
    """Wraps fem.remodel.bmu's activate and _resorb_fragments to split the resorbed volume."""

    def __init__(self):
        from fem.remodel import bmu

        self.orig = (bmu.activate, bmu._resorb_fragments)
        self.reset()

        def activate(state, *a, **kw):
            before = state.resorbed
            perforated = self.orig[0](state, *a, **kw)
            self.split["perforating" if perforated else "cavities"] += state.resorbed - before
            return perforated

        def fragments(state):
            before = state.resorbed
            self.orig[1](state)
            self.split["fragments"] += state.resorbed - before

        bmu.activate, bmu._resorb_fragments = activate, fragments

    def reset(self):
        self.split = {"cavities": 0.0, "perforating": 0.0, "fragments": 0.0}


def one(cohort: str, seed: int, size: float, voxel_mm: float, years: float, books: Books) -> list[dict]:
    from fem.remodel.arms import baseline_state, run_arm
    from fem.specimen.cohorts import cohort_network
    from fem.specimen.levelset import bone_volume

    t0 = time.perf_counter()
    net = cohort_network(cohort, seed, size=size, voxel_size=voxel_mm)
    base = baseline_state(net.phi, net.spacing, cohort, seed)
    bv0 = bone_volume(base.phi, base.spacing)
    rows = []
    for arm in ARMS:
        books.reset()
        history, snaps = run_arm(base, cohort, arm, years, seed, checkpoints=(years,))
        state = snaps[round(years, 6)]
        bv1 = bone_volume(state.phi, state.spacing)
        books_bv = bv0 - state.resorbed + state.formed
        if abs(books_bv - bv1) > 1e-9 * max(bv0, 1.0):
            raise RuntimeError(f"{cohort} seed {seed} {voxel_mm} mm {arm}: books {books_bv} != {bv1}")
        split = dict(books.split)
        if abs(sum(split.values()) - state.resorbed) > 1e-9:
            raise RuntimeError("the split does not add up to the resorbed volume")
        rows.append({"cohort": cohort, "seed": seed, "size_mm": size, "voxel_um": round(voxel_mm * 1000, 3),
                     "arm": arm, "bv0_mm3": bv0, "bv1_mm3": bv1, "formed_mm3": state.formed,
                     **{k + "_mm3": v for k, v in split.items()},
                     "activations": state.activations, "perforations": state.perforations,
                     "bmd_change_pct": 100 * (history[-1]["bmd_mg_cm3"] / history[0]["bmd_mg_cm3"] - 1),
                     "seconds": round(time.perf_counter() - t0, 1)})
    return rows


def table(rows: list[dict]) -> str:
    """Mean over seeds per (cohort, voxel, arm), % of the baseline bone volume."""
    keys = sorted({(r["cohort"], r["arm"], -r["voxel_um"]) for r in rows})
    lines = ["| cohort | arm | voxel (um) | n | BV change | cavities | perforating | fragments | formed | "
             "activations | perforations | BMD change |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for cohort, arm, v in keys:
        rs = [r for r in rows if (r["cohort"], r["arm"], -r["voxel_um"]) == (cohort, arm, v)]

        def pct(volume, sign=1):
            """Mean (SD) over seeds of sign x volume(row) as % of the row's baseline bone."""
            x = np.array([100 * sign * volume(r) / r["bv0_mm3"] for r in rs])
            return f"{x.mean():+.2f}" + (f" ({x.std(ddof=1):.2f})" if len(x) > 1 else "")

        lost = [pct(lambda r, k=k: r[k + "_mm3"], -1) for k in ("cavities", "perforating", "fragments")]
        lines.append(f"| {cohort} | {arm} | {-v:g} | {len(rs)} | {pct(lambda r: r['bv1_mm3'] - r['bv0_mm3'])} | "
                     + " | ".join(lost) + f" | {pct(lambda r: r['formed_mm3'])} | "
                     f"{np.mean([r['activations'] for r in rs]):.0f} | {np.mean([r['perforations'] for r in rs]):.1f} | "
                     f"{np.mean([r['bmd_change_pct'] for r in rs]):+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", type=Path, required=True, help="JSON lines of rows (resumed)")
    ap.add_argument("--voxels", type=float, nargs="+", default=[40, 30, 25, 20], help="um")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--cohorts", nargs="+", default=["early-postmenopausal", "elderly-osteoporotic"])
    ap.add_argument("--size", type=float, default=2.0, help="cube edge, mm")
    ap.add_argument("--years", type=float, default=2.0)
    ap.add_argument("--table", action="store_true", help="only print the table of the rows in --out")
    args = ap.parse_args(argv)
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    if not args.table:
        books = Books()
        done = {(r["cohort"], r["seed"], r["voxel_um"], r["size_mm"]) for r in rows}
        for seed in args.seeds:
            for um in args.voxels:
                for cohort in args.cohorts:
                    if (cohort, seed, float(um), args.size) in done:
                        continue
                    new = one(cohort, seed, args.size, um / 1000, args.years, books)
                    with args.out.open("a") as f:
                        for r in new:
                            f.write(json.dumps(r) + "\n")
                    rows += new
                    print(f"{cohort} seed {seed} {um:g} um: {new[-1]['seconds']} s", flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
