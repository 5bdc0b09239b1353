"""Regenerate the small specimen files in meshes/ (see meshes/README.md).

    ./bonefem exec python3 meshes/regenerate.py

Every file is made from seeded generators, so the files come out the same each time
(up to the compression of the containers).
"""

from pathlib import Path

import numpy as np

from fem.case import case_from_dict
from fem.mesh.external import write_volume_mesh
from fem.mesh.strut_mesh import mesh_struts
from fem.mesh.struts import cubic_cell
from fem.mesh.voxel import voxel_grid
from fem.report.specimen import export_specimen
from fem.specimen.foam import trabecular_foam
from fem.specimen.islands import largest_component

HERE = Path(__file__).resolve().parent


def vertebral() -> Path:
    """Elderly-osteoporotic vertebral specimen, 1.6 mm cube of 40 um voxels, seed 1: its
    bone volume fraction per voxel as NIfTI (`bonefem specimen`)."""
    case = case_from_dict({"specimen": {"vertebral": {
        "cohort": "elderly-osteoporotic", "size": 1.6, "voxel_size": 0.04, "seed": 1}}}, "meshes")
    out = HERE / "vertebral"
    export_specimen(case, out, render=False)
    path = HERE / "vertebral-elderly-1.6mm.nii.gz"
    (out / "specimen.nii.gz").replace(path)
    for p in out.iterdir():
        p.unlink()
    out.rmdir()
    return path


def strut_cell() -> Path:
    """A cubic strut cell (1 mm, vertical struts r = 0.2 mm, horizontal r = 0.12 mm) meshed
    by gmsh with tetrahedra of edge 0.1 mm."""
    points, tets = mesh_struts(cubic_cell(1.0, 0.2, 0.12), h=0.1)
    return write_volume_mesh(HERE / "strut-cell.msh", points, tets)


def foam_hexahedra() -> Path:
    """The foam generator's 0.6 mm cube (30 um voxels, BV/TV 0.3, seed 1, its largest
    piece) as hexahedra,
    with a per-cell modulus "E" (MPa) that grows from 8 GPa at the bottom to 12 GPa at
    the top: an example of `--modulus-field`."""
    mask = trabecular_foam(size=0.6, voxel_size=0.03, bv_tv=0.3, spacing=0.3, seed=1)
    mask, _ = largest_component(mask)          # one piece: a mesh file has no island filter
    grid = voxel_grid(mask, (0.03,) * 3)
    z = grid.points[grid.cells].mean(axis=1)[:, 2]
    modulus = 8000.0 + 4000.0 * z / 0.6
    return write_volume_mesh(HERE / "foam-hexahedra.vtu", grid.points, grid.cells, {"E": modulus})


if __name__ == "__main__":
    for make in (vertebral, strut_cell, foam_hexahedra):
        path = make()
        print(f"{path.relative_to(HERE.parent)}: {path.stat().st_size / 1024:.0f} KiB")
