"""Virtual trials: cohorts x arms x seeded specimens, remodelled and solved over time.

For each cohort and seed: generate the vertebral specimen, spin it up untreated to the
baseline, solve it; then for each arm remodel a copy of the baseline (same seed, so
arms differ only by the drug) and solve at every checkpoint, with the attribution
counterfactuals. Rank 0 simulates and measures; every rank takes part in the solves.
Rows are appended to ``rows.jsonl`` as they finish, then tabulated.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from fem.case import Case
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

    def __init__(self, case: Case, comm, log):
        self.case, self.comm, self.log, self.count = case, comm, log, 0

    def __call__(self, spec: Specimen | None, outdir=None) -> dict:
        self.count += 1
        quiet = lambda *a, **k: None  # noqa: E731
        return solve_specimen(spec, self.case, outdir, self.comm, log=quiet)


def run_trial(case: Case, outdir, comm=MPI.COMM_WORLD, log=print) -> list[dict]:
    """Run the trial of ``case`` and write its tables, plots and result.json to ``outdir``."""
    from fem.analysis.attribution import attribute, baseline_tissue_on, matching_move
    from fem.remodel.arms import baseline_state, run_arm
    from fem.remodel.presets import arm_params
    from fem.specimen.cohorts import load_cohort
    from fem.specimen.levelset import bone_volume, move_surface
    from fem.specimen.vertebral import generate

    t = case.trial
    say = log if comm.rank == 0 else (lambda *a, **k: None)
    outdir = Path(outdir)
    if comm.rank == 0:
        outdir.mkdir(parents=True, exist_ok=True)
    rows_path = outdir / "rows.jsonl"
    if comm.rank == 0 and rows_path.exists():
        rows_path.unlink()
    solve = _Solver(case, comm, log)
    e_ref = case.material.modulus
    dt = t.dt_months / 12.0
    rows = []
    t_start = time.perf_counter()
    n_jobs = len(t.cohorts) * len(t.seeds)
    job = 0

    def emit(row):
        rows.append(row)
        if comm.rank == 0:
            with rows_path.open("a") as f:
                f.write(json.dumps(row) + "\n")

    for cohort in t.cohorts:
        for seed in t.seeds:
            job += 1
            say(f"[{job}/{n_jobs}] {cohort}, seed {seed}: generating and spinning up "
                f"({time.perf_counter() - t_start:.0f} s)")

            def prepare():
                g = dict(load_cohort(cohort)["generator"], size=t.specimen.size,
                         voxel_size=t.specimen.voxel_size, seed=seed)
                net = generate(**g)
                return baseline_state(net.phi, net.spacing, cohort, seed, t.spinup_years, dt)

            base = root_call(comm, prepare)
            fields_dir = outdir / "fields" if (case.output.fields and seed == t.seeds[0]) else None
            tag = f"{cohort}-s{seed}"
            r0 = solve(specimen_of(base, e_ref) if comm.rank == 0 else None,
                       fields_dir / f"{tag}-baseline" if fields_dir else None)
            m0 = root_call(comm, _measure, base)
            f_base = r0["pistoia"]["failure_load_N"]
            emit(_row(cohort, seed, "baseline", 0.0, m0, r0, {}, None))
            for arm in t.arms:
                say(f"    {arm}: remodelling {t.years:g} years, solving at {t.checkpoints} years")
                snaps = root_call(comm, lambda: run_arm(base, cohort, arm, t.years, seed, dt,
                                                        t.checkpoints, arm_params(cohort, arm))[1])
                for c in t.checkpoints:
                    key = round(round(c / dt) * dt, 6)
                    state = snaps[key] if comm.rank == 0 else None
                    last = abs(c - max(t.checkpoints)) < 1e-9
                    r = solve(specimen_of(state, e_ref) if comm.rank == 0 else None,
                              fields_dir / f"{tag}-{arm}-{c:g}y" if (fields_dir and last) else None)
                    m = root_call(comm, _measure, state)
                    extra = {"perforations": state.perforations if comm.rank == 0 else None,
                             "activations": state.activations if comm.rank == 0 else None}
                    extra = comm.bcast(extra, root=0)
                    parts = None
                    if t.attribution:
                        def counterfactuals():
                            d = matching_move(base.phi, base.spacing, bone_volume(state.phi, state.spacing))
                            moved = base.copy()
                            moved.phi = move_surface(base.phi, d)
                            mineral = baseline_tissue_on(state.phi, base.phi, base.mineral, base.spacing)
                            quality = baseline_tissue_on(state.phi, base.phi, base.quality, base.spacing)
                            return d, specimen_of(moved, e_ref), specimen_of(state, e_ref, mineral, quality)
                        d, s_mass, s_tissue = root_call(comm, counterfactuals)
                        f_mass = solve(s_mass)["pistoia"]["failure_load_N"]
                        f_fixed = solve(s_tissue)["pistoia"]["failure_load_N"]
                        parts = attribute(f_base, r["pistoia"]["failure_load_N"], f_mass, f_fixed, d)
                    emit(_row(cohort, seed, arm, c, m, r, extra, parts))
            say(f"    done: {solve.count} solves so far")
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
