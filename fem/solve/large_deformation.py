"""Nonlinear compression with large deformation: the reference implementation (DOLFINx Newton).

The same tissue model as fem.solve.nonlinear (secant damage driven by principal strains,
separate tension and compression yield strains, bilinear post-yield), in a total
Lagrangian formulation: St. Venant-Kirchhoff material with the element's secant modulus,
Green-Lagrange strain E = (F^T F - I) / 2, first Piola stress P = F S, residual
integral P : grad(v) dX. The yield index is judged on the principal Green-Lagrange strains
at the element centre (equal to the small strains when rotations are small). Each load
step runs DOLFINx's NewtonSolver (dolfinx.fem.petsc.NonlinearProblem, exact tangent of the
hyperelastic part, MUMPS LU: the tangent turns indefinite past a bifurcation) for fixed
secant moduli, then updates the moduli, until both settle (a staggered scheme).

Cost: an assembled tangent and a sparse LU per Newton iteration, so it serves small
models (columns, cubes, a few 10^4 DOF) and checks of the fast small-strain path; a
1 M DOF specimen is out of reach this way (docs/nonlinear.md).

Units: mm, N, MPa.
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from fem.errors import SolverError
from fem.solve.nonlinear import CurveResult, TissueYield, stress_fields, secant_factor, yield_index


def _green_lagrange(u):
    import ufl

    F = ufl.Identity(3) + ufl.grad(u)
    return 0.5 * (F.T * F - ufl.Identity(3))


def compression_curve_large(msh, modulus_cells, poisson, boundary, strain_max, steps=20,
                            tissue: TissueYield | None = None, fraction_cells=None,
                            newton_rtol=1e-9, secant_tol=1e-3, max_secant=40, drop=0.1,
                            log=lambda *a: None) -> CurveResult:
    """Load a hexahedral mesh along z with large deformation and tissue yield.

    Parameters
    ----------
    msh : DOLFINx mesh (any geometry: voxel, or voxel with perturbed nodes)
    modulus_cells : (n_local_cells,) intact element moduli, MPa
    boundary : callable(strain, V) -> (bcs, top_dofs): Dirichlet conditions for an
        apparent strain, and the owned z DOFs on which the reaction force is summed (e.g.
        ``lambda s, V: loadcases.boundary_conditions(V, test, s, height, pins)``)
    strain_max : last apparent strain (signed); ``steps`` equal steps up to it
    tissue : yield properties (fem.solve.nonlinear.TissueYield)
    fraction_cells : (n_local_cells,) bone volume fraction (weights the yielded volume)
    newton_rtol : relative residual tolerance of each Newton solve
    """
    import dolfinx.fem
    import dolfinx.fem.petsc
    import dolfinx.la
    import dolfinx.nls.petsc
    import ufl

    tissue = tissue or TissueYield()
    t_start = time.perf_counter()
    comm = msh.comm
    E0 = np.asarray(modulus_cells, dtype=float)
    n = len(E0)
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1, (3,)))
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    T = dolfinx.fem.functionspace(msh, ("DG", 0, (3, 3)))
    Emod = dolfinx.fem.Function(Q, name="secant_modulus")
    u = dolfinx.fem.Function(V, name="displacement")
    v = ufl.TestFunction(V)
    nu = float(poisson)
    lam = Emod * nu / ((1 + nu) * (1 - 2 * nu))
    mu = Emod / (2 * (1 + nu))
    Egl = _green_lagrange(u)
    S = lam * ufl.tr(Egl) * ufl.Identity(3) + 2 * mu * Egl
    dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 2})
    residual = ufl.inner((ufl.Identity(3) + ufl.grad(u)) * S, ufl.grad(v)) * dx
    R_form = dolfinx.fem.form(residual)
    strain_expr = dolfinx.fem.Expression(Egl, T.element.interpolation_points())
    strain_fn = dolfinx.fem.Function(T)
    vol = dolfinx.fem.assemble_vector(dolfinx.fem.form(ufl.TestFunction(Q) * dx)).array[:n]
    volume = vol * (np.ones(n) if fraction_cells is None else np.asarray(fraction_cells, float))
    total_volume = comm.allreduce(float(volume.sum()), op=MPI.SUM)

    def centre_index():
        strain_fn.interpolate(strain_expr)
        return yield_index(strain_fn.x.array.reshape(-1, 3, 3)[:n], tissue)

    def reaction(top):
        r = dolfinx.fem.assemble_vector(R_form)
        r.scatter_reverse(dolfinx.la.InsertMode.add)
        return comm.allreduce(float(r.array[top].sum()), op=MPI.SUM)

    def newton_solver(bcs):
        # one per load step (the boundary values change); the forms are compiled once
        problem = dolfinx.fem.petsc.NonlinearProblem(residual, u, bcs=bcs)
        solver = dolfinx.nls.petsc.NewtonSolver(comm, problem)
        solver.convergence_criterion = "residual"
        solver.rtol, solver.atol, solver.max_it = newton_rtol, 1e-12, 30
        solver.error_on_nonconvergence = False
        ksp = solver.krylov_solver
        ksp.setType("preonly")
        ksp.getPC().setType("lu")
        ksp.getPC().setFactorSolverType("mumps")
        return problem, solver

    def newton(solver):
        its, converged = solver.solve(u)
        if not converged:
            raise SolverError(f"the Newton solve did not converge in {its} iterations; no result was written")
        u.x.scatter_forward()
        return its

    factor = np.ones(n)
    r_hist = np.zeros(n)
    strain, force, yielded, iters, newton_its = [0.0], [0.0], [0.0], [0], [0]
    peak, fields, u_peak = 0.0, {}, None
    ds = strain_max / steps
    for step in range(1, steps + 1):
        s = ds * step
        bcs, top = boundary(s, V)
        problem, solver = newton_solver(bcs)
        f_prev, F_old, total = factor, None, 0
        for it in range(1, max_secant + 1):
            Emod.x.array[:n] = E0 * f_prev
            Emod.x.scatter_forward()
            total += newton(solver)
            r = np.maximum(r_hist, centre_index())
            f_new = secant_factor(r, tissue)
            F = reaction(top)
            change = comm.allreduce(float(np.abs(f_new - f_prev).max(initial=0.0)), op=MPI.MAX)
            settled = change <= 1e-2 * secant_tol or (
                F_old is not None and abs(F - F_old) <= secant_tol * abs(F) and change <= 10 * secant_tol)
            F_old, f_prev = F, f_new
            if settled:
                break
        else:
            raise SolverError(f"the secant iteration did not settle at apparent strain {s:.5f}")
        factor, r_hist = f_new, r
        strain.append(s)
        force.append(F)
        yielded.append(comm.allreduce(float(volume[r > 1].sum()), op=MPI.SUM) / total_volume)
        iters.append(it)
        newton_its.append(total)
        log(f"large deformation: strain {s:.5f}  force {F:.4f} N  yielded {yielded[-1]:.4f}  "
            f"{it} secant, {total} Newton iterations")
        if abs(F) > peak:
            peak = abs(F)
            # (second Piola-Kirchhoff) von Mises stress and energy density of the centre strain
            vm, sed = stress_fields(strain_fn.x.array.reshape(-1, 3, 3)[:n], E0 * factor, nu)
            fields = {"yield_index": r.copy(), "secant_modulus": E0 * factor, "von_mises": vm, "sed": sed}
            u_peak = u.x.array.copy()
        elif abs(F) < (1 - drop) * peak:
            break
    strain, force = np.array(strain), np.array(force)
    k = int(np.argmax(np.abs(force)))
    peaked = bool(np.abs(force[k:]).min() < abs(force[k]) * (1 - 1e-3))
    if u_peak is not None:
        u.x.array[:] = u_peak
    return CurveResult(strain, force, np.array(yielded), np.array(iters), np.array(newton_its), k,
                       peaked, time.perf_counter() - t_start, fields, u)
