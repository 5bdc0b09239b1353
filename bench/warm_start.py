"""Would a warm start help a trial? Solve a specimen, erode it as a checkpoint would,
and solve again from zero and from the first solution (mapped node by node).

    ./bonefem exec python3 bench/warm_start.py [--size 3] [--erode-um 2]

Serial, matrix-free solver, rtol 1e-8. Prints CG iterations of the cold and the warm
solve; docs/benchmark.md quotes them.
"""

from __future__ import annotations

import argparse

import numpy as np


def solve(spec, guess=None):
    """Solve a Specimen; returns (iterations, {lattice node id: displacement})."""
    import dolfinx.fem
    from mpi4py import MPI

    from fem.mesh.distribute import create_dolfinx_mesh
    from fem.mesh.voxel import voxel_grid
    from fem.solve import solver
    from fem.solve.elasticity import compression_problem
    from fem.solve.loadcases import pin_points
    from fem.solve.multigrid import VoxelMultigrid

    grid = voxel_grid(spec.mask, spec.spacing)
    E = spec.element_modulus(grid)
    msh, original = create_dolfinx_mesh(MPI.COMM_SELF, grid.points, grid.cells)
    p = compression_problem(msh, E[original], 0.3, "uniaxial", -0.01, grid.extent[2], pin_points(grid.points))
    mg = VoxelMultigrid(p.V, grid.spacing, E[original], 0.3, p.bcs, "uniaxial", pin_points(grid.points))
    ijk = np.rint(p.V.tabulate_dof_coordinates() / np.asarray(grid.spacing)).astype(np.int64)
    ids = (ijk[:, 2] * 10000 + ijk[:, 1]) * 10000 + ijk[:, 0]
    uh = dolfinx.fem.Function(p.V)
    ksp = mg.ksp(1e-8, 2000)
    if guess is not None:
        gid, gu = guess
        pos = np.minimum(np.searchsorted(gid, ids), len(gid) - 1)
        hit = gid[pos] == ids
        uh.x.array.reshape(-1, 3)[hit] = gu[pos[hit]]
        ksp.setInitialGuessNonzero(True)
    stats = solver.solve(ksp, mg.rhs(p.bcs), uh.x.petsc_vec)
    order = np.argsort(ids)
    return stats.iterations, (ids[order], uh.x.array.reshape(-1, 3)[order].copy())


def main():
    from fem.specimen.load import specimen_from_levelset
    from fem.specimen.levelset import move_surface
    from fem.specimen.vertebral import generate

    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--size", type=float, default=3.0)
    a.add_argument("--erode-um", type=float, default=2.0)
    args = a.parse_args()
    net = generate(size=args.size, voxel_size=0.04, bv_tv=0.125, tb_n=1.35, th_horizontal=0.11,
                   strut_fraction=0.6, seed=0)
    base = specimen_from_levelset(net.phi, net.spacing, 10000.0)
    eroded = specimen_from_levelset(move_surface(net.phi, -args.erode_um / 1000.0), net.spacing, 10000.0)
    its0, u0 = solve(base)
    cold, _ = solve(eroded)
    warm, _ = solve(eroded, u0)
    print(f"{args.size:g} mm, eroded {args.erode_um:g} um ({eroded.bone_volume_fraction / base.bone_volume_fraction - 1:+.2%} bone volume): "
          f"baseline {its0} iterations; eroded from zero {cold}, from the baseline's solution {warm}")


if __name__ == "__main__":
    main()
