"""Strut models -> conformal tetrahedral meshes (gmsh, OpenCASCADE kernel).

The union of a :class:`fem.mesh.struts.StrutModel` is clipped to the cube [0, L]^3, so
the loaded faces are flat at z = 0 and z = L, and meshed with linear tetrahedra. The
mesh comes back as plain arrays on the calling process. Gmsh is a serial library: call
:func:`mesh_struts` on rank 0 only (fem.pipeline.run_strut_model does).
"""

from __future__ import annotations

import contextlib

import numpy as np

from fem.errors import BonefemError
from fem.mesh.struts import StrutModel
from fem.mesh.volume import compact

# Gmsh element type of the 4-node tetrahedron.
_GMSH_TET4 = 4


@contextlib.contextmanager
def gmsh_session(verbose=False):
    """Initialise gmsh (quiet unless ``verbose``), yield the module, clean up.

    A session someone else opened is reused and left open; only the model added
    here is removed.
    """
    import gmsh

    owner = not gmsh.isInitialized()
    if owner:
        # No config files (reproducible); no SIGINT handler (we may not be the main thread).
        gmsh.initialize(readConfigFiles=False, interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 1 if verbose else 0)
        gmsh.option.setNumber("General.Verbosity", 5 if verbose else 0)
        # One thread: the mesh is then the same on every run.
        gmsh.option.setNumber("General.NumThreads", 1)
        gmsh.model.add("bonefem")
        try:
            yield gmsh
        finally:
            gmsh.model.remove()
    finally:
        if owner:
            gmsh.finalize()


def _build_union(gmsh, model: StrutModel):
    """OCC solids of the struts and plates, fused and clipped to the cube; (dim, tag) list."""
    occ = gmsh.model.occ
    parts = []
    for p0, p1, r in model.struts:
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        parts.append((3, occ.addCylinder(*p0, *(p1 - p0), float(r))))
    for lo, hi in model.plates:
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        parts.append((3, occ.addBox(*lo, *(hi - lo))))
    if len(parts) > 1:
        parts, _ = occ.fuse(parts[:1], parts[1:])
    L = float(model.size)
    cube = occ.addBox(0.0, 0.0, 0.0, L, L, L)
    solids, _ = occ.intersect(parts, [(3, cube)])
    occ.synchronize()
    return [dt for dt in solids if dt[0] == 3]


def _junction_curves(gmsh, size):
    """Curves where two faces of the solid meet inside the cube (strut junctions and
    plate edges), not on the cube's faces and not the seams of periodic faces."""
    curves = []
    for _, c in gmsh.model.getEntities(1):
        up, _ = gmsh.model.getAdjacencies(1, c)
        lo = np.array(gmsh.model.getBoundingBox(1, c))
        lo, hi = lo[:3], lo[3:]
        tol = 1e-5 * size   # OCC pads bounding boxes by its tolerance, 1e-7
        on_face = np.any((np.abs(hi - lo) < tol) & ((np.abs(lo) < tol) | (np.abs(lo - size) < tol)))
        if len(up) == 2 and not on_face:
            curves.append(c)
    return curves


def _grade_towards(gmsh, curves, h_fine, h, growth=0.5):
    """Element size h_fine (mm) on ``curves``, growing by ``growth`` mm per mm of distance
    up to h: a geometric grading, the kind that resolves an edge singularity at the
    cost of a few elements per unit length of the edge."""
    field = gmsh.model.mesh.field
    dist = field.add("Distance")
    field.setNumbers(dist, "CurvesList", curves)
    field.setNumber(dist, "Sampling", 100)
    grade = field.add("Threshold")
    field.setNumber(grade, "InField", dist)
    field.setNumber(grade, "SizeMin", h_fine)
    field.setNumber(grade, "SizeMax", h)
    field.setNumber(grade, "DistMin", 0.0)
    field.setNumber(grade, "DistMax", (h - h_fine) / growth)
    field.setAsBackgroundMesh(grade)


def mesh_struts(model: StrutModel, h: float, verbose=False, h_junction=None) -> tuple[np.ndarray, np.ndarray]:
    """Tetrahedral mesh of the union of a strut model, clipped to [0, L]^3.

    h : characteristic element edge, mm (gmsh's maximum mesh size)
    h_junction : element edge at the curves where struts and plates meet (every edge of
        the solid inside the cube), mm; default h. Stresses are singular along the
        re-entrant ones, which slows the convergence of uniform meshes; a mesh graded
        towards them converges faster (docs/conformal.md).

    Returns ``(points, tets)``: (n, 3) float64 node coordinates, mm, and (m, 4) int64
    vertex indices of linear tetrahedra. Raises BonefemError if the clipped union is
    empty or falls apart into several solids (a floating piece has no load path).
    """
    if not h > 0:
        raise BonefemError(f"mesh size must be > 0 mm, got {h}")
    try:
        return _mesh_struts(model, h, verbose, h_junction)
    except BonefemError:
        raise
    except Exception as err:
        # A user error to the callers (fem.pipeline.root_call passes it on to every
        # rank); a bare exception on rank 0 would leave the other ranks waiting.
        raise BonefemError(f"strut model: gmsh failed ({err})") from None


def _mesh_struts(model, h, verbose, h_junction):
    with gmsh_session(verbose) as gmsh:
        solids = _build_union(gmsh, model)
        if not solids:
            raise BonefemError("strut model: nothing of it lies inside the cube [0, L]^3")
        if len(solids) > 1:
            raise BonefemError(f"strut model: the clipped union falls apart into {len(solids)} "
                               "separate solids; every piece must be connected to the rest")
        gmsh.option.setNumber("Mesh.MeshSizeMax", float(h))
        # Element sizes come from h alone, not from the (huge) default point sizes.
        gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
        if h_junction is not None and h_junction < h:
            curves = _junction_curves(gmsh, model.size)
            if curves:
                _grade_towards(gmsh, curves, float(h_junction), float(h))
        gmsh.model.mesh.generate(3)
        tags, coords, _ = gmsh.model.mesh.getNodes()
        _, tet_nodes = gmsh.model.mesh.getElementsByType(_GMSH_TET4)
    return _arrays(tags, coords, tet_nodes)


def mesh_extruded_column(size=1.0, radius=0.2, h=0.05, verbose=False):
    """A vertical cylinder spanning [0, L] in z, meshed as a disk extruded in layers.

    Every z-section is the same polygon, so the mesh is an exact prism and uniaxial
    compression gives E_app = E V / L^3 with V the meshed volume (the analytic check
    of the tetrahedral path). Returns ``(points, tets)`` like :func:`mesh_struts`.
    """
    c = size / 2
    with gmsh_session(verbose) as gmsh:
        occ = gmsh.model.occ
        disk = occ.addDisk(c, c, 0.0, radius, radius)
        occ.extrude([(2, disk)], 0.0, 0.0, size, numElements=[max(1, round(size / h))])
        occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", float(h))
        gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
        gmsh.model.mesh.generate(3)
        tags, coords, _ = gmsh.model.mesh.getNodes()
        _, tet_nodes = gmsh.model.mesh.getElementsByType(_GMSH_TET4)
    return _arrays(tags, coords, tet_nodes)


def _arrays(tags, coords, tet_nodes):
    index = np.full(int(tags.max()) + 1, -1, dtype=np.int64)
    index[tags.astype(np.int64)] = np.arange(len(tags))
    tets = index[tet_nodes.astype(np.int64)].reshape(-1, 4)
    return compact(coords.reshape(-1, 3), tets)
