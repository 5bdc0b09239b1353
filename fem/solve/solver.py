"""PETSc solver set-up for micro-FE elasticity: CG + smoothed-aggregation AMG (GAMG).

GAMG gets the six rigid-body modes as its near null space, as in the DOLFINx
elasticity demo; without them its aggregates cannot represent rotations and the
iteration count grows with the model size.
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
    return PETSc.NullSpace().create(vectors=[v.petsc_vec for v in basis])


def make_ksp(A: PETSc.Mat, V, rtol=1e-8, max_iterations=5000, prefix="bonefem_") -> PETSc.KSP:
    """CG + GAMG (Chebyshev/Jacobi smoothing) on ``A`` with the rigid-body near null space.

    Options can be overridden from the command line or PETSC_OPTIONS with the
    ``bonefem_`` prefix, e.g. ``-bonefem_pc_gamg_threshold 0.02``.
    """
    A.setNearNullSpace(rigid_body_modes(V))
    opts = PETSc.Options()
    defaults = {
        "ksp_type": "cg",
        "ksp_rtol": rtol,
        "ksp_atol": 0.0,
        "ksp_max_it": max_iterations,
        "ksp_norm_type": "unpreconditioned",
        "pc_type": "gamg",
        "pc_gamg_type": "agg",
        "pc_gamg_agg_nsmooths": 1,
        "mg_levels_ksp_type": "chebyshev",
        "mg_levels_pc_type": "jacobi",
        "mg_levels_ksp_chebyshev_esteig_steps": 10,
    }
    for key, value in defaults.items():
        if not opts.hasName(prefix + key):
            opts[prefix + key] = value
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
        raise SolverError(f"the linear solve did not converge: {stats.converged_reason} after "
                          f"{stats.iterations} iterations (residual {stats.residual:.3e}); "
                          "no result was written. Raise solver.max_iterations or check the "
                          "specimen for loosely connected bone.")
    if not np.isfinite(stats.residual):
        raise SolverError("the linear solve produced a non-finite residual; no result was written")
    return stats
