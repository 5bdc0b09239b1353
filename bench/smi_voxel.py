"""SMI of the same generated bone at 40, 30 and 20 um: is the rod-like SMI a voxel effect?

    ./bonefem exec python3 bench/smi_voxel.py [--seed 0] [--size 3]

Generates each cohort preset (shipped, fem/specimen/cohorts/) at three voxel sizes with the
same seed (the same primitives: the generator's geometry is in mm) and prints BV/TV, Tb.Th,
SMI and DA from the morphometry of bench/validate_specimens.py. Results: docs/specimens.md.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from validate_specimens import morph_of  # noqa: E402

from fem.specimen import vertebral as gen  # noqa: E402
from fem.specimen.cohorts import load_cohort  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--size", type=float, default=3.0, help="cube edge, mm")
ap.add_argument("--cohorts", nargs="+", default=["elderly-osteoporotic", "early-postmenopausal"])
args = ap.parse_args()
for cohort in args.cohorts:
    g = load_cohort(cohort)["generator"]
    for vox in (0.04, 0.03, 0.02):
        t = time.perf_counter()
        net = gen.generate(**dict(g, seed=args.seed, size=args.size, voxel_size=vox))
        m = morph_of(net.phi, net.spacing)
        print(f"{cohort} {1000 * vox:.0f} um: " + ", ".join(f"{k} {m[k]:.3f}" for k in
              ("bv_tv", "tb_th_mm", "smi", "da_ratio")) + f" ({time.perf_counter() - t:.0f} s)", flush=True)
