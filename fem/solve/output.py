"""Field output with DOLFINx's own VTK writer (.pvd + .pvtu/.vtu).

ParaView and PyVista (``pyvista.read``) open the .pvd file directly. Debian's VTK has
no XDMF reader, which is why this is VTK and not XDMF.
"""

from __future__ import annotations

from pathlib import Path

FIELDS = {
    "displacement": "mm, P1 (point data)",
    "modulus": "MPa, per element",
    "von_mises": "MPa, per element (stress at the element centre = its average on a box)",
    "sed": "strain energy density, MPa = mJ/mm^3, per element (of the element-centre strain)",
    "effective_strain": "sqrt(2 SED / E), per element (the Pistoia criterion's strain)",
}


def write_fields(path, solution, comm) -> Path:
    """Write displacement and the per-element fields of a solution (see FIELDS).

    Returns the path of the .pvd file; the pieces (.pvtu, .vtu) lie beside it.
    """
    import dolfinx.fem
    import dolfinx.io

    Q = solution.modulus.function_space
    n = Q.mesh.topology.index_map(3).size_local
    cell_fields = []
    for name, values in (("von_mises", solution.von_mises), ("sed", solution.sed),
                         ("effective_strain", solution.ees)):
        f = dolfinx.fem.Function(Q, name=name)
        f.x.array[:n] = values
        f.x.scatter_forward()
        cell_fields.append(f)
    path = Path(path).with_suffix(".pvd")
    with dolfinx.io.VTKFile(comm, str(path), "w") as vtk:
        vtk.write_function([solution.u, solution.modulus, *cell_fields], 0.0)
    return path
