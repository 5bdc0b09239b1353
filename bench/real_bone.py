"""Solver benchmark on real trabecular bone, synthetic specimens beside it.

    ./bonefem exec python3 bench/real_bone.py run ../shared/data/lhdl-3155_D_4_bc -o bench/out/real
    ./bonefem exec python3 bench/real_bone.py table bench/out/real

``run`` builds the cases from a micro-CT image (a TIFF folder at 19.5 um, or any image
``fem.specimen.io.read_image`` reads with ``--voxel-size``): crop a cube, block-mean
coarsen by k, Gaussian smoothing sigma 1 (coarse voxels), threshold, keep the largest
6-connected piece (the recipe of the data's README). ``--cases`` picks them by name
(:data:`CASES`): "std" cases use the published grey threshold 63; "thin" cases raise it
until BV/TV is about 0.12 (thin, partly disconnected trabeculae, as in vertebrae). The
synthetic rows come from the project's generator (bench/solver.py) at about the same
number of DOF. Every (case, ranks, method) runs in its own process (bench/solver.py
``one``), one after the other in the same run, so the methods meet the same machine
load and each process's peak memory is one method's. The machine may be shared: compare
ratios within one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (crop edge in image voxels or None for all, block k, threshold or "bvtv=x")
CASES = {
    "std-k3": (None, 3, 63.0),          # 58.5 um, ~0.3 M DOF
    "std-k2": (None, 2, 63.0),          # 39 um, ~1 M DOF
    "std-k2-crop": (150, 2, 63.0),      # 39 um, ~0.4 M DOF
    "std-k1-crop": (120, 1, 63.0),      # 19.5 um, ~1.7 M DOF
    "std-k1": (175, 1, 63.0),           # 19.5 um, ~4.7 M DOF
    "thin-k3": (None, 3, "bvtv=0.12"),  # 58.5 um, ~0.2 M DOF
    "thin-k4": (None, 4, "bvtv=0.12"),  # 78 um
    "thin-k2": (None, 2, "bvtv=0.12"),  # 39 um, ~0.5 M DOF
    # one voxel (19.5 um), growing nested crops from the same corner: iterations against
    # size with the bone's resolution fixed (the cases above grow by finer voxels)
    "std-k1-c60": (60, 1, 63.0),        # ~0.2 M DOF
    "std-k1-c85": (85, 1, 63.0),        # ~0.6 M DOF
    "std-k1-c150": (150, 1, 63.0),      # ~3 M DOF
    "thin-k1-c85": (85, 1, "bvtv=0.12"),
    "thin-k1-c120": (120, 1, "bvtv=0.12"),
    "thin-k1-c175": (175, 1, "bvtv=0.12"),
}
# synthetic vertebral specimens (bench/solver.py GENERATOR, 40 um voxels): edge in mm
SYNTHETIC = {"syn-3.0": 3.0, "syn-4.4": 4.4, "syn-6.0": 6.0, "syn-7.6": 7.6}


def coarsen(image: np.ndarray, k: int) -> np.ndarray:
    """Block mean over k x k x k voxels (skimage.measure.block_reduce), float."""
    from skimage.measure import block_reduce

    return block_reduce(np.asarray(image, dtype=float), (k, k, k), np.mean)


def threshold_for_bvtv(smoothed: np.ndarray, bv_tv: float) -> float:
    """The grey level above which a fraction ``bv_tv`` of the voxels lie."""
    return float(np.quantile(smoothed, 1.0 - bv_tv))


def real_case(image: np.ndarray, spacing, crop, k, threshold):
    """(mask, spacing, info) of one real-bone case; see the module docstring."""
    from fem.specimen.io import crop_cube, smooth
    from fem.specimen.islands import largest_component

    if crop is not None:
        image = crop_cube(image, np.zeros(3, dtype=int), int(crop))
    g = smooth(coarsen(image, k), 1.0)
    t = threshold_for_bvtv(g, float(threshold.split("=")[1])) if isinstance(threshold, str) else threshold
    mask, removed = largest_component(g > t)
    h = tuple(float(s) * k for s in spacing)
    return mask, h, {"threshold": t, "bv_tv": float(mask.mean()), "voxel_mm": h[0],
                     "bone_voxels": int(mask.sum()), "removed": removed, "shape": mask.shape}


def make_cases(args, out: Path) -> list[tuple[str, Path]]:
    from fem.specimen.io import read_image

    made = []
    image = spacing = None
    for name in args.cases:
        path = out / f"{name}.npz"
        if name in SYNTHETIC:
            if not path.exists():
                from bench.solver import make_specimen

                make_specimen(SYNTHETIC[name], path)
        elif not path.exists():
            if image is None:
                image, spacing = read_image(args.image, args.voxel_size)
            mask, h, info = real_case(image, spacing, *CASES[name])
            np.savez(path, mask=mask, fraction=np.ones(mask.shape, np.float32), spacing=np.asarray(h))
            (out / f"{name}.case.json").write_text(json.dumps(info, default=list))
            print(f"{name}: {info}", flush=True)
        made.append((name, path))
    return made


def run(args):
    from bench.solver import run_process

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, path in make_cases(args, out):
        for ranks in args.ranks:
            for method in args.methods:
                tag = f"{name}_{method}_{ranks}r"
                if (out / f"{tag}.json").exists() and not args.force:
                    continue
                if method in args.skip and name in args.skip[method]:
                    continue
                run_process(tag, path, method, ranks, out / f"{tag}.json", args.repeat, args.rtol)


def table(args) -> str:
    """Markdown table of the records in a run's folder, with ratios to the demo GAMG."""
    recs = [json.loads(p.read_text()) for p in sorted(Path(args.dir).glob("*_*r.json"))]
    rows = ["| case | BV/TV | voxel (um) | DOF | ranks | solver | CG it. | set-up + solve (s) "
            "| peak MiB/rank | bytes/DOF | time vs demo | memory vs demo |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    key = {}
    for r in recs:
        key[(r["specimen"], r["ranks"], r["method"])] = r
    for r in sorted(recs, key=lambda r: (r["specimen"].startswith("syn"), r["dofs"], r["ranks"],
                                         r["method"])):
        name = r["specimen"].removesuffix(".npz")
        info_path = Path(args.dir) / f"{name}.case.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        total = r["assembly_s"] + r["solve_s"]
        mem = max(r["peak_rss_mb"])
        demo = key.get((r["specimen"], r["ranks"], "demo"))
        vs_t = vs_m = ""
        if demo is not None and r["method"] != "demo":
            ratio = (demo["assembly_s"] + demo["solve_s"]) / total
            vs_t = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            vs_m = f"{mem / max(demo['peak_rss_mb']):.0%}"
        bvtv = f"{info['bv_tv']:.3f}" if info else "synthetic"
        vox = f"{info['voxel_mm'] * 1000:.1f}" if info else "40"
        rows.append(f"| {name} | {bvtv} | {vox} | {r['dofs'] / 1e6:.2f} M | {r['ranks']} | {r['method']} "
                    f"| {r['iterations']} | {total:.1f} | {mem:.0f} | "
                    f"{mem * 2 ** 20 * r['ranks'] / r['dofs']:.0f} | {vs_t} | {vs_m} |")
    text = "\n".join(rows)
    print(text)
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="build the cases and run every solve")
    r.add_argument("image", help="micro-CT image: a TIFF folder or file (fem.specimen.io.read_image)")
    r.add_argument("--voxel-size", type=float, default=0.0195, help="mm (default: the LHDL core's)")
    r.add_argument("-o", "--out", default="bench/out/real")
    r.add_argument("--cases", type=lambda s: s.split(","), default=["std-k3", "std-k2", "thin-k3",
                                                                     "syn-3.0", "syn-4.4"])
    r.add_argument("--ranks", type=lambda s: [int(x) for x in s.split(",")], default=[2])
    r.add_argument("--methods", type=lambda s: s.split(","), default=["matfree", "demo"])
    r.add_argument("--skip", type=lambda s: {kv.split("=")[0]: kv.split("=")[1].split("+")
                                            for kv in s.split(",")}, default={},
                   help="method=case+case,... not run (e.g. demo at sizes that do not fit)")
    r.add_argument("--repeat", type=int, default=1)
    r.add_argument("--rtol", type=float, default=1e-6)
    r.add_argument("--force", action="store_true", help="rerun solves that have a record")
    t = sub.add_parser("table", help="print the Markdown table of a run")
    t.add_argument("dir")
    args = p.parse_args(argv)
    {"run": run, "table": table}[args.cmd](args)


if __name__ == "__main__":
    main()
