"""Benchmark: does the softening peak converge under voxel refinement of one geometry?

The LHDL core at 39 / 58.5 / 78 um (bench/nonlinear.py --k 2 3 4) changes its geometry
with the voxel size (the coarser threshold loses connections: Pistoia halves from 39 to
78 um), so its peaks mix discretisation and geometry. Here the geometry is fixed: one
period of a gyroid rod lattice (BV/TV about 0.4, the lattice of
tests/test_nonlinear.py::test_ultimate_load_converges_under_voxel_refinement), 0.96 mm
cube, on n = 12 ... 32 voxels per edge; E = 10 GPa, nu = 0.3, default yield strains,
softening onset 2 / end 4 / residual 0.1, with and without the crack band
(``crack_band`` = the 16-voxel element, 0.06 mm). Prints and writes the peak load, strain
at the peak, yielded fraction at it and the nonlinear / linear time of each run.

    ./bonefem exec python3 -u bench/nonlinear_regularise.py -o bench/out/nonlinear_regularise_gyroid.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SIZE = 0.96          # mm, one period


def gyroid_mask(n: int) -> np.ndarray:
    """One period of a gyroid rod lattice on n voxels per edge (tests/test_nonlinear.py)."""
    x = (np.arange(n) + 0.5) / n * 2 * np.pi
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    return np.sin(X) * np.cos(Y) + np.sin(Y) * np.cos(Z) + np.sin(Z) * np.cos(X) > 0.3


def run(n: int, crack_band: float, strain_max: float, steps: int, nonlocal_radius=0.0) -> dict:
    from fem.case import case_from_dict
    from fem.pipeline import solve_specimen
    from fem.specimen.load import Specimen

    case = case_from_dict({"specimen": {"synthetic": {}}, "output": {"fields": False},
                           "analysis": {"strength": "nonlinear", "strain_max": strain_max,
                                        "steps": steps, "softening": True,
                                        "crack_band": crack_band,
                                        "nonlocal_radius": nonlocal_radius}}, source="bench")
    r = solve_specimen(Specimen(gyroid_mask(n), (SIZE / n,) * 3, 10000.0), case, log=lambda *a: None)
    nl = r["nonlinear"]
    return {"n": n, "voxel_mm": SIZE / n, "crack_band_mm": crack_band,
            "nonlocal_radius_mm": nonlocal_radius, "dofs": r["dofs"],
            "bv_tv": r["bv_tv"], "peak_N": nl["ultimate_load_N"], "peak_reached": nl["peak_reached"],
            "strain_at_peak": nl["strain_at_ultimate"],
            "yielded_at_peak": nl["yielded_fraction_at_ultimate"],
            "first_yield_strain": nl["first_yield_strain"], "points": nl["points"],
            "softening_end_element": nl.get("softening_end_element"),
            "pistoia_N": r["pistoia"]["failure_load_N"], "nonlinear_s": nl["seconds"],
            "timings_s": r["timings_s"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[12, 16, 24, 32])
    p.add_argument("--crack-band", type=float, nargs="+", default=[0.0, SIZE / 16])
    p.add_argument("--nonlocal", type=float, nargs="+", default=[0.0], dest="radii",
                   help="nonlocal radii (mm) to run, each with every crack band")
    p.add_argument("--strain-max", type=float, default=-0.02)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("-o", type=Path)
    args = p.parse_args(argv)
    rows = []
    for radius, cb in [(radius, cb) for radius in args.radii for cb in args.crack_band]:
        for n in args.n:
            row = run(n, cb, args.strain_max, args.steps, radius)
            rows.append(row)
            print(f"nonlocal {radius:.3f} mm, crack_band {cb:.3f} mm, n {n} ({row['voxel_mm'] * 1000:.0f} um, {row['dofs']} DOF, "
                  f"BV/TV {row['bv_tv']:.3f}): peak {row['peak_N']:.3f} N at "
                  f"{100 * row['strain_at_peak']:.3f} % (peak {row['peak_reached']}), yielded "
                  f"{row['yielded_at_peak']:.4f}, first yield {100 * row['first_yield_strain']:.3f} %, "
                  f"Pistoia {row['pistoia_N']:.3f} N, nonlinear {row['nonlinear_s']:.1f} s", flush=True)
            if args.o:                 # after every run: a stopped run keeps the rest
                args.o.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
