"""Morphometry of each cohort preset at the default size, next to its targets.

./bonefem exec python3 bench/cohort_morphometry.py [SEEDS...]
Prints a Markdown table (mean over seeds) and the generator / morphometry timings.
"""

import sys
import time

import numpy as np

from fem.specimen.cohorts import cohort_names, load_cohort
from fem.specimen.levelset import volume_fraction
from fem.specimen.morphometry import morphometry, tb_th
from fem.specimen.vertebral import HORIZONTAL, VERTICAL, generate

seeds = [int(s) for s in sys.argv[1:]] or [0, 1, 2]
print("| cohort | BV/TV target | BV/TV | Tb.Th vert. target / measured (mm) | Tb.Th horiz. target / "
      "measured (mm) | Tb.Th all (mm) | Tb.Sp (mm) | Tb.N (1/mm) | Conn.D (1/mm^3) | DA | SMI | plates | struts |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
timing = {"generate": [], "morphometry": []}
for name in cohort_names():
    g = load_cohort(name)["generator"]
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        net = generate(seed=seed, **g)
        t1 = time.perf_counter()
        f = volume_fraction(net.phi, net.spacing)
        m = morphometry(net.phi > 0, net.spacing, fraction=f, seed=seed)
        t2 = time.perf_counter()
        timing["generate"].append(t1 - t0)
        timing["morphometry"].append(t2 - t1)
        rows.append([m["bv_tv"], tb_th(net.parts[VERTICAL] > 0, net.spacing)[0],
                     tb_th(net.parts[HORIZONTAL] > 0, net.spacing)[0], m["tb_th_mm"], m["tb_sp_mm"],
                     m["tb_n_per_mm"], m["conn_d_per_mm3"], m["da"], m["smi"], net.counts["plate_fraction"],
                     net.counts["horizontal_struts"]])
    r = np.mean(rows, axis=0)
    print(f"| {name} | {g['bv_tv']} | {r[0]:.4f} | {g['th_vertical']} / {r[1]:.3f} | "
          f"{g['th_horizontal']} / {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.2f} | {r[6]:.2f} | "
          f"{r[7]:.2f} | {r[8]:.2f} | {r[9]:.2f} | {r[10]:.0f} |")
print()
for k, v in timing.items():
    print(f"{k}: median {np.median(v):.2f} s over {len(v)} specimens (4 mm cube, 100^3 voxels)")
