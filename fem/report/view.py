"""Stress-field views with PyVista: PNG renders and the interactive viewer."""

from __future__ import annotations

import os
from pathlib import Path

from fem.errors import BonefemError
from fem.solve.output import FIELDS

UNITS = {"von_mises": "von Mises stress (MPa)", "sed": "strain energy density (MPa)",
         "effective_strain": "effective strain (-)", "modulus": "element modulus (MPa)",
         "displacement": "displacement (mm)"}


def find_field_file(path) -> Path:
    """The .pvd field file of a result folder, or the file itself."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.pvd")) or sorted(path.glob("**/*.pvd"))
        if not files:
            raise BonefemError(f"{path}: no field file (.pvd) in this folder; was the case run "
                               "with output.fields = true?")
        return files[0]
    if not path.exists():
        raise BonefemError(f"{path}: file not found")
    if path.suffix not in (".pvd", ".vtu", ".pvtu"):
        raise BonefemError(f"{path}: expected a .pvd, .vtu or .pvtu field file")
    return path


def load_fields(path):
    """The field file as one PyVista UnstructuredGrid (all MPI pieces merged)."""
    import pyvista as pv

    data = pv.read(find_field_file(path))
    if isinstance(data, pv.MultiBlock):
        data = data.combine()
    return data


def _scene(plotter, grid, field: str, clim=None, title="", scalar_bar=True):
    if field not in grid.array_names:
        raise BonefemError(f"no field {field!r}; the file has {', '.join(sorted(set(grid.array_names) & set(FIELDS)))}")
    scalars = grid[field]
    if scalars.ndim == 2:
        import numpy as np

        grid = grid.copy()
        grid[field + "_magnitude"] = np.linalg.norm(scalars, axis=1)
        field = field + "_magnitude"
    plotter.add_mesh(grid, scalars=field, cmap="inferno", clim=clim, show_scalar_bar=scalar_bar,
                     scalar_bar_args={"title": UNITS.get(field.replace("_magnitude", ""), field),
                                      "color": "black", "vertical": False, "position_x": 0.2,
                                      "position_y": 0.03, "width": 0.6, "height": 0.07,
                                      "title_font_size": 14, "label_font_size": 12})
    if title:
        plotter.add_text(title, font_size=11, color="black")
    plotter.set_background("white")
    plotter.camera_position = "iso"


def screenshot(path, out, field="von_mises", clim=None, title="", size=(1000, 850)) -> Path:
    """Render a field file (or result folder) off screen to a PNG."""
    from fem.report.render import _offscreen

    pv = _offscreen()
    grid = load_fields(path)
    plotter = pv.Plotter(off_screen=True, window_size=list(size))
    _scene(plotter, grid, field, clim, title or Path(str(path)).name)
    out = Path(out)
    plotter.screenshot(str(out))
    plotter.close()
    return out


def side_by_side(paths_titles, out, field="von_mises", size=(1600, 700)) -> Path:
    """Several results next to each other, on one colour scale (PNG)."""
    import numpy as np

    from fem.report.render import _offscreen

    pv = _offscreen()
    grids = [load_fields(p) for p, _ in paths_titles]
    values = np.concatenate([g[field] for g in grids])
    clim = (0.0, float(np.percentile(values, 99)))
    plotter = pv.Plotter(off_screen=True, shape=(1, len(grids)), window_size=list(size))
    for i, (grid, (_, title)) in enumerate(zip(grids, paths_titles)):
        plotter.subplot(0, i)
        _scene(plotter, grid, field, clim, title, scalar_bar=(i == 0))
    plotter.link_views()
    out = Path(out)
    plotter.screenshot(str(out))
    plotter.close()
    return out


def interactive(path, field="von_mises"):
    """An interactive window with a clipping plane and a threshold slider on the field."""
    import pyvista as pv

    grid = load_fields(path)
    plotter = pv.Plotter()
    plotter.set_background("white")
    plotter.add_mesh_clip_plane(grid, scalars=field, cmap="inferno",
                                scalar_bar_args={"title": UNITS.get(field, field), "color": "black"})
    plotter.add_mesh_threshold(grid, scalars=field, cmap="inferno", opacity=0.4, show_scalar_bar=False)
    plotter.add_axes()
    plotter.show()


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
