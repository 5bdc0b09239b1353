"""Time the pieces of the matrix-free solver against their plain alternatives, one process.

    ./bonefem exec python3 bench/kernels.py bench/out/specimen_4.4mm.npz

On one saved specimen (from ``bench/solver.py run``), serial, medians of 15 calls, all
in the same process so the ratios see the same machine:

- fine level: the box kernel (Hadamard blocks) vs the dense 24 x 24 element product;
- level 2: the eight-weight Galerkin kernel vs streaming stored 24 x 24 matrices;
- level 0 -> 1 transfer: the C kernel (P and P^T) vs PETSc's AIJ product of the same P;
- the coarsest level's Cholesky factorisation: CHOLMOD vs MUMPS (and the solve).
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np


def median_ms(f, repeat=15):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(path):
    from mpi4py import MPI
    from petsc4py import PETSc

    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.specimen.load import Specimen
    from fem.solve import voxel_kernel as vk
    from fem.solve.elasticity import compression_problem
    from fem.solve.loadcases import pin_points
    from fem.solve.multigrid import VoxelMultigrid
    from fem.solve.voxel_levels import element_matrices

    data = np.load(path)
    spec = Specimen(data["mask"], tuple(data["spacing"]), 10000.0, fraction=data["fraction"].astype(float))
    grid = voxel_grid(spec.mask, spec.spacing)
    modulus = spec.element_modulus(grid)
    msh, original = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    modulus = modulus[original]
    problem = compression_problem(msh, modulus, 0.3, "uniaxial", -0.01, grid.extent[2],
                                  pin_points(grid.points))
    t0 = time.perf_counter()
    mg = VoxelMultigrid(problem.V, grid.spacing, modulus, 0.3, problem.bcs, "uniaxial",
                        pin_points(grid.points), keep_levels=True)
    print(f"{path}: DOF per level {mg.level_dofs()}, hierarchy set-up {time.perf_counter() - t0:.2f} s")
    lib = vk._load()
    ffi = lib.ffi
    rng = np.random.default_rng(0)

    cells, w, basis = mg.fine.groups[0]
    x = rng.random(len(mg.fine.xv.array))
    y = np.zeros_like(x)

    def dense():
        lib.lib.voxel_matvec(len(cells), vk._ptr(ffi, cells, "int32_t *"), 1, vk._ptr(ffi, w, "double *"),
                             vk._ptr(ffi, basis, "double *"), vk._ptr(ffi, x, "double *"),
                             vk._ptr(ffi, y, "double *"))
    box = median_ms(lambda: vk.matvec(cells, w, basis, x, y))
    ref = median_ms(dense)
    n = len(cells)
    print(f"fine level, {n} elements: box kernel {box:.2f} ms ({1e6 * box / n:.1f} ns/element), "
          f"dense {ref:.2f} ms ({1e6 * ref / n:.1f} ns/element), {ref / box:.2f}x")

    level = mg.slabs[1].level
    if level.weights is not None and level.weights.shape[1] == 8:
        cells2, w2, basis2 = mg.slabs[1].op.groups[0]
        K2 = element_matrices(level, np.arange(len(level.cells)))
        x2 = rng.random(len(mg.slabs[1].op.xv.array))
        y2 = np.zeros_like(x2)
        g8 = median_ms(lambda: vk.matvec(cells2, w2, basis2, x2, y2))
        st = median_ms(lambda: vk.matvec(cells2, None, K2, x2, y2))
        n2 = len(cells2)
        print(f"level 2, {n2} elements: eight-weight kernel {g8:.2f} ms, stored matrices {st:.2f} ms, "
              f"{st / g8:.2f}x")

    P = mg.transfers[0]
    Pa = mg.transfer_matrices()[0]
    xc, yf = P.createVecRight(), P.createVecLeft()
    xc.setRandom()
    yf.setRandom()
    c_p, c_pt = median_ms(lambda: P.mult(xc, yf)), median_ms(lambda: P.multTranspose(yf, xc))
    a_p, a_pt = median_ms(lambda: Pa.mult(xc, yf)), median_ms(lambda: Pa.multTranspose(yf, xc))
    print(f"transfer level 0 -> 1: C kernel P {c_p:.2f} ms, P^T {c_pt:.2f} ms; AIJ P {a_p:.2f} ms, "
          f"P^T {a_pt:.2f} ms ({Pa.getInfo()['nz_used']:.0f} entries)")

    A = mg.coarse
    b = A.createVecLeft()
    b.setRandom()
    xs = A.createVecRight()
    for solver in ("cholmod", "mumps"):
        if not PETSc.Sys.hasExternalPackage(solver):
            continue
        setups, solves = [], []
        for _ in range(3):
            ksp = PETSc.KSP().create(PETSc.COMM_SELF)
            ksp.setOperators(A)
            ksp.setType("preonly")
            pc = ksp.getPC()
            pc.setType("cholesky")
            pc.setFactorSolverType(solver)
            t0 = time.perf_counter()
            ksp.setUp()
            setups.append(time.perf_counter() - t0)
            solves.append(median_ms(lambda: ksp.solve(b, xs), repeat=5))
            ksp.destroy()
        print(f"coarsest level {A.getSize()[0]} DOF, {solver}: factorisation "
              f"{statistics.median(setups):.3f} s, solve {statistics.median(solves):.2f} ms")
    mg.destroy()


if __name__ == "__main__":
    main(sys.argv[1])
