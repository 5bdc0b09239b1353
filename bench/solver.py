"""Solver benchmark: synthetic vertebral specimens of growing size, baselines side by side.

Steps (docs/benchmark.md has the full command):

    ./bonefem exec python3 bench/solver.py run -o bench/out        # runtime: DOLFINx/PETSc
    python3 bench/pyamg_solve.py bench/out                          # host: SciPy + PyAMG
    ./bonefem exec python3 bench/solver.py table bench/out -o docs/benchmark.md

``run`` generates each specimen once (saved as .npz, so generation does not count in
the memory of the solves), then for every size and rank count runs each solver
method in its own ``mpirun`` process, one after the other, so that the methods meet
the same machine load and the peak memory (``ru_maxrss``) of a process belongs to
one method. Every process repeats assembly + solve ``--repeat`` times and reports
medians. On one rank it also exports the assembled system of the smaller sizes for
the SciPy/PyAMG baseline. ``table`` writes the Markdown table between the markers
``<!-- bench:table -->`` and ``<!-- /bench:table -->`` of the output file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = dict(voxel_size=0.04, bv_tv=0.125, tb_n=1.35, th_horizontal=0.11,
                 strut_fraction=0.6, seed=0)
POISSON, STRAIN = 0.3, -0.01
# benchmark-only variants of a method: name -> (method, fem.solve.multigrid switches)
VARIANTS = {"matfree-cells": ("matfree", {"PIECES": False}),    # one coarse element per cell
            "matfree-c5k": ("matfree", {"COARSE_DOFS": 5000}),   # coarsest < 5,000 DOF (until 8 Dec 2026)
            "matfree-c30k": ("matfree", {"COARSE_DOFS": 30000}),
            "matfree-c50k": ("matfree", {"COARSE_DOFS": 50000}),
            "matfree-c100k": ("matfree", {"COARSE_DOFS": 100000})}   # coarsest sizes compared


def make_specimen(size: float, path: Path) -> dict:
    """Generate a size x size x size mm vertebral specimen and save mask + fraction."""
    import numpy as np

    from fem.specimen.load import specimen_from_levelset
    from fem.specimen.vertebral import generate

    t0 = time.perf_counter()
    net = generate(size=size, **GENERATOR)
    spec = specimen_from_levelset(net.phi, net.spacing, 10000.0)
    np.savez(path, mask=spec.mask, fraction=spec.fraction.astype(np.float32),
             spacing=np.asarray(spec.spacing))
    return {"size_mm": size, "seconds": time.perf_counter() - t0,
            "bone_voxels": int(spec.mask.sum())}


def load_mesh(path: Path, comm):
    """(msh, modulus per local cell (MPa), voxel grid) of a saved specimen; every rank reads
    the file, rank 0 passes the cells to DOLFINx, which distributes them."""
    import numpy as np

    from fem.mesh.distribute import create_dolfinx_mesh

    from fem.mesh.voxel import voxel_grid
    from fem.specimen.load import Specimen

    data = np.load(path)
    spec = Specimen(data["mask"], tuple(data["spacing"]), 10000.0, fraction=data["fraction"].astype(float))
    grid = voxel_grid(spec.mask, spec.spacing)
    msh, original = create_dolfinx_mesh(comm, *((grid.points, grid.cells) if comm.rank == 0 else (None, None)))
    return msh, spec.element_modulus(grid)[original], grid


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MiB (Linux ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def solve_one(specimen: Path, method: str, repeat: int, rtol: float, export: Path | None) -> dict:
    """Mesh one saved specimen and solve it ``repeat`` times with ``method``.

    Runs on every rank of MPI.COMM_WORLD; returns the record (same on every rank).
    """
    import numpy as np
    from mpi4py import MPI

    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.specimen.load import Specimen
    from fem.solve.elasticity import solve_compression
    from fem.solve.loadcases import pin_points

    comm = MPI.COMM_WORLD
    name = method
    if method in VARIANTS:
        from fem.solve import multigrid

        method, switches = VARIANTS[method]
        for key, value in switches.items():
            setattr(multigrid, key, value)
    t0 = time.perf_counter()
    grid, meta, per_cell = None, None, None
    if comm.rank == 0:
        data = np.load(specimen)
        spec = Specimen(data["mask"], tuple(data["spacing"]), 10000.0,
                        fraction=data["fraction"].astype(float))
        grid = voxel_grid(spec.mask, spec.spacing)
        meta = {"extent": grid.extent, "pins": pin_points(grid.points), "spacing": grid.spacing}
        per_cell = spec.element_modulus(grid)
        del spec, data
    meta = comm.bcast(meta, root=0)
    msh, original = create_dolfinx_mesh(comm, *((grid.points, grid.cells) if grid is not None else (None, None)))
    per_cell = comm.bcast(per_cell, root=0)[original]
    del grid
    mesh_s = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
    lx, ly, lz = meta["extent"]

    runs = []
    for _ in range(repeat):
        sol = solve_compression(msh, per_cell, POISSON, "uniaxial", STRAIN, lz, meta["pins"],
                                rtol=rtol, preset=method, voxel_spacing=meta["spacing"])
        runs.append({k: comm.allreduce(v, op=MPI.MAX) for k, v in sol.timings.items()})
        runs[-1]["iterations"] = sol.stats.iterations
        reaction = sol.reaction_force
        del sol
    record = {
        "method": name, "ranks": comm.size, "specimen": specimen.name,
        "dofs": None, "elements": None, "mesh_s": mesh_s, "repeat": repeat, "rtol": rtol,
        "assembly_s": statistics.median(r["assembly"] for r in runs),
        "solve_s": statistics.median(r["solve"] for r in runs),
        "solve_all_s": [r["solve"] for r in runs],
        "iterations": runs[-1]["iterations"],
        "reaction_N": reaction,
        "apparent_modulus_MPa": reaction / (lx * ly) / STRAIN,
    }
    imap = msh.topology.index_map(3)
    record["elements"] = imap.size_global
    record["dofs"] = 3 * msh.topology.index_map(0).size_global
    if export is not None and comm.size == 1:
        export_system(msh, per_cell, meta, export)
    record["peak_rss_mb"] = comm.allgather(peak_rss_mb())
    return record


def export_system(msh, per_cell, meta, path: Path):
    """Write the assembled system (CSR), rhs, DOF coordinates and reaction row to .npz.

    ``reaction_row`` r satisfies reaction force = r . u (r = K e_top with K the matrix
    without boundary conditions and e_top the indicator of the top-face z DOFs).
    """
    import dolfinx.fem
    import numpy as np
    import ufl

    from fem.solve.elasticity import _sigma, assemble_system

    lz = meta["extent"][2]
    s = assemble_system(msh, per_cell, POISSON, "uniaxial", STRAIN, lz, meta["pins"])
    indptr, indices, data = s.A.getValuesCSR()
    w = dolfinx.fem.Function(s.V)
    w.x.array[s.top_dofs] = 1.0
    v = ufl.TestFunction(s.V)
    r = dolfinx.fem.assemble_vector(dolfinx.fem.form(
        ufl.inner(_sigma(w, s.E, s.nu), ufl.sym(ufl.grad(v))) * s.dx))
    np.savez(path, indptr=indptr, indices=indices, data=data, b=s.b.getArray().copy(),
             coords=s.V.tabulate_dof_coordinates(), reaction_row=r.array.copy(),
             extent=np.asarray(meta["extent"]), strain=STRAIN)
    s.A.destroy()
    s.b.destroy()


def run(args):
    """Generate the specimens and run every (size, ranks, method) in its own process."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        spec = out / f"specimen_{size:g}mm.npz"
        if not spec.exists():
            info = make_specimen(size, spec)
            print(f"specimen {size:g} mm: {info['bone_voxels']} bone voxels, "
                  f"{info['seconds']:.1f} s", flush=True)
        for ranks in args.ranks:
            methods = [m for m in args.methods if size <= args.max_size.get(m, 1e9)]
            for method in methods:
                tag = f"{method}_{size:g}mm_{ranks}r"
                export = None
                if ranks == 1 and method == "demo" and size <= args.export_max:
                    export = out / f"system_{size:g}mm.npz"
                run_process(tag, spec, method, ranks, out / f"{tag}.json", args.repeat, args.rtol, export)


def run_process(tag, spec: Path, method: str, ranks: int, json_path: Path, repeat: int, rtol: float,
                export: Path | None = None) -> dict | None:
    """Run ``one`` for a saved specimen in its own (mpirun) process; print and return its record."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "one", str(spec), "--method", method,
           "--repeat", str(repeat), "--rtol", str(rtol), "--json", str(json_path)]
    if export is not None:
        cmd += ["--export", str(export)]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        print(f"{tag}: FAILED\n{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}", flush=True)
        return None
    rec = json.loads(json_path.read_text())
    print(f"{tag}: {rec['dofs']} DOF, set-up {rec['assembly_s']:.2f} s, solve {rec['solve_s']:.2f} s "
          f"({rec['iterations']} it), peak {max(rec['peak_rss_mb']):.0f} MiB/rank "
          f"[{time.perf_counter() - t0:.0f} s wall]", flush=True)
    return rec


def one(args):
    from mpi4py import MPI

    rec = solve_one(Path(args.specimen), args.method, args.repeat, args.rtol,
                    Path(args.export) if args.export else None)
    if MPI.COMM_WORLD.rank == 0:
        Path(args.json).write_text(json.dumps(rec, indent=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="generate specimens and run all solves")
    r.add_argument("-o", "--out", default="bench/out")
    r.add_argument("--sizes", type=lambda s: [float(x) for x in s.split(",")],
                   default=[2.0, 3.0, 4.4, 6.0, 7.6], help="cube edges, mm (0.04 mm voxels)")
    r.add_argument("--ranks", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    r.add_argument("--methods", type=lambda s: s.split(","), default=["demo", "fast", "matfree"])
    r.add_argument("--max-size", type=lambda s: dict((k, float(v)) for k, v in
                   (kv.split("=") for kv in s.split(","))), default={},
                   help="largest size per method, e.g. demo=7.6")
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--rtol", type=float, default=1e-8)
    r.add_argument("--export-max", type=float, default=4.4,
                   help="export the system for PyAMG up to this size, mm")
    o = sub.add_parser("one", help="(internal) one method on one specimen, under mpirun")
    o.add_argument("specimen")
    o.add_argument("--method", default="matfree")
    o.add_argument("--repeat", type=int, default=3)
    o.add_argument("--rtol", type=float, default=1e-8)
    o.add_argument("--json", required=True)
    o.add_argument("--export")
    t = sub.add_parser("table", help="write the Markdown table into a document")
    t.add_argument("dir")
    t.add_argument("-o", "--output", default="docs/benchmark.md")
    args = p.parse_args(argv)
    if args.cmd == "table":
        from bench.solver_table import write_table

        write_table(Path(args.dir), Path(args.output))
    else:
        {"run": run, "one": one}[args.cmd](args)


if __name__ == "__main__":
    main()
