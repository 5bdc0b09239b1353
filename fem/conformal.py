"""Conformal path: a volume mesh (a strut model meshed by gmsh, or an external file)
-> distributed DOLFINx mesh -> the same solve, analysis and outputs as the voxel path.

Rank 0 reads or meshes and checks the geometry; DOLFINx distributes it; every rank
solves its part (fem.pipeline.solve_mesh); rank 0 writes the results
(fem.pipeline.finish). Works the same under ``mpirun -n N``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from fem.case import Case
from fem.errors import BonefemError
from fem.mesh.conformal import StrutModel, VolumeMesh, check_mesh, create_dolfinx_mesh, mesh_struts
from fem.pipeline import finish, root_call, solve_mesh


def place(points: np.ndarray, size=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put a mesh in the specimen frame; returns ``(points, origin, extent)`` in mm.

    size : None: shift the mesh so its bounding box starts at 0 (``origin`` is the
        old corner) and use the bounding box as the specimen; a number or (3,): the
        mesh already lies in [0, size] (a strut model's cube), whose faces are the
        specimen's even where the mesh does not reach them (E_app = F / (Lx Ly) / strain).
    """
    points = np.asarray(points, dtype=np.float64)
    if size is None:
        origin = points.min(axis=0)
        points = points - origin
        return points, origin, points.max(axis=0)
    extent = np.broadcast_to(np.asarray(size, dtype=np.float64), (3,)).copy()
    tol = 1e-6 * extent.max()
    if np.any(points.min(axis=0) < -tol) or np.any(points.max(axis=0) > extent + tol):
        raise BonefemError(f"mesh: points outside the specimen box [0, {extent.tolist()}] mm")
    return points, np.zeros(3), extent


def solve_volume_mesh(vmesh: VolumeMesh | None, case: Case, outdir=None, comm=MPI.COMM_WORLD,
                      log=print, modulus_field=None, size=None, timings=None) -> dict:
    """Solve a volume mesh given on rank 0 (None elsewhere) in compression.

    Uses ``case.material`` (modulus when ``modulus_field`` is None, Poisson ratio),
    ``case.load``, ``case.solver``, ``case.pistoia``, ``case.output``.
    modulus_field : name of a per-cell array of ``vmesh.cell_data`` holding the
        element modulus, MPa
    size : the specimen box (see :func:`place`); None = the shifted bounding box
    Writes results into ``outdir`` unless None. Returns the result dict (every rank).
    """
    from fem.mesh.external import cell_modulus
    from fem.solve.loadcases import pin_points

    say = log if comm.rank == 0 else (lambda *a, **k: None)
    t_start = time.perf_counter()
    timings = dict(timings or {})
    outdir = None if outdir is None else Path(outdir)

    def prepare():
        if outdir is not None and outdir.exists() and not outdir.is_dir():
            raise BonefemError(f"{outdir}: output path exists and is not a folder")
        points, origin, extent = place(vmesh.points, size)
        check_mesh(points, vmesh.cells, extent[2], vmesh.source)
        modulus = cell_modulus(vmesh, modulus_field, case.material.modulus)
        meta = {"extent": extent, "pins": pin_points(points), "origin": origin,
                "cell_type": vmesh.cell_type, "source": vmesh.source}
        return points, modulus, meta

    t0 = time.perf_counter()
    points, modulus, meta = root_call(comm, prepare) or (None, None, None)
    meta = comm.bcast(meta, root=0)
    if np.any(meta["origin"] != 0):
        say(f"mesh: shifted by {(-meta['origin']).tolist()} mm so its bounding box starts at 0")
    msh, original = create_dolfinx_mesh(comm, points, None if vmesh is None else vmesh.cells)
    modulus = comm.bcast(modulus, root=0)
    timings["mesh"] = time.perf_counter() - t0
    say(f"mesh: {msh.topology.index_map(3).size_global} {meta['cell_type']} cells from "
        f"{meta['source']}, specimen box {np.round(meta['extent'], 6).tolist()} mm")
    result, sol = solve_mesh(msh, modulus[original], np.ones(len(original)), meta["extent"],
                             meta["pins"], case, comm, say)
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


def run_mesh_file(case: Case, outdir=None, comm=MPI.COMM_WORLD, log=print, modulus_field=None) -> dict:
    """Solve the volume mesh file named by ``case.specimen.image`` (.msh, .vtu, .xdmf, .inp)."""
    from fem.mesh.external import read_volume_mesh

    spec = case.specimen
    if spec.voxel_size is not None or spec.threshold is not None:
        raise BonefemError(f"{spec.image}: voxel size and threshold apply to images, "
                           "not to a mesh (its coordinates are read in mm)")
    t0 = time.perf_counter()
    vmesh = root_call(comm, read_volume_mesh, spec.image)
    return solve_volume_mesh(vmesh, case, outdir, comm, log, modulus_field,
                             timings={"specimen": time.perf_counter() - t0})


def run_strut_model(model: StrutModel, h: float, case: Case, outdir=None, comm=MPI.COMM_WORLD,
                    log=print, verbose=False, h_junction=None) -> dict:
    """Mesh a strut model with tetrahedra of edge ``h`` (mm; ``h_junction`` at the strut
    junctions, see fem.mesh.conformal.mesh_struts) on rank 0 and solve it.

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
