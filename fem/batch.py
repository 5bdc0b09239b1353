"""MPI batch driver: many cases (or a trial's specimens) over groups of ranks.

``mpirun -n N bonefem batch CASES... --ranks-per-job K`` splits the world into N/K
groups. Each group takes the next unclaimed job (an exclusive claim file, see
_Claims), so fast and slow jobs balance. A job is one case file,
or one cohort x seed of a trial; every job writes its results atomically into its own
folder under the output folder, and a re-run skips what is already there (trials
resume row by row). Numbers are the same as serial runs of the same jobs.

``bonefem batch TEMPLATE.toml --images 'scans/*.nii.gz'`` is the lab's workflow, one
protocol over many scans: each image is a job with the template's settings, in a folder
named after the image, and the batch ends with one table, ``images.csv``, one row per image.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from mpi4py import MPI

from fem.case import Case, case_from_dict, case_to_dict, load_case, read_case_table
from fem.errors import BonefemError, CaseError
from fem.pipeline import run_case
from fem.report.collect import single_row
from fem.report.progress import Progress
from fem.report.store import IMAGE_SUFFIXES, ROWS, job_folder, read_rows, result_name
from fem.report.tables import write_csv
from fem.report.trial_report import write_trial
from fem.trial import run_trial


def _jobs(cases: list[Case], outdir: Path, trial_folder=None) -> list[tuple[Case, Path]]:
    """(case, output folder) per job: a single case is one job; a trial one per cohort x seed,
    under ``outdir/CASE-NAME`` (or ``trial_folder``)."""
    jobs = []
    for case in cases:
        name = Path(case.source).stem
        if case.trial is None:
            jobs.append((case, outdir / name))
            continue
        folder = _trial_folder(case, outdir, trial_folder)
        for cohort in case.trial.cohorts:
            for seed in case.trial.seeds:
                # fields (for the renders) of the trial's first seed only, as a serial run
                # writes them: at 6 mm every seed's would be 0.7 GB per cohort
                output = replace(case.output, fields=case.output.fields and seed == case.trial.seeds[0])
                sub = replace(case, trial=replace(case.trial, cohorts=[cohort], seeds=[seed]),
                              output=output)
                jobs.append((sub, job_folder(folder, cohort, seed)))
    return jobs


def _trial_folder(case: Case, outdir: Path, trial_folder=None) -> Path:
    """Where a trial case's merged tables go: ``trial_folder`` if given, else
    ``outdir/CASE-NAME``; its specimens' jobs are below it."""
    return Path(trial_folder) if trial_folder is not None else outdir / Path(case.source).stem


IMAGE_TABLE = "images.csv"


def _is_tiff(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".tif", ".tiff")


def _is_image(path: Path) -> bool:
    """An image file by its suffix, or a folder of TIFF slices (one scan)."""
    if path.is_dir():
        return any(_is_tiff(p) for p in path.iterdir())
    return path.name.lower().endswith(IMAGE_SUFFIXES)


def _folder_images(folder: Path) -> list[Path]:
    """The scans in a folder: its image files and its sub-folders of TIFF slices, sorted;
    or the folder itself when it holds only TIFF files (the slices of one scan)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and _is_image(p))
    stacks = sorted(p for p in folder.iterdir() if p.is_dir() and _is_image(p))
    if files and not stacks and all(map(_is_tiff, files)):
        return [folder]      # one scan as TIFF slices, not hundreds of 2-D images
    return files + stacks


def expand_image_args(entries, cwd=".") -> list[Path]:
    """The images of ``--images``: each entry an image file, a folder (fem.batch.
    _folder_images) or a glob pattern (its matching images, sorted; a match that is a
    folder of TIFF slices is one image). Paths are relative to ``cwd``; duplicates are
    dropped. BonefemError naming the entry and what was expected when it gives no image."""
    expected = f"expected image files ({', '.join(IMAGE_SUFFIXES)}) or folders of TIFF slices"
    out = []
    for entry in entries:
        path = Path(entry) if Path(entry).is_absolute() else Path(cwd) / entry
        if glob.has_magic(str(entry)):
            # joined as text: a Path drops the trailing "/" of "scans/*/" (folders only)
            matches = [Path(m) for m in sorted(glob.glob(os.path.join(cwd, str(entry))))]
            found = [m for m in matches if _is_image(m)]
            if not found:
                what = (f"matches {len(matches)} path(s) but none is an image" if matches
                        else "matches nothing")
                raise BonefemError(f"--images {entry!r}: {what} (in {Path(cwd).resolve()}); {expected}")
        elif not path.exists():
            raise BonefemError(f"--images {entry}: no such file or folder; {expected}")
        elif path.is_dir():
            found = _folder_images(path)
            if not found:
                raise BonefemError(f"--images {entry}: the folder holds no image; {expected}")
        elif not _is_image(path):
            raise BonefemError(f"--images {entry}: not an image file; {expected}")
        else:
            found = [path]
        out += [p.resolve() for p in found]
    return list(dict.fromkeys(out))


def image_names(images: list[Path]) -> list[str]:
    """Result-folder name of each image: its name without the suffix, or, where two
    images share it (scans/p1/scan.nii.gz, scans/p2/scan.nii.gz), its path below the
    images' common folder with '-' for '/' (p1-scan, p2-scan)."""
    names = [result_name(p) for p in images]
    if len(set(names)) < len(names):
        root = Path(os.path.commonpath([p.parent for p in images]))
        names = [str(p.parent.relative_to(root) / result_name(p)).replace(os.sep, "-").lstrip(".-")
                 for p in images]
    seen = {}
    for name, path in zip(names, images):
        if name in seen:
            raise BonefemError(f"--images: {seen[name]} and {path} would both write results to "
                               f"the folder {name!r}; rename one or run them in two batches")
        seen[name] = path
    return names


def template_jobs(template, images: list[Path], outdir: Path) -> list[tuple[Case, Path]]:
    """(case, output folder) per image: the template case file with ``specimen.image`` set
    to the image. The template holds no trial and no generator; an ``image`` in it is
    replaced. Every job is validated before any runs: a bad key stops the batch at once."""
    template = Path(template)
    table = read_case_table(template)
    if "trial" in table:
        raise CaseError(template, "trial", "a template for --images describes one specimen's "
                        "solve; a trial takes its scans in [trial.cohort.NAME] images")
    specimen = table.get("specimen", {})
    if not isinstance(specimen, dict):
        raise CaseError(template, "specimen", f"expected a table, got {specimen!r}")
    for key in ("synthetic", "vertebral"):
        if key in specimen:
            raise CaseError(template, f"specimen.{key}", "a template for --images takes its "
                            "specimens from the images; remove the generator")
    jobs = []
    for image, name in zip(images, image_names(images)):
        one = copy.deepcopy(table)
        one.setdefault("specimen", {})["image"] = str(image)
        case = case_from_dict(one, source=template, base_dir=template.parent)
        jobs.append((case, outdir / name))
    return jobs


def _settings_differ(case: Case, result_json: Path) -> str | None:
    """The first case key whose value differs from the one a finished result was solved
    with (None when all agree): a re-run must not pass off old settings as new ones."""
    try:
        old = json.loads(result_json.read_text()).get("case", {})
    except (OSError, ValueError):
        return None
    new = json.loads(json.dumps(case_to_dict(case)))
    for table in sorted(set(old) | set(new)):
        a, b = old.get(table), new.get(table)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
            return f"{table}.{key}"
        return table
    return None


class _Claims:
    """Dynamic job assignment without a server: a group leader takes a job by creating
    its claim file with O_CREAT | O_EXCL, which exactly one process can do (also on a
    cluster's shared file system). Claims live in a folder unique to this run."""

    def __init__(self, outdir: Path, world):
        name = world.bcast(f".claims-{uuid.uuid4().hex[:12]}" if world.rank == 0 else None, root=0)
        self.folder = outdir / name
        error = None
        if world.rank == 0:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                error = f"cannot create the claim folder {self.folder}: {exc.strerror}"
        # every rank raises, rather than waiting for rank 0
        error = world.bcast(error, root=0)
        if error:
            raise BonefemError(f"batch: {error}")
        self.cursor, self.error = 0, None

    def next(self, n_jobs: int) -> int:
        """The next unclaimed job index, n_jobs when all are taken, or -1 when a claim file
        cannot be created (a full disk; the reason is in ``self.error``)."""
        while self.cursor < n_jobs:
            index = self.cursor
            self.cursor += 1
            path = self.folder / str(index)
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return index
            except FileExistsError:
                continue
            except OSError as exc:
                self.error = f"cannot create the claim file {path}: {exc.strerror}"
                return -1
        return n_jobs

    def finish(self, index: int) -> None:
        """Mark a job finished (whatever its outcome), for the progress bar on rank 0."""
        # Only the bar needs this: a full disk must not stop the batch here.
        with contextlib.suppress(OSError):
            (self.folder / f"{index}.done").touch()

    def finished(self) -> int:
        return sum(1 for _ in self.folder.glob("*.done"))

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def run_batch(case_paths, outdir, ranks_per_job: int = 1, world=MPI.COMM_WORLD,
              quiet: bool = False, verbose: bool = False, stop=None, images=None,
              trial_folder=None) -> list[Path]:
    """Run every job; return the output folders of the jobs (on world rank 0).

    images : ``--images`` entries (files, folders, globs; fem.batch.expand_image_args):
        ``case_paths`` is then one template, each image one job, and rank 0 writes
        ``outdir/images.csv`` with one row per image (failed ones too, with their error)

    Progress: a bar on world rank 0 when its stdout is a terminal, else one plain line
    per job from each group's leader (a SLURM log); ``quiet`` leaves only errors (on
    stderr), ``verbose`` adds each job's own log. Raises BonefemError at the end, on
    every rank, if any job failed; the other jobs' results are kept.
    stop : called between jobs (and rows of a trial); True raises KeyboardInterrupt there
    trial_folder : with one trial case, its folder (default ``outdir/CASE-NAME``; ``bonefem
        run TRIAL --jobs N`` gives its output folder)
    """
    if ranks_per_job < 1 or world.size % ranks_per_job:
        raise BonefemError(f"--ranks-per-job {ranks_per_job} must divide the {world.size} ranks")
    # PETSc starts up collectively over all ranks: started lazily by a group's first solve,
    # it would wait forever for a group that never solves (its jobs done earlier or failed).
    from petsc4py import PETSc  # noqa: F401

    outdir = Path(outdir)
    if images is None:
        cases = [load_case(p) for p in case_paths]
        if trial_folder is not None and len(cases) != 1:
            raise BonefemError(f"batch: a trial folder is for one trial case, got {len(cases)} cases")
        jobs = _jobs(cases, outdir, trial_folder)
    else:
        if len(case_paths) != 1:
            raise BonefemError(f"--images takes one template case file, got {len(case_paths)}: "
                               f"{' '.join(map(str, case_paths))}")
        cases, jobs = [], template_jobs(case_paths[0], expand_image_args(images), outdir)
    group = world.Split(world.rank // ranks_per_job, world.rank)
    claims = _Claims(outdir, world)
    leader = group.rank == 0
    progress = Progress(len(jobs), "batch", enabled=world.rank == 0 and not quiet)
    # Rank 0's terminal decides for everyone: other leaders writing lines would break the bar.
    bar = world.bcast(progress.bar is not None, root=0)
    plain = leader and not quiet and not bar
    if not verbose:
        job_log = lambda *a, **k: None  # noqa: E731
    elif world.rank == 0:
        job_log = progress.write
    else:
        # Not print itself: a trial given print draws its own bar.
        job_log = lambda *a, **k: print(*a, **k, flush=True)  # noqa: E731
    n_groups, finished, failed = world.size // ranks_per_job, 0, {}

    def tick(postfix=""):
        if progress.bar is not None:
            progress.to(claims.finished(), postfix)

    t0 = time.perf_counter()
    while True:
        if stop is not None and group.allreduce(bool(stop()), op=MPI.LOR):
            raise KeyboardInterrupt      # between two jobs (trials also between two rows)
        index = group.bcast(claims.next(len(jobs)) if leader else None, root=0)
        if index < 0 or index >= len(jobs):
            # a group that cannot claim stops taking jobs; the others go on, and the batch
            # ends with the reason (below) once every group is done
            break
        case, folder = jobs[index]
        name = folder.relative_to(outdir)
        tick(str(name))
        t = time.perf_counter()
        try:
            if case.trial is None:
                if (folder / "result.json").exists():
                    changed = _settings_differ(case, folder / "result.json")
                    if changed:
                        raise BonefemError(f"{folder}/result.json was solved with another "
                                           f"{changed}; delete that folder to solve it again, or "
                                           "write to another output folder")
                    status = "done earlier"
                else:
                    run_case(case, folder, group, log=job_log)
                    status = "solved"
            else:
                run_trial(case, folder, group, log=job_log, stop=stop)
                status = "ran"
        except BonefemError as err:
            status = "FAILED"
            if leader:
                failed[index] = str(err)
                progress.write(f"bonefem batch: job {index + 1}/{len(jobs)} {name} failed: {err}",
                               file=sys.stderr)
        if leader:
            claims.finish(index)
            finished += 1
        if plain:
            elapsed = time.perf_counter() - t0
            # Jobs are spread over the groups: the rate of this group times their number.
            eta = elapsed / finished * max(len(jobs) - index - 1, 0) / n_groups
            print(f"bonefem batch: job {index + 1}/{len(jobs)} {name} "
                  f"{status} in {time.perf_counter() - t:.1f} s (group of {group.size} rank(s), "
                  f"{elapsed:.0f} s elapsed, about {eta / 60:.1f} min left)", flush=True)
    # Wait for the other groups without spinning a core (a blocking barrier busy-polls),
    # moving the bar as their jobs finish.
    _wait_quietly(world, tick)
    tick()
    progress.close()
    failed = {i: e for part in world.allgather(failed if leader else {}) for i, e in part.items()}
    claim_errors = [e for e in world.allgather(claims.error if leader else None) if e]
    merge_error = None
    if world.rank == 0:
        claims.remove()
        try:
            for case in cases:
                if case.trial is not None:
                    _merge_trial(case, _trial_folder(case, outdir, trial_folder))
            if images is not None:
                table = write_image_table(jobs, failed, outdir / IMAGE_TABLE)
                if not quiet:
                    print(f"bonefem batch: one row per image in {table}", flush=True)
        except BonefemError as err:
            merge_error = str(err)
    # rank 0's tables and renders can take minutes: the others wait without a busy core,
    # and an error there is raised on every rank
    _wait_quietly(world)
    merge_error = world.bcast(merge_error, root=0)
    failed = len(failed)
    group.Free()
    if merge_error:
        raise BonefemError(merge_error)
    if claim_errors:
        also = f"; {failed} of {len(jobs)} jobs failed as well" if failed else ""
        raise BonefemError(f"batch: {claim_errors[0]}{also}. Finished results stay in {outdir}/ "
                           "and a re-run does only the unfinished jobs")
    if failed:
        raise BonefemError(f"{failed} of {len(jobs)} batch jobs failed (errors above); finished "
                           f"results stay in {outdir}/ and a re-run does only the unfinished jobs")
    return [folder for _, folder in jobs]


def _wait_quietly(comm, poll=lambda: None) -> None:
    """A barrier that sleeps instead of busy-polling a core (MPI's blocking barrier
    spins); ``poll`` is called between checks."""
    done = comm.Ibarrier()
    while not done.Test():
        poll()
        time.sleep(0.2)


def write_image_table(jobs, failed: dict, path: Path) -> Path:
    """One row per image job, in the order of the images: its file, ``ok`` or ``failed``
    (with the error), then the numbers of ``bonefem collect`` (fem.report.collect)."""
    rows = []
    for index, (case, folder) in enumerate(jobs):
        row = {"image": case.specimen.image, "status": "failed", "error": failed.get(index, "")}
        done = single_row(folder / "result.json") if index not in failed else None
        if done:
            row.update(status="ok", **done)
        elif index not in failed:
            row["error"] = "no result"      # a batch stopped before this image
        rows.append(row)
    return write_csv(path, rows)


def _merge_trial(case: Case, folder: Path) -> None:
    """Tabulate a trial whose specimens ran as separate jobs (fem.report.store.job_folder):
    their rows (which carry their own cost in solves and seconds) and the renders from
    their field folders."""
    rows, roots = [], {}
    t = case.trial
    for cohort in t.cohorts:
        for seed in t.seeds:
            job = job_folder(folder, cohort, seed)
            if not (job / "result.json").exists():
                print(f"bonefem batch: {job} has no results; the trial table leaves it out",
                      file=sys.stderr)
                continue
            rows += read_rows(job / ROWS)
            roots[(cohort, seed)] = job
    if rows:
        write_trial(rows, case, folder, roots=roots)
