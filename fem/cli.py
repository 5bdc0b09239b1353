"""The ``bonefem`` command: a thin layer that parses arguments and calls the pipeline.

User errors (bad case files, unreadable images, non-converged solves) print one line
``bonefem: error: ...`` and exit with status 2; nothing is written for a failed solve.
Ctrl-C prints one line and exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from mpi4py import MPI

from fem.batch import run_batch
from fem.case import Load, Material, Solver, case_from_dict, default, load_case
from fem.errors import BonefemError
from fem.mesh.external import MESH_SUFFIXES
from fem.pipeline import run_case
from fem.remodel.calibrate import Setting, fit, write_calibrated
from fem.report import view
from fem.report.collect import collect
from fem.report.result import check_output_folder, versions
from fem.report.results_doc import write_results_doc
from fem.report.specimen import export_specimen
from fem.report.store import IMAGE_SUFFIXES, result_name, trial_rows
from fem.trial import run_trial


def _threshold(text: str):
    """--threshold: a grey level, 'otsu' or 'nonzero'."""
    if text in ("otsu", "nonzero"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'otsu' or 'nonzero', got {text!r}") from None


JSON_HELP = ("print one JSON document on stdout (for scripts; every other message goes "
             "to stderr)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bonefem", description="Finite-element bone strength engine "
                                "(micro-FE with DOLFINx and PETSc). Units: mm, N, MPa.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="solve one image or volume mesh in compression (no case file)")
    s.add_argument("image", help=f"bone image ({', '.join(IMAGE_SUFFIXES)} or a folder of TIFF "
                   "slices; axes x, y, z; z = load axis), or a volume mesh in mm "
                   f"({', '.join(MESH_SUFFIXES)}; docs/conformal.md)")
    s.add_argument("--voxel-size", type=float, nargs="+", metavar="MM",
                   help="voxel edge in mm (one value or dx dy dz); required for NumPy and TIFF images")
    s.add_argument("--threshold", type=_threshold, metavar="T",
                   help="grey level: voxels >= T are bone; 'otsu'; or 'nonzero' (every nonzero voxel). "
                        "Needed for a grey-level image; a binary one is bone where nonzero")
    s.add_argument("--modulus", type=float, metavar="MPA",
                   help=f"tissue modulus, MPa (default {default(Material, 'modulus'):g})")
    s.add_argument("--modulus-field", metavar="NAME",
                   help="meshes: take each element's modulus (MPa) from this cell data array")
    s.add_argument("--poisson", type=float, metavar="NU",
                   help=f"Poisson ratio (default {default(Material, 'poisson'):g})")
    s.add_argument("--test", choices=("uniaxial", "axial"),
                   help=f"load case (default {default(Load, 'test')})")
    s.add_argument("--strain", type=float,
                   help=f"applied strain along z (default {default(Load, 'strain'):g})")
    s.add_argument("--rtol", type=float, help=f"CG relative tolerance (default {default(Solver, 'rtol'):g})")
    s.add_argument("--no-fields", action="store_true", help="do not write field files")
    s.add_argument("-o", "--output", default=None, help="output folder (default results/IMAGE-NAME)")
    s.add_argument("--json", action="store_true", help=JSON_HELP)

    r = sub.add_parser("run", help="run a case file")
    r.add_argument("case", help="case file (TOML)")
    r.add_argument("-o", "--output", default=None, help="output folder (default results/CASE-NAME)")
    r.add_argument("--json", action="store_true", help=JSON_HELP)
    r.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="a trial's specimens (cohort x seed) N at a time, each in its own process: "
                        "started as mpirun -n N when run without mpirun; under mpirun -n M, N groups "
                        "of M/N ranks (default 1: one specimen at a time, every solve on all ranks)")

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
    c.add_argument("--seeds", type=int, nargs="+", help=f"specimen seeds per cohort (default "
                   f"{' '.join(map(str, Setting.seeds))})")
    c.add_argument("--size", type=float, help=f"specimen cube edge, mm (default {Setting.size:g})")
    c.add_argument("--voxel-size", type=float, help=f"voxel edge, mm (default {Setting.voxel_size:g})")
    c.add_argument("--years", type=float, help=f"treatment duration, years (default {Setting.years:g})")
    c.add_argument("--max-evaluations", type=int, default=30)
    c.add_argument("-o", "--output", help="calibrated preset file to write (.toml; default "
                   "results/calibrated-ARM.toml)")

    v = sub.add_parser("view", help="look at a stress field (window, or PNG without a display)")
    v.add_argument("path", help="a result folder or a .pvd field file")
    v.add_argument("specimen", nargs="?", help="in a trial folder: the specimen's folder name "
                   "under fields/ (or a unique part of it); without it they are listed")
    v.add_argument("--field", default="von_mises",
                   help="von_mises, sed, effective_strain, modulus or displacement")
    v.add_argument("--screenshot", metavar="PNG", help="write a PNG instead of opening a window")

    rp = sub.add_parser("report", help="write docs/results.md from a finished trial folder")
    rp.add_argument("trial", help="output folder of `bonefem run TRIAL.toml`")
    rp.add_argument("-o", "--output", default="docs/results.md")

    b = sub.add_parser("batch", help="run many cases or a trial's specimens over groups of MPI ranks")
    b.add_argument("cases", nargs="+", help="case files (single specimens or trials); with "
                   "--images, one template case file")
    b.add_argument("--images", nargs="+", metavar="PATH",
                   help="images to solve with the template's settings, one job each: files, "
                        "folders (their images) or quoted glob patterns ('scans/*.nii.gz'); "
                        "results in OUTPUT/IMAGE-NAME/ and one table, OUTPUT/images.csv")
    b.add_argument("--ranks-per-job", type=int, default=1, metavar="K",
                   help="ranks per job; the world is split into N/K groups")
    b.add_argument("-o", "--output", default="results/batch", help="output folder")
    b.add_argument("--quiet", action="store_true", help="print nothing but errors")
    b.add_argument("--verbose", action="store_true", help="also each job's own progress lines")

    co = sub.add_parser("collect", help="gather the results of many runs into one CSV table")
    co.add_argument("folders", nargs="+", help="result folders (searched recursively)")
    co.add_argument("-o", "--output", help="CSV file to write (default: collected.csv in the "
                    "first folder)")
    co.add_argument("--json", action="store_true", help=JSON_HELP)

    sub.add_parser("info", help="software versions and MPI ranks")
    return p


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
    ] + ([] if "nonlinear" not in result else [
        f"  nonlinear ultimate   {result['nonlinear']['ultimate_load_N']:.3f} N at strain "
        f"{result['nonlinear']['strain_at_ultimate']:.4f} (peak reached: {result['nonlinear']['peak_reached']})"]))


def _run(case, outdir, as_json=False) -> int:
    comm = MPI.COMM_WORLD
    result = run_case(case, outdir, comm)
    if comm.rank == 0:
        print(f"bonefem: results in {outdir}/result.json")
        if as_json:
            _print_json({"output": str(outdir), **result})
        else:
            print(_summary(result))
    return 0


def cmd_solve(args) -> int:
    given = lambda **kw: {k: v for k, v in kw.items() if v is not None}  # noqa: E731
    table = {
        "specimen": given(image=args.image, threshold=args.threshold, modulus_field=args.modulus_field),
        "material": given(modulus=args.modulus, poisson=args.poisson),
        "load": given(test=args.test, strain=args.strain),
        "solver": given(rtol=args.rtol),
        "output": {"fields": not args.no_fields},
    }
    if args.voxel_size:
        if len(args.voxel_size) not in (1, 3):
            raise BonefemError("--voxel-size takes one value or three (dx dy dz)")
        vs = args.voxel_size
        table["specimen"]["voxel_size"] = vs[0] if len(vs) == 1 else vs
    case = case_from_dict(table, source="command line", base_dir=Path.cwd())
    return _run(case, args.output or f"results/{result_name(args.image)}", args.json)


def _under_mpirun(n: int, argv: list[str]) -> int:
    """Run ``bonefem ARGV`` again as ``n`` MPI processes and return its exit status; this
    process only waits (Ctrl-C reaches the ranks through mpirun, which stop between solves)."""
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise BonefemError(f"--jobs {n} starts {n} processes with mpirun, which is not on PATH; "
                           "run without --jobs, or inside the runtime (./bonefem) or the image")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.run([mpirun, "-n", str(n), sys.executable, "-m", "fem", *argv]).returncode
    finally:
        signal.signal(signal.SIGINT, previous)


def _trial_in_groups(args, outdir, stop) -> list[dict]:
    """``run TRIAL --jobs N`` under mpirun: the specimens over N groups of ranks (the batch
    driver, into ``outdir`` itself); the rows of the whole trial on rank 0."""
    world = MPI.COMM_WORLD
    if world.size % args.jobs:
        raise BonefemError(f"--jobs {args.jobs} must divide the {world.size} MPI ranks")
    run_batch([args.case], outdir, world.size // args.jobs, world, stop=stop, trial_folder=outdir)
    if world.rank != 0:
        return []
    print((Path(outdir) / "summary.md").read_text(), flush=True)
    return trial_rows(outdir)


def cmd_run(args) -> int:
    case = load_case(args.case)
    outdir = args.output or f"results/{result_name(args.case)}"
    if args.jobs < 1:
        raise BonefemError(f"--jobs must be 1 or more, got {args.jobs}")
    if args.jobs > 1 and case.trial is None:
        raise BonefemError(f"{args.case}: --jobs runs a trial's specimens side by side; this case "
                           "is one solve (run it under mpirun -n N to share that solve)")
    if case.trial is not None:
        if args.jobs > 1 and MPI.COMM_WORLD.size == 1:
            return _under_mpirun(args.jobs, ["run", str(args.case), "-o", str(outdir),
                                             "--jobs", str(args.jobs), *(["--json"] if args.json else [])])
        with _stop_between_solves() as stop:
            if args.jobs > 1:
                rows = _trial_in_groups(args, outdir, stop)
            else:
                rows = run_trial(case, outdir, MPI.COMM_WORLD, stop=stop)
        if MPI.COMM_WORLD.rank == 0:
            print(f"bonefem: trial tables and figures in {outdir}/ (summary.md, trial.csv)")
            if args.json:
                _print_json({"output": str(outdir), "rows": rows})
        return 0
    return _run(case, outdir, args.json)


def cmd_specimen(args) -> int:
    case = load_case(args.case)
    outdir = Path(args.output or f"results/{result_name(args.case)}-specimen")
    print(f"bonefem: building the specimen of {args.case} ...", flush=True)
    files = export_specimen(case, outdir, render=not args.no_render)
    print(f"bonefem: specimen written to {outdir}/: {', '.join(p.name for p in files)}")
    return 0


def _numbers(d: dict) -> str:
    """{name: number} as plain text, 4 significant digits: 'a = 0.1988, b = 2.5'."""
    return ", ".join(f"{k} = {float(v):.4g}" for k, v in d.items())


def cmd_calibrate(args) -> int:
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
    chosen = {"size": args.size, "voxel_size": args.voxel_size, "years": args.years,
              "seeds": None if args.seeds is None else tuple(args.seeds)}
    setting = Setting(**{k: v for k, v in chosen.items() if v is not None})
    output = Path(args.output or f"results/calibrated-{Path(args.arm).stem}.toml")
    if output.is_dir():
        raise BonefemError(f"-o {output}: a folder; give the preset file to write (.toml)")
    check_output_folder(output.parent)     # before the fit, which takes minutes
    try:
        record = fit(args.arm, names, bounds, targets, setting, max_evaluations=args.max_evaluations)
    except ValueError as err:
        raise BonefemError(str(err)) from None
    output.parent.mkdir(parents=True, exist_ok=True)
    write_calibrated(args.arm, record, output)
    print(f"bonefem: fitted {_numbers(record['fitted'])}; BMD change {_numbers(record['achieved_percent'])} % "
          f"(targets {_numbers(targets)} %) in {record['seconds']:g} s; written to {output}")
    return 0


def cmd_view(args) -> int:
    if args.screenshot or not view.has_display():
        out = args.screenshot or "view.png"
        view.screenshot(args.path, out, field=args.field, pick=args.specimen)
        print(f"bonefem: no display; wrote {out}" if not args.screenshot else f"bonefem: wrote {out}")
    else:
        view.interactive(args.path, field=args.field, pick=args.specimen)
    return 0


def cmd_batch(args) -> int:
    with _stop_between_solves() as stop:
        run_batch(args.cases, args.output, args.ranks_per_job, MPI.COMM_WORLD, quiet=args.quiet,
                  verbose=args.verbose, stop=stop, images=args.images)
    if MPI.COMM_WORLD.rank == 0 and not args.quiet and args.images is None:
        print(f"bonefem batch: results in {args.output}/ (`bonefem collect {args.output}` for one table)")
    return 0


def cmd_collect(args) -> int:
    out = Path(args.output) if args.output else Path(args.folders[0]) / "collected.csv"
    rows = collect(args.folders, out)
    print(f"bonefem: {len(rows)} rows written to {out}")
    if args.json:
        _print_json({"output": str(out), "rows": rows})
    return 0


def cmd_report(args) -> int:
    path = write_results_doc(args.trial, args.output)
    print(f"bonefem: wrote {path}")
    return 0


def cmd_info(args) -> int:
    if MPI.COMM_WORLD.rank == 0:
        for k, v in versions().items():
            print(f"{k:10s} {v}")
        print(f"{'ranks':10s} {MPI.COMM_WORLD.size}")
    return 0


# --json: the real stdout, kept for the one JSON document while every message (the
# pipeline's lines, a progress bar, warnings) is redirected to stderr.
_json_out = None


def _print_json(document: dict) -> None:
    """The one JSON document of --json, on the real stdout."""
    (_json_out or sys.stdout).write(json.dumps(document, indent=2) + "\n")
    (_json_out or sys.stdout).flush()


def main(argv=None) -> int:
    global _json_out
    args = _parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    _json_out = sys.stdout if as_json else None
    try:
        commands = {"solve": cmd_solve, "run": cmd_run, "info": cmd_info, "specimen": cmd_specimen,
                    "calibrate": cmd_calibrate, "view": cmd_view, "report": cmd_report,
                    "batch": cmd_batch, "collect": cmd_collect}
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            return commands[args.command](args)
    except BonefemError as err:
        if MPI.COMM_WORLD.rank == 0:
            print(f"bonefem: error: {err}", file=sys.stderr, flush=True)
        if args.command == "batch":
            # A batch raises its errors on every rank. mpirun ends the job as soon as one
            # rank exits with an error: the others wait here until rank 0 has written its
            # table and this line, which would otherwise be cut off.
            MPI.COMM_WORLD.Barrier()
        return 2
    except KeyboardInterrupt:
        return _interrupted(args.command)
    except Exception as err:
        # Ctrl-C inside a Python callback of PETSc comes back as a PETSc error caused by it
        if isinstance(err.__cause__, KeyboardInterrupt):
            return _interrupted(args.command)
        raise


@contextlib.contextmanager
def _stop_between_solves():
    """Ctrl-C in a trial or batch stops it between two solves, where nothing is half done
    (an interrupt inside a solve's PETSc callbacks can leave PETSc in a state that
    crashes); a second Ctrl-C stops at once. Yields the ``stop`` callable of run_trial."""
    asked = []

    def handler(signum, frame):
        asked.append(True)
        if MPI.COMM_WORLD.rank == 0:
            print("bonefem: stopping after the current solve (Ctrl-C again to stop at once)",
                  file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(asked)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted(command: str) -> int:
    """Ctrl-C: one line instead of a traceback; exit status 130 (128 + SIGINT)."""
    if MPI.COMM_WORLD.rank == 0:
        resumable = command in ("run", "batch")
        print("bonefem: interrupted" + ("; re-run to resume (finished work is kept)"
                                        if resumable else ""), file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
