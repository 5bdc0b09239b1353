"""Where the generated bone's rod-like SMI comes from: SMI of the whole specimen and of its
vertical (rods and plates) and horizontal (struts, transverse plates) parts, for generator
variants of one cohort preset.

    ./bonefem exec python3 bench/smi_parts.py elderly-osteoporotic \\
        '{"shipped": {}, "no struts": {"strut_fraction": 0.0}}' [--seed 0] [--size 3]

Each variant is a JSON object of generator parameters that override the cohort's preset
(fem/specimen/cohorts/). Prints BV/TV, Tb.Th, SMI, DA, Conn.D and the parts' SMI
(morphometry of bench/validate_specimens.py, 40 um voxels). Results: docs/specimens.md.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from validate_specimens import morph_of  # noqa: E402

from fem.specimen import vertebral as gen  # noqa: E402
from fem.specimen.cohorts import load_cohort  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("cohort")
ap.add_argument("variants", help='JSON: {"name": {parameter: value, ...}, ...}')
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--size", type=float, default=3.0, help="cube edge, mm")
args = ap.parse_args()
for name, over in json.loads(args.variants).items():
    g = {**load_cohort(args.cohort)["generator"], **over}
    t = time.perf_counter()
    net = gen.generate(**dict(g, seed=args.seed, size=args.size, voxel_size=0.04))
    m = morph_of(net.phi, net.spacing)
    parts = {k: morph_of(net.parts[k], net.spacing)["smi"] for k in (gen.VERTICAL, gen.HORIZONTAL)}
    print(f"{args.cohort} {name}: BV/TV {m['bv_tv']:.3f}, Tb.Th {m['tb_th_mm']:.3f}, SMI {m['smi']:.2f}, "
          f"DA {m['da_ratio']:.2f}, Conn.D {m['conn_d_per_mm3']:.2f}; SMI of the vertical part "
          f"{parts[gen.VERTICAL]:.2f}, of the horizontal part {parts[gen.HORIZONTAL]:.2f}; "
          f"plates {net.counts['plates']} ({time.perf_counter() - t:.0f} s)", flush=True)
