"""Virtual trials: cohorts x arms x seeded specimens, remodelled and solved over time.

For each cohort and seed (one job, :func:`specimen_rows`): generate the vertebral
specimen, spin it up untreated to the baseline, solve it; then for each arm remodel a
copy of the baseline (same seed, so arms differ only by the drug) and solve at every
checkpoint, with the attribution's counterfactual specimens (at the last checkpoint, or
at every one: ``[trial] attribution``; with ``[trial] remodelling_space`` also those
with each state's open cavities closed). Rank 0 simulates and measures; every
rank takes part in the solves. Rows go to the row store (fem.report.store) as they
finish, so a killed trial resumes where it stopped; then they are tabulated.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path

from mpi4py import MPI

import fem
from fem.analysis.attribution import PLAYERS, attribute, coalitions
from fem.analysis.strength import buckling_columns, nonlinear_columns
from fem.case import Case, case_to_dict
from fem.errors import BonefemError
from fem.pipeline import root_call, solve_specimen
from fem.remodel.arms import run_arm
from fem.remodel.bmu import refilled
from fem.remodel.mineral import MATURE_TMD, tissue_modulus
from fem.remodel.presets import FOLDER as PRESETS, apply_factors, drug_factors, preset_path
from fem.report.progress import Progress
from fem.report.store import ROWS, append_row, fields_folder, read_rows
from fem.report.trial_report import write_trial
from fem.specimen.load import Specimen, specimen_from_levelset
from fem.specimen.morphometry import morphometry
from fem.trial_cohorts import cohort_baseline, cohort_source, untreated_of

EXPONENT = 2.5  # tissue modulus ~ mineral ** 2.5 (fem.remodel.mineral)
MORPHOMETRY = ("bv_tv", "bmd_mg_per_cm3", "tmd_mean_mg_per_cm3", "bs_bv_per_mm", "tb_th_mm",
               "tb_sp_mm", "tb_n_per_mm", "conn_d_per_mm3", "da")


def specimen_of(state, e_ref: float, mineral=None, quality=None, phi=None) -> Specimen:
    """The FE specimen of a remodelling state: partial volumes from phi, tissue modulus
    from mineral and quality (each optionally replaced, for counterfactuals)."""
    m = state.mineral if mineral is None else mineral
    q = state.quality if quality is None else quality
    spec = specimen_from_levelset(state.phi if phi is None else phi, state.spacing, 0.0)
    spec.modulus = tissue_modulus(e_ref, m, q, EXPONENT)
    return spec


def measure(state) -> dict:
    """Morphometry of a remodelling state as a trial row reports it (BMD mg HA/cm^3,
    BV/TV, TMD, Tb.Th mm, Tb.N /mm, Conn.D /mm^3, DA)."""
    mm = morphometry(state.phi > 0, state.spacing, fraction=state.fraction,
                     tmd=state.mineral * MATURE_TMD)
    return {k: mm.get(k) for k in MORPHOMETRY}


class _Solver:
    """Solves specimens on all ranks; counts the solves.

    The nonlinear test of ``[analysis] strength = "nonlinear"`` and the buckling analysis
    of ``[analysis] buckling`` run only where asked (``nonlinear=True``: the baseline and
    every checkpoint); the attribution's counterfactuals are Pistoia solves whatever the
    case says.
    """

    def __init__(self, case: Case, comm):
        self.case, self.comm, self.count = case, comm, 0
        self.pistoia_case = replace(case, analysis=replace(case.analysis, strength="pistoia",
                                                           buckling=False))

    def __call__(self, spec: Specimen | None, outdir=None, nonlinear=False) -> dict:
        self.count += 1
        quiet = lambda *a, **k: None  # noqa: E731
        case = self.case if nonlinear else self.pistoia_case
        return solve_specimen(spec, case, outdir, self.comm, log=quiet)


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def job_keys(case: Case, cohort: str, seed: int, arm: str | None = None) -> str:
    """Key of a specimen's baseline (arm None) or of one arm of it: a digest of every
    input that affects it (solver settings, specimen, presets, times, code version), so
    a re-run reuses finished work and a changed input recomputes only what it affects."""
    d = case_to_dict(case)
    t = dict(d["trial"])
    for k in ("cohorts", "arms", "seeds", "checkpoints", "years", "attribution", "cohort_tables",
              "remodelling_space"):
        t.pop(k)
    sections = ("material", "load", "solver", "pistoia")
    # the nonlinear test's settings only where it runs: Pistoia trials keep their keys
    sections += ("analysis",) if case.analysis.strength == "nonlinear" or case.analysis.buckling else ()
    if not case.analysis.buckling:       # off: resume keys as before the key existed
        d["analysis"].pop("buckling")
    if not case.analysis.softening:      # keys of the softening law: only where it is on
        for k in ("softening", "softening_onset", "softening_end", "residual", "crack_band"):
            d["analysis"].pop(k)
    elif not case.analysis.crack_band:   # off: resume keys as before the key existed
        d["analysis"].pop("crack_band")
    if not case.analysis.nonlocal_radius:
        d["analysis"].pop("nonlocal_radius")
    common = [fem.__version__, {k: d[k] for k in sections}, t,
              cohort_source(case.trial, cohort, seed), (PRESETS / "untreated.toml").read_text(), seed]
    if arm is None:
        return _digest(*common)
    tr = case.trial
    # the cavity split only where it is on: other trials keep their keys
    return _digest(*common, arm, preset_path(arm).read_text() if arm != "untreated" else "",
                   tr.years, tr.attribution, *(["remodelling_space"] if tr.remodelling_space else []))


def _snapshot(snaps: dict, years: float):
    """The snapshot of ``run_arm`` nearest to ``years`` (its keys are step times rounded
    by fem.remodel.bmu.simulate; matching the nearest needs no second rounding rule)."""
    return snaps[min(snaps, key=lambda t: abs(t - years))]


def run_trial(case: Case, outdir, comm=MPI.COMM_WORLD, log=print, stop=None) -> list[dict]:
    """Run the trial of ``case`` and write its tables, plots and result.json to ``outdir``.

    Resumable: rows already in ``outdir/rows.jsonl`` whose inputs are unchanged are
    reused, so a killed run loses only the solves in flight.
    stop : called after every row; True on any rank raises KeyboardInterrupt on every
        rank there, between two solves (Ctrl-C, see fem.cli)
    """
    t = case.trial
    outdir = Path(outdir)
    rows_path = outdir / ROWS
    n_jobs = len(t.cohorts) * len(t.seeds)
    progress = Progress(n_jobs, "trial", enabled=comm.rank == 0 and log is print)
    say = (progress.write if log is print else log) if comm.rank == 0 else (lambda *a, **k: None)

    def setup():
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BonefemError(f"{outdir}: cannot create the output folder ({err.strerror})") from None
        return {(r.get("key"), r["arm"], r["time_years"]): r for r in read_rows(rows_path)}

    done = comm.bcast(root_call(comm, setup), root=0)
    solve = _Solver(case, comm)
    rows, reused = [], 0
    t_start = t_last = time.perf_counter()
    solves_last = 0
    # Seed-major order: a trial stopped early still covers every cohort.
    for job, (seed, cohort) in enumerate(((s, c) for s in t.seeds for c in t.cohorts), start=1):
        elapsed = time.perf_counter() - t_start
        eta = f", about {elapsed / (job - 1) * (n_jobs - job + 1) / 60:.0f} min left" if job > 1 else ""
        say(f"[{job}/{n_jobs}] {cohort}, seed {seed} ({elapsed:.0f} s{eta})")
        for row, new in specimen_rows(case, cohort, seed, done, solve, outdir, comm, say):
            if new:
                # what this row took since the one before (its remodelling and solves)
                now = time.perf_counter()
                row["cost"] = {"solves": solve.count - solves_last, "seconds": round(now - t_last, 3)}
                t_last, solves_last = now, solve.count
                # on rank 0, the error to every rank: the others would wait in the next solve
                root_call(comm, append_row, rows_path, row)
            else:
                reused += 1
            rows.append(row)
            if stop is not None and comm.allreduce(bool(stop()), op=MPI.LOR):
                raise KeyboardInterrupt
        say(f"    done: {solve.count} solves so far, {reused} rows reused")
        progress.update(postfix=f"{cohort} seed {seed}, {solve.count} solves")
    progress.close()
    if comm.rank == 0:
        report = write_trial(rows, case, outdir, {"solves": solve.count,
                                                  "seconds": round(time.perf_counter() - t_start, 1)})
        say(report["headline"])
    return rows


def specimen_rows(case: Case, cohort: str, seed: int, done: dict, solve, outdir, comm, say):
    """One job of a trial: the rows of one cohort x seed, as ``(row, new)`` pairs in order
    as they finish (``new`` False for a row reused from ``done``, keyed by (key, arm, time)).

    Fields of the first seed (baseline, and each arm at the last checkpoint) are written
    under ``outdir`` (fem.report.store.fields_folder) for the renders.
    """
    t = case.trial
    base_key = job_keys(case, cohort, seed)
    arm_keys = {arm: job_keys(case, cohort, seed, arm) for arm in t.arms}
    cached = {arm: [done.get((arm_keys[arm], arm, c)) for c in t.checkpoints] for arm in t.arms}
    base_row = done.get((base_key, "baseline", 0.0))
    if base_row and all(r is not None for v in cached.values() for r in v):
        say("    finished earlier, reused")
        yield base_row, False
        for arm in t.arms:
            for r in cached[arm]:
                yield r, False
        return
    e_ref, dt = case.material.modulus, t.dt_months / 12.0
    fields = case.output.fields and seed == t.seeds[0]
    say("    generating and spinning up")

    base = root_call(comm, lambda: cohort_baseline(t, cohort, seed, dt))
    base_fields = fields_folder(outdir, cohort, seed) if fields else None
    # Re-solve a finished baseline only if its field files (for the renders) are missing.
    if base_row is None or (fields and not (base_fields / "fields.pvd").exists()):
        r0 = solve(specimen_of(base, e_ref) if comm.rank == 0 else None, base_fields, nonlinear=True)
        base_row = _row(cohort, seed, "baseline", 0.0, comm.bcast(root_call(comm, measure, base), root=0),
                        r0, {}, None)
        base_row["key"] = base_key
        yield base_row, True
    else:
        yield base_row, False
    f_base = base_row["failure_load_N"]
    final = max(t.checkpoints)
    for arm in t.arms:
        if all(r is not None for r in cached[arm]):
            for r in cached[arm]:
                yield r, False
            continue
        say(f"    {arm}: remodelling {t.years:g} years, solving at {t.checkpoints} years")
        params = apply_factors(untreated_of(t, cohort), drug_factors(arm))
        snaps = root_call(comm, lambda: run_arm(base, cohort, arm, t.years, seed, dt,
                                                t.checkpoints, params)[1])
        for c, old in zip(t.checkpoints, cached[arm]):
            if old is not None:
                yield old, False
                continue
            state = _snapshot(snaps, c) if comm.rank == 0 else None
            field_dir = fields_folder(outdir, cohort, seed, arm, c) if (fields and c == final) else None
            r = solve(specimen_of(state, e_ref) if comm.rank == 0 else None, field_dir, nonlinear=True)
            m = comm.bcast(root_call(comm, measure, state), root=0)
            extra = comm.bcast({"perforations": state.perforations, "activations": state.activations}
                               if comm.rank == 0 else None, root=0)
            parts = None
            if t.attribution == "all" or (t.attribution == "final" and c == final):
                cavities = (untreated_of(t, cohort), params) if t.remodelling_space else None
                parts = _attribution(base, state, e_ref, f_base, r["pistoia"]["failure_load_N"],
                                     solve, comm, cavities)
            row = _row(cohort, seed, arm, c, m, r, extra, parts, t.remodelling_space)
            row["key"] = arm_keys[arm]
            yield row, True


def _attribution(base, state, e_ref, f_base, f_treated, solve, comm, cavities=None):
    """Solve the counterfactual specimens of ``state`` against ``base`` (built on rank 0;
    None elsewhere) and split its failure-load change (Shapley, order-free).

    cavities : None, or the RemodelParams of the baseline's and of the arm's remodelling
        (``[trial] remodelling_space``): each state's open cavities are then refilled as
        its own BMUs would refill them (fem.remodel.bmu.refilled), four more solves per
        state with open cavities, and the architecture part splits into cavities and
        the permanent rest.
    """
    def build():
        refill = ((None, None) if cavities is None else
                  tuple(refilled(s, p) if s.bmus else None for s, p in zip((base, state), cavities)))
        specs, d = coalitions(base.phi, (base.mineral, base.quality), state.phi,
                              (state.mineral, state.quality), base.spacing, *refill)
        keys = [k for k in specs if k not in (frozenset(), frozenset(PLAYERS))]
        return d, keys, [specimen_of(base, e_ref, m, q, phi) for phi, (m, q) in (specs[k] for k in keys)]

    built = root_call(comm, build)
    d, keys = comm.bcast(built[:2] if comm.rank == 0 else None, root=0)
    specs = built[2] if comm.rank == 0 else [None] * len(keys)
    loads = {k: solve(spec)["pistoia"]["failure_load_N"] for k, spec in zip(keys, specs)}
    return attribute({frozenset(): f_base, frozenset(PLAYERS): f_treated, **loads}, d)


def _row(cohort, seed, arm, time_years, morph, result, extra, parts, cavities=False) -> dict:
    row = {"cohort": cohort, "seed": seed, "arm": arm, "time_years": time_years}
    row.update({k: morph.get(k) for k in ("bmd_mg_per_cm3", "bv_tv", "tmd_mean_mg_per_cm3",
                                           "tb_th_mm", "tb_n_per_mm", "conn_d_per_mm3", "da")})
    row.update({"perforations": extra.get("perforations", 0), "activations": extra.get("activations", 0),
                "apparent_modulus_MPa": result["apparent_modulus_MPa"],
                "failure_load_N": result["pistoia"]["failure_load_N"],
                "dofs": result["dofs"], "iterations": result["solver"]["iterations"]})
    row.update(nonlinear_columns(result))       # {} unless [analysis] strength = "nonlinear"
    row.update(buckling_columns(result))        # {} unless [analysis] buckling = true
    if parts is not None:
        row.update({"strength_mass_pct": parts.mass_pct, "strength_tissue_pct": parts.tissue_pct,
                    "strength_architecture_pct": parts.architecture_pct,
                    "mass_only_pct": parts.mass_only_pct, "mass_move_um": parts.mass_move_um})
        if cavities:        # [trial] remodelling_space: the architecture part split in two
            row.update({"strength_cavities_pct": parts.cavities_pct,
                        "strength_permanent_pct": parts.permanent_pct,
                        "cavity_cost_baseline_pct": parts.cavity_cost_base_pct,
                        "cavity_cost_pct": parts.cavity_cost_pct})
    return row
