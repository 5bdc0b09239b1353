"""Screen variants of the matrix-free multigrid solver on one saved specimen.

    ./bonefem exec python3 bench/multigrid_variants.py bench/out/specimen_4.4mm.npz \\
        '{}' '{"exact": true}' '{"opts": {"pc_mg_cycle_type": "w"}}'
    ./bonefem exec mpirun -n 2 python3 bench/multigrid_variants.py SPECIMEN.npz '{}'

Each variant is a JSON object: keyword arguments of fem.solve.multigrid.VoxelMultigrid
(``exact``, ``coarse_dofs``, ``max_levels``) and ``opts``, PETSc options (without the
``bonefem_`` prefix) that override fem.solve.multigrid.OPTIONS, and ``cycles``, a string
of "w" and "v" giving each level's cycle from the finest down (PCMGSetCycleTypeOnLevel:
"wwwv" visits the coarsest level once from the level above it); the specimens come
from ``bench/solver.py run`` or ``bench/real_bone.py run``. Prints the DOF
per level, set-up seconds (hierarchy), solve seconds (PC set-up + CG) and iterations,
uniaxial 1 % compression, rtol 1e-8. docs/benchmark.md has the table these made.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main(argv):
    import dolfinx.fem
    from mpi4py import MPI
    from petsc4py import PETSc

    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.specimen.load import Specimen
    from fem.solve import solver
    from fem.solve.elasticity import compression_problem
    from fem.solve.loadcases import pin_points
    from fem.solve.multigrid import VoxelMultigrid

    comm = MPI.COMM_WORLD
    grid = modulus = meta = None
    if comm.rank == 0:
        data = np.load(argv[0])
        spec = Specimen(data["mask"], tuple(data["spacing"]), 10000.0,
                        fraction=data["fraction"].astype(float))
        grid = voxel_grid(spec.mask, spec.spacing)
        modulus = spec.element_modulus(grid)
        meta = (grid.extent, pin_points(grid.points), grid.spacing)
    meta = comm.bcast(meta, root=0)
    msh, original = create_dolfinx_mesh(comm, *((grid.points, grid.cells) if grid is not None else (None, None)))
    modulus = comm.bcast(modulus, root=0)[original]
    problem = compression_problem(msh, modulus, 0.3, "uniaxial", -0.01, meta[0][2], meta[1])
    for text in argv[1:] or ["{}"]:
        kw = json.loads(text)
        opts = kw.pop("opts", {})
        cycles = kw.pop("cycles", "")
        for key, value in opts.items():
            PETSc.Options()["bonefem_" + key] = value
        t0 = time.perf_counter()
        mg = VoxelMultigrid(problem.V, meta[2], modulus, 0.3, problem.bcs, "uniaxial", meta[1], **kw)
        b = mg.rhs(problem.bcs)
        ksp = mg.ksp(1e-8, 2000)
        pc, n = ksp.getPC(), mg.levels
        for depth, c in enumerate(cycles[: n - 1]):
            pc.setMGCycleTypeOnLevel(n - 1 - depth, PETSc.PC.MGCycleType.W if c == "w" else PETSc.PC.MGCycleType.V)
        setup = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
        uh = dolfinx.fem.Function(problem.V)
        stats = solver.solve(ksp, b, uh.x.petsc_vec)
        if comm.rank == 0:
            print(f"{text}: ranks {comm.size}, DOF per level {mg.level_dofs()}, set-up {setup:.2f} s, "
                  f"solve {stats.seconds:.2f} s, {stats.iterations} iterations", flush=True)
        ksp.destroy()
        b.destroy()
        mg.destroy()
        for key in opts:
            PETSc.Options().delValue("bonefem_" + key)


if __name__ == "__main__":
    main(sys.argv[1:])
