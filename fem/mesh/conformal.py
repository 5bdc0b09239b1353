"""Strut/plate models -> conformal tetrahedral meshes (gmsh, OpenCASCADE kernel).

A :class:`StrutModel` is a list of cylinders (struts) and boxes (plates) in mm. Its
union is clipped to the cube [0, L]^3, so the loaded faces are flat at z = 0 and
z = L, and meshed with linear tetrahedra. The mesh comes back as plain arrays on the
calling process; :func:`create_dolfinx_mesh` distributes it. Gmsh is a serial
library: call :func:`mesh_struts` on rank 0 only (fem.conformal does).

The same model can be voxelised (:func:`voxelise`) for the voxel path, which is how
the voxel micro-FE is verified against the conformal mesh (docs/conformal.md).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from fem.errors import BonefemError

# Gmsh element type of the 4-node tetrahedron.
_GMSH_TET4 = 4


@dataclass
class StrutModel:
    """A strut-and-plate structure in the cube [0, size]^3 (mm).

    size : cube edge L, mm; the union is clipped to [0, L]^3
    struts : list of (p0, p1, radius): cylinder with axis from p0 (3,) to p1 (3,) mm,
        flat ends, radius mm. Let struts that end on a face of the cube run past it:
        the clip then leaves a flat cut face instead of a face that merely touches.
    plates : list of (lo, hi): axis-aligned boxes with corners lo (3,) and hi (3,), mm
    """

    size: float
    struts: list = field(default_factory=list)
    plates: list = field(default_factory=list)

    def __post_init__(self):
        if not self.size > 0:
            raise BonefemError(f"strut model: size must be > 0 mm, got {self.size}")
        for p0, p1, r in self.struts:
            if not r > 0 or np.allclose(p0, p1):
                raise BonefemError(f"strut model: strut {p0} -> {p1} with radius {r} is degenerate")
        for lo, hi in self.plates:
            if not np.all(np.asarray(hi, float) > np.asarray(lo, float)):
                raise BonefemError(f"strut model: plate {lo} -> {hi} needs hi > lo on every axis")
        if not (self.struts or self.plates):
            raise BonefemError("strut model: no struts and no plates")


def column(size=1.0, radius=0.2) -> StrutModel:
    """One vertical strut through the centre of the cube, spanning it (analytic check)."""
    c, m = size / 2, 0.1 * size
    return StrutModel(size, struts=[((c, c, -m), (c, c, size + m), radius)])


def cubic_cell(size=1.0, radius=0.2, horizontal_radius=None) -> StrutModel:
    """Cubic lattice cell: three orthogonal struts through the centre, each spanning the
    cube; the two horizontal ones have ``horizontal_radius`` (default ``radius``)."""
    c, m = size / 2, 0.1 * size
    struts = []
    for axis in range(3):
        p0, p1 = np.full(3, c), np.full(3, c)
        p0[axis], p1[axis] = -m, size + m
        r = radius if axis == 2 or horizontal_radius is None else horizontal_radius
        struts.append((tuple(p0), tuple(p1), r))
    return StrutModel(size, struts=struts)


def rod_lattice(size=1.0, radius=0.15, n=2, horizontal_radius=None) -> StrutModel:
    """n x n vertical rods (pitch size/n, centred in their columns) tied at mid-height by
    horizontal rods along x and y through the same rows; all rods span the cube."""
    rh = radius if horizontal_radius is None else horizontal_radius
    m, zc = 0.1 * size, size / 2
    pos = (np.arange(n) + 0.5) * size / n
    struts = [((x, y, -m), (x, y, size + m), radius) for x in pos for y in pos]
    struts += [((-m, y, zc), (size + m, y, zc), rh) for y in pos]
    struts += [((x, -m, zc), (x, size + m, zc), rh) for x in pos]
    return StrutModel(size, struts=struts)


# ---------------------------------------------------------------------------
# Meshing with gmsh

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


def compact(points: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop points that no cell uses and renumber the cells; returns (points, cells)."""
    cells = np.asarray(cells, dtype=np.int64)
    used, inverse = np.unique(cells.ravel(), return_inverse=True)
    return np.ascontiguousarray(points[used], dtype=np.float64), inverse.reshape(cells.shape)


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


# ---------------------------------------------------------------------------
# Plain-array mesh -> DOLFINx, and checks

CELL_TYPES = {4: "tetrahedron", 8: "hexahedron"}


@dataclass
class VolumeMesh:
    """A volume mesh as plain arrays, on the process that read or built it.

    points : (n, 3) float64, mm
    cells : (m, 4) linear tetrahedra or (m, 8) hexahedra in DOLFINx's vertex order, int64
    source : where it came from (file name or model), for messages and result.json
    cell_data : {name: (m,) float64} per-cell arrays (e.g. a modulus in MPa)
    """

    points: np.ndarray
    cells: np.ndarray
    source: str = "mesh"
    cell_data: dict = field(default_factory=dict)

    @property
    def cell_type(self) -> str:
        return CELL_TYPES[self.cells.shape[1]]

# Local vertex indices of the faces of each cell (DOLFINx vertex order).
_FACES = {4: [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]],
          8: [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 4, 5], [2, 3, 6, 7], [0, 2, 4, 6], [1, 3, 5, 7]]}


def create_dolfinx_mesh(comm, points: np.ndarray | None, cells: np.ndarray | None):
    """Distribute a mesh given on rank 0 (None elsewhere) as a DOLFINx mesh.

    points : (n, 3) float64, mm
    cells : (m, 4) linear tetrahedra or (m, 8) hexahedra in DOLFINx's tensor-product
        vertex order; int64
    Returns ``(mesh, original)``; ``original[c]`` is the row of ``cells`` of local cell c.
    """
    import basix.ufl
    import dolfinx.mesh
    import ufl

    nv = comm.bcast(None if comm.rank != 0 else int(cells.shape[1]), root=0)
    if comm.rank != 0:
        cells, points = np.empty((0, nv), np.int64), np.empty((0, 3), np.float64)
    domain = ufl.Mesh(basix.ufl.element("Lagrange", CELL_TYPES[nv], 1, shape=(3,)))
    msh = dolfinx.mesh.create_mesh(comm, np.asarray(cells, np.int64),
                                   np.asarray(points, np.float64), domain)
    return msh, np.asarray(msh.topology.original_cell_index, dtype=np.int64)


def tet_volumes(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Volume of each tetrahedron, (m,) mm^3 (unsigned)."""
    d = points[tets[:, 1:]] - points[tets[:, :1]]
    return np.abs(np.linalg.det(d)) / 6.0


def face_components(cells: np.ndarray) -> tuple[int, np.ndarray]:
    """Pieces of a mesh whose cells share faces: ``(count, label per cell)``.

    Cells that touch only along an edge or at a vertex are separate pieces, as in the
    voxel path's connectivity filter: such a hinge carries no load in the model.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    cells = np.asarray(cells, dtype=np.int64)
    m, nv = cells.shape
    local = np.array(_FACES[nv])
    faces = np.sort(cells[:, local], axis=2).reshape(-1, local.shape[1])
    owner = np.repeat(np.arange(m), len(local))
    order = np.lexsort(faces.T[::-1])
    faces, owner = faces[order], owner[order]
    same = np.all(faces[1:] == faces[:-1], axis=1)
    a, b = owner[:-1][same], owner[1:][same]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(m, m))
    return connected_components(graph, directed=False)


def boundary_faces_on_plane(points, cells, z, tol) -> int:
    """Number of cell faces lying in the plane z (within tol, mm).

    In a conforming mesh such a face on the bounding box is a boundary face, and the
    load case needs some at z = 0 and at z = top: a mesh that only touches a loaded
    plane at a point or an edge has nothing to push on.
    """
    cells = np.asarray(cells, dtype=np.int64)
    on = np.abs(points[:, 2] - z) <= tol
    local = np.array(_FACES[cells.shape[1]])
    return int(np.all(on[cells[:, local]], axis=2).sum())


def check_mesh(points, cells, height, where="mesh"):
    """Raise BonefemError unless the mesh is one face-connected piece with faces on both
    loaded planes z = 0 and z = height (mm)."""
    n, _ = face_components(cells)
    if n > 1:
        raise BonefemError(f"{where}: the mesh falls apart into {n} pieces that share no face "
                           "(a floating piece makes the stiffness matrix singular; if the pieces "
                           "should be joined, merge coincident nodes)")
    tol = 1e-6 * height
    for z, name in ((0.0, "bottom (z = 0)"), (height, f"top (z = {height:g} mm)")):
        if boundary_faces_on_plane(points, cells, z, tol) == 0:
            raise BonefemError(f"{where}: no element face lies on the {name} plane, so there "
                               "is nothing for the platen to load")


# ---------------------------------------------------------------------------
# Voxelisation, for the voxel path on the same geometry

def inside(model: StrutModel, x: np.ndarray) -> np.ndarray:
    """True where points x (k, 3) mm lie in the union of the struts and plates (unclipped)."""
    x = np.asarray(x, dtype=float)
    hit = np.zeros(len(x), dtype=bool)
    for p0, p1, r in model.struts:
        p0, axis = np.asarray(p0, float), np.asarray(p1, float) - np.asarray(p0, float)
        t = (x - p0) @ axis / (axis @ axis)
        radial = x - p0 - t[:, None] * axis
        hit |= (t >= 0) & (t <= 1) & (np.einsum("ij,ij->i", radial, radial) <= r * r)
    for lo, hi in model.plates:
        hit |= np.all((x >= np.asarray(lo, float)) & (x <= np.asarray(hi, float)), axis=1)
    return hit


def voxelise(model: StrutModel, n: int, samples=1) -> np.ndarray:
    """Bone volume fraction of the n^3 voxels (edge L/n mm) of the model's cube.

    samples : points per voxel edge; 1 samples the voxel centre (a binary image, the
        usual segmentation), s > 1 averages s^3 sub-voxel centres (partial volume).
    Returns (n, n, n) float64 in [0, 1], axes x, y, z.
    """
    h = model.size / n
    sub = (np.arange(n * samples) + 0.5) * h / samples        # sub-voxel centres, mm
    X, Y = np.meshgrid(sub, sub, indexing="ij")
    out = np.empty((n, n, n))
    for k in range(n):                                       # one voxel layer at a time
        z = sub[k * samples:(k + 1) * samples]
        pts = np.column_stack([np.repeat(X[..., None], samples, 2).ravel(),
                               np.repeat(Y[..., None], samples, 2).ravel(),
                               np.broadcast_to(z, X.shape + (samples,)).ravel()])
        hit = inside(model, pts).reshape(n, samples, n, samples, samples)
        out[:, :, k] = hit.mean(axis=(1, 3, 4))
    return out
