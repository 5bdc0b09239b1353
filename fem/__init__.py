"""bonefem: finite-element bone strength engine (micro-FE with DOLFINx and PETSc).

Units throughout: millimetres, newtons, megapascals (so energies are in mJ = N mm).
Axes: x, y, z with z the loading (cranio-caudal) axis; image arrays are indexed
``image[i, j, k]`` with i along x, j along y and k along z.
"""

__version__ = "0.1.0"
