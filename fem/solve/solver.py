"""PETSc solver set-up for micro-FE elasticity: CG + smoothed-aggregation AMG (GAMG).

GAMG gets the six rigid-body modes as its near null space, as in the DOLFINx
elasticity demo; without them its aggregates cannot represent rotations and the
iteration count grows with the model size.

Two option sets (``PRESETS``): ``"demo"`` is the DOLFINx elasticity demo's GAMG
(every matrix entry kept in the aggregation graph), the baseline of
docs/benchmark.md; ``"fast"`` (the default) drops weak graph edges
(``pc_gamg_threshold``), which gives smaller aggregates' graphs, a cheaper set-up and
fewer CG iterations on trabecular voxel models. The choice is measured in
docs/benchmark.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from petsc4py import PETSc

from fem.errors import SolverError


def rigid_body_modes(V) -> PETSc.NullSpace:
    """Orthonormal basis of the 3-D rigid-body motions on a P1 vector space."""
    import dolfinx.la

    imap, bs = V.dofmap.index_map, V.dofmap.index_map_bs
    n = imap.size_local
    basis = [dolfinx.la.vector(imap, bs=bs, dtype=PETSc.ScalarType) for _ in range(6)]
    b = [v.array.reshape(-1, bs) for v in basis]
    x = V.tabulate_dof_coordinates()[:n]
    for i in range(3):
        b[i][:n, i] = 1.0                     # translations
    b[3][:n, 0], b[3][:n, 1] = -x[:, 1], x[:, 0]   # rotation about z
    b[4][:n, 0], b[4][:n, 2] = x[:, 2], -x[:, 0]   # rotation about y
    b[5][:n, 1], b[5][:n, 2] = -x[:, 2], x[:, 1]   # rotation about x
    dolfinx.la.orthonormalize(basis)
    # The mesh's communicator, not petsc4py's default (COMM_WORLD): in a batch each
    # group of ranks solves its own job, and a COMM_WORLD object would be collective
    # with ranks that are busy elsewhere.
    return PETSc.NullSpace().create(vectors=[v.petsc_vec for v in basis], comm=V.mesh.comm)


# The DOLFINx elasticity demo's preconditioner: smoothed aggregation, Chebyshev/Jacobi.
DEMO = {
    "pc_type": "gamg",
    "pc_gamg_type": "agg",
    "pc_gamg_agg_nsmooths": 1,
    "mg_levels_ksp_type": "chebyshev",
    "mg_levels_pc_type": "jacobi",
    "mg_levels_ksp_chebyshev_esteig_steps": 10,
}
PRESETS = {
    "demo": DEMO,
    # Fallback when a preset breaks down (DIVERGED_INDEFINITE_PC): elements of tiny
    # partial-volume modulus make the Chebyshev smoother's eigenvalue estimate too low;
    # more estimation steps and a wider safety margin keep the smoother SPD.
    "robust": {**DEMO, "mg_levels_ksp_chebyshev_esteig_steps": 40,
               "mg_levels_ksp_chebyshev_esteig": "0,0.1,0,1.3"},
    # FAST_OPTIONS_BEGIN (docs/benchmark.md: why these)
    "fast": {**DEMO, "pc_gamg_threshold": 0.02},
    # FAST_OPTIONS_END
    # Matrix-free voxel operator + geometric multigrid (fem.solve.multigrid): options of
    # its W-cycle; the operators and transfers are set by the code.
    "matfree": {
        "pc_type": "mg",
        # W-cycle: each coarse level's correction is solved twice as well. On porous
        # bone the trilinear coarse spaces are poor and a V-cycle's iterations grew with
        # every level (1.0 M DOF: 46 -> 33; 2.7 M DOF: 75 -> 43) for 1.4x the work per
        # iteration; the levels shrink about 4.5x each, so the W-cycle stays O(n).
        "pc_mg_cycle_type": "w",
        "mg_levels_ksp_type": "chebyshev",
        "mg_levels_pc_type": "jacobi",
        "mg_levels_ksp_max_it": 2,
        # 10 Lanczos steps: the same CG iteration counts as 20 on the 0.09-2.7 M DOF
        # benchmark specimens (23, 31, 47, 76), and 10 fewer operator products per level
        "mg_levels_ksp_chebyshev_esteig_steps": 10,
        # CG (Lanczos) estimates the largest eigenvalue of the SPD levels as well as
        # GMRES with 4 vectors instead of 20 (measured: 170 MB less at 1 M DOF)
        "mg_levels_esteig_ksp_type": "cg",
        "mg_coarse_ksp_type": "preonly",
        "mg_coarse_pc_type": "redundant",
        "mg_coarse_redundant_pc_type": "cholesky",
        # CHOLMOD factors the ~10 k DOF coarsest level of a 1 M DOF specimen in 0.22 s,
        # MUMPS in 0.49 s, PETSc's own in 1.9 s (same solve time, 5 ms)
        "mg_coarse_redundant_pc_factor_mat_solver_type":
            "cholmod" if PETSc.Sys.hasExternalPackage("cholmod") else "mumps",
    },
}
DEFAULT_PRESET = "fast"
_OURS: dict = {}   # option names set by make_ksp (not by the user) and their values


def set_options(prefix: str, defaults: dict) -> None:
    """Put ``defaults`` into PETSc's options database under ``prefix``.

    The database is global: keys this module set for an earlier KSP (of another
    preset) are removed, keys the user set (command line, PETSC_OPTIONS) are never
    overwritten.
    """
    opts = PETSc.Options()
    wanted = {prefix + key: value for key, value in defaults.items()}
    for name in [n for n in _OURS if n.startswith(prefix) and n not in wanted]:
        opts.delValue(name)
        del _OURS[name]
    for name, value in wanted.items():
        if name in _OURS or not opts.hasName(name):
            opts[name] = value
            _OURS[name] = value


def make_ksp(A: PETSc.Mat, V, rtol=1e-8, max_iterations=5000, prefix="bonefem_",
             preset: str | None = None) -> PETSc.KSP:
    """CG + GAMG (Chebyshev/Jacobi smoothing) on ``A`` with the rigid-body near null space.

    ``preset`` picks an option set of ``PRESETS`` (default ``DEFAULT_PRESET``). Options
    can be overridden from the command line or PETSC_OPTIONS with the ``bonefem_``
    prefix, e.g. ``-bonefem_pc_gamg_threshold 0.05``; they win over the preset.
    """
    preset = preset or DEFAULT_PRESET
    if preset not in PRESETS or preset == "matfree":
        raise ValueError(f"unknown solver preset {preset!r} for an assembled matrix; expected "
                         f"one of {sorted(set(PRESETS) - {'matfree'})}")
    A.setNearNullSpace(rigid_body_modes(V))
    set_options(prefix, {
        "ksp_type": "cg",
        "ksp_rtol": rtol,
        "ksp_atol": 0.0,
        "ksp_max_it": max_iterations,
        "ksp_norm_type": "unpreconditioned",
        **PRESETS[preset],
    })
    ksp = PETSc.KSP().create(A.getComm())
    ksp.setOptionsPrefix(prefix)
    ksp.setOperators(A)
    ksp.setFromOptions()
    return ksp


@dataclass
class SolveStats:
    iterations: int
    residual: float
    converged_reason: str
    seconds: float


_REASONS = {v: k for k, v in vars(PETSc.KSP.ConvergedReason).items() if isinstance(v, int)}


def solve(ksp: PETSc.KSP, b: PETSc.Vec, x: PETSc.Vec) -> SolveStats:
    """Solve and raise :class:`SolverError` unless PETSc reports convergence."""
    t0 = time.perf_counter()
    ksp.solve(b, x)
    seconds = time.perf_counter() - t0
    reason = ksp.getConvergedReason()
    stats = SolveStats(int(ksp.getIterationNumber()), float(ksp.getResidualNorm()),
                       _REASONS.get(reason, str(reason)), seconds)
    if reason <= 0:
        err = SolverError(f"the linear solve did not converge: {stats.converged_reason} after "
                          f"{stats.iterations} iterations (residual {stats.residual:.3e}); "
                          "no result was written. Raise solver.max_iterations or check the "
                          "specimen for loosely connected bone.")
        err.reason = stats.converged_reason
        raise err
    if not np.isfinite(stats.residual):
        raise SolverError("the linear solve produced a non-finite residual; no result was written")
    return stats
