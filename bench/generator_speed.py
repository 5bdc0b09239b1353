"""Time the vertebral generator and its hot spot (the local thickness it measures).

./bonefem exec python3 bench/generator_speed.py [--root CHECKOUT] [--size 4] [--repeat 3] [--presets FOLDER]

Generates each cohort preset (seed 0, ``--size`` mm cube, 40 um voxels) ``--repeat``
times and prints the median wall time of ``generate`` and of one
``fem.specimen.morphometry.local_thickness`` of the generated bone. ``--root`` imports
``fem`` from another checkout (e.g. ``git archive main fem`` unpacked under /tmp, which the runtime
sees, for a before/after run side by side on the same machine); without it, from this one.
``--presets`` takes the cohort presets from another folder (e.g. fem/specimen/cohorts/tilted, the presets shipped until 7 December 2026).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    p.add_argument("--size", type=float, default=4.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--presets", help="folder of cohort presets instead of the shipped ones")
    args = p.parse_args(argv)
    sys.path.insert(0, args.root)
    import numpy as np

    import fem
    if Path(fem.__file__).resolve().parents[1] != Path(args.root).resolve():
        raise SystemExit(f"fem imported from {fem.__file__}, not from --root {args.root}")

    from fem.specimen.cohorts import cohort_names, load_cohort
    from fem.specimen.morphometry import local_thickness
    from fem.specimen.vertebral import generate

    folder = Path(args.presets).resolve() if args.presets else None
    for name in cohort_names():
        gen, lt = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            preset = load_cohort(name, folder) if folder else load_cohort(name)   # --root may be older
            net = generate(**dict(preset["generator"], size=args.size, voxel_size=0.04, seed=0))
            t1 = time.perf_counter()
            local_thickness(net.phi > 0, net.spacing)
            t2 = time.perf_counter()
            gen.append(t1 - t0)
            lt.append(t2 - t1)
        print(f"{args.root} {name}: generate {np.median(gen):.2f} s, local_thickness "
              f"{np.median(lt):.2f} s (median of {args.repeat}, {args.size:g} mm, 40 um)", flush=True)


if __name__ == "__main__":
    main()
