"""One case end to end: specimen -> mesh -> solve -> analyse -> report.

:func:`run_case` takes every kind of single specimen: an image or a generator (the
voxel path: :func:`solve_specimen`) and a volume-mesh file or a strut model (the
conformal path: :func:`solve_volume_mesh`). Both end in the same :func:`solve_mesh`
and :func:`finish`. Rank 0 prepares the specimen and the mesh arrays; DOLFINx
distributes them; every rank solves its part; rank 0 writes the results. Works the
same under ``mpirun -n N``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from mpi4py import MPI

from fem.analysis.pistoia import pistoia
from fem.analysis.sanity import modulus_warnings, specimen_warnings
from fem.case import Case, case_to_dict
from fem.errors import BonefemError
from fem.mesh.distribute import create_dolfinx_mesh
from fem.mesh.external import cell_modulus, is_mesh_file, read_volume_mesh
from fem.mesh.strut_mesh import mesh_struts
from fem.mesh.struts import StrutModel
from fem.mesh.volume import VolumeMesh, check_mesh, place
from fem.mesh.voxel import used_corners, voxel_grid
from fem.report.result import check_output_folder, versions, write_case_toml, write_json
from fem.solve import memory
from fem.solve.elasticity import solve_compression
from fem.solve.loadcases import pin_points
from fem.solve.output import write_fields
from fem.specimen.load import Specimen, load_specimen

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


def run_case(case: Case, outdir=None, comm=MPI.COMM_WORLD, log=print) -> dict:
    """Solve the single specimen of a case (an image, a generator or a volume-mesh file)
    and write ``result.json``, ``case.toml`` and fields into ``outdir`` (unless None).

    The output folder is checked before anything is built, so an unwritable one fails
    at once rather than after the solve. Returns the result dictionary (every rank).
    """
    outdir = None if outdir is None else Path(outdir)
    t0 = time.perf_counter()
    spec = case.specimen
    # progress: a line as each long stage starts (here and in solve_mesh), once the
    # output folder is known to be writable
    starting = (f"specimen: reading {spec.image}" if spec.image is not None else
                f"specimen: generating the {'vertebral' if spec.vertebral else 'synthetic'} specimen")
    if case.specimen.image is not None and is_mesh_file(case.specimen.image):
        def read():
            if outdir is not None:
                check_output_folder(outdir)
            log(starting)
            return read_volume_mesh(case.specimen.image)

        vmesh = root_call(comm, read)
        return solve_volume_mesh(vmesh, case, outdir, comm, log, case.specimen.modulus_field,
                                 timings={"specimen": time.perf_counter() - t0})

    def prepare():
        if outdir is not None:
            check_output_folder(outdir)
        log(starting)
        matfree = case.solver.method in ("auto", "matfree")
        check = None
        if case.solver.memory_check:
            def check(mask, spacing, where):
                check_model_size(mask, comm.size, where, matfree, case.analysis.buckling)
        return load_specimen(case, log, check_size=check)

    spec = root_call(comm, prepare)
    return solve_specimen(spec, case, outdir, comm, log, {"specimen": time.perf_counter() - t0})


def model_size(mask: np.ndarray) -> tuple[int, int]:
    """``(nodes, bone voxels)`` of the voxel mesh of ``mask``, without building it: a node
    is a grid corner touched by at least one bone voxel."""
    return int(np.count_nonzero(used_corners(mask))), int(np.count_nonzero(mask))


def check_model_size(mask: np.ndarray, ranks: int, where: str = "model", matfree: bool = True,
                     buckling: bool = False) -> None:
    """Refuse (BonefemError) a voxel model whose estimated peak memory exceeds the available
    memory, from the bone mask alone, before the grid or any solver data is built.

    The estimate is fem.solve.memory.estimate_voxel_model: the larger of building the
    mesh on rank 0 and the solve, from the bone-voxel and DOF counts; with ``buckling``,
    plus the buckling analysis's factorisation (memory.BYTES_PER_DOF_BUCKLING).
    """
    nodes, voxels = model_size(mask)
    dofs = 3 * nodes
    need, build = memory.estimate_voxel_model(dofs, voxels, ranks, matfree)
    factor = dofs * memory.BYTES_PER_DOF_BUCKLING if buckling else 0.0
    need += factor
    have = memory.available_bytes()
    if have is not None and need > have:
        extra = f"; analysis.buckling adds {factor / 1e9:.1f} GB" if buckling else ""
        raise BonefemError(
            f"{where}: about {need / 1e9:.1f} GB needed for {dofs / 1e6:.2f} M DOF on {ranks} "
            f"rank(s) ({voxels} bone voxels of {mask.size}; {build / 1e9:.1f} GB to build "
            f"the mesh{extra}), {have / 1e9:.1f} GB available; use a smaller region or coarser voxels, "
            "run on a bigger machine, or set solver.memory_check = false to try anyway")


def solve_specimen(spec: Specimen | None, case: Case, outdir=None, comm=MPI.COMM_WORLD,
                   log=print, timings=None) -> dict:
    """Mesh, solve and analyse a prepared specimen (given on rank 0; None elsewhere).

    Uses ``case.material.poisson``, ``case.load``, ``case.solver``, ``case.pistoia``
    (the modulus comes from the specimen). Writes results into ``outdir`` unless it
    is None. Returns the result dictionary (same on every rank).
    """
    say = log if comm.rank == 0 else (lambda *a, **k: None)
    t_start = time.perf_counter()
    timings = dict(timings or {})
    outdir = None if outdir is None else Path(outdir)

    def voxelise():
        if case.solver.memory_check:
            check_model_size(spec.mask, comm.size, case.source or "model",
                             matfree=case.solver.method in ("auto", "matfree"),
                             buckling=case.analysis.buckling)
        return voxel_grid(spec.mask, spec.spacing)

    grid = root_call(comm, voxelise)
    meta = comm.bcast(None if comm.rank != 0 else {
        "extent": grid.extent, "pins": pin_points(grid.points), "shape": grid.shape,
        "spacing": grid.spacing, "bone_voxels": int(spec.mask.sum()),
        "voxels_removed": spec.voxels_removed,
        "warnings": specimen_warnings(spec.mask, spec.spacing, spec.modulus, spec.voxels_removed,
                                      direction=case.trial is None)}, root=0)
    for w in meta["warnings"]:
        say(f"warning: {w}")
    say(f"specimen: {meta['shape']} voxels of {meta['spacing']} mm, "
        f"{meta['bone_voxels']} bone voxels, {meta['voxels_removed']} removed as islands")

    t0 = time.perf_counter()
    msh, original = create_dolfinx_mesh(comm, *((grid.points, grid.cells) if comm.rank == 0
                                                 else (None, None)))
    per_cell = comm.bcast(None if comm.rank != 0 else
                          np.column_stack([spec.element_modulus(grid, case.material.poisson,
                                                                case.material.partial_volume),
                                           spec.element_fraction(grid)]), root=0)
    del grid        # DOLFINx holds its own copy: the rank-0 arrays would sit through the solve
    timings["mesh"] = time.perf_counter() - t0
    result, sol = solve_mesh(msh, per_cell[original, 0], per_cell[original, 1], meta["extent"],
                             meta["pins"], case, comm, say, voxel_spacing=meta["spacing"])
    result.update({
        "voxels_removed": meta["voxels_removed"],
        "image_shape": list(map(int, meta["shape"])),
        "voxel_size_mm": list(meta["spacing"]),
        "warnings": meta["warnings"],
    })
    timings.update(sol.timings)
    if case.analysis.strength == "nonlinear":       # issue 16: tissue yield past the peak
        from fem.analysis.strength import nonlinear_strength

        t0 = time.perf_counter()
        result["nonlinear"] = nonlinear_strength(
            msh, per_cell[original, 0], per_cell[original, 1], meta["extent"], meta["pins"],
            meta["spacing"], case.material.poisson, case.load.test, case.analysis, outdir, comm, say,
            case.solver.rtol)
        timings["nonlinear"] = time.perf_counter() - t0
    return finish(result, sol, case, outdir, comm, timings, t_start)


def solve_volume_mesh(vmesh: VolumeMesh | None, case: Case, outdir=None, comm=MPI.COMM_WORLD,
                      log=print, modulus_field=None, size=None, timings=None) -> dict:
    """Solve a volume mesh given on rank 0 (None elsewhere) in compression.

    Uses ``case.material`` (modulus when ``modulus_field`` is None, Poisson ratio),
    ``case.load``, ``case.solver``, ``case.pistoia``, ``case.output``.
    modulus_field : name of a per-cell array of ``vmesh.cell_data`` holding the
        element modulus, MPa
    size : the specimen box (see fem.mesh.volume.place); None = the shifted bounding box
    Writes results into ``outdir`` unless None. Returns the result dict (every rank).
    """
    say = log if comm.rank == 0 else (lambda *a, **k: None)
    t_start = time.perf_counter()
    timings = dict(timings or {})
    outdir = None if outdir is None else Path(outdir)

    def prepare():
        if outdir is not None:
            check_output_folder(outdir)
        points, origin, extent = place(vmesh.points, size)
        check_mesh(points, vmesh.cells, extent[2], vmesh.source)
        modulus = cell_modulus(vmesh, modulus_field, case.material.modulus)
        meta = {"extent": extent, "pins": pin_points(points), "origin": origin,
                "cell_type": vmesh.cell_type, "source": vmesh.source,
                "warnings": modulus_warnings(modulus)}
        return points, modulus, meta

    t0 = time.perf_counter()
    points, modulus, meta = root_call(comm, prepare) or (None, None, None)
    meta = comm.bcast(meta, root=0)
    if np.any(meta["origin"] != 0):
        say(f"mesh: shifted by {(-meta['origin']).tolist()} mm so its bounding box starts at 0")
    msh, original = create_dolfinx_mesh(comm, points, None if vmesh is None else vmesh.cells)
    modulus = comm.bcast(modulus, root=0)
    timings["mesh"] = time.perf_counter() - t0
    for w in meta["warnings"]:
        say(f"warning: {w}")
    say(f"mesh: {msh.topology.index_map(3).size_global} {meta['cell_type']} cells from "
        f"{meta['source']}, specimen box {np.round(meta['extent'], 6).tolist()} mm")
    result, sol = solve_mesh(msh, modulus[original], np.ones(len(original)), meta["extent"],
                             meta["pins"], case, comm, say)
    result["warnings"] = meta["warnings"]
    result["mesh"] = {
        "source": meta["source"],
        "cell_type": meta["cell_type"],
        # The mesh was moved by shift_mm (= -origin_mm) so its bounding box starts at 0.
        "origin_mm": meta["origin"].tolist(),
        "shift_mm": (-meta["origin"]).tolist(),
        "modulus_field": modulus_field,
        "volume_mm3": comm.allreduce(float(sol.volume.sum()), op=MPI.SUM),
    }
    timings.update(sol.timings)
    return finish(result, sol, case, outdir, comm, timings, t_start)


def run_strut_model(model: StrutModel, h: float, case: Case, outdir=None, comm=MPI.COMM_WORLD,
                    log=print, verbose=False, h_junction=None) -> dict:
    """Mesh a strut model with tetrahedra of edge ``h`` (mm; ``h_junction`` at the strut
    junctions, see fem.mesh.strut_mesh.mesh_struts) on rank 0 and solve it.

    The specimen is the model's cube [0, L]^3 (E_app uses L^2 as the area).
    """
    t0 = time.perf_counter()

    def build():
        points, tets = mesh_struts(model, h, verbose, h_junction)
        return VolumeMesh(points, tets, f"strut model ({len(model.struts)} struts, "
                                        f"{len(model.plates)} plates, h = {h:g} mm)")

    vmesh = root_call(comm, build)
    return solve_volume_mesh(vmesh, case, outdir, comm, log, size=model.size,
                             timings={"specimen": time.perf_counter() - t0})


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
    lx, ly, lz = extent
    method = case.solver.method
    if method == "matfree" and voxel_spacing is None:
        raise BonefemError(f"{case.source or 'case'}: [solver] method = \"matfree\" needs a voxel "
                           "specimen (an image or a generator), not a tetrahedral or external mesh")
    say(f"solve: {msh.topology.index_map(3).size_global} elements on {comm.size} rank(s), CG to "
        f"rtol {case.solver.rtol:g} ...")
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
    if case.analysis.buckling:      # issues 14, 16: a strength that sees lost bracing
        from fem.solve.buckling import specimen_buckling

        say("buckling: first load factor (SLEPc, MUMPS) ...")
        result["buckling"] = specimen_buckling(sol, extent, pins, case.load.test, case.load.strain,
                                               case.material.poisson)
        b = result["buckling"]
        say(f"buckling: load factor {b['factor']:.3g}, {b['load_N']:.4g} N, first mode on "
            f"{100 * b['mode_share']:.0f} % of the nodes, {b['seconds']:.1f} s")
        sol.timings["buckling"] = b["seconds"]
    return result, sol


def finish(result, sol, case, outdir, comm, timings, t_start) -> dict:
    """Add the case, versions and timings (s, max over ranks) to ``result``; write the
    fields, result.json and the resolved case into ``outdir`` (unless None)."""
    result["case"] = case_to_dict(case)
    result["versions"] = versions()
    if outdir is not None:
        # on rank 0, the error to every rank (the others would wait in the field output)
        root_call(comm, _make_folder, outdir)
    if outdir is not None and case.output.fields:
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


def _make_folder(outdir: Path) -> None:
    check_output_folder(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BonefemError(f"{outdir}: cannot create the output folder ({err.strerror})") from None
