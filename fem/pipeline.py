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

    mask : (nx, ny, nz) bool, voxels that become elements (islands already removed)
    spacing : (dx, dy, dz) voxel edge, mm
    modulus : tissue Young's modulus, MPa: one value, or an (nx, ny, nz) image
    voxels_removed : voxels dropped by the connectivity filter
    fraction : (nx, ny, nz) bone volume fraction of each voxel in [0, 1], or None for
        a binary specimen (every mask voxel is full bone). An element's modulus is
        the tissue modulus times its fraction (partial-volume scaling, docs/method.md).
    phi : (nx, ny, nz) signed distance to the bone surface, mm, when the specimen has
        sub-voxel geometry (fem.specimen.levelset); None for a plain binary image
    """

    mask: np.ndarray
    spacing: tuple
    modulus: float | np.ndarray
    voxels_removed: int = 0
    fraction: np.ndarray | None = None
    phi: np.ndarray | None = None

    def element_fraction(self, grid: VoxelGrid) -> np.ndarray:
        """Bone volume fraction of each element of ``grid``, shape (n_cells,)."""
        if self.fraction is None:
            return np.ones(len(grid.voxels))
        return np.asarray(self.fraction, dtype=float).ravel()[grid.voxels]

    def element_modulus(self, grid: VoxelGrid) -> np.ndarray:
        """Modulus of each element of ``grid`` (MPa), shape (n_cells,): tissue modulus x fraction."""
        if np.ndim(self.modulus) == 0:
            tissue = np.full(len(grid.voxels), float(self.modulus))
        else:
            tissue = np.asarray(self.modulus, dtype=float).ravel()[grid.voxels]
        return tissue * self.element_fraction(grid)

    @property
    def bone_volume_fraction(self) -> float:
        """BV/TV: bone volume over the image's total volume."""
        if self.fraction is None:
            return float(self.mask.mean())
        return float(np.where(self.mask, self.fraction, 0.0).mean())


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


def load_specimen(case: Case, log=print) -> Specimen:
    """Read or generate the bone image of a case and remove floating bone."""
    spec = case.specimen
    if spec.vertebral is not None:
        from fem.case import vertebral_params
        from fem.specimen.vertebral import generate

        net = generate(vertebral_params(spec.vertebral))
        return specimen_from_levelset(net.phi, net.spacing, case.material.modulus,
                                      f"{case.source or 'case'}: [specimen.vertebral]")
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
    if mask.all():
        log(f"{where}: note: the image is fully solid (BV/TV = 1); solving it as a solid block")
    if not islands.spans_z(mask):
        raise BonefemError(f"{where}: no bone path between the loaded faces (the largest "
                           "connected piece of bone does not touch both z = 0 and z = top)")
    return Specimen(mask, tuple(spacing), case.material.modulus, removed)


def specimen_from_levelset(phi, spacing, modulus, where="specimen") -> Specimen:
    """A Specimen from a signed-distance field: elements where the bone fraction is > 0,
    floating pieces removed (their level set is cut back to marrow)."""
    from fem.specimen.levelset import volume_fraction

    fraction = volume_fraction(phi, spacing)
    mask, removed = islands.held_by_platens(fraction > 0)  # every piece spanning the loaded faces
    if not mask.any():
        raise BonefemError(f"{where}: the specimen holds no bone")
    if not islands.spans_z(mask):
        raise BonefemError(f"{where}: no bone path between the loaded faces")
    h = min(spacing)
    phi = np.where(mask, phi, np.minimum(phi, -h / 2)).astype(np.float32)
    return Specimen(mask, tuple(spacing), modulus, removed, np.where(mask, fraction, 0.0), phi)


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
    from fem.mesh.voxel import create_dolfinx_mesh
    from fem.solve.loadcases import pin_points

    say = log if comm.rank == 0 else (lambda *a, **k: None)
    t_start = time.perf_counter()
    timings = dict(timings or {})
    outdir = None if outdir is None else Path(outdir)

    def voxelise():
        grid = voxel_grid(spec.mask, spec.spacing)
        if case.solver.memory_check:
            from fem.solve import memory

            memory.check(3 * len(grid.points), comm.size, case.source or "model",
                         matfree=case.solver.method in ("auto", "matfree"))
        return grid

    grid = root_call(comm, voxelise)
    meta = comm.bcast(None if comm.rank != 0 else {
        "extent": grid.extent, "pins": pin_points(grid.points), "shape": grid.shape,
        "spacing": grid.spacing, "bone_voxels": int(spec.mask.sum()),
        "voxels_removed": spec.voxels_removed}, root=0)
    say(f"specimen: {meta['shape']} voxels of {meta['spacing']} mm, "
        f"{meta['bone_voxels']} bone voxels, {meta['voxels_removed']} removed as islands")

    t0 = time.perf_counter()
    msh, original = create_dolfinx_mesh(comm, grid)
    per_cell = comm.bcast(None if comm.rank != 0 else
                          np.column_stack([spec.element_modulus(grid), spec.element_fraction(grid)]), root=0)
    timings["mesh"] = time.perf_counter() - t0
    result, sol = solve_mesh(msh, per_cell[original, 0], per_cell[original, 1], meta["extent"],
                             meta["pins"], case, comm, say, voxel_spacing=meta["spacing"])
    result.update({
        "voxels_removed": meta["voxels_removed"],
        "image_shape": list(map(int, meta["shape"])),
        "voxel_size_mm": list(meta["spacing"]),
    })
    timings.update(sol.timings)
    return finish(result, sol, case, outdir, comm, timings, t_start)


def solve_mesh(msh, modulus_cells, fraction_cells, extent, pins, case: Case, comm, say=print,
               voxel_spacing=None):
    """Solve, analyse and summarise a distributed mesh spanning [0, extent] (mm).

    modulus_cells : (n_local_cells,) element modulus, MPa
    fraction_cells : (n_local_cells,) bone volume fraction of each element (weights the
        Pistoia bone volume); ones for full elements
    pins : (2, 3) bottom points for the uniaxial pins (fem.solve.loadcases.pin_points)
    voxel_spacing : (3,) voxel edges (mm) when ``msh`` is a voxel mesh: enables the
        matrix-free solver (``case.solver.method`` "auto" or "matfree")

    Returns ``(result, solution)``; ``result`` holds the figures shared by every mesh
    type (see README: result.json keys).
    """
    from fem.analysis.pistoia import pistoia
    from fem.solve.elasticity import solve_compression

    lx, ly, lz = extent
    method = case.solver.method
    if method == "matfree" and voxel_spacing is None:
        raise BonefemError(f"{case.source or 'case'}: [solver] method = \"matfree\" needs a voxel "
                           "specimen (an image or a generator), not a tetrahedral or external mesh")
    sol = solve_compression(msh, modulus_cells, case.material.poisson, case.load.test,
                            case.load.strain, lz, pins, case.solver.rtol,
                            case.solver.max_iterations,
                            preset=None if method == "auto" else method,
                            voxel_spacing=voxel_spacing)
    say(f"solve: {sol.dofs} DOF, {sol.stats.iterations} CG iterations, "
        f"{sol.stats.seconds:.1f} s ({sol.stats.converged_reason})")
    ees = np.concatenate(comm.allgather(sol.ees))
    bone_volume = np.concatenate(comm.allgather(sol.volume * fraction_cells))
    p = pistoia(sol.reaction_force, ees, bone_volume, case.pistoia.critical_volume,
                case.pistoia.critical_strain)
    result = {
        "units": {"length": "mm", "force": "N", "stress": "MPa", "energy": "mJ"},
        "reaction_force_N": sol.reaction_force,
        "stiffness_N_per_mm": sol.reaction_force / sol.displacement_top,
        "apparent_modulus_MPa": sol.reaction_force / (lx * ly) / case.load.strain,
        "strain_energy_mJ": sol.strain_energy,
        "bv_tv": float(bone_volume.sum() / (lx * ly * lz)),
        "elements": sol.elements,
        "nodes": sol.nodes,
        "dofs": sol.dofs,
        "specimen_size_mm": [float(lx), float(ly), float(lz)],
        "solver": {**asdict(sol.stats), "rtol": case.solver.rtol, **sol.solver_info},
        "pistoia": asdict(p),
        "ranks": comm.size,
    }
    return result, sol


def finish(result, sol, case, outdir, comm, timings, t_start) -> dict:
    """Add the case, versions and timings (s, max over ranks) to ``result``; write the
    fields, result.json and the resolved case into ``outdir`` (unless None)."""
    from fem.report.result import versions, write_case_toml, write_json

    result["case"] = case_to_dict(case)
    result["versions"] = versions()
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
