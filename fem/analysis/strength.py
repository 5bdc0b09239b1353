"""What a load-displacement curve says: apparent yield (0.2 % offset), ultimate load.

Plain functions of the curve's arrays (fem.solve.nonlinear.CurveResult), so they serve
measured curves as well. Apparent stress = force / loaded area (MPa), apparent strain =
top displacement / height; compression is negative and every figure here is returned
as a positive magnitude.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


# The fields at the ultimate load, beside the linear solve's fields.pvd; `bonefem view`
# of a result folder shows the linear fields and takes this file only by its path.
PEAK_FIELDS = "peak.pvd"
# Trial rows and collected tables: column -> key of result.json's "nonlinear" summary.
NONLINEAR_COLUMNS = {"nl_ultimate_load_N": "ultimate_load_N", "nl_yield_load_N": "offset_yield_load_N",
                     "nl_strain_at_ultimate": "strain_at_ultimate",
                     "nl_yielded_fraction": "yielded_fraction_at_ultimate",
                     "nl_peak_reached": "peak_reached"}


def nonlinear_columns(result: dict) -> dict:
    """The nonlinear test's figures of a solve's result as flat row columns (units as in
    :func:`summarise`: N, apparent strain, volume fraction); {} if it did not run."""
    nl = result.get("nonlinear")
    return {col: nl.get(key) for col, key in NONLINEAR_COLUMNS.items()} if nl else {}


# Trial rows and collected tables: column -> key of result.json's "buckling" summary.
BUCKLING_COLUMNS = {"buckling_load_N": "load_N", "buckling_mode_share": "mode_share"}


def buckling_columns(result: dict) -> dict:
    """The buckling analysis's figures of a solve's result as flat row columns (N, share
    of the nodes); {} if it did not run."""
    b = result.get("buckling")
    return {col: b.get(key) for col, key in BUCKLING_COLUMNS.items()} if b else {}


def offset_yield(strain: np.ndarray, stress: np.ndarray, modulus: float, offset=0.002):
    """Apparent yield point by the offset method: where the curve crosses the line of
    slope ``modulus`` through (offset, 0).

    strain, stress : (n,) curve points from the origin (any sign; magnitudes are used)
    modulus : initial (linear) apparent modulus, MPa
    Returns ``(yield_strain, yield_stress)`` as magnitudes, or None if the curve ends
    before crossing the offset line. Between points the curve is linear.
    """
    e, s = np.abs(np.asarray(strain, float)), np.abs(np.asarray(stress, float))
    g = s - modulus * (e - offset)          # > 0 above the offset line
    below = np.flatnonzero(g <= 0)
    if len(below) == 0 or below[0] == 0:
        return None
    k = below[0]
    t = g[k - 1] / (g[k - 1] - g[k])        # linear between points k-1 and k
    return float(e[k - 1] + t * (e[k] - e[k - 1])), float(s[k - 1] + t * (s[k] - s[k - 1]))


def summarise(curve, area: float, modulus: float | None = None, offset=0.002) -> dict:
    """Figures of a curve for result.json.

    curve : fem.solve.nonlinear.CurveResult; area : loaded area, mm^2
    modulus : initial apparent modulus (MPa); the slope of the first segment if None
    """
    strain, force = np.asarray(curve.strain), np.asarray(curve.force)
    stress = force / area
    if modulus is None:
        modulus = abs(stress[1] / strain[1])
    k = curve.peak_index
    yp = offset_yield(strain, stress, modulus, offset)
    return {
        "ultimate_load_N": float(abs(force[k])),
        "ultimate_stress_MPa": float(abs(stress[k])),
        "strain_at_ultimate": float(abs(strain[k])),
        "peak_reached": bool(curve.peaked),
        "yielded_fraction_at_ultimate": float(curve.yielded[k]),
        "first_yield_strain": float(abs(strain[1])),
        "first_yield_load_N": float(abs(force[1])),
        "offset_yield_strain": None if yp is None else yp[0],
        "offset_yield_stress_MPa": None if yp is None else yp[1],
        "offset_yield_load_N": None if yp is None else yp[1] * area,
        "initial_modulus_MPa": float(modulus),
        "offset": offset,
        "points": int(len(strain)),
        "secant_iterations": int(np.sum(curve.iterations)),
        "inner_iterations": int(np.sum(curve.inner_iterations)),
        "seconds": round(float(curve.seconds), 3),
        # softening: the apparent strain of a step past the peak that did not settle (a
        # collapse; the curve ends before it), else None
        "unsettled_strain": None if curve.unsettled_strain is None else float(abs(curve.unsettled_strain)),
    }


def write_curve_csv(path, curve, area: float) -> Path:
    """The curve as CSV: strain, displacement-free apparent stress, force, yielded fraction."""
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["apparent_strain", "force_N", "apparent_stress_MPa", "yielded_fraction",
                    "secant_iterations", "inner_iterations"])
        for row in zip(curve.strain, curve.force, np.asarray(curve.force) / area, curve.yielded,
                       curve.iterations, curve.inner_iterations):
            w.writerow([f"{row[0]:.6g}", f"{row[1]:.6g}", f"{row[2]:.6g}", f"{row[3]:.6g}",
                        int(row[4]), int(row[5])])
    return path


def plot_curve(path, curve, area: float, summary: dict, title="") -> Path:
    """Apparent stress-strain plot (magnitudes) with the offset line, yield and ultimate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = np.abs(curve.strain) * 100
    s = np.abs(np.asarray(curve.force)) / area
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(e, s, "o-", ms=3, label="micro-FE (secant damage)")
    E, off = summary["initial_modulus_MPa"], summary["offset"]
    x = np.linspace(off, max(e.max() / 100, off * 1.5), 20)
    ax.plot(x * 100, E * (x - off), "--", color="grey", lw=1, label=f"{off * 100:g} % offset line")
    if summary["offset_yield_strain"] is not None:
        ax.plot(summary["offset_yield_strain"] * 100, summary["offset_yield_stress_MPa"], "s",
                color="C2", label="offset yield")
    ax.plot(summary["strain_at_ultimate"] * 100, summary["ultimate_stress_MPa"], "^", color="C3",
            label="ultimate" + ("" if summary["peak_reached"] else " (end of curve)"))
    ax.set_ylim(0, s.max() * 1.15)
    ax.set_xlabel("apparent strain (%)")
    ax.set_ylabel("apparent stress (MPa)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def write_peak_fields(path, curve, comm) -> Path:
    """Fields at the ultimate load as .pvd (``bonefem view RESULT_DIR/peak.pvd``).

    displacement (mm, P1), secant_modulus (MPa), yield_index (> 1 yielded), von_mises
    (MPa) and sed (MPa), per element from the element-centre strain.
    """
    import dolfinx.fem
    import dolfinx.io

    u = curve.u_peak
    msh = u.function_space.mesh
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    n = msh.topology.index_map(3).size_local
    cell_fields = []
    for name in ("secant_modulus", "yield_index", "von_mises", "sed"):
        if name not in curve.fields:
            continue
        f = dolfinx.fem.Function(Q, name=name)
        f.x.array[:n] = curve.fields[name]
        f.x.scatter_forward()
        cell_fields.append(f)
    path = Path(path).with_suffix(".pvd")
    with dolfinx.io.VTKFile(comm, str(path), "w") as vtk:
        vtk.write_function([u, *cell_fields], 0.0)
    return path


def tissue_from_options(options):
    """The tissue law (fem.solve.nonlinear.TissueYield) of a case's [analysis] table."""
    import dataclasses

    from fem.solve.nonlinear import TissueYield

    return TissueYield(**{f.name: getattr(options, f.name) for f in dataclasses.fields(TissueYield)})


def nonlinear_strength(msh, modulus_cells, fraction_cells, extent, pins, voxel_spacing,
                       poisson, test, options, outdir=None, comm=None, log=print,
                       linear_rtol=1e-8) -> dict:
    """Run the nonlinear compression test of a voxel mesh and summarise it.

    options : the case's [analysis] table (the tissue law's keys: TissueYield,
        strain_max, steps); extent : (3,) specimen edges, mm; pins as fem.solve.loadcases
    With ``options.geometry == "large"`` the large-deformation reference implementation
    (fem.solve.large_deformation) runs instead of the small-strain matrix-free one.
    Writes ``curve.csv``, ``curve.png`` and ``peak.pvd`` into ``outdir`` (unless None).
    Returns the summary (same on every rank).
    """
    from fem.solve.nonlinear import compression_curve, crack_band_law

    comm = comm or msh.comm
    say = log if comm.rank == 0 else (lambda *a: None)
    tissue = tissue_from_options(options)
    if options.geometry == "large":
        from fem.solve.large_deformation import compression_curve_large
        from fem.solve.loadcases import boundary_conditions

        curve = compression_curve_large(
            msh, modulus_cells, poisson, lambda s, V: boundary_conditions(V, test, s, extent[2], pins),
            options.strain_max, options.steps, crack_band_law(tissue, voxel_spacing), fraction_cells,
            log=say)
    else:
        curve = compression_curve(msh, modulus_cells, poisson, test, extent[2], pins, voxel_spacing,
                                  tissue, options.strain_max, options.steps, fraction_cells,
                                  linear_rtol=linear_rtol, log=say)
    area = float(extent[0] * extent[1])
    summary = summarise(curve, area)
    summary["geometry"] = options.geometry
    summary["tissue"] = vars(tissue)
    if tissue.softening and tissue.crack_band > 0:   # the element law the crack band gave
        summary["softening_end_element"] = crack_band_law(tissue, voxel_spacing).softening_end
    if outdir is not None:
        outdir = Path(outdir)
        if comm.rank == 0:
            outdir.mkdir(parents=True, exist_ok=True)
            write_curve_csv(outdir / "curve.csv", curve, area)
            plot_curve(outdir / "curve.png", curve, area, summary)
        comm.barrier()
        if curve.fields:
            summary["fields"] = write_peak_fields(outdir / PEAK_FIELDS, curve, comm).name
        summary["curve"] = "curve.csv"
    return summary
