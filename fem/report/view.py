"""Stress-field views with PyVista: PNG renders and the interactive viewer.

A PNG is composed with matplotlib from PyVista renders of each specimen (without VTK's
own colour bar, whose title its tick labels overprint and bone can hide): the panels, a
title naming the specimen, and one colour bar below them. The colour range is the
2nd-98th percentile of the field (a few peak voxels at the loaded faces would otherwise
saturate a linear scale and leave the bone black), said in the bar's title. Each panel
has an axes triad and an arrow along -z for the imposed compression.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from fem.analysis.strength import PEAK_FIELDS
from fem.errors import BonefemError
from fem.report.render import add_triad, compose
from fem.solve.output import FIELDS

UNITS = {"von_mises": "von Mises stress (MPa)", "sed": "strain energy density (MPa)",
         "effective_strain": "effective strain (-)", "modulus": "element modulus (MPa)",
         "displacement": "displacement (mm)"}
CMAP = "plasma"
PERCENTILES = (2.0, 98.0)
# A trial's field folders: COHORT-sSEED-baseline or COHORT-sSEED-ARM-Ty (fem/trial.py).
_TRIAL_FOLDER = re.compile(r"^(?P<cohort>.+)-s(?P<seed>\d+)-(?P<arm>[^-]+)(?:-(?P<t>[\d.]+)y)?$")


def field_files(path) -> list[Path]:
    """Every .pvd field file of a result folder (recursively), or the file itself."""
    path = Path(path)
    if path.is_dir():
        # the nonlinear test's peak fields are viewed by their file (PEAK_FIELDS)
        files = [f for f in sorted(path.glob("*.pvd")) if f.name != PEAK_FIELDS] or \
            [f for f in sorted(path.glob("**/*.pvd")) if f.name != PEAK_FIELDS]
        if not files:
            raise BonefemError(f"{path}: no field file (.pvd) in this folder; was the case run "
                               "with output.fields = true?")
        return files
    if not path.exists():
        raise BonefemError(f"{path}: file not found")
    if path.suffix not in (".pvd", ".vtu", ".pvtu"):
        raise BonefemError(f"{path}: expected a .pvd, .vtu or .pvtu field file")
    return [path]


def find_field_file(path, pick: str | None = None) -> Path:
    """The one field file of a result folder (or the file itself). A folder holding
    several (a trial's) needs ``pick``: a specimen folder's name (e.g.
    ``elderly-osteoporotic-s0-combined-2y``) or a part of it that only one has; without
    it, or when it fits none or several, the error lists them."""
    files = field_files(path)
    if pick:
        exact = [f for f in files if f.parent.name == pick]
        files = exact or [f for f in files if pick in f.parent.name]
        if not files:
            _listing(field_files(path), f"{path}: no specimen matches {pick!r}")
    if len(files) > 1:
        _listing(files, f"{path} holds {len(files)} stress fields" + (f" matching {pick!r}" if pick else ""))
    return files[0]


def _listing(files, head):
    names = [describe(f) for f in files]
    width = max(map(len, names))
    listing = "\n".join(f"  {name:<{width}s}  {f.parent.name}" for name, f in zip(names, files))
    raise BonefemError(f"{head}; view one by its folder, e.g. `bonefem view {files[0].parent}`; "
                       f"the folders in {files[0].parent.parent}:\n{listing}")


def describe(path) -> str:
    """A title for the specimen of a field file or result folder: cohort, seed and arm
    for a trial's specimen; the case title or image name for a single run."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    m = _TRIAL_FOLDER.match(folder.name)
    if m and (folder.parent.name == "fields"):
        text = f"{m['cohort']}, seed {m['seed']}, {m['arm']}"
        return text + (f" after {m['t']} years" if m["t"] else "")
    try:
        case = json.loads((folder / "result.json").read_text())["case"]
    except (OSError, ValueError, KeyError):
        return folder.name
    image = case.get("specimen", {}).get("image")
    if image:
        return Path(image).name + (f" ({case['title']})" if case.get("title") else "")
    return case.get("title") or folder.name


def load_fields(path, pick: str | None = None):
    """The field file (:func:`find_field_file`) as one PyVista UnstructuredGrid (all MPI
    pieces merged)."""
    import pyvista as pv

    data = pv.read(find_field_file(path, pick))
    if isinstance(data, pv.MultiBlock):
        data = data.combine()
    return data


def scalar_field(grid, field: str):
    """``(grid, name)`` with ``name`` a scalar array of ``grid``: a vector field becomes
    its magnitude. Raises BonefemError for a field the file does not have."""
    if field not in grid.array_names:
        have = sorted(set(grid.array_names) & set(FIELDS))
        raise BonefemError(f"no field {field!r}; the file has {', '.join(have)}")
    values = np.asarray(grid[field])
    if values.ndim == 2:
        grid = grid.copy()
        grid[field + "_magnitude"] = np.linalg.norm(values, axis=1)
        field = field + "_magnitude"
    return grid, field


def percentile_range(values, percentiles=PERCENTILES) -> tuple[float, float]:
    """Colour range (lo, hi) of ``values``: the given percentiles, widened to a
    non-empty interval for a uniform field."""
    lo, hi = (float(v) for v in np.percentile(np.asarray(values, float), percentiles))
    if hi <= lo:
        hi = lo + max(abs(lo), 1.0) * 1e-6
    return lo, hi


def bar_title(field: str, percentiles=PERCENTILES) -> str:
    name = UNITS.get(field.replace("_magnitude", ""), field)
    return f"{name}, colour range {percentiles[0]:g}-{percentiles[1]:g}th percentile"


def _add_load_arrow(plotter, bounds):
    """An arrow pushing down (-z) onto the middle of the top face: the imposed compression."""
    import pyvista as pv

    x0, x1, y0, y1, z0, z1 = bounds
    length = 0.35 * (z1 - z0)
    start = ((x0 + x1) / 2, (y0 + y1) / 2, z1 + 1.05 * length)
    plotter.add_mesh(pv.Arrow(start=start, direction=(0, 0, -1), scale=length, tip_length=0.3,
                              tip_radius=0.12, shaft_radius=0.04), color="deepskyblue")


def _scene(plotter, grid, field, clim, scalar_bar=False, title=""):
    plotter.set_background("white")
    plotter.add_mesh(grid, scalars=field, cmap=CMAP, clim=clim, show_scalar_bar=scalar_bar,
                     scalar_bar_args={"title": bar_title(field), "color": "black", "vertical": True,
                                      "position_x": 0.86, "position_y": 0.2, "height": 0.6,
                                      "title_font_size": 12, "label_font_size": 11,
                                      "fmt": "%.3g", "n_labels": 5})
    _add_load_arrow(plotter, grid.bounds)
    add_triad(plotter, grid.bounds)
    if title:
        plotter.add_text(title, font_size=11, color="black")
    plotter.camera_position = "iso"
    plotter.camera.zoom(0.9)


def _render(grids, field, clim, size) -> list[np.ndarray]:
    """RGB images (h, w, 3) of specimens, white background, margins cropped. All are
    drawn in one window of subplots (one render instead of one per specimen) and cut
    apart."""
    from fem.report.render import _offscreen, crop_panels

    pv = _offscreen()
    n = len(grids)
    plotter = pv.Plotter(off_screen=True, shape=(1, n), window_size=[size[0] * n, size[1]],
                         border=False)
    for i, grid in enumerate(grids):
        plotter.subplot(0, i)
        _scene(plotter, grid, field, clim)
    whole = plotter.screenshot(return_img=True)
    plotter.close()
    return crop_panels(whole, n)


LOAD_NOTE = ("arrow: imposed compression along z (top face pushed down, bottom face held); "
             "axes x, y, z: red, green, blue")


def _bar_label(field: str) -> str:
    return f"{bar_title(field)} (beyond it: end colours)\n{LOAD_NOTE}"


def _check_out(out) -> Path:
    out = Path(out)
    if not out.parent.is_dir():
        raise BonefemError(f"{out}: cannot write the PNG, folder {out.parent} does not exist")
    if out.suffix.lower() != ".png":
        raise BonefemError(f"{out}: a screenshot is a PNG file; name it ...png")
    return out


def screenshot(path, out, field="von_mises", clim=None, title="", size=(900, 900),
               pick: str | None = None) -> Path:
    """Render a field file, or one specimen of a result folder (``pick``:
    :func:`find_field_file`), off screen to a PNG."""
    out = _check_out(out)
    file = find_field_file(path, pick)
    grid, name = scalar_field(load_fields(file), field)
    clim = clim or percentile_range(grid[name])
    images = _render([grid], name, clim, size)
    return compose(images, [""], out, clim, CMAP, _bar_label(name), title or describe(file))


def side_by_side(paths_titles, out, field="von_mises", size=(700, 700), title="") -> Path:
    """Several results next to each other, on one colour scale (the percentiles of all
    of them together), with an overall ``title`` (PNG)."""
    out = _check_out(out)
    grids = [scalar_field(load_fields(p), field) for p, _ in paths_titles]
    clim = percentile_range(np.concatenate([np.asarray(g[n]) for g, n in grids]))
    images = _render([g for g, _ in grids], grids[0][1], clim, size)
    return compose(images, [t for _, t in paths_titles], out, clim, CMAP, _bar_label(grids[0][1]), title)


def interactive(path, field="von_mises", pick: str | None = None):
    """An interactive window with a clipping plane and a threshold slider on the field."""
    import pyvista as pv

    file = find_field_file(path, pick)
    grid, name = scalar_field(load_fields(file), field)
    clim = percentile_range(grid[name])
    plotter = pv.Plotter(title=f"bonefem: {describe(file)}")
    plotter.set_background("white")
    plotter.add_mesh_clip_plane(grid, scalars=name, cmap=CMAP, clim=clim,
                                scalar_bar_args={"title": bar_title(name), "color": "black",
                                                 "vertical": True, "position_x": 0.86,
                                                 "position_y": 0.2, "height": 0.6, "fmt": "%.3g"})
    plotter.add_mesh_threshold(grid, scalars=name, cmap=CMAP, clim=clim, opacity=0.4,
                               show_scalar_bar=False)
    _add_load_arrow(plotter, grid.bounds)
    plotter.add_text(describe(file), font_size=11, color="black")
    plotter.add_axes(color="black")
    plotter.show()


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
