"""Displacement-controlled nonlinear compression: tissue yield by a secant damage model.

Tissue model (per element, small strain): isotropic linear elasticity up to yield, then a
bilinear uniaxial response with post-yield modulus ``post_yield * E``, with separate
yield strains in tension and compression. Yield is judged on the principal strains at the
element centre (the strain Pistoia, Faim and ParOSol use): the yield index is

    r = max(eps_1 / eps_yt, -eps_3 / eps_yc, 0)

(eps_1 >= eps_2 >= eps_3 principal strains). Past yield (r > 1) the element's modulus is
the secant modulus of the bilinear law, ``E_s = E ((1 - h) / r + h)`` with h =
``post_yield``, so that in uniaxial stress sigma = E eps_y + h E (|eps| - eps_y) exactly.
The secant factor never recovers (r is the maximum over the loading history): a damage
model, which on a monotonic load path is the same as deformation plasticity. The load is
applied as a prescribed top displacement in steps; at each step the secant (Kacanov)
iteration solves K(E_s) u = 0 with the boundary values, recomputes E_s from u, and repeats
until the reaction force and the secant moduli settle.

Softening localises in single elements, so its load peak depends on the element size;
two regularisations are options of the law: a crack band (the softening branch stretched
by a reference size / the element size, :func:`crack_band_law`) and an integral-nonlocal
yield index (a Gaussian average over the bone within a radius, :class:`NonlocalAverage`);
docs/nonlinear.md measures both.

Why secant: a secant modulus is a per-element scaling of the voxel stiffness, which the
matrix-free operator and multigrid of fem.solve.multigrid already support (its fine-level
weights are the element moduli), so every iteration is one warm-started CG solve on the
same hierarchy. A consistent (Newton) tangent of this model is anisotropic per element and
would need an assembled matrix; it converges in fewer iterations but each costs an
assembly and an AMG set-up (docs/nonlinear.md measures both costs).

Units: mm, N, MPa. Strains are small strains; geometric nonlinearity is in
fem.solve.buckling (linear buckling) and fem.solve.large_deformation (the same tissue
model with large deformation, assembled: the reference for small models).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from fem.errors import SolverError
from fem.mesh.voxel import HEX_CORNERS
from fem.solve.solver import clear_options


@dataclass
class TissueYield:
    """Tissue yield properties.

    yield_compression, yield_tension : tissue yield strains (positive magnitudes).
        Defaults 0.81 % compression and 0.33 % tension, attributed to Bayraktar et al.
        2004 (J Biomech 37:27, human femoral trabecular tissue) but not checked in the
        source; the tensile value is about half what the sources reached imply
        (docs/nonlinear.md, "Tissue yield strains")
    post_yield : post-yield modulus as a fraction of E (5 %, the bilinear tissue law of
        that group's micro-FE models)
    softening : if True the uniaxial law softens past ``softening_onset`` (below); if
        False it hardens with ``post_yield`` for ever (no material peak)
    softening_onset : yield index r (strain / yield strain) where the stress starts to fall
    softening_end : yield index where the stress has fallen to ``residual``
    residual : residual stress as a fraction of the yield stress E eps_y
        (the softening parameters are illustrative, not measured: docs/nonlinear.md)
    crack_band : mm; 0 = off. With softening, the element size at which
        ``softening_end`` holds: an element of edge h softens to softening_end(h) =
        r_o + (softening_end - r_o) crack_band / h (crack band, Bazant & Oh 1983), so the
        energy it dissipates per unit area of its cross-section, h times the area of the
        softening branch, is the same at every element size (:func:`crack_band_law`)
    nonlocal_radius : mm; 0 = off. The yield index that drives the damage is the
        bone-volume-weighted Gaussian average (standard deviation ``nonlocal_radius``) of
        the elements' local indices (:class:`NonlocalAverage`; small-strain path only)
    """

    yield_compression: float = 0.0081
    yield_tension: float = 0.0033
    post_yield: float = 0.05
    softening: bool = False
    softening_onset: float = 2.0
    softening_end: float = 4.0
    residual: float = 0.1
    crack_band: float = 0.0
    nonlocal_radius: float = 0.0


def crack_band_law(tissue: TissueYield, spacing) -> TissueYield:
    """The tissue law of one element of edges ``spacing`` (mm) under crack-band regularisation.

    Softening localises in a band one element wide, so the energy dissipated per unit
    crack area is h g, with g the area of the softening branch per unit volume,
    g = (s_o - residual) (r_e - r_o) / 2 E eps_y^2 above the residual (E eps_y^2 in the
    mode that governs r). Keeping h g fixed at its value for h = ``crack_band`` stretches
    the branch: r_e(h) - r_o = (r_e - r_o) crack_band / h; onset, residual and the
    hardening part are unchanged. h is the edge of a cube of the element's volume.
    Returns ``tissue`` itself when the regularisation is off, else a copy with
    ``crack_band = 0`` and the element's ``softening_end``.
    """
    if not (tissue.softening and tissue.crack_band > 0):
        return tissue
    h = float(np.prod(np.asarray(spacing, dtype=float))) ** (1.0 / 3.0)
    ro = tissue.softening_onset
    return replace(tissue, crack_band=0.0,
                   softening_end=ro + (tissue.softening_end - ro) * tissue.crack_band / h)


# Smallest secant factor: a fully softened element keeps 0.1 % of E so that the operator
# stays positive definite (a zero modulus leaves nodes held by no element).
MIN_SECANT = 1e-3


@dataclass
class CurveResult:
    """A load-displacement curve and what is read from it.

    strain : (n,) applied apparent strain along z (signed), first point 0
    force : (n,) reaction force on the top face, N (signed, negative in compression)
    yielded : (n,) volume fraction of the bone with yield index > 1 at each point
    iterations : (n,) secant iterations of each point; inner_iterations: (n,) CG iterations (small strain) or Newton iterations (large deformation)
    peak_index : index of the ultimate load (largest |force|)
    peaked : True if the force fell after the peak (a true maximum, not the end point)
    """

    strain: np.ndarray
    force: np.ndarray
    yielded: np.ndarray
    iterations: np.ndarray
    inner_iterations: np.ndarray
    peak_index: int
    peaked: bool
    seconds: float
    fields: dict = field(default_factory=dict)     # per-element arrays at the peak
    u_peak: object = None                          # DOLFINx Function at the peak
    unsettled_strain: float | None = None          # softening: the step past the peak that did not settle


class NonlocalAverage:
    """Integral-nonlocal yield index (Pijaudier-Cabot & Bazant 1987) on a voxel lattice.

    r_nl(i) = sum_j w_j g(x_i - x_j) r_j / sum_j w_j g(x_i - x_j), g a Gaussian of standard
    deviation ``radius`` (mm; truncated at 3 of them), w_j the bone volume of element j.
    A uniform r is unchanged; a single strained element is spread over the elements within
    about ``radius``, so the onset of damage no longer follows the strain concentrations
    at voxel corners, which sharpen under refinement. The average runs on rank 0 (a
    gather of one value per element per call): SciPy's separable Gaussian filter on the
    lattice, with no bone outside the specimen.

    lattice : (n_local, 3) integer lattice coordinates of the local elements
    weights : (n_local,) bone volume of the local elements, mm^3
    spacing : (3,) element edges, mm
    """

    def __init__(self, lattice, weights, radius, spacing, comm):
        self.comm = comm
        self.sigma = float(radius) / np.asarray(spacing, dtype=float)
        parts = comm.gather((np.asarray(lattice, np.int64), np.asarray(weights, float)), root=0)
        if comm.rank == 0:
            ijk = np.concatenate([p[0] for p in parts])
            lo = ijk.min(axis=0)
            self.shape = tuple(ijk.max(axis=0) - lo + 1)
            self.flat = np.ravel_multi_index((ijk - lo).T, self.shape)
            self.counts = np.cumsum([len(p[0]) for p in parts])[:-1]
            self.w = np.zeros(self.shape)
            self.w.flat[self.flat] = np.concatenate([p[1] for p in parts])
            self.norm = self._filter(self.w)

    def _filter(self, a):
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(a, self.sigma, mode="constant", truncate=3.0)

    def __call__(self, r: np.ndarray) -> np.ndarray:
        parts = self.comm.gather(np.asarray(r, float), root=0)
        out = None
        if self.comm.rank == 0:
            a = np.zeros(self.shape)
            a.flat[self.flat] = np.concatenate(parts)
            avg = (self._filter(a * self.w) / np.maximum(self.norm, 1e-300)).flat[self.flat]
            out = np.split(avg, self.counts)
        return self.comm.scatter(out, root=0)


def centre_strains(u: np.ndarray, cells: np.ndarray, spacing) -> np.ndarray:
    """Small-strain tensors at the centres of box elements, (n_cells, 3, 3).

    u : (3 n_nodes,) node-major displacement, mm (owned and ghost nodes)
    cells : (n_cells, 8) local node indices in tensor-product corner order
    spacing : (3,) element edges, mm
    """
    h = np.asarray(spacing, dtype=float)
    # d N_a / d x_d at the centre = (+-1) / (4 h_d): +1 where corner a sits at the high side.
    dN = (2.0 * HEX_CORNERS - 1.0) / (4.0 * h)                       # (8, 3)
    ue = u.reshape(-1, 3)[cells]                                      # (n, 8, 3)
    grad = np.einsum("nai,ad->nid", ue, dN)                           # du_i / dx_d
    return 0.5 * (grad + grad.transpose(0, 2, 1))


def yield_index(eps: np.ndarray, tissue: TissueYield) -> np.ndarray:
    """Principal-strain yield index r (> 1: yielded) of strain tensors (n, 3, 3)."""
    principal = np.linalg.eigvalsh(eps)                               # ascending
    return np.maximum(np.maximum(principal[:, 2] / tissue.yield_tension,
                                 -principal[:, 0] / tissue.yield_compression), 0.0)


def tissue_stress(r: np.ndarray, tissue: TissueYield) -> np.ndarray:
    """Uniaxial stress / (E eps_y) of the tissue law at yield index r >= 0.

    r <= 1: r (elastic); then 1 + h (r - 1) (bilinear, h = post_yield); with softening,
    past r_o = softening_onset the stress falls linearly to ``residual`` at r_e =
    softening_end and stays there.
    """
    r = np.asarray(r, dtype=float)
    s = np.where(r <= 1.0, r, 1.0 + tissue.post_yield * (r - 1.0))
    if tissue.softening:
        ro, re, rho = tissue.softening_onset, tissue.softening_end, tissue.residual
        so = 1.0 + tissue.post_yield * (ro - 1.0)
        falling = so + (rho - so) * (r - ro) / (re - ro)
        s = np.where(r <= ro, s, np.where(r <= re, falling, rho))
    return s


def secant_factor(r: np.ndarray, tissue: TissueYield) -> np.ndarray:
    """E_s / E of the tissue law at yield index r (1 where r <= 1; at least MIN_SECANT).

    Without softening: (1 - h) / r + h, so that sigma = E eps_y + h E (|eps| - eps_y).
    The factor falls monotonically with r, so with r the maximum over the loading
    history it is a scalar damage variable 1 - factor that never heals.
    """
    r = np.maximum(r, 1.0)
    return np.maximum(tissue_stress(r, tissue) / r, MIN_SECANT)


def stress_fields(eps, modulus, poisson):
    """von Mises stress (MPa), strain energy density (MPa) of centre strains."""
    lam = modulus * poisson / ((1 + poisson) * (1 - 2 * poisson))
    mu = modulus / (2 * (1 + poisson))
    tr = np.trace(eps, axis1=1, axis2=2)
    sig = 2 * mu[:, None, None] * eps + (lam * tr)[:, None, None] * np.eye(3)
    dev = sig - np.trace(sig, axis1=1, axis2=2)[:, None, None] * np.eye(3) / 3.0
    vm = np.sqrt(1.5 * np.einsum("nij,nij->n", dev, dev))
    sed = 0.5 * np.einsum("nij,nij->n", sig, eps)
    return vm, sed


def compression_curve(msh, modulus_cells, poisson, test, height, pins, voxel_spacing,
                      tissue: TissueYield | None = None, strain_max=-0.03, steps=20,
                      fraction_cells=None, rtol=1e-5, max_iterations=2000, secant_tol=1e-3,
                      max_secant=40, drop=0.1, linear_rtol=1e-8, log=lambda *a: None) -> CurveResult:
    """Load a voxel specimen along z past its peak and return the load-displacement curve.

    Parameters
    ----------
    msh : DOLFINx voxel mesh spanning z in [0, height] mm
    modulus_cells : (n_local_cells,) intact element moduli, MPa
    test, pins : load case and uniaxial pins (fem.solve.loadcases)
    voxel_spacing : (3,) element edges, mm
    strain_max : last apparent strain (signed; negative = compression)
    steps : load steps between first yield and ``strain_max`` (cut in half on a step
        whose secant iteration does not settle)
    fraction_cells : (n_local_cells,) bone volume fraction per element (weights the
        yielded volume); ones if None
    rtol : CG tolerance of each secant iteration's solve (warm started)
    linear_rtol : CG tolerance of the first, linear solve
    secant_tol : the iteration stops when the reaction changes by less than this
        (relative) and no secant factor changes by more than 50 x this (the force
        settles first; measured on real bone, the last few % of the largest factor
        change cost 2-4 more iterations a step and move the force by < 1e-3)
    drop : stop once the force has fallen this fraction below its peak
    """
    import dolfinx.fem

    from fem.solve.elasticity import compression_problem
    from fem.solve.multigrid import VoxelMultigrid, fine_cells
    from fem.solve.solver import solve

    tissue = crack_band_law(tissue or TissueYield(), voxel_spacing)
    t_start = time.perf_counter()
    comm = msh.comm
    E0 = np.asarray(modulus_cells, dtype=float)
    frac = np.ones_like(E0) if fraction_cells is None else np.asarray(fraction_cells, float)
    volume = frac * float(np.prod(voxel_spacing))
    total_volume = comm.allreduce(float(volume.sum()), op=MPI.SUM)
    # Boundary values for a reference strain; the solution for strain s is s / s_ref
    # times the reference solution of the same (secant) operator.
    s_ref = float(np.sign(strain_max)) * 0.01
    system = compression_problem(msh, E0, poisson, test, s_ref, height, pins)
    uh = dolfinx.fem.Function(system.V, name="displacement")
    cells, lattice, _ = fine_cells(system.V, voxel_spacing)
    average = (NonlocalAverage(lattice, volume, tissue.nonlocal_radius, voxel_spacing, comm)
               if tissue.nonlocal_radius > 0 else None)

    def index_of(u):
        """Yield index of each element (nonlocal if asked) of the displacement u."""
        r = yield_index(centre_strains(u, cells, voxel_spacing), tissue)
        return r if average is None else average(r)
    # A copy: the fine operator keeps a view of the moduli it is given, and they change.
    mg = VoxelMultigrid(system.V, voxel_spacing, E0.copy(), poisson, system.bcs, test, pins)
    weights = mg.fine.groups[0][1]            # (n, 1) element moduli of the fine operator
    ksp = mg.ksp(rtol, max_iterations)
    ksp.setInitialGuessNonzero(True)
    A = mg.ops[0]
    n_owned = mg.fine.n_owned

    def solve_ref(factor, setup=True):
        """Reference-strain solution with element moduli E0 * factor; returns (u, its).

        setup : set the fine smoother up again (Jacobi diagonal, Chebyshev bounds). While
            the moduli only fall below their values at the last set-up, the old smoother
            stays a convergent (slightly weaker) one and its set-up is skipped.
        """
        weights[:, 0] = E0 * factor
        if setup:
            A.assemble()              # new state: PETSc sets the fine smoother up again
        b = mg.rhs(system.bcs)
        try:
            stats = solve(ksp, b, uh.x.petsc_vec)
        finally:
            b.destroy()
        uh.x.scatter_forward()
        return uh.x.array.copy(), stats.iterations

    def reaction(u):
        ku = mg.fine.apply_local(u[:n_owned].copy(), constrained=False)
        return comm.allreduce(float(ku[system.top_dofs].sum()), op=MPI.SUM)

    def yielded_fraction(r):
        return comm.allreduce(float(volume[r > 1.0].sum()), op=MPI.SUM) / total_volume

    try:
        # Elastic part: one linear solve (at the linear solver's tolerance: it is the
        # linear part of the curve), scaled to the first yield.
        ksp.setTolerances(rtol=min(rtol, linear_rtol))
        u_ref, its = solve_ref(np.ones_like(E0))
        ksp.setTolerances(rtol=rtol)
        r_ref = index_of(u_ref)
        r_max = comm.allreduce(float(r_ref.max(initial=0.0)), op=MPI.MAX)
        if not r_max > 0:
            raise SolverError("the specimen carries no load (all strains zero)")
        f_ref = reaction(u_ref)
        s_yield = s_ref / r_max
        if abs(s_yield) >= abs(strain_max):
            raise SolverError(f"strain_max {strain_max} ends before the first element yields "
                              f"(at apparent strain {s_yield:.5f})")
        strain, force = [0.0, s_yield], [0.0, f_ref * s_yield / s_ref]
        yielded, iters, cgits = [0.0, 0.0], [0, 0], [0, its]
        r_hist = r_last = r_ref / r_max
        factor = np.ones_like(E0)
        u_unit = u_ref / s_ref                         # displacement per unit strain
        ds = ds0 = (strain_max - s_yield) / steps
        s = s_yield
        peak, peak_fields, unsettled = abs(force[-1]), None, None
        while abs(s) < abs(strain_max) - 1e-12 * abs(strain_max):
            s_new = s + ds if abs(s + ds) < abs(strain_max) else strain_max
            # Predictor: the last strains scaled to the new load (exact where the strain
            # grows in proportion). With CG rtol 1e-5 instead of 1e-6 it took a real-bone
            # curve from 2396 to 809 CG iterations (docs/nonlinear.md).
            f_prev = secant_factor(np.maximum(r_hist, r_last * (s_new / s)), tissue)
            f_old, cg_total = None, 0
            # With a softening law the plain secant iteration can cycle (an element that
            # softens sheds load, its strain falls, it stiffens again, ...): seen on the
            # real core as steps that never settled, even after halving. So after
            # max_secant // 4 plain iterations the damage also accumulates over the
            # iterations of the step: the factors then fall monotonically and the iteration
            # ends in an equilibrium state of the damage model (elements whose strain fell
            # keep their damage, as after unloading). Not from the start: the first solves
            # run on predicted moduli, whose overshoot would be locked in (the two-element
            # bar's peak came out 0.6 % low). Hardening laws keep the plain iteration.
            # A cascade (each solve breaks more struts) settles only after many monotone
            # iterations; softening steps get 4 x the limit before the step is cut.
            r_acc = r_hist
            limit = 4 * max_secant if tissue.softening else max_secant
            for it in range(1, limit + 1):
                uh.x.array[:] = u_unit * s_ref             # warm start
                # The smoother set up at the step's first iteration stays valid while the
                # moduli only fall; where one rose above its set-up value (the predictor
                # overshot), its Chebyshev bounds no longer cover the operator and the
                # preconditioner can turn indefinite (seen on a generated elderly
                # specimen: DIVERGED_INDEFINITE_PC), so it is set up again.
                setup = it == 1 or comm.allreduce(bool(np.any(f_prev > f_setup * (1 + 1e-9))),
                                                  op=MPI.LOR)
                if setup:
                    f_setup = f_prev.copy()
                u_r, its = solve_ref(f_prev, setup=setup)
                cg_total += its
                u = u_r * (s_new / s_ref)
                r_now = index_of(u)
                r = np.maximum(r_acc, r_now)
                if tissue.softening and it >= max_secant // 4:
                    r_acc = r
                f_new = secant_factor(r, tissue)
                F = reaction(u)
                change = comm.allreduce(float(np.abs(f_new - f_prev).max(initial=0.0)), op=MPI.MAX)
                # settled: the moduli no longer change (the next solve would repeat this
                # one), or the force and the moduli change little
                settled = change <= 1e-2 * secant_tol or (
                    f_old is not None and abs(F - f_old) <= secant_tol * abs(F)
                    and change <= 50 * secant_tol)
                f_old = F
                u_unit = u_r / s_ref
                if settled:
                    break
                f_prev = f_new
            else:
                if abs(ds) > abs(strain_max) / (steps * 16):
                    ds /= 2.0                                # cut back and retry the step
                    log(f"nonlinear: step to strain {s_new:.5f} did not settle; halving the step")
                    continue
                if tissue.softening and abs(force[-1]) < (1.0 - 1e-3) * peak:
                    # Past a peak of converged points a step that does not settle is a
                    # collapse (a cascade of breaking struts, each solve breaking more); the
                    # peak is a maximum of converged states: the curve ends there.
                    unsettled = s_new
                    log(f"nonlinear: step to strain {s_new:.5f} did not settle past the peak; "
                        "the curve ends")
                    break
                raise SolverError(f"the secant iteration did not settle at apparent strain "
                                  f"{s_new:.5f} after {limit} iterations; no result was written")
            s, factor, r_hist, r_last = s_new, f_new, r, r_now
            if tissue.softening:
                # a cut step grows back (a cascade is local in strain; without this one
                # cut left the rest of the curve in 1/16 steps)
                ds = float(np.sign(ds)) * min(2 * abs(ds), abs(ds0))
            strain.append(s)
            force.append(F)
            yielded.append(yielded_fraction(r))
            iters.append(it)
            cgits.append(cg_total)
            log(f"nonlinear: strain {s:.5f}  force {F:.4f} N  yielded {yielded[-1]:.4f}  "
                f"{it} secant iterations, {cg_total} CG")
            if abs(F) > peak:
                eps = centre_strains(u, cells, voxel_spacing)
                vm, sed = stress_fields(eps, E0 * factor, poisson)
                peak = abs(F)
                peak_fields = {"yield_index": r.copy(), "secant_modulus": E0 * factor,
                               "von_mises": vm, "sed": sed, "u": u.copy()}
            elif abs(F) < (1.0 - drop) * peak:
                break
    finally:
        # The KSP's options stay under its own prefix for the whole curve (the smoother
        # is set up again at every load step); they go with it.
        clear_options(ksp.getOptionsPrefix())
        ksp.destroy()
        mg.destroy()
    strain, force = np.array(strain), np.array(force)
    k = int(np.argmax(np.abs(force)))
    peaked = bool(np.abs(force[k:]).min() < abs(force[k]) * (1 - 1e-3))
    fields = {}
    if peak_fields is not None:
        uh.x.array[:] = peak_fields.pop("u")
        fields = peak_fields
    return CurveResult(strain, force, np.array(yielded), np.array(iters), np.array(cgits), k,
                       peaked, time.perf_counter() - t_start, fields, uh, unsettled)
