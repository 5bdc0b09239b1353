"""PETSc solver set-up for micro-FE elasticity: CG + smoothed-aggregation AMG (GAMG).

GAMG gets the six rigid-body modes as its near null space, as in the DOLFINx
elasticity demo; without them its aggregates cannot represent rotations and the
iteration count grows with the model size.

Option sets for an assembled matrix (``PRESETS``): ``"demo"`` is the DOLFINx
elasticity demo's GAMG (every matrix entry kept in the aggregation graph), the baseline
of docs/benchmark.md; ``"fast"`` (the default on non-voxel meshes) drops weak graph
edges (``pc_gamg_threshold``), which gives smaller aggregates' graphs, a cheaper set-up
and fewer CG iterations on trabecular voxel models; ``"robust"`` is the fallback after a
breakdown. The matrix-free voxel solver's options are fem.solve.multigrid.OPTIONS.

Every KSP gets its options under a prefix of its own (:func:`options_prefix`), removed
after its solve, so solvers in one process never share options.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
from petsc4py import PETSc

from fem.errors import SolverError


def rigid_body_modes(coords: np.ndarray, comm) -> PETSc.NullSpace:
    """Orthonormal basis of the six rigid-body motions of owned nodes ``coords`` ((n, 3), mm).

    Vectors in the layout of a node-major vector field with 3 n owned entries on this
    rank: three translations, three rotations about the centroid, then Gram-Schmidt.
    Built here rather than with PETSc's NullSpace.createRigidBody, whose modes differed in
    the last digit from one call to the next in the same process (measured: the GAMG
    reaction force of one mesh solved four times varied by 2e-15), which breaks the
    bitwise reproducibility of a resumed trial. ``comm`` is the operator's communicator,
    not petsc4py's default (COMM_WORLD): in a batch each group of ranks solves its own
    job, and a COMM_WORLD object would be collective with ranks that are busy elsewhere.
    """
    mpi = comm.tompi4py() if hasattr(comm, "tompi4py") else comm     # a PETSc or mpi4py comm
    x = np.asarray(coords, dtype=float).reshape(-1, 3)
    x = x - mpi.allreduce(x.sum(axis=0)) / max(mpi.allreduce(len(x)), 1)
    vecs = []
    for mode in range(6):
        v = PETSc.Vec().createMPI((3 * len(x), PETSc.DECIDE), bsize=3, comm=comm)
        a = v.getArray().reshape(-1, 3)
        a[:] = 0.0
        if mode < 3:
            a[:, mode] = 1.0
        else:
            i, j = [(0, 1), (0, 2), (1, 2)][mode - 3]
            a[:, i], a[:, j] = -x[:, j], x[:, i]
        vecs.append(v)
    for i, v in enumerate(vecs):          # Gram-Schmidt (collective dot products)
        for w in vecs[:i]:
            v.axpy(-v.dot(w), w)
        v.scale(1.0 / v.norm())
    return PETSc.NullSpace().create(vectors=vecs, comm=comm)


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
}
DEFAULT_PRESET = "fast"
USER_PREFIX = "bonefem_"      # users override any option as -bonefem_<name> <value>
_SERIAL = itertools.count()


def options_prefix(defaults: dict) -> str:
    """A fresh options prefix holding ``defaults`` and the user's ``bonefem_`` options.

    Each solver gets its own prefix (as DOLFINx's LinearProblem does), so two solvers in
    one process never see each other's options; options the user gave under
    ``USER_PREFIX`` (command line, PETSC_OPTIONS) are copied in and win over the
    defaults. :func:`solve` removes the prefix's options after the solve: they cannot be
    removed right after ``setFromOptions``, because (GA)MG reads its level smoothers'
    options when the preconditioner is set up, at the first solve.
    """
    opts = PETSc.Options()
    prefix = f"bonefem{next(_SERIAL)}_"
    user = {name[len(USER_PREFIX):]: value for name, value in opts.getAll().items()
            if name.startswith(USER_PREFIX)}
    for key, value in {**defaults, **user}.items():
        opts[prefix + key] = value
    return prefix


def clear_options(prefix: str) -> None:
    """Remove every option under ``prefix`` from PETSc's (global) options database."""
    opts = PETSc.Options()
    for name in [n for n in opts.getAll() if n.startswith(prefix)]:
        opts.delValue(name)


def cg_options(rtol: float, max_iterations: int) -> dict:
    """CG to a relative residual ``rtol`` of the unpreconditioned residual."""
    return {"ksp_type": "cg", "ksp_rtol": rtol, "ksp_atol": 0.0, "ksp_max_it": max_iterations,
            "ksp_norm_type": "unpreconditioned"}


def make_ksp(A: PETSc.Mat, V, rtol=1e-7, max_iterations=5000, preset: str | None = None) -> PETSc.KSP:
    """CG + GAMG (Chebyshev/Jacobi smoothing) on ``A`` with the rigid-body near null space.

    ``preset`` picks an option set of ``PRESETS`` (default ``DEFAULT_PRESET``). Options
    can be overridden from the command line or PETSC_OPTIONS with the ``bonefem_``
    prefix, e.g. ``-bonefem_pc_gamg_threshold 0.05``; they win over the preset.
    """
    preset = preset or DEFAULT_PRESET
    if preset not in PRESETS:
        raise ValueError(f"unknown solver preset {preset!r} for an assembled matrix; expected "
                         f"one of {sorted(PRESETS)}")
    n = V.dofmap.index_map.size_local
    A.setNearNullSpace(rigid_body_modes(V.tabulate_dof_coordinates()[:n], A.getComm()))
    ksp = PETSc.KSP().create(A.getComm())
    ksp.setOptionsPrefix(options_prefix({**cg_options(rtol, max_iterations), **PRESETS[preset]}))
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
    try:
        ksp.solve(b, x)
    finally:
        clear_options(ksp.getOptionsPrefix())
    seconds = time.perf_counter() - t0
    reason = ksp.getConvergedReason()
    stats = SolveStats(int(ksp.getIterationNumber()), float(ksp.getResidualNorm()),
                       _REASONS.get(reason, str(reason)), seconds)
    if reason <= 0:
        raise SolverError(f"the linear solve did not converge: {stats.converged_reason} after "
                          f"{stats.iterations} iterations (residual {stats.residual:.3e}); "
                          "no result was written. Raise solver.max_iterations or check the "
                          "specimen for loosely connected bone.", reason=stats.converged_reason)
    if not np.isfinite(stats.residual):
        raise SolverError("the linear solve produced a non-finite residual; no result was written",
                          reason="DIVERGED_NANORINF")
    return stats
