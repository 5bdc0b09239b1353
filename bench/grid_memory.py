"""Peak memory of each stage from a bone image to the distributed DOLFINx mesh, and of the
whole ``bonefem solve``, for a few image sizes; the same for an older code tree beside it.

    ./bonefem exec python3 bench/grid_memory.py images ../shared/data/lhdl-3155_D_4_bc -o /tmp/gm
    ./bonefem exec python3 bench/grid_memory.py run /tmp/gm/core-*.npy --old /tmp/old-tree -o /tmp/gm
    ./bonefem exec python3 bench/grid_memory.py table /tmp/gm -o docs/benchmark.md

``images`` writes the real core (200^3 voxels of 19.5 um, 8-bit grey) cropped to 150^3,
whole, and mirror-padded to 300^3 (``np.pad(mode="symmetric")``: trabeculae continue
across the seams, so the bone stays connected as in a larger core) as .npy files.
``run`` measures each image with each code tree (this one, and ``--old`` if given: e.g.
``git archive main | tar -x -C /tmp/old-tree``), one process per (image, tree), trees
side by side. Every stage runs what ``bonefem solve IMAGE --threshold 63`` runs
(fem.specimen.load.load_specimen, fem.pipeline.solve_specimen) up to the per-cell data
handed to the solver; its peak is the process's resident-memory high-water mark (VmHWM)
reset before the stage (``/proc/self/clear_refs``), so it counts what earlier stages
still hold. ``--solve`` also runs ``bonefem solve`` itself in a child process and reports
its peak (``ru_maxrss``): the whole job, solver included. Memory does not depend on the
machine's load; the seconds do.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOXEL, THRESHOLD = 0.0195, 63.0      # the core's voxel (mm) and published grey threshold
STAGES = ["read", "segment", "size check", "islands", "grid", "warnings", "dolfinx mesh",
          "per-cell data"]


def _status(key: str) -> float:
    """A /proc/self/status figure (kB) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise KeyError(key)


def images(args):
    import numpy as np

    sys.path.insert(0, str(ROOT))

    from fem.specimen.io import read_image

    image, _ = read_image(args.tiff, VOXEL)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for edge in args.edges:
        pad = max(0, edge - image.shape[0])
        img = np.pad(image, [(0, pad)] * 3, mode="symmetric")[:edge, :edge, :edge]
        np.save(out / f"core-{edge}.npy", np.ascontiguousarray(img))
        print(out / f"core-{edge}.npy", img.shape)


def stages(args):
    """One image through every stage in this process; prints one JSON line."""
    sys.path.insert(0, str(Path(args.code).resolve()))
    from mpi4py import MPI

    from fem.analysis.sanity import specimen_warnings
    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.pipeline import check_model_size
    from fem.specimen import islands
    from fem.specimen.io import read_image, segment
    from fem.specimen.load import Specimen

    rows, keep = {}, {}

    def stage(name, fn):
        with open("/proc/self/clear_refs", "w") as f:   # VmHWM := current RSS
            f.write("5")
        t0 = time.perf_counter()
        out = fn()
        rows[name] = {"peak_MiB": _status("VmHWM"), "after_MiB": _status("VmRSS"),
                      "s": time.perf_counter() - t0}
        return out

    base = _status("VmRSS")
    image, spacing = stage("read", lambda: read_image(args.image, VOXEL))
    mask = stage("segment", lambda: segment(image, THRESHOLD, args.image))
    del image
    stage("size check", lambda: check_model_size(mask, 1, args.image, True))
    mask, removed = stage("islands", lambda: islands.held_by_platens(mask))
    spec = Specimen(mask, spacing, 10000.0, removed)
    grid = stage("grid", lambda: voxel_grid(spec.mask, spec.spacing))
    stage("warnings", lambda: specimen_warnings(spec.mask, spec.spacing, spec.modulus, removed))
    msh, original = stage("dolfinx mesh", lambda: create_dolfinx_mesh(MPI.COMM_WORLD, grid.points,
                                                                       grid.cells))
    keep["per_cell"] = stage("per-cell data", lambda: (spec.element_modulus(grid),
                                                        spec.element_fraction(grid)))
    print(json.dumps({"image": str(args.image), "code": str(args.code), "shape": list(mask.shape),
                      "bone_voxels": int(mask.sum()), "nodes": int(len(grid.points)),
                      "base_MiB": base, "stages": rows}))


def solve_peak(image: str, code: str, outdir: Path) -> dict:
    """Peak RSS (MiB) and seconds of ``bonefem solve IMAGE`` run from the tree ``code``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fem", "solve", image, "--voxel-size", str(VOXEL),
                             "--threshold", str(THRESHOLD), "--no-fields", "-o", str(outdir)],
                            cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)        # this child's own peak, not any child's
    if status != 0:
        raise SystemExit(stderr)
    result = json.loads((outdir / "result.json").read_text())
    return {"peak_MiB": usage.ru_maxrss / 1024.0, "s": time.perf_counter() - t0,
            "dofs": result["dofs"], "reaction_force_N": result["reaction_force_N"]}


def run(args):
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    trees = [("new", str(ROOT))] + ([("old", args.old)] if args.old else [])
    records = []
    for image in args.images:
        for label, code in trees:
            proc = subprocess.run([sys.executable, __file__, "stages", image, "--code", code],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{image} ({label}): failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            rec["tree"] = label
            records.append(rec)
            print(json.dumps(rec), flush=True)
    if args.solve:
        for image in args.solve:
            for label, code in trees:
                rec = solve_peak(image, code, out / f"solve-{label}-{Path(image).stem}")
                rec.update(image=image, tree=label)
                records.append(rec)
                print(json.dumps(rec), flush=True)
    (out / "grid_memory.json").write_text(json.dumps(records, indent=1))
    print(table(records))


def table(records) -> str:
    """Markdown tables: peak RSS (MiB) of each stage, old and new per image; then the
    whole solves."""
    staged = [r for r in records if "stages" in r]
    head = ["image", "bone voxels", "nodes", "code"] + STAGES + ["peak", "B per bone voxel above the interpreter"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in staged:
        peak = max(s["peak_MiB"] for s in r["stages"].values())
        cells = [f"{Path(r['image']).stem} {'x'.join(map(str, r['shape']))}", f"{r['bone_voxels']:,}",
                 f"{r['nodes']:,}", r["tree"]]
        cells += [f"{r['stages'][s]['peak_MiB']:,.0f}" for s in STAGES]
        cells += [f"**{peak:,.0f}**", f"{(peak - r['base_MiB']) * 2**20 / r['bone_voxels']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    solves = [r for r in records if "dofs" in r]
    if solves:
        lines += ["", "| image | code | DOF | `bonefem solve` peak MiB | B per DOF | s | reaction force N |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in solves:
            lines.append(f"| {Path(r['image']).stem} | {r['tree']} | {r['dofs']:,} | "
                         f"{r['peak_MiB']:,.0f} | {r['peak_MiB'] * 2**20 / r['dofs']:.0f} | "
                         f"{r['s']:.0f} | {r['reaction_force_N']!r} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("images", help="write the cropped / whole / padded core as .npy")
    a.add_argument("tiff")
    a.add_argument("--edges", type=lambda s: [int(v) for v in s.split(",")], default=[150, 200, 300])
    a.add_argument("-o", "--output", required=True)
    a = sub.add_parser("stages", help="(internal) one image, one process")
    a.add_argument("image")
    a.add_argument("--code", default=str(ROOT))
    a = sub.add_parser("run", help="every image with this tree and --old, then the table")
    a.add_argument("images", nargs="+")
    a.add_argument("--old", help="an older code tree to measure beside this one")
    a.add_argument("--solve", nargs="*", default=[], help="images to also solve end to end")
    a.add_argument("-o", "--output", required=True)
    a = sub.add_parser("table", help="the table of a run's grid_memory.json")
    a.add_argument("folder")
    a.add_argument("-o", "--output", help="a Markdown file: replace its tables between the "
                   "<!-- grid_memory:stages --> and <!-- grid_memory:solve --> markers")
    args = p.parse_args()
    if args.cmd == "table":
        text = table(json.loads((Path(args.folder) / "grid_memory.json").read_text()))
        if args.output is None:
            print(text)
            return
        doc = Path(args.output).read_text()
        stages_text, _, solve_text = text.partition("\n\n")
        for name, part in (("stages", stages_text), ("solve", solve_text)):
            head, rest = doc.split(f"<!-- grid_memory:{name} -->\n", 1)
            doc = f"{head}<!-- grid_memory:{name} -->\n{part}\n<!-- /grid_memory:{name} -->" \
                  + rest.split(f"<!-- /grid_memory:{name} -->", 1)[1]
        Path(args.output).write_text(doc)
    else:
        {"images": images, "stages": stages, "run": run}[args.cmd](args)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
