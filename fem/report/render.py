"""PNG renders with PyVista, off screen.

Debian's VTK renders through X; with no display a virtual one (Xvfb) is started once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_XVFB_STARTED = False


def _offscreen():
    import pyvista as pv

    global _XVFB_STARTED
    pv.OFF_SCREEN = True
    if not os.environ.get("DISPLAY") and not _XVFB_STARTED:
        pv.start_xvfb()
        _XVFB_STARTED = True
    return pv


def levelset_surface(phi: np.ndarray, spacing):
    """The bone surface (phi = 0) of a signed-distance image as a PyVista PolyData (mm)."""
    pv = _offscreen()
    # Pad with marrow so the cut faces at the image border close the surface.
    padded = np.pad(np.asarray(phi, np.float32), 1, constant_values=-1.0)
    grid = pv.ImageData(dimensions=padded.shape, spacing=spacing,
                        origin=tuple(-0.5 * s for s in spacing))
    grid.point_data["phi"] = padded.ravel(order="F")
    return grid.contour([0.0], scalars="phi")


def render_specimen(phi: np.ndarray, spacing, path, title: str = "", size=(900, 900)) -> Path:
    """Render the bone surface, coloured by height z (mm), to a PNG file."""
    pv = _offscreen()
    surface = levelset_surface(phi, spacing)
    surface["z (mm)"] = surface.points[:, 2]
    plotter = pv.Plotter(off_screen=True, window_size=list(size))
    plotter.set_background("white")
    plotter.add_mesh(surface, scalars="z (mm)", cmap="bone", smooth_shading=True,
                     scalar_bar_args={"title": "z (mm)", "color": "black"})
    if title:
        plotter.add_text(title, font_size=12, color="black")
    plotter.add_axes(color="black")
    plotter.camera_position = "iso"
    plotter.camera.elevation = -10
    path = Path(path)
    plotter.screenshot(str(path))
    plotter.close()
    return path
