"""PNG renders with PyVista, off screen, laid out with matplotlib.

Debian's VTK renders through X; with no display a virtual one (Xvfb) is started once.
VTK draws the 3-D scene only; titles and the colour bar are matplotlib's (VTK's own bar
overprints its title with its tick labels and can sit behind the bone).
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


def crop_panels(image: np.ndarray, n: int, pad: int = 10) -> list[np.ndarray]:
    """Cut a screenshot of ``n`` side-by-side subplots (h, w, 3) into its panels, all
    cropped to the union of what is drawn on the white background (so they stay aligned)."""
    width = image.shape[1] // n
    panels = [image[:, i * width:(i + 1) * width] for i in range(n)]
    ink = np.concatenate([np.argwhere(np.any(p < 250, axis=2)) for p in panels])
    if len(ink) == 0:
        return panels
    (r0, c0), (r1, c1) = ink.min(axis=0), ink.max(axis=0)
    return [p[max(r0 - pad, 0): r1 + pad, max(c0 - pad, 0): c1 + pad] for p in panels]


def add_triad(plotter, bounds) -> None:
    """Axes x, y, z as red, green and blue arrows beside the specimen box's bottom corner.

    Part of the 3-D scene (not PyVista's corner widget), so that cropping a render to
    what is drawn keeps it next to the bone.
    """
    import pyvista as pv

    x0, x1, y0, y1, z0, z1 = bounds
    length = 0.25 * max(x1 - x0, y1 - y0, z1 - z0)
    # the bottom corner nearest the isometric camera, just outside the box
    origin = (x1 + 0.3 * length, y1 + 0.3 * length, z0)
    for direction, color in (((1, 0, 0), "red"), ((0, 1, 0), "green"), ((0, 0, 1), "blue")):
        plotter.add_mesh(pv.Arrow(start=origin, direction=direction, scale=length, tip_length=0.25,
                                  tip_radius=0.08, shaft_radius=0.025), color=color)


def compose(images, titles, out, clim, cmap, bar_label, title="", extend="both") -> Path:
    """Panels (RGB arrays) side by side with a title, one horizontal colour bar of
    ``cmap`` over ``clim`` labelled ``bar_label`` below them; written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    n = len(images)
    height = 5.2
    if n > 1:
        # as tall as the panels need (3.4 in wide each) plus the title and the bar, so
        # that wide, short panels do not float in an empty figure
        aspect = max(im.shape[0] / im.shape[1] for im in images)
        height = min(5.2, max(2.6, 3.4 * aspect + 1.8))
    fig, axes = plt.subplots(1, n, figsize=(max(6.5, 3.4 * n + 0.4), height), squeeze=False,
                             layout="constrained")
    for ax, image, t in zip(axes[0], images, titles):
        ax.imshow(image)
        if t:
            ax.set_title(t, fontsize=11)
        ax.axis("off")
    mappable = plt.cm.ScalarMappable(norm=Normalize(*clim), cmap=cmap)
    bar = fig.colorbar(mappable, ax=axes[0].tolist(), orientation="horizontal",
                       shrink=0.6 if n == 1 else 0.4, aspect=25 if n == 1 else 45, extend=extend,
                       pad=0.02)
    bar.set_label(bar_label, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=13)
    out = Path(out)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def render_specimen(phi: np.ndarray, spacing, path, title: str = "", size=(900, 900)) -> Path:
    """Render the bone surface, coloured by height z (mm, the load axis), to a PNG file."""
    pv = _offscreen()
    surface = levelset_surface(phi, spacing)
    z = surface.points[:, 2]
    surface["z (mm)"] = z
    clim = (float(z.min()), float(z.max())) if len(z) else (0.0, 1.0)
    plotter = pv.Plotter(off_screen=True, window_size=list(size))
    plotter.set_background("white")
    plotter.add_mesh(surface, scalars="z (mm)", cmap="bone", clim=clim, smooth_shading=True,
                     show_scalar_bar=False)
    add_triad(plotter, surface.bounds)
    plotter.camera_position = "iso"
    plotter.camera.elevation = -10
    image = plotter.screenshot(return_img=True)
    plotter.close()
    return compose(crop_panels(image, 1), [""], path, clim, "bone",
                   "height z (mm); z is the load axis", title, extend="neither")
