"""The ``bonefem`` command: a thin layer that parses arguments and calls the pipeline.

User errors (bad case files, unreadable images, non-converged solves) print one line
``bonefem: error: ...`` and exit with status 2; nothing is written for a failed solve.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fem.errors import BonefemError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bonefem", description="Finite-element bone strength engine "
                                "(micro-FE with DOLFINx and PETSc). Units: mm, N, MPa.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="solve one image or volume mesh in compression (no case file)")
    s.add_argument("image", help=".npy, .npz, .nii or .nii.gz bone image (axes x, y, z; z = load axis), "
                   "or a volume mesh in mm (.msh, .vtu, .vtk, .xdmf, .inp; docs/conformal.md)")
    s.add_argument("--voxel-size", type=float, nargs="+", metavar="MM",
                   help="voxel edge in mm (one value or dx dy dz); required for NumPy images")
    s.add_argument("--threshold", type=float, help="grey level: voxels >= T are bone (default: nonzero)")
    s.add_argument("--modulus", type=float, default=10000.0, metavar="MPA", help="tissue modulus, MPa")
    s.add_argument("--modulus-field", metavar="NAME",
                   help="meshes: take each element's modulus (MPa) from this cell data array")
    s.add_argument("--poisson", type=float, default=0.3, metavar="NU", help="Poisson ratio")
    s.add_argument("--test", choices=("uniaxial", "axial"), default="uniaxial")
    s.add_argument("--strain", type=float, default=-0.01, help="applied strain along z")
    s.add_argument("--rtol", type=float, default=1e-7, help="CG relative tolerance")
    s.add_argument("--no-fields", action="store_true", help="do not write field files")
    s.add_argument("-o", "--output", default=None, help="output folder (default results/IMAGE-NAME)")

    r = sub.add_parser("run", help="run a case file")
    r.add_argument("case", help="case file (TOML)")
    r.add_argument("-o", "--output", default=None, help="output folder (default results/CASE-NAME)")

    sp = sub.add_parser("specimen", help="build a case's specimen: image, morphometry and a render")
    sp.add_argument("case", help="case file (TOML) with a [specimen] table")
    sp.add_argument("-o", "--output", default=None, help="output folder (default results/CASE-NAME-specimen)")
    sp.add_argument("--no-render", action="store_true", help="skip the PNG render")

    c = sub.add_parser("calibrate", help="fit preset parameters to target 2-year BMD changes")
    c.add_argument("arm", help="untreated, alfacalcidol, menatetrenone, combined, or a preset .toml")
    c.add_argument("--fit", action="append", required=True, metavar="NAME:LO:HI",
                   help="a parameter to fit and its bounds (repeat); drug factors: activation_factor, "
                        "depth_factor, balance_shift, tau_factor, quality; untreated: any BMU parameter")
    c.add_argument("--target", action="append", required=True, metavar="COHORT=PERCENT",
                   help="target mean BMD change after --years, percent (repeat for several cohorts)")
    c.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="specimen seeds per cohort")
    c.add_argument("--size", type=float, default=3.0, help="specimen cube edge, mm")
    c.add_argument("--voxel-size", type=float, default=0.04, help="voxel edge, mm")
    c.add_argument("--years", type=float, default=2.0, help="treatment duration, years")
    c.add_argument("--max-evaluations", type=int, default=30)
    c.add_argument("-o", "--output", required=True, help="calibrated preset file to write (.toml)")

    v = sub.add_parser("view", help="look at a stress field (window, or PNG without a display)")
    v.add_argument("path", help="a result folder or a .pvd field file")
    v.add_argument("--field", default="von_mises",
                   help="von_mises, sed, effective_strain, modulus or displacement")
    v.add_argument("--screenshot", metavar="PNG", help="write a PNG instead of opening a window")

    rp = sub.add_parser("report", help="write docs/results.md from a finished trial folder")
    rp.add_argument("trial", help="output folder of `bonefem run TRIAL.toml`")
    rp.add_argument("-o", "--output", default="docs/results.md")

    b = sub.add_parser("batch", help="run many cases or a trial's specimens over groups of MPI ranks")
    b.add_argument("cases", nargs="+", help="case files (single specimens or trials)")
    b.add_argument("--ranks-per-job", type=int, default=1, metavar="K",
                   help="ranks per job; the world is split into N/K groups")
    b.add_argument("-o", "--output", default="results/batch", help="output folder")
    b.add_argument("--quiet", action="store_true", help="print nothing but errors")
    b.add_argument("--verbose", action="store_true", help="also each job's own progress lines")

    co = sub.add_parser("collect", help="gather the results of many runs into one CSV table")
    co.add_argument("folders", nargs="+", help="result folders (searched recursively)")
    co.add_argument("-o", "--output", default="collected.csv")

    sub.add_parser("info", help="software versions and MPI ranks")
    return p


def _stem(path: str) -> str:
    name = Path(path).name
    for ext in (".nii.gz", ".toml", ".nii", ".npy", ".npz", ".mha", ".mhd", ".tif", ".tiff"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def _summary(result: dict) -> str:
    p = result["pistoia"]
    s = result["solver"]
    return "\n".join([
        f"  BV/TV                {result['bv_tv']:.4f}",
        f"  elements / DOF       {result['elements']} / {result['dofs']}",
        f"  reaction force       {result['reaction_force_N']:.4f} N",
        f"  stiffness            {result['stiffness_N_per_mm']:.2f} N/mm",
        f"  apparent modulus     {result['apparent_modulus_MPa']:.2f} MPa",
        f"  Pistoia failure load {p['failure_load_N']:.3f} N (EES at {p['critical_volume_percent']:g} % "
        f"= {p['ees_at_critical_volume']:.5f})",
        f"  solver               {s['iterations']} iterations, {s['seconds']:.1f} s, {s['converged_reason']}",
    ])


def _run(case, outdir, modulus_field=None) -> int:
    from mpi4py import MPI

    from fem.mesh.external import is_mesh_file
    from fem.pipeline import run_case

    comm = MPI.COMM_WORLD
    if case.specimen.image is not None and is_mesh_file(case.specimen.image):
        from fem.conformal import run_mesh_file

        result = run_mesh_file(case, outdir, comm, modulus_field=modulus_field)
    elif modulus_field is not None:
        raise BonefemError("--modulus-field applies to volume meshes, not to images")
    else:
        result = run_case(case, outdir, comm)
    if comm.rank == 0:
        print(f"bonefem: results in {outdir}/result.json")
        print(_summary(result))
    return 0


def cmd_solve(args) -> int:
    from fem.case import case_from_dict

    table = {
        "specimen": {"image": args.image},
        "material": {"modulus": args.modulus, "poisson": args.poisson},
        "load": {"test": args.test, "strain": args.strain},
        "solver": {"rtol": args.rtol},
        "output": {"fields": not args.no_fields},
    }
    if args.voxel_size:
        if len(args.voxel_size) not in (1, 3):
            raise BonefemError("--voxel-size takes one value or three (dx dy dz)")
        vs = args.voxel_size
        table["specimen"]["voxel_size"] = vs[0] if len(vs) == 1 else vs
    if args.threshold is not None:
        table["specimen"]["threshold"] = args.threshold
    case = case_from_dict(table, source="command line", base_dir=Path.cwd())
    return _run(case, args.output or f"results/{_stem(args.image)}", args.modulus_field)


def cmd_run(args) -> int:
    from fem.case import load_case

    case = load_case(args.case)
    outdir = args.output or f"results/{_stem(args.case)}"
    if case.trial is not None:
        from mpi4py import MPI

        from fem.trial import run_trial

        run_trial(case, outdir, MPI.COMM_WORLD)
        if MPI.COMM_WORLD.rank == 0:
            print(f"bonefem: trial tables and figures in {outdir}/ (summary.md, trial.csv)")
        return 0
    return _run(case, outdir)


def cmd_specimen(args) -> int:
    from fem.case import load_case
    from fem.specimen.export import export_specimen

    case = load_case(args.case)
    outdir = Path(args.output or f"results/{_stem(args.case)}-specimen")
    files = export_specimen(case, outdir, render=not args.no_render)
    print(f"bonefem: specimen written to {outdir}/: {', '.join(p.name for p in files)}")
    return 0


def cmd_calibrate(args) -> int:
    from fem.remodel.calibrate import Setting, fit, write_calibrated

    names, bounds = [], []
    for item in args.fit:
        try:
            name, lo, hi = item.split(":")
            names.append(name)
            bounds.append((float(lo), float(hi)))
        except ValueError:
            raise BonefemError(f"--fit {item!r}: expected NAME:LO:HI, e.g. balance_shift:0:0.5") from None
    targets = {}
    for item in args.target:
        cohort, _, value = item.partition("=")
        try:
            targets[cohort] = float(value)
        except ValueError:
            raise BonefemError(f"--target {item!r}: expected COHORT=PERCENT, e.g. "
                               "early-postmenopausal=4.92") from None
    setting = Setting(size=args.size, voxel_size=args.voxel_size, seeds=tuple(args.seeds), years=args.years)
    try:
        record = fit(args.arm, names, bounds, targets, setting, max_evaluations=args.max_evaluations)
    except ValueError as err:
        raise BonefemError(str(err)) from None
    write_calibrated(args.arm, record, args.output)
    print(f"bonefem: fitted {record['fitted']} -> {record['achieved_percent']} "
          f"(targets {targets}) in {record['seconds']} s; written to {args.output}")
    return 0


def cmd_view(args) -> int:
    from fem.report import view

    if args.screenshot or not view.has_display():
        out = args.screenshot or "view.png"
        view.screenshot(args.path, out, field=args.field)
        print(f"bonefem: no display; wrote {out}" if not args.screenshot else f"bonefem: wrote {out}")
    else:
        view.interactive(args.path, field=args.field)
    return 0


def cmd_batch(args) -> int:
    from mpi4py import MPI

    from fem.batch import run_batch

    run_batch(args.cases, args.output, args.ranks_per_job, MPI.COMM_WORLD, quiet=args.quiet,
              verbose=args.verbose)
    if MPI.COMM_WORLD.rank == 0 and not args.quiet:
        print(f"bonefem batch: results in {args.output}/ (`bonefem collect {args.output}` for one table)")
    return 0


def cmd_collect(args) -> int:
    from fem.report.collect import collect

    n = collect(args.folders, args.output)
    print(f"bonefem: {n} rows written to {args.output}")
    return 0


def cmd_report(args) -> int:
    from fem.report.results_doc import write_results_doc

    path = write_results_doc(args.trial, args.output)
    print(f"bonefem: wrote {path}")
    return 0


def cmd_info(args) -> int:
    from mpi4py import MPI

    from fem.report.result import versions

    if MPI.COMM_WORLD.rank == 0:
        for k, v in versions().items():
            print(f"{k:10s} {v}")
        print(f"{'ranks':10s} {MPI.COMM_WORLD.size}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {"solve": cmd_solve, "run": cmd_run, "info": cmd_info, "specimen": cmd_specimen,
                    "calibrate": cmd_calibrate, "view": cmd_view, "report": cmd_report,
                    "batch": cmd_batch, "collect": cmd_collect}
        return commands[args.command](args)
    except BonefemError as err:
        rank = 0
        if "mpi4py.MPI" in sys.modules:
            rank = sys.modules["mpi4py.MPI"].COMM_WORLD.rank
        if rank == 0:
            print(f"bonefem: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
