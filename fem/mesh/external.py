"""External volume meshes -> plain arrays (:class:`fem.mesh.volume.VolumeMesh`).

Gmsh (.msh), VTK (.vtu, .vtk) and Abaqus (.inp) files are read with meshio; XDMF
(.xdmf, .xmf) with DOLFINx's own reader, because meshio needs h5py for every XDMF
file and the runtime has none. Linear tetrahedra or linear hexahedra are kept (one
type per mesh: a DOLFINx 0.9 mesh has one cell type); lower-dimensional cells
(surface triangles, edges, points) are ignored. Hexahedra are reordered from VTK's
vertex order, which meshio uses for every format, to DOLFINx's tensor-product order.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from fem.errors import BonefemError
from fem.mesh.volume import VolumeMesh, compact

MESHIO_SUFFIXES = (".msh", ".vtu", ".vtk", ".inp")
XDMF_SUFFIXES = (".xdmf", ".xmf")
MESH_SUFFIXES = MESHIO_SUFFIXES + XDMF_SUFFIXES

# VTK hexahedron: bottom face counter-clockwise (0,0,0) (1,0,0) (1,1,0) (0,1,0), then the
# top face likewise. DOLFINx: tensor-product order (0,0,0) (1,0,0) (0,1,0) (1,1,0) ...
VTK_TO_DOLFINX_HEX = np.array([0, 1, 3, 2, 4, 5, 7, 6])

_KEPT = {"tetra": 4, "hexahedron": 8}


def is_mesh_file(path) -> bool:
    """True if ``path`` has a volume-mesh suffix this module reads."""
    return Path(path).suffix.lower() in MESH_SUFFIXES


def read_volume_mesh(path) -> VolumeMesh:
    """Read the volume cells of a mesh file (coordinates in mm, as stored).

    Raises BonefemError for a missing or unreadable file, a file without volume cells,
    and volume cells other than linear tetrahedra or hexahedra, or a mix of the two.
    """
    path = Path(path)
    if not path.is_file():
        raise BonefemError(f"{path}: file not found")
    if path.suffix.lower() in XDMF_SUFFIXES:
        return _read_xdmf(path)
    if path.suffix.lower() not in MESHIO_SUFFIXES:
        raise BonefemError(f"{path}: unknown mesh format; expected one of {', '.join(MESH_SUFFIXES)}")
    import meshio

    chatter = io.StringIO()   # meshio prints warnings and errors; keep them for the message
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            mesh = meshio.read(path)
    except (Exception, SystemExit) as err:
        # meshio raises many kinds (ReadError, ValueError, KeyError...) and calls
        # sys.exit when no reader accepts the file.
        detail = (" ".join(chatter.getvalue().split()) if isinstance(err, SystemExit)
                  else f"{type(err).__name__}: {err}")
        raise BonefemError(f"{path}: cannot read the mesh ({detail})") from None
    return volume_cells(mesh, str(path))


def volume_cells(mesh, source="mesh") -> VolumeMesh:
    """The linear tetrahedra or hexahedra of a ``meshio.Mesh`` with their cell data."""
    volume = [(i, b) for i, b in enumerate(mesh.cells) if b.dim == 3]
    if not volume:
        found = sorted({b.type for b in mesh.cells}) or ["no cells"]
        raise BonefemError(f"{source}: no volume cells (found {', '.join(found)}); "
                           "expected tetrahedra or hexahedra")
    types = sorted({b.type for _, b in volume})
    other = [t for t in types if t not in _KEPT]
    if other:
        raise BonefemError(f"{source}: unsupported volume cells {', '.join(other)}; bonefem "
                           "reads linear tetrahedra (tetra) or hexahedra (hexahedron)")
    if len(types) > 1:
        raise BonefemError(f"{source}: mixed volume cells ({', '.join(types)}); a DOLFINx 0.9 "
                           "mesh has one cell type: convert it to tetrahedra or to hexahedra")
    cells = np.concatenate([b.data for _, b in volume]).astype(np.int64)
    if types == ["hexahedron"]:
        cells = cells[:, VTK_TO_DOLFINX_HEX]
    cell_data = {}
    for name, blocks in mesh.cell_data.items():
        values = [np.asarray(blocks[i]) for i, _ in volume]
        if all(v.ndim == 1 or v.shape[1:] == (1,) for v in values) and \
                all(np.issubdtype(v.dtype, np.number) for v in values):
            cell_data[name] = np.concatenate([v.reshape(-1) for v in values]).astype(np.float64)
    points = np.zeros((len(mesh.points), 3))
    points[:, :mesh.points.shape[1]] = mesh.points   # 2-D points are padded with z = 0
    points, cells = compact(points, cells)
    return VolumeMesh(points, cells, source, cell_data)


def _read_xdmf(path: Path) -> VolumeMesh:
    """Read an XDMF mesh with DOLFINx on this process alone (no cell data)."""
    import xml.etree.ElementTree as ET

    import dolfinx.io
    from mpi4py import MPI

    try:
        grid = ET.parse(path).getroot().find(".//Grid")
    except ET.ParseError as err:
        raise BonefemError(f"{path}: cannot read the mesh (not XDMF: {err})") from None
    if grid is None:
        raise BonefemError(f"{path}: cannot read the mesh (no Grid in the XDMF file)")
    try:
        with dolfinx.io.XDMFFile(MPI.COMM_SELF, str(path), "r") as f:
            msh = f.read_mesh(name=grid.get("Name", "mesh"))
    except Exception as err:
        raise BonefemError(f"{path}: cannot read the mesh ({type(err).__name__}: {err})") from None
    cell = msh.topology.cell_name()
    if cell not in ("tetrahedron", "hexahedron") or msh.geometry.dofmap.shape[1] not in (4, 8):
        raise BonefemError(f"{path}: no linear volume cells (found {cell}, "
                           f"{msh.geometry.dofmap.shape[1]} nodes per cell); expected tetrahedra "
                           "or hexahedra")
    # DOLFINx keeps its geometry in its own (tensor-product) vertex order already.
    points, cells = compact(msh.geometry.x.copy(), msh.geometry.dofmap.copy())
    return VolumeMesh(points, cells, str(path), {})


def cell_modulus(vmesh: VolumeMesh, name: str | None, default: float) -> np.ndarray:
    """Per-element Young's modulus (m,) MPa: the cell data array ``name``, or ``default``."""
    m = len(vmesh.cells)
    if name is None:
        return np.full(m, float(default))
    if name not in vmesh.cell_data:
        have = ", ".join(sorted(vmesh.cell_data)) or "none"
        raise BonefemError(f"{vmesh.source}: no per-cell array {name!r} for the modulus "
                           f"(scalar cell data found: {have})")
    values = vmesh.cell_data[name]
    if not np.all(np.isfinite(values) & (values > 0)):
        raise BonefemError(f"{vmesh.source}: cell data {name!r} must be a positive modulus in "
                           f"MPa on every cell (min {np.nanmin(values):g})")
    return values.astype(np.float64)


def write_volume_mesh(path, points: np.ndarray, cells: np.ndarray, cell_data=None) -> Path:
    """Write a tetrahedral or hexahedral mesh (DOLFINx vertex order) with meshio.

    cell_data : optional {name: (m,) array}. The format follows the suffix (.msh is
    written as Gmsh 4.1 binary; .vtu as XML with raw binary data).
    """
    import meshio

    cells = np.asarray(cells, dtype=np.int64)
    kind = {4: "tetra", 8: "hexahedron"}[cells.shape[1]]
    if kind == "hexahedron":
        cells = cells[:, np.argsort(VTK_TO_DOLFINX_HEX)]   # DOLFINx -> VTK order
    mesh = meshio.Mesh(np.asarray(points, np.float64), [(kind, cells)],
                       cell_data={k: [np.asarray(v)] for k, v in (cell_data or {}).items()})
    meshio.write(path, mesh)
    return Path(path)
