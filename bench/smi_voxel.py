"""SMI of the same generated bone at several voxel edges, and of the real core: how much
of the rod-like SMI is the voxel?

    ./bonefem exec python3 bench/smi_voxel.py [--seeds 0] [--size 3] [--voxels 40 30 20] [--core]

Generates each cohort preset (shipped, fem/specimen/cohorts/) at each voxel edge with the
same seed (the same primitives: the generator's geometry is in mm) and prints BV/TV, Tb.Th,
SMI and DA from the morphometry of bench/validate_specimens.py; ``--core`` adds the real
human core of ../shared/data at 39 um thresholded to BV/TV 0.10 and 0.125 (the pipeline of
``validate_specimens.py core``). Results: docs/specimens.md.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from validate_specimens import core_images, morph_of  # noqa: E402

from fem.specimen import vertebral as gen  # noqa: E402
from fem.specimen.cohorts import load_cohort  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--seeds", type=int, nargs="+", default=[0])
ap.add_argument("--size", type=float, default=3.0, help="cube edge, mm")
ap.add_argument("--voxels", type=float, nargs="+", default=[40, 30, 20], help="um")
ap.add_argument("--cohorts", nargs="+", default=["elderly-osteoporotic", "early-postmenopausal"])
ap.add_argument("--core", action="store_true", help="also the real core (../shared/data)")
args = ap.parse_args()
KEYS = ("bv_tv", "tb_th_mm", "smi", "da_ratio")
for cohort in args.cohorts:
    g = load_cohort(cohort)["generator"]
    for seed in args.seeds:
        for um in args.voxels:
            t = time.perf_counter()
            net = gen.generate(**dict(g, seed=seed, size=args.size, voxel_size=um / 1000))
            m = morph_of(net.phi, net.spacing)
            print(f"{cohort} seed {seed} {um:.0f} um: " + ", ".join(f"{k} {m[k]:.3f}" for k in KEYS)
                  + f" ({time.perf_counter() - t:.0f} s)", flush=True)
if args.core:
    from fem.specimen.levelset import from_mask

    for bv, mask, spacing in core_images((0.10, 0.125)):
        m = morph_of(from_mask(mask, spacing, band=0.2), spacing)
        print(f"real core BV/TV {bv} {1000 * spacing[0]:.0f} um: " + ", ".join(f"{k} {m[k]:.3f}" for k in KEYS),
              flush=True)
