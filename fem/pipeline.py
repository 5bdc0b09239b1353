"""One case end to end: specimen -> mesh -> solve -> analyse -> report.

Rank 0 prepares the specimen and the voxel mesh; DOLFINx distributes it; every rank
solves its part; rank 0 writes the results. Works the same under ``mpirun -n N``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from mpi4py import MPI

from fem.case import Case, case_to_dict
from fem.errors import BonefemError
from fem.mesh.voxel import VoxelGrid, voxel_grid
from fem.specimen import islands
from fem.specimen.io import read_image, segment


@dataclass
class Specimen:
    """A prepared specimen.

    mask : (nx, ny, nz) bool, bone voxels (islands already removed)
    spacing : (dx, dy, dz) voxel edge, mm
    modulus : Young's modulus, MPa: one value, or an (nx, ny, nz) image
    voxels_removed : voxels dropped by the connectivity filter
    """

    mask: np.ndarray
    spacing: tuple
    modulus: float | np.ndarray
    voxels_removed: int = 0

    def element_modulus(self, grid: VoxelGrid) -> np.ndarray:
        """Modulus of each element of ``grid`` (MPa), shape (n_cells,)."""
        if np.ndim(self.modulus) == 0:
            return np.full(len(grid.voxels), float(self.modulus))
        return np.asarray(self.modulus, dtype=float).ravel()[grid.voxels]


def root_call(comm, fn, *args):
    """Run ``fn`` on rank 0 and broadcast its result, or its BonefemError, to all ranks."""
    result = error = None
    if comm.rank == 0:
        try:
            result = fn(*args)
        except BonefemError as err:
            error = err
    error = comm.bcast(error, root=0)
    if error is not None:
        raise error
    return result


def load_specimen(case: Case) -> Specimen:
    """Read or generate the bone image of a case and remove floating bone."""
    spec = case.specimen
    if spec.synthetic is not None:
        from fem.specimen.synthetic import trabecular_foam

        s = spec.synthetic
        mask = trabecular_foam(s.size, s.voxel_size, s.bv_tv, s.spacing, s.anisotropy, s.seed)
        spacing = (s.voxel_size,) * 3
        where = f"{case.source or 'case'}: [specimen.synthetic]"
    else:
        image, spacing = read_image(spec.image, spec.voxel_size)
        mask = segment(image, spec.threshold)
        where = f"{spec.image}"
    if not mask.any():
        raise BonefemError(f"{where}: the image holds no bone"
                           + ("" if spec.threshold is None else f" at threshold {spec.threshold}"))
    mask, removed = islands.largest_component(mask)
    if not islands.spans_z(mask):
        raise BonefemError(f"{where}: no bone path between the loaded faces (the largest "
                           "connected piece of bone does not touch both z = 0 and z = top)")
    return Specimen(mask, tuple(spacing), case.material.modulus, removed)


def run_case(case: Case, outdir, comm=MPI.COMM_WORLD, log=print) -> dict:
    """Solve a case and write ``result.json``, ``case.toml`` and fields into ``outdir``.

    Returns the result dictionary (same on every rank).
    """
    outdir = Path(outdir)

    def prepare():
        if outdir.exists() and not outdir.is_dir():
            raise BonefemError(f"{outdir}: output path exists and is not a folder")
        return load_specimen(case)

    t0 = time.perf_counter()
    spec = root_call(comm, prepare)
    return solve_specimen(spec, case, outdir, comm, log, {"specimen": time.perf_counter() - t0})


def solve_specimen(spec: Specimen | None, case: Case, outdir=None, comm=MPI.COMM_WORLD,
                   log=print, timings=None) -> dict:
    """Mesh, solve and analyse a prepared specimen (given on rank 0; None elsewhere).

    Uses ``case.material.poisson``, ``case.load``, ``case.solver``, ``case.pistoia``
    (the modulus comes from the specimen). Writes results into ``outdir`` unless it
    is None. Returns the result dictionary (same on every rank).
    """
    from fem.analysis.pistoia import pistoia
    from fem.mesh.voxel import create_dolfinx_mesh
    from fem.report.result import versions, write_case_toml, write_json
    from fem.solve.elasticity import solve_compression
    from fem.solve.loadcases import pin_points

    say = log if comm.rank == 0 else (lambda *a, **k: None)
    t_start = time.perf_counter()
    timings = dict(timings or {})
    outdir = None if outdir is None else Path(outdir)

    def voxelise():
        return voxel_grid(spec.mask, spec.spacing)

    grid = root_call(comm, voxelise)
    meta = comm.bcast(None if comm.rank != 0 else {
        "extent": grid.extent, "pins": pin_points(grid.points), "shape": grid.shape,
        "spacing": grid.spacing, "bone_voxels": int(spec.mask.sum()),
        "voxels_removed": spec.voxels_removed}, root=0)
    say(f"specimen: {meta['shape']} voxels of {meta['spacing']} mm, "
        f"{meta['bone_voxels']} bone voxels, {meta['voxels_removed']} removed as islands")

    t0 = time.perf_counter()
    msh, original = create_dolfinx_mesh(comm, grid)
    modulus = comm.bcast(spec.element_modulus(grid) if comm.rank == 0 else None, root=0)
    timings["mesh"] = time.perf_counter() - t0
    lx, ly, lz = meta["extent"]
    sol = solve_compression(msh, modulus[original], case.material.poisson, case.load.test,
                            case.load.strain, lz, meta["pins"], case.solver.rtol,
                            case.solver.max_iterations)
    timings.update(sol.timings)
    say(f"solve: {sol.dofs} DOF, {sol.stats.iterations} CG iterations, "
        f"{sol.stats.seconds:.1f} s ({sol.stats.converged_reason})")

    ees = np.concatenate(comm.allgather(sol.ees))
    vol = np.concatenate(comm.allgather(sol.volume))
    p = pistoia(sol.reaction_force, ees, vol, case.pistoia.critical_volume,
                case.pistoia.critical_strain)

    area = lx * ly
    result = {
        "units": {"length": "mm", "force": "N", "stress": "MPa", "energy": "mJ"},
        "reaction_force_N": sol.reaction_force,
        "stiffness_N_per_mm": sol.reaction_force / sol.displacement_top,
        "apparent_modulus_MPa": sol.reaction_force / area / case.load.strain,
        "strain_energy_mJ": sol.strain_energy,
        "bv_tv": meta["bone_voxels"] / float(np.prod(meta["shape"])),
        "elements": sol.elements,
        "nodes": sol.nodes,
        "dofs": sol.dofs,
        "voxels_removed": meta["voxels_removed"],
        "image_shape": list(map(int, meta["shape"])),
        "voxel_size_mm": list(meta["spacing"]),
        "specimen_size_mm": [float(lx), float(ly), float(lz)],
        "solver": {**asdict(sol.stats), "rtol": case.solver.rtol, "ksp": "cg", "pc": "gamg"},
        "pistoia": asdict(p),
        "ranks": comm.size,
        "timings_s": {},
        "case": case_to_dict(case),
        "versions": versions(),
    }

    if outdir is not None and comm.rank == 0:
        outdir.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    if outdir is not None and case.output.fields:
        from fem.solve.output import write_fields

        t0 = time.perf_counter()
        path = write_fields(outdir / "fields.pvd", sol, comm)
        timings["fields"] = time.perf_counter() - t0
        result["fields"] = path.name
    timings["total"] = time.perf_counter() - t_start + timings.get("specimen", 0.0)
    keys = comm.bcast(list(timings), root=0)
    timings = {k: comm.allreduce(timings.get(k, 0.0), op=MPI.MAX) for k in keys}
    result["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    if outdir is not None and comm.rank == 0:
        write_case_toml(outdir / "case.toml", result["case"])
        write_json(outdir / "result.json", result)
    return result
