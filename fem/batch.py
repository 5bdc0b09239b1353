"""MPI batch driver: many cases (or a trial's specimens) over groups of ranks.

``mpirun -n N bonefem batch CASES... --ranks-per-job K`` splits the world into N/K
groups. Each group takes the next unclaimed job (an exclusive claim file, see
_Claims), so fast and slow jobs balance. A job is one case file,
or one cohort x seed of a trial; every job writes its results atomically into its own
folder under the output folder, and a re-run skips what is already there (trials
resume row by row). Numbers are the same as serial runs of the same jobs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from mpi4py import MPI

from fem.case import Case, load_case
from fem.errors import BonefemError
from fem.pipeline import run_case
from fem.report.progress import Progress
from fem.report.store import ROWS, job_folder, read_rows
from fem.report.trial_report import write_trial
from fem.trial import run_trial


def _jobs(cases: list[Case], outdir: Path) -> list[tuple[Case, Path]]:
    """(case, output folder) per job: a single case is one job; a trial one per cohort x seed."""
    jobs = []
    for case in cases:
        name = Path(case.source).stem
        if case.trial is None:
            jobs.append((case, outdir / name))
            continue
        for cohort in case.trial.cohorts:
            for seed in case.trial.seeds:
                sub = replace(case, trial=replace(case.trial, cohorts=[cohort], seeds=[seed]))
                jobs.append((sub, job_folder(outdir / name, cohort, seed)))
    return jobs


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
              quiet: bool = False, verbose: bool = False, stop=None) -> list[Path]:
    """Run every job; return the output folders of the jobs (on world rank 0).

    Progress: a bar on world rank 0 when its stdout is a terminal, else one plain line
    per job from each group's leader (a SLURM log); ``quiet`` leaves only errors (on
    stderr), ``verbose`` adds each job's own log. Raises BonefemError at the end, on
    every rank, if any job failed; the other jobs' results are kept.
    stop : called between jobs (and rows of a trial); True raises KeyboardInterrupt there
    """
    if ranks_per_job < 1 or world.size % ranks_per_job:
        raise BonefemError(f"--ranks-per-job {ranks_per_job} must divide the {world.size} ranks")
    # PETSc starts up collectively over all ranks: started lazily by a group's first solve,
    # it would wait forever for a group that never solves (its jobs done earlier or failed).
    from petsc4py import PETSc  # noqa: F401

    cases = [load_case(p) for p in case_paths]
    outdir = Path(outdir)
    jobs = _jobs(cases, outdir)
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
    n_groups, finished, failed = world.size // ranks_per_job, 0, 0

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
                failed += 1
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
    done = world.Ibarrier()
    while not done.Test():
        tick()
        time.sleep(0.2)
    tick()
    progress.close()
    failed = world.allreduce(failed if leader else 0)
    claim_errors = [e for e in world.allgather(claims.error if leader else None) if e]
    if world.rank == 0:
        claims.remove()
        for case in cases:
            if case.trial is not None:
                _merge_trial(case, outdir / Path(case.source).stem)
    group.Free()
    if claim_errors:
        also = f"; {failed} of {len(jobs)} jobs failed as well" if failed else ""
        raise BonefemError(f"batch: {claim_errors[0]}{also}. Finished results stay in {outdir}/ "
                           "and a re-run does only the unfinished jobs")
    if failed:
        raise BonefemError(f"{failed} of {len(jobs)} batch jobs failed (errors above); finished "
                           f"results stay in {outdir}/ and a re-run does only the unfinished jobs")
    return [folder for _, folder in jobs]


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
