"""Coarse elements per piece of a cell (multigrid.PIECES) against one per cell, side by side.

    ./bonefem exec nice -n 5 python3 bench/pieces_compare.py /tmp/mg-cases \\
        --image ../shared/data/lhdl-3155_D_4_bc --cases std-k3,syn-3.0,std-k2,syn-4.4 --rounds 3

The cases are the ``.npz`` specimens of bench/real_bone.py (real cores and synthetic
ones), built into the folder from ``--image`` where missing. Every round solves each
case once with each variant, each solve in its own process (bench/solver.py ``one``, one
rank), so the variants alternate under the same machine load and each peak RSS is one
solve's. Prints a Markdown table of medians over
the rounds: CG iterations, set-up and solve seconds, peak RSS, and the reaction force.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
METHODS = {"matfree-cells": "one element per cell (before)", "matfree": "one per piece (now)"}


def main(argv=None):
    from bench.solver import run_process

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", help="folder of the cases' .npz; the records go to DIR/pieces")
    p.add_argument("--image", help="micro-CT image to build missing real cases from (bench/real_bone.py)")
    p.add_argument("--voxel-size", type=float, default=0.0195, help="mm (default: the LHDL core's)")
    p.add_argument("--cases", type=lambda s: s.split(","), default=["std-k3", "syn-3.0"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rtol", type=float, default=1e-7)
    args = p.parse_args(argv)
    out = Path(args.dir) / "pieces"
    out.mkdir(parents=True, exist_ok=True)
    if args.image is not None:
        from bench.real_bone import make_cases

        make_cases(args, Path(args.dir))
    recs = {}
    for r in range(args.rounds):
        for case in args.cases:
            for method in METHODS:
                tag = f"{case}_{method}_r{r}"
                rec = run_process(tag, Path(args.dir) / f"{case}.npz", method, 1, out / f"{tag}.json", 1, args.rtol)
                if rec is not None:
                    recs.setdefault((case, method), []).append(rec)
    print("| case | DOF | coarse elements | CG it. | set-up s | solve s | peak MiB | reaction N | runs (solve s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (case, method), rs in recs.items():
        med = {k: statistics.median(x[k] for x in rs) for k in ("assembly_s", "solve_s")}
        mem = statistics.median(max(x["peak_rss_mb"]) for x in rs)
        its = sorted({x["iterations"] for x in rs})
        print(f"| {case} | {rs[0]['dofs'] / 1e6:.2f} M | {METHODS[method]} | {'/'.join(map(str, its))} "
              f"| {med['assembly_s']:.2f} | {med['solve_s']:.2f} | {mem:.0f} | {rs[0]['reaction_N']:.10g} "
              f"| {', '.join('%.1f' % x['solve_s'] for x in rs)} |")
    (out / "summary.json").write_text(json.dumps({f"{c}|{m}": v for (c, m), v in recs.items()}, indent=1))


if __name__ == "__main__":
    main()
