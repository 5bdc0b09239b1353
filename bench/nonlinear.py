"""Benchmark: nonlinear (tissue yield) compression past the peak vs the linear solve.

Real bone: the LHDL human trabecular core (../shared/data/lhdl-3155_D_4_bc/, 19.5 um),
Gaussian sigma 1 voxel, block-mean coarsening by k, threshold 63, largest component
(the preparation of docs/benchmark.md / shared/data/README.md). For each k the same run
times the linear matrix-free solve (fem.solve.elasticity.solve_compression, rtol 1e-8,
the default) and the nonlinear curve (fem.solve.nonlinear.compression_curve) on the same
mesh, repeated ``--repeat`` times alternately, and prints medians and their ratio, with
the Pistoia estimate of the linear solve beside the nonlinear loads. ``--roi`` cuts a
centred cube first (cases/real-core.toml: ``--roi 3 --threshold 125 --k 2``);
``--post-yield``, ``--yield-tension`` and ``--yield-compression`` override the tissue defaults;
``--softening ONSET END RESIDUAL`` turns the softening law on (``--crack-band MM`` regularises
it, as does ``--nonlocal MM``); ``--split M`` splits each voxel of the segmented mask into
M^3 (the same geometry on finer elements: a mesh-convergence test); ``--generated COHORT SIZE
VOXEL SEED`` runs a generated vertebral specimen instead of the core.

    ./bonefem exec mpirun -n 2 python3 -u bench/nonlinear.py --k 2 3 4 --repeat 3 -o bench/out/nonlinear.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "lhdl-3155_D_4_bc"
VOXEL = 0.0195


def lhdl_mask(k: int, threshold=63.0, roi=None):
    """Bone mask of the core coarsened by k (and cut to a centred ``roi`` mm cube)."""
    from scipy import ndimage

    from fem.specimen import islands
    from fem.specimen.io import read_image, smooth

    image, _ = read_image(DATA, VOXEL)
    g = smooth(image, 1.0)
    if roi is not None:
        n = min(int(round(roi / VOXEL)), *g.shape)
        lo = [(m - n) // 2 for m in g.shape]
        g = g[lo[0]: lo[0] + n, lo[1]: lo[1] + n, lo[2]: lo[2] + n]
    n = (np.array(g.shape) // k) * k
    g = g[: n[0], : n[1], : n[2]].reshape(n[0] // k, k, n[1] // k, k, n[2] // k, k).mean(axis=(1, 3, 5))
    mask, _ = islands.largest_component(g > threshold)
    del ndimage
    return mask, (VOXEL * k,) * 3


def generated_mask(cohort: str, size: float, voxel: float, seed: int):
    """Binary mask of a generated vertebral specimen (the trial's generator, its cohort preset)."""
    from fem.case import case_from_dict
    from fem.specimen.load import load_specimen

    case = case_from_dict({"specimen": {"vertebral": {"cohort": cohort, "size": size, "voxel_size": voxel,
                                                      "seed": seed}}}, source="bench")
    spec = load_specimen(case, log=lambda *a: None)
    return spec.mask, tuple(spec.spacing)


def run(k: int, repeat: int, steps: int, strain_max: float, comm, log, threshold=63.0, roi=None,
        tissue=None, large=False, generated=None, split=1) -> dict:
    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.solve.elasticity import solve_compression
    from fem.solve.loadcases import pin_points
    from fem.solve.nonlinear import compression_curve
    from fem.analysis.pistoia import pistoia
    from fem.analysis.strength import summarise

    if comm.rank != 0:
        mask, spacing = None, None
    elif generated is not None:                   # (cohort, size, voxel, seed)
        mask, spacing = generated_mask(*generated)
    else:
        mask, spacing = lhdl_mask(k, threshold, roi)
    if comm.rank == 0 and split > 1:     # the same geometry on split^3 smaller voxels each
        mask = mask.repeat(split, 0).repeat(split, 1).repeat(split, 2)
        spacing = tuple(h / split for h in spacing)
    spacing = comm.bcast(spacing)
    grid = voxel_grid(mask, spacing) if comm.rank == 0 else None
    meta = comm.bcast(None if grid is None else (grid.extent, pin_points(grid.points), float(mask.mean())))
    msh, _ = create_dolfinx_mesh(comm, *((grid.points, grid.cells) if grid is not None else (None, None)))
    extent, pins, bvtv = meta
    n = msh.topology.index_map(3).size_local
    E = np.full(n, 10000.0)
    lin, nl, out = [], [], {}
    # warm-up (form compilation, the C kernel) outside the timings
    solve_compression(msh, E, 0.3, "uniaxial", -0.01, extent[2], pins, voxel_spacing=spacing)
    for _ in range(repeat):
        comm.barrier()
        t0 = time.perf_counter()
        sol = solve_compression(msh, E, 0.3, "uniaxial", -0.01, extent[2], pins, voxel_spacing=spacing)
        comm.barrier()
        lin.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        curve = compression_curve(msh, E, 0.3, "uniaxial", extent[2], pins, spacing, tissue,
                                  strain_max=strain_max, steps=steps, log=log)
        comm.barrier()
        nl.append(time.perf_counter() - t0)
        out = summarise(curve, extent[0] * extent[1])
    ees = np.concatenate(comm.allgather(sol.ees))
    p = pistoia(sol.reaction_force, ees, np.concatenate(comm.allgather(sol.volume)))
    out.update({"pistoia_failure_load_N": p.failure_load_N,
                "ultimate_over_pistoia": out["ultimate_load_N"] / p.failure_load_N,
                "offset_yield_over_pistoia": None if out["offset_yield_load_N"] is None
                else out["offset_yield_load_N"] / p.failure_load_N,
                "roi_mm": roi, "threshold": threshold, "tissue": vars(tissue) if tissue else None,
                "generated": generated, "split": split, "voxel_mm": spacing[0]})
    if large:       # the assembled large-deformation reference on the same mesh, once
        from fem.solve.large_deformation import compression_curve_large
        from fem.solve.loadcases import boundary_conditions

        comm.barrier()
        t0 = time.perf_counter()
        bcs = lambda s, V: boundary_conditions(V, "uniaxial", s, extent[2], pins)  # noqa: E731
        big = compression_curve_large(msh, E, 0.3, bcs, strain_max, steps, tissue, log=log)
        comm.barrier()
        t_large = time.perf_counter() - t0
        b = summarise(big, extent[0] * extent[1])
        out["large"] = {"seconds": t_large, "ratio_to_linear": t_large / statistics.median(lin),
                        "ratio_to_small": t_large / statistics.median(nl),
                        **{key: b[key] for key in ("ultimate_load_N", "strain_at_ultimate", "peak_reached",
                                                   "offset_yield_load_N", "secant_iterations",
                                                   "inner_iterations", "points")}}
    out.update({"k": k, "extent_mm": [float(e) for e in extent], "voxel_mm": spacing[0], "bv_tv": bvtv, "dofs": sol.dofs,
                "linear_cg_iterations": sol.stats.iterations,
                "linear_s": lin, "nonlinear_s": nl,
                "linear_median_s": statistics.median(lin), "nonlinear_median_s": statistics.median(nl),
                "ratio": statistics.median(nl) / statistics.median(lin), "ranks": comm.size,
                "strain": curve.strain.tolist(), "force": curve.force.tolist()})
    return out


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in rows:
        area = r["extent_mm"][0] * r["extent_mm"][1]
        ax.plot(100 * np.abs(r["strain"]), np.abs(r["force"]) / area, "o-", ms=3,
                label=f"{1000 * r['voxel_mm']:.0f} um voxels, {r['dofs'] / 1e6:.2f} M DOF")
        if r["offset_yield_strain"] is not None:
            ax.plot(100 * r["offset_yield_strain"], r["offset_yield_stress_MPa"], "ks", ms=5)
    ax.set_xlabel("apparent strain (%)")
    ax.set_ylabel("apparent stress (MPa)")
    ax.set_title("LHDL core, tissue yield (small strain); squares: 0.2 % offset yield", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, nargs="+", default=[3])
    p.add_argument("--split", type=int, nargs="+", default=[1],
                   help="split each voxel of the segmented mask into SPLIT^3 (same geometry, finer mesh)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--strain-max", type=float, default=-0.025)
    p.add_argument("--roi", type=float, help="centred cube of this edge (mm) instead of the whole core")
    p.add_argument("--threshold", type=float, default=63.0)
    p.add_argument("--post-yield", type=float, default=0.05)
    p.add_argument("--yield-tension", type=float, default=0.0033)
    p.add_argument("--yield-compression", type=float, default=0.0081)
    p.add_argument("--softening", nargs=3, type=float, metavar=("ONSET", "END", "RESIDUAL"),
                   help="softening tissue law (yield strains onset and end, residual stress fraction)")
    p.add_argument("--crack-band", type=float, default=0.0, metavar="MM",
                   help="with --softening: crack-band regularisation, the element size (mm) at "
                        "which END holds (fem.solve.nonlinear.crack_band_law)")
    p.add_argument("--nonlocal", type=float, default=0.0, metavar="MM",
                   dest="radius", help="nonlocal yield index: Gaussian radius, mm (fem.solve.nonlinear.NonlocalAverage)")
    p.add_argument("--generated", nargs=4, metavar=("COHORT", "SIZE", "VOXEL", "SEED"),
                   help="a generated vertebral specimen instead of the LHDL core")
    p.add_argument("--large", action="store_true", help="also time geometry = large (assembled, LU)")
    p.add_argument("-v", action="store_true", help="print every load step")
    p.add_argument("--plot", type=Path, help="PNG of the apparent stress-strain curves")
    p.add_argument("-o", type=Path)
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD
    say = (lambda *a, **k: print(*a, flush=True)) if comm.rank == 0 else (lambda *a, **k: None)
    rows = []
    from fem.solve.nonlinear import TissueYield

    tissue = TissueYield(args.yield_compression, args.yield_tension, args.post_yield)
    if args.softening:
        tissue.softening = True
        tissue.softening_onset, tissue.softening_end, tissue.residual = args.softening
        tissue.crack_band = args.crack_band
    tissue.nonlocal_radius = args.radius
    generated = None if args.generated is None else (
        args.generated[0], float(args.generated[1]), float(args.generated[2]), int(args.generated[3]))
    for k, split in [(k, m) for k in args.k for m in args.split]:
        r = run(k, args.repeat, args.steps, args.strain_max, comm, say if args.v else (lambda *a: None),
                args.threshold, args.roi, tissue, args.large, generated, split)
        rows.append(r)
        say(f"k={k} split={split}: {r['dofs']} DOF BV/TV {r['bv_tv']:.3f}: linear {r['linear_median_s']:.2f} s "
            f"({r['linear_cg_iterations']} CG), nonlinear {r['nonlinear_median_s']:.2f} s "
            f"({r['points']} points, {r['secant_iterations']} secant, {r['inner_iterations']} CG), "
            f"ratio {r['ratio']:.1f}; ultimate {r['ultimate_load_N']:.2f} N at "
            f"{100 * r['strain_at_ultimate']:.2f} % (peak {r['peak_reached']}), offset yield "
            f"{r['offset_yield_stress_MPa']} MPa, yielded at peak {r['yielded_fraction_at_ultimate']:.3f}; "
            f"Pistoia {r['pistoia_failure_load_N']:.2f} N (ultimate / Pistoia {r['ultimate_over_pistoia']:.2f})",
            flush=True)
        if args.o and comm.rank == 0:      # after every size: a stopped run keeps the rest
            args.o.write_text(json.dumps({"machine": "2 cores shared with six engineers (noisy)",
                                          "runs": rows}, indent=1))
    if args.plot and comm.rank == 0:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
