"""Virtual trials: cohorts x arms x seeded specimens, remodelled and solved over time.

For each cohort and seed: generate the vertebral specimen, spin it up untreated to the
baseline, solve it; then for each arm remodel a copy of the baseline (same seed, so
arms differ only by the drug) and solve at every checkpoint, with the attribution
counterfactuals. Rank 0 simulates and measures; every rank takes part in the solves.
Rows are appended to ``rows.jsonl`` as they finish, then tabulated.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from fem.case import Case
from fem.errors import BonefemError
from fem.pipeline import Specimen, root_call, solve_specimen, specimen_from_levelset
from fem.remodel.mineral import tissue_modulus

EXPONENT = 2.5  # tissue modulus ~ mineral ** 2.5 (fem.remodel.mineral)


def specimen_of(state, e_ref: float, mineral=None, quality=None) -> Specimen:
    """The FE specimen of a remodelling state: partial volumes from phi, tissue modulus
    from mineral and quality (optionally replaced, for counterfactuals)."""
    m = state.mineral if mineral is None else mineral
    q = state.quality if quality is None else quality
    spec = specimen_from_levelset(state.phi, state.spacing, 0.0)
    spec.modulus = tissue_modulus(e_ref, m, q, EXPONENT)
    return spec


def _measure(state) -> dict:
    from fem.remodel.mineral import MATURE_TMD
    from fem.specimen.morphometry import morphometry

    f = state.fraction
    mm = morphometry(state.phi > 0, state.spacing, fraction=f, tmd=state.mineral * MATURE_TMD)
    keys = ("bv_tv", "bmd_mg_per_cm3", "tmd_mean_mg_per_cm3", "bs_bv_per_mm", "tb_th_mm",
            "tb_sp_mm", "tb_n_per_mm", "conn_d_per_mm3", "da")
    return {k: mm.get(k) for k in keys}


class _Solver:
    """Solves specimens on all ranks; counts the solves."""

    def __init__(self, case: Case, comm):
        self.case, self.comm, self.count = case, comm, 0

    def __call__(self, spec: Specimen | None, outdir=None) -> dict:
        self.count += 1
        quiet = lambda *a, **k: None  # noqa: E731
        return solve_specimen(spec, self.case, outdir, self.comm, log=quiet)


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def job_keys(case: Case, cohort: str, seed: int, arm: str | None = None) -> str:
    """Key of a specimen's baseline (arm None) or of one arm of it: a digest of every
    input that affects it (solver settings, specimen, presets, times, code version), so
    a re-run reuses finished work and a changed input recomputes only what it affects."""
    import fem
    from fem.case import case_to_dict
    from fem.remodel.presets import FOLDER, preset_path
    from fem.specimen.cohorts import FOLDER as COHORTS

    d = case_to_dict(case)
    t = dict(d["trial"])
    for k in ("cohorts", "arms", "seeds", "checkpoints", "years", "attribution"):
        t.pop(k)
    common = [fem.__version__, {k: d[k] for k in ("material", "load", "solver", "pistoia")}, t,
              (COHORTS / f"{cohort}.toml").read_text(), (FOLDER / "untreated.toml").read_text(), seed]
    if arm is None:
        return _digest(*common)
    tr = case.trial
    return _digest(*common, arm, preset_path(arm).read_text() if arm != "untreated" else "",
                   tr.years, tr.attribution)


def _load_rows(path: Path) -> dict:
    """Finished rows of an earlier run, by (key, arm, time)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue      # a line cut by a killed run
            done[(row.get("key"), row["arm"], row["time_years"])] = row
    return done


def run_trial(case: Case, outdir, comm=MPI.COMM_WORLD, log=print) -> list[dict]:
    """Run the trial of ``case`` and write its tables, plots and result.json to ``outdir``.

    Resumable: rows already in ``outdir/rows.jsonl`` whose inputs are unchanged are
    reused, so a killed run loses only the solves in flight.
    """
    from fem.analysis.attribution import attribute, baseline_tissue_on, matching_move
    from fem.remodel.arms import baseline_state, run_arm
    from fem.remodel.presets import arm_params
    from fem.specimen.cohorts import load_cohort
    from fem.specimen.levelset import bone_volume, move_surface
    from fem.specimen.vertebral import generate

    from fem.report.progress import Progress

    t = case.trial
    outdir = Path(outdir)
    rows_path = outdir / "rows.jsonl"
    progress = Progress(len(t.cohorts) * len(t.seeds), "trial", enabled=comm.rank == 0 and log is print)
    say = (progress.write if log is print else log) if comm.rank == 0 else (lambda *a, **k: None)

    def setup():
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BonefemError(f"{outdir}: cannot create the output folder ({err.strerror})") from None
        return _load_rows(rows_path)

    done = comm.bcast(root_call(comm, setup), root=0)
    solve = _Solver(case, comm)
    e_ref = case.material.modulus
    dt = t.dt_months / 12.0
    rows, reused = [], 0
    t_start = time.perf_counter()
    n_jobs = len(t.cohorts) * len(t.seeds)
    job = 0

    def append(row):
        from fem.report.result import write_problem

        try:
            with rows_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as err:
            raise BonefemError(f"{rows_path}: cannot write a result ({write_problem(err)}); the "
                               "rows written before are intact") from None

    def emit(row, new=True):
        rows.append(row)
        if new:
            # on rank 0, the error to every rank: the others would wait in the next solve
            root_call(comm, append, row)

    # Seed-major order: a trial stopped early still covers every cohort.
    for seed, cohort in ((s, c) for s in t.seeds for c in t.cohorts):
        job += 1
        base_key = job_keys(case, cohort, seed)
        arm_keys = {arm: job_keys(case, cohort, seed, arm) for arm in t.arms}
        cached = {arm: [done.get((arm_keys[arm], arm, c)) for c in t.checkpoints] for arm in t.arms}
        base_row = done.get((base_key, "baseline", 0.0))
        if base_row and all(all(r is not None for r in v) for v in cached.values()):
            emit(base_row, new=False)
            for arm in t.arms:
                for r in cached[arm]:
                    emit(r, new=False)
            reused += 1 + len(t.arms) * len(t.checkpoints)
            say(f"[{job}/{n_jobs}] {cohort}, seed {seed}: finished earlier, reused")
            progress.update(postfix=f"{cohort} seed {seed} (reused)")
            continue
        elapsed = time.perf_counter() - t_start
        eta = f", about {elapsed / (job - 1) * (n_jobs - job + 1) / 60:.0f} min left" if job > 1 else ""
        say(f"[{job}/{n_jobs}] {cohort}, seed {seed}: generating and spinning up "
            f"({elapsed:.0f} s{eta})")

        def prepare():
            g = dict(load_cohort(cohort)["generator"], size=t.specimen.size,
                     voxel_size=t.specimen.voxel_size, seed=seed)
            net = generate(**g)
            return baseline_state(net.phi, net.spacing, cohort, seed, t.spinup_years, dt)

        base = root_call(comm, prepare)
        fields_dir = outdir / "fields" if (case.output.fields and seed == t.seeds[0]) else None
        tag = f"{cohort}-s{seed}"
        # Re-solve a finished baseline only if its field files (for the renders) are missing.
        missing_fields = fields_dir is not None and not (fields_dir / f"{tag}-baseline" / "fields.pvd").exists()
        if base_row is None or missing_fields:
            r0 = solve(specimen_of(base, e_ref) if comm.rank == 0 else None,
                       fields_dir / f"{tag}-baseline" if fields_dir else None)
            m0 = comm.bcast(root_call(comm, _measure, base), root=0)
            base_row = _row(cohort, seed, "baseline", 0.0, m0, r0, {}, None)
            base_row["key"] = base_key
            emit(base_row)
        else:
            emit(base_row, new=False)
        f_base = base_row["failure_load_N"]
        for arm in t.arms:
            if all(r is not None for r in cached[arm]):
                for r in cached[arm]:
                    emit(r, new=False)
                reused += len(t.checkpoints)
                continue
            say(f"    {arm}: remodelling {t.years:g} years, solving at {t.checkpoints} years")
            snaps = root_call(comm, lambda: run_arm(base, cohort, arm, t.years, seed, dt,
                                                    t.checkpoints, arm_params(cohort, arm))[1])
            for c, old in zip(t.checkpoints, cached[arm]):
                if old is not None:
                    emit(old, new=False)
                    reused += 1
                    continue
                key = round(round(c / dt) * dt, 6)
                state = snaps[key] if comm.rank == 0 else None
                last = abs(c - max(t.checkpoints)) < 1e-9
                r = solve(specimen_of(state, e_ref) if comm.rank == 0 else None,
                          fields_dir / f"{tag}-{arm}-{c:g}y" if (fields_dir and last) else None)
                m = comm.bcast(root_call(comm, _measure, state), root=0)
                extra = comm.bcast({"perforations": state.perforations, "activations": state.activations}
                                   if comm.rank == 0 else None, root=0)
                parts = None
                if t.attribution:
                    def counterfactuals():
                        d = matching_move(base.phi, base.spacing, bone_volume(state.phi, state.spacing))
                        moved = base.copy()
                        moved.phi = move_surface(base.phi, d)
                        mineral = baseline_tissue_on(state.phi, base.phi, base.mineral, base.spacing)
                        quality = baseline_tissue_on(state.phi, base.phi, base.quality, base.spacing)
                        return d, specimen_of(moved, e_ref), specimen_of(state, e_ref, mineral, quality)
                    d, s_mass, s_tissue = root_call(comm, counterfactuals) or (None, None, None)
                    d = comm.bcast(d, root=0)
                    f_mass = solve(s_mass)["pistoia"]["failure_load_N"]
                    f_fixed = solve(s_tissue)["pistoia"]["failure_load_N"]
                    parts = attribute(f_base, r["pistoia"]["failure_load_N"], f_mass, f_fixed, d)
                row = _row(cohort, seed, arm, c, m, r, extra, parts)
                row["key"] = arm_keys[arm]
                emit(row)
        say(f"    done: {solve.count} solves so far, {reused} rows reused")
        progress.update(postfix=f"{cohort} seed {seed}, {solve.count} solves")
    progress.close()
    if comm.rank == 0:
        from fem.report.trial_report import write_trial

        report = write_trial(rows, case, outdir, time.perf_counter() - t_start, solve.count)
        say(report["headline"])
    return rows


def _row(cohort, seed, arm, time_years, morph, result, extra, parts) -> dict:
    row = {"cohort": cohort, "seed": seed, "arm": arm, "time_years": time_years}
    row.update({k: morph.get(k) for k in ("bmd_mg_per_cm3", "bv_tv", "tmd_mean_mg_per_cm3",
                                           "tb_th_mm", "tb_n_per_mm", "conn_d_per_mm3", "da")})
    row.update({"perforations": extra.get("perforations", 0), "activations": extra.get("activations", 0),
                "apparent_modulus_MPa": result["apparent_modulus_MPa"],
                "failure_load_N": result["pistoia"]["failure_load_N"],
                "dofs": result["dofs"], "iterations": result["solver"]["iterations"]})
    if parts is not None:
        row.update({"strength_mass_pct": parts.mass_pct, "strength_tissue_pct": parts.tissue_pct,
                    "strength_architecture_pct": parts.architecture_pct,
                    "mass_move_um": parts.mass_move_um})
    return row
