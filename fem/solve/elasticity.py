"""Linear elasticity on a micro-FE mesh: assemble, solve, and the per-element fields.

Isotropic material with a per-element Young's modulus (DG0 field, MPa) and one
Poisson ratio; P1 (trilinear on hexahedra) vector displacement in mm.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from fem.errors import SolverError
from fem.solve import loadcases, memory, solver

BREAKDOWNS = ("DIVERGED_INDEFINITE_PC", "DIVERGED_INDEFINITE_MAT", "DIVERGED_BREAKDOWN", "DIVERGED_NANORINF",
              "DIVERGED_PC_FAILED")


@dataclass
class Solution:
    """Results of one compression solve; per-element arrays are for the local cells.

    reaction_force : N, z force on the top face (negative in compression)
    displacement_top : mm, prescribed top z displacement
    strain_energy : mJ (N mm)
    sed, ees, von_mises, volume : (n_local_cells,) arrays, MPa (= mJ/mm^3), -, MPa, mm^3;
        ``sed`` is the SED of the element-centre strain, ``ees`` = sqrt(2 sed / E)
        (:func:`element_fields`)
    sed_average : (n_local_cells,) the element-average SED (integral / volume), MPa
    """

    reaction_force: float
    displacement_top: float
    strain_energy: float
    sed: np.ndarray
    ees: np.ndarray
    von_mises: np.ndarray
    volume: np.ndarray
    sed_average: np.ndarray
    stats: solver.SolveStats
    dofs: int
    nodes: int
    elements: int
    timings: dict = field(default_factory=dict)
    u: object = None
    modulus: object = None
    solver_info: dict = field(default_factory=dict)


def _sigma(u, E, nu):
    import ufl

    mu = E / (2.0 * (1.0 + nu))
    lmbda = E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    eps = ufl.sym(ufl.grad(u))
    return 2.0 * mu * eps + lmbda * ufl.tr(eps) * ufl.Identity(len(u))


@dataclass
class System:
    """The assembled compression problem: spaces, forms and the PETSc system.

    A : stiffness matrix (MPIAIJ, block size 3) with Dirichlet rows and columns
        replaced by the identity; b : right-hand side (lifted Dirichlet values)
    top_dofs : local unrolled indices of the owned top-face z DOFs
    """

    V: object
    Q: object
    E: object
    nu: object
    dx: object
    a: object
    bcs: list
    top_dofs: np.ndarray
    A: PETSc.Mat | None
    b: PETSc.Vec | None


def compression_problem(msh, modulus_cells, poisson, test, strain, height, pins=None) -> System:
    """Spaces, forms and boundary conditions of a compression test (``A``, ``b`` left None)."""
    import dolfinx.fem
    import ufl

    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1, (3,)))
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    E = dolfinx.fem.Function(Q, name="modulus")
    n_cells = msh.topology.index_map(3).size_local
    E.x.array[:n_cells] = modulus_cells
    E.x.scatter_forward()
    nu = dolfinx.fem.Constant(msh, PETSc.ScalarType(poisson))

    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    # 2x2x2 Gauss points integrate the Q1 stiffness of a box element exactly.
    dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": 2})
    a = dolfinx.fem.form(ufl.inner(_sigma(u, E, nu), ufl.sym(ufl.grad(v))) * dx)
    bcs, top_dofs = loadcases.boundary_conditions(V, test, strain, height, pins)
    return System(V, Q, E, nu, dx, a, bcs, top_dofs, None, None)


def assemble_system(msh, modulus_cells, poisson, test, strain, height, pins=None) -> System:
    """Assemble K u = f for a compression test (arguments as in :func:`solve_compression`)."""
    import dolfinx.fem
    import dolfinx.fem.petsc
    import ufl

    system = compression_problem(msh, modulus_cells, poisson, test, strain, height, pins)
    a, bcs, V = system.a, system.bcs, system.V
    zero = dolfinx.fem.Constant(msh, PETSc.ScalarType((0.0, 0.0, 0.0)))
    L = dolfinx.fem.form(ufl.inner(zero, ufl.TestFunction(V)) * system.dx)
    system.A = dolfinx.fem.petsc.assemble_matrix(a, bcs=bcs)
    system.A.assemble()
    b = dolfinx.fem.petsc.assemble_vector(L)
    dolfinx.fem.petsc.apply_lifting(b, [a], bcs=[bcs])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    dolfinx.fem.petsc.set_bc(b, bcs)
    system.b = b
    return system


def solve_compression(msh, modulus_cells: np.ndarray, poisson: float, test: str,
                      strain: float, height: float, pins=None, rtol=1e-7,
                      max_iterations=5000, preset: str | None = None,
                      voxel_spacing=None) -> Solution:
    """Solve one displacement-controlled compression test along z.

    Parameters
    ----------
    msh : dolfinx.mesh.Mesh spanning z in [0, height] mm
    modulus_cells : (n_local_cells,) Young's modulus of each local cell, MPa
    poisson : Poisson ratio
    test : "uniaxial" or "axial" (see fem.solve.loadcases)
    strain : apparent strain along z (negative = compression)
    pins : (2, 3) pin coordinates for "uniaxial" (fem.solve.loadcases.pin_points)
    preset : solver: "matfree" or a key of fem.solve.solver.PRESETS; None = the default:
        "matfree" (matrix-free voxel operator + geometric multigrid) on a voxel mesh,
        "fast" (assembled, GAMG) on any other mesh; "demo" = the DOLFINx elasticity
        demo's GAMG, the benchmark baseline
    voxel_spacing : (3,) element edges (mm) when ``msh`` is a voxel mesh (box
        elements on a lattice); required for "matfree"
    """
    import dolfinx.fem
    import dolfinx.la
    import ufl

    if preset is None:
        preset = "matfree" if voxel_spacing is not None else solver.DEFAULT_PRESET
    if preset == "matfree" and voxel_spacing is None:
        raise ValueError("the matrix-free solver needs a voxel mesh (voxel_spacing)")
    comm = msh.comm
    timings = {}
    t0 = time.perf_counter()
    if preset == "matfree":
        system = compression_problem(msh, modulus_cells, poisson, test, strain, height, pins)
        uh = dolfinx.fem.Function(system.V, name="displacement")
        try:
            stats, info = _solve_matfree(system, uh, voxel_spacing, modulus_cells, poisson, test,
                                         pins, rtol, max_iterations, timings)
        except SolverError as err:
            # A breakdown of the multigrid preconditioner (not slow convergence) falls
            # back to the assembled solver, so one odd specimen does not stop a trial.
            if err.reason not in BREAKDOWNS:
                raise
            uh.x.array[:] = 0.0
            system = assemble_system(msh, modulus_cells, poisson, test, strain, height, pins)
            stats = _solve_assembled(system, uh, rtol, max_iterations, solver.DEFAULT_PRESET)
            stats.converged_reason += f" (assembled GAMG after a matrix-free {err.reason})"
            info = {"ksp": "cg", "pc": "gamg", "preset": solver.DEFAULT_PRESET}
    else:
        system = assemble_system(msh, modulus_cells, poisson, test, strain, height, pins)
        timings["assembly"] = time.perf_counter() - t0
        uh = dolfinx.fem.Function(system.V, name="displacement")
        stats = _solve_assembled(system, uh, rtol, max_iterations, preset)
        info = {"ksp": "cg", "pc": "gamg", "preset": preset}
    V, E, nu, dx, top_dofs = system.V, system.E, system.nu, system.dx, system.top_dofs
    v = ufl.TestFunction(V)
    uh.x.scatter_forward()
    timings["solve"] = stats.seconds

    t0 = time.perf_counter()
    # Reaction: the residual K u (no boundary conditions) at the top-face z DOFs.
    r = dolfinx.fem.assemble_vector(dolfinx.fem.form(ufl.inner(_sigma(uh, E, nu), ufl.sym(ufl.grad(v))) * dx))
    r.scatter_reverse(dolfinx.la.InsertMode.add)
    reaction = comm.allreduce(float(r.array[top_dofs].sum()), op=MPI.SUM)

    sed_form = 0.5 * ufl.inner(_sigma(uh, E, nu), ufl.sym(ufl.grad(uh)))
    energy = comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(sed_form * dx)), op=MPI.SUM)
    fields = element_fields(uh, E, nu, dx, modulus_cells)
    timings["postprocess"] = time.perf_counter() - t0

    imap = V.dofmap.index_map
    return Solution(
        reaction_force=reaction, displacement_top=strain * height, strain_energy=energy,
        sed=fields["sed"], ees=fields["ees"], von_mises=fields["von_mises"],
        volume=fields["volume"], sed_average=fields["sed_average"], stats=stats,
        dofs=imap.size_global * V.dofmap.index_map_bs, nodes=imap.size_global,
        elements=msh.topology.index_map(3).size_global, timings=timings, u=uh, modulus=E,
        solver_info=info)


def element_fields(uh, E, nu, dx, modulus_cells) -> dict:
    """Per-element fields of a displacement ``uh`` for the local cells.

    Returns a dict of (n_local_cells,) arrays: ``volume`` (mm^3); ``sed`` (MPa), the strain
    energy density of the element-centre strain, 0.5 sigma(eps_c) : eps_c; ``ees`` (-), the
    effective strain sqrt(2 sed / E); ``von_mises`` (MPa) of the centre stress; and
    ``sed_average`` (MPa), the element average of the SED (its integral / volume).

    The centre strain of a trilinear box is its mean strain (each strain component is
    multilinear), and it is what Faim and ParOSol evaluate, the tools whose results the
    Pistoia criterion was calibrated against (Pistoia et al. 2002); the element average of
    the (quadratic) SED is larger wherever the strain varies across the element, e.g. by
    (lambda + 2 mu) kappa^2 c^2 / 24 under bending of curvature kappa across a height c.
    On a P1 tetrahedron the strain is constant and both agree.
    """
    import dolfinx.fem
    import ufl

    Q = E.function_space
    msh = Q.mesh
    n_cells = msh.topology.index_map(3).size_local
    w = ufl.TestFunction(Q)
    volume = dolfinx.fem.assemble_vector(dolfinx.fem.form(w * dx)).array[:n_cells].copy()
    sed_form = 0.5 * ufl.inner(_sigma(uh, E, nu), ufl.sym(ufl.grad(uh)))
    sed_average = dolfinx.fem.assemble_vector(dolfinx.fem.form(sed_form * w * dx)).array[:n_cells] / volume
    # DG0 interpolation evaluates at the reference cell's centre (the box centre, the
    # tetrahedron's centroid): the centre strain, the centre stress, their SED.
    points = Q.element.interpolation_points()
    sed = dolfinx.fem.Function(Q)
    sed.interpolate(dolfinx.fem.Expression(sed_form, points))
    sed = sed.x.array[:n_cells].copy()
    T = dolfinx.fem.functionspace(msh, ("DG", 0, (3, 3)))
    s = dolfinx.fem.Function(T)
    s.interpolate(dolfinx.fem.Expression(_sigma(uh, E, nu), points))
    sig = s.x.array.reshape(-1, 3, 3)[:n_cells]
    dev = sig - np.trace(sig, axis1=1, axis2=2)[:, None, None] * np.eye(3) / 3.0
    von_mises = np.sqrt(1.5 * np.einsum("nij,nij->n", dev, dev))
    ees = np.sqrt(2.0 * np.maximum(sed, 0.0) / np.asarray(modulus_cells, dtype=float))
    return {"volume": volume, "sed": sed, "ees": ees, "von_mises": von_mises,
            "sed_average": sed_average}


def _solve_assembled(system: System, uh, rtol, max_iterations, preset) -> solver.SolveStats:
    """CG + GAMG on the assembled matrix; one retry with the robust smoother after a breakdown."""
    A, b, V = system.A, system.b, system.V
    ksp = solver.make_ksp(A, V, rtol=rtol, max_iterations=max_iterations, preset=preset)
    try:
        stats = solver.solve(ksp, b, uh.x.petsc_vec)
    except SolverError as err:
        # A breakdown of the default preconditioner (not slow convergence) gets one retry
        # with the robust smoother settings; anything else, or a second failure, is an error.
        if preset != solver.DEFAULT_PRESET or err.reason not in BREAKDOWNS:
            raise
        ksp.destroy()
        uh.x.petsc_vec.set(0.0)
        ksp = solver.make_ksp(A, V, rtol=rtol, max_iterations=max_iterations, preset="robust")
        stats = solver.solve(ksp, b, uh.x.petsc_vec)
        stats.converged_reason += f" (robust preset after {err.reason})"
    finally:
        ksp.destroy()
        A.destroy()
        b.destroy()
    return stats


def _solve_matfree(system: System, uh, spacing, modulus_cells, poisson, test, pins, rtol,
                   max_iterations, timings):
    """Matrix-free CG + geometric multigrid (fem.solve.multigrid); returns (stats, info)."""
    from fem.solve.multigrid import VoxelMultigrid

    t0 = time.perf_counter()
    memory.release_free_heap()
    mg = VoxelMultigrid(system.V, spacing, modulus_cells, poisson, system.bcs, test, pins)
    b = mg.rhs(system.bcs)
    # The solve needs only the constrained DOFs (in mg) and b: drop the DirichletBCs and
    # their subspaces' dofmaps (the caller no longer uses them; a fallback rebuilds them).
    system.bcs = None
    memory.release_free_heap()
    info = {"ksp": "cg", "pc": "geometric multigrid (matrix-free voxel operator)",
            "preset": "matfree", "levels": mg.levels, "level_dofs": mg.level_dofs()}
    ksp = None
    try:
        # set-up of the hierarchy and the preconditioner (smoothers, coarsest factorisation)
        ksp = mg.ksp(rtol, max_iterations, fixed=True)
        timings["assembly"] = time.perf_counter() - t0
        stats = solver.solve(ksp, b, uh.x.petsc_vec)
    except PETSc.Error as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            raise exc.__cause__ from None     # Ctrl-C inside a Python callback: not a breakdown
        # A failed set-up of the preconditioner, e.g. CHOLMOD refusing a singular coarsest
        # level (the same matrix on every rank, so every rank gets here): a breakdown.
        raise SolverError(f"the multigrid preconditioner failed (PETSc error {exc.ierr})",
                          reason="DIVERGED_PC_FAILED") from exc
    finally:
        if ksp is not None:
            ksp.destroy()
        b.destroy()
        mg.destroy()
        memory.release_free_heap()      # before the post-processing's allocations
    return stats, info
