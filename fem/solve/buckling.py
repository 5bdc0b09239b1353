"""Linear buckling analysis: the load factor at which the compressed structure loses stability.

Geometric nonlinearity to first order: with the stress sigma0 of a linear solve at a
reference load, the second variation of the potential energy gains the geometric
(initial-stress) stiffness

    K_G(du, v) = integral grad(du) sigma0 : grad(v) dx,

and the structure buckles at the smallest load factor lambda > 0 for which K + lambda K_G
is singular (Bazant & Cedolin, Stability of Structures, ch. 2). It is solved as the
generalized symmetric eigenproblem  -K_G phi = theta K phi  (K symmetric positive definite
with the Dirichlet rows replaced by the identity, K_G zero there) for its largest theta,
lambda = 1 / theta, with SLEPc (Krylov-Schur, shift-and-invert through a factorisation of
K: MUMPS, or CG + GAMG for models too large to factor).

For a pinned-pinned voxel column this gives Euler's load pi^2 E I / L^2 up to the
discretisation error of trilinear voxels in bending (tests/test_nonlinear.py). The
buckling load of a trabecular specimen says when its struts would bow out under the
linear load pattern; it is an upper bound of the large-deformation strength where
imperfections and yield lower it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc


@dataclass
class BucklingResult:
    """Load factors (ascending, > 0) of the first modes and the first mode shape.

    factors : (k,) lambda: the buckling load is lambda x the reference load
    mode : DOLFINx Function, the first buckling mode (normalised to max |u| = 1)
    """

    factors: np.ndarray
    mode: object


def _sigma(u, E, nu):
    import ufl

    mu = E / (2.0 * (1.0 + nu))
    lmbda = E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    eps = ufl.sym(ufl.grad(u))
    return 2.0 * mu * eps + lmbda * ufl.tr(eps) * ufl.Identity(len(u))


def buckling_factors(u0, E, nu, bcs, nev=3, direct=True) -> BucklingResult:
    """Buckling load factors of the prestress of the displacement ``u0``.

    u0 : DOLFINx Function (P1 vector), the linear solution at the reference load
    E : DOLFINx Function (DG0) or Constant, Young's modulus, MPa; nu : Poisson ratio
    bcs : the DirichletBCs of that solve (their values are irrelevant: the buckling
        mode is a perturbation with zero prescribed displacement)
    nev : number of modes wanted
    direct : factor K with MUMPS (exact shift-and-invert); False: CG + GAMG at rtol 1e-10
    """
    import dolfinx.fem
    import dolfinx.fem.petsc
    import ufl
    from slepc4py import SLEPc

    V = u0.function_space
    msh = V.mesh
    comm = msh.comm
    du, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 2})
    nu_c = dolfinx.fem.Constant(msh, PETSc.ScalarType(nu))
    a = dolfinx.fem.form(ufl.inner(_sigma(du, E, nu_c), ufl.sym(ufl.grad(v))) * dx)
    sig0 = _sigma(u0, E, nu_c)
    # minus the geometric stiffness: positive where the prestress is compressive
    kg = dolfinx.fem.form(-ufl.inner(ufl.dot(ufl.grad(du), sig0), ufl.grad(v)) * dx)
    K = dolfinx.fem.petsc.assemble_matrix(a, bcs=bcs)
    K.assemble()
    B = dolfinx.fem.petsc.assemble_matrix(kg, bcs=bcs, diagonal=0.0)
    B.assemble()

    eps = SLEPc.EPS().create(comm)
    eps.setOperators(B, K)
    eps.setProblemType(SLEPc.EPS.ProblemType.GHEP)
    eps.setDimensions(nev=nev)
    eps.setWhichEigenpairs(SLEPc.EPS.Which.LARGEST_REAL)
    eps.setTolerances(1e-10, 500)
    st = eps.getST()
    st.setType(SLEPc.ST.Type.SHIFT)     # theta of K^-1 B: no shift, K is the SPD "mass"
    ksp = st.getKSP()
    if direct:
        ksp.setType("preonly")
        ksp.getPC().setType("cholesky")
        ksp.getPC().setFactorSolverType("mumps")
        # MUMPS's workspace estimate fell short on 2 ranks (INFOG(1) = -9, "workspace too
        # small", once in tests/test_trial_buckling.py on 8 December 2026): allow 100 %
        # more than the estimate instead of the default 20-35 %.
        prefix = "bonefem_buckling_"
        ksp.setOptionsPrefix(prefix)
        PETSc.Options()[f"{prefix}mat_mumps_icntl_14"] = 100
        ksp.setFromOptions()
    else:
        from fem.solve.solver import rigid_body_modes

        K.setNearNullSpace(rigid_body_modes(V))
        ksp.setType("cg")
        ksp.getPC().setType("gamg")
        ksp.setTolerances(rtol=1e-10)
    eps.solve()
    n = eps.getConverged()
    thetas, vecs = [], []
    vr = K.createVecRight()
    for i in range(n):
        theta = eps.getEigenpair(i, vr).real
        if theta > 0:
            thetas.append(theta)
            vecs.append(vr.copy())
    if not thetas:
        from fem.errors import SolverError

        raise SolverError("the buckling analysis found no positive load factor "
                          f"({n} eigenpairs converged): the reference load puts nothing in compression")
    order = np.argsort(thetas)[::-1]
    mode = dolfinx.fem.Function(V, name="buckling_mode")
    vecs[order[0]].copy(mode.x.petsc_vec)
    mode.x.scatter_forward()
    peak = comm.allreduce(float(np.abs(mode.x.array).max(initial=0.0)), op=MPI.MAX)
    if peak > 0:
        mode.x.array[:] /= peak
    for obj in [eps, K, B, vr, *vecs]:
        obj.destroy()
    return BucklingResult(1.0 / np.array(thetas)[order], mode)


def specimen_buckling(sol, extent, pins, test: str, strain: float, nu: float) -> dict:
    """First buckling load of a compressed specimen from its linear solve.

    sol : fem.solve.elasticity.Solution of the linear compression (``u``, ``modulus``,
        ``reaction_force``) of a specimen spanning [0, extent] (mm)
    pins, test, strain : the load case of that solve (fem.solve.loadcases)
    nu : Poisson ratio

    The modes are sought with the bottom face also held sideways and the top face as in
    the load case: pieces joined only through the platens would otherwise slide freely, a
    mode with no stiffness in K and K_G alike (docs/nonlinear.md).

    Returns {"load_N": lambda x |reference reaction| (N), "factor": lambda at the case's
    strain, "mode_share": participation ratio of the first mode's nodal amplitudes
    (1: every node moves alike; about n/N: a mode on n of N nodes, one strut),
    "seconds"}; same on every rank.
    """
    import time

    import dolfinx.fem
    import dolfinx.mesh

    from fem.solve.loadcases import boundary_conditions

    t0 = time.perf_counter()
    V = sol.u.function_space
    msh, comm = V.mesh, V.mesh.comm
    bcs, _ = boundary_conditions(V, test, strain, extent[2], pins)
    bottom = dolfinx.mesh.locate_entities(msh, 0, lambda x: np.abs(x[2]) < 1e-6 * extent[2])
    for c in (0, 1):
        sub = V.sub(c)
        bcs.append(dolfinx.fem.dirichletbc(PETSc.ScalarType(0.0),
                                           dolfinx.fem.locate_dofs_topological(sub, 0, bottom), sub))
    res = buckling_factors(sol.u, sol.modulus, nu, bcs, nev=2)
    # participation ratio (sum a^2)^2 / (N sum a^4) over the owned nodes of all ranks
    owned = V.dofmap.index_map.size_local
    a2 = np.sum(res.mode.x.array.reshape(-1, 3)[:owned] ** 2, axis=1)
    s1, s2, n = (comm.allreduce(float(v), op=MPI.SUM) for v in (a2.sum(), np.sum(a2 ** 2), len(a2)))
    factor = float(res.factors[0])
    return {"load_N": factor * abs(sol.reaction_force), "factor": factor,
            "mode_share": s1 ** 2 / (n * s2) if s2 > 0 else 0.0,
            "seconds": time.perf_counter() - t0}
