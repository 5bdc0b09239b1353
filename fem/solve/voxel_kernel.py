"""Element-by-element stiffness products on voxel (box) elements, compiled C.

Every element of a voxel level is a box of the same size, so its stiffness is a
combination of a few fixed 24 x 24 reference matrices (``basis``, shape (m, 24, 24))
with per-element weights (shape (n_cells, m)): m = 1 on the finest level (the
reference stiffness for E = 1 times the element modulus), m = 8 on a Galerkin coarse
level (one matrix per child voxel, weighted by the child's modulus; see
fem.solve.multigrid). Nothing is assembled.

The product loop is written in C (about 60 lines) and compiled once per machine with
cffi and the C compiler that DOLFINx's own form compiler needs anyway; NumPy's
gather / matmul / scatter version of the same loop is about 5x slower (its
temporaries are 24 doubles per element per step), and the loop is the hot spot of
the matrix-free solver (docs/benchmark.md). The library is cached under ``$XDG_CACHE_HOME/bonefem``
(default ``~/.cache/bonefem``) keyed by a hash of the source.

DOF layout: node-major, 3 components per node (x_node = x[3 n : 3 n + 3]); element
corners in tensor-product order (fem.mesh.voxel.HEX_CORNERS).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from fem.mesh.voxel import HEX_CORNERS

_CDEF = """
void voxel_matvec(int64_t n_cells, const int32_t *cells, int32_t m,
                  const double *weights, const double *basis,
                  const double *x, double *y);
void voxel_diagonal(int64_t n_cells, const int32_t *cells, int32_t m,
                    const double *weights, const double *basis, double *d);
void element_matvec(int64_t n_cells, const int32_t *cells, const double *mats,
                    const double *x, double *y);
"""

_SOURCE = r"""
#include <stdint.h>

/* The element's 24 DOF values from node-major x; ye zeroed. */
static inline void gather(const int32_t *c, const double *x, double *xe, double *ye)
{
    for (int a = 0; a < 8; ++a) {
        const double *xa = x + 3 * (int64_t)c[a];
        xe[3 * a] = xa[0]; xe[3 * a + 1] = xa[1]; xe[3 * a + 2] = xa[2];
    }
    for (int i = 0; i < 24; ++i) ye[i] = 0.0;
}

/* y += the element's 24 values. */
static inline void scatter(const int32_t *c, const double *ye, double *y)
{
    for (int a = 0; a < 8; ++a) {
        double *ya = y + 3 * (int64_t)c[a];
        ya[0] += ye[3 * a]; ya[1] += ye[3 * a + 1]; ya[2] += ye[3 * a + 2];
    }
}

/* y += sum_e (sum_b w[e,b] K_b) x_e over the elements; x, y node-major (3 per node).
   cells: n_cells x 8 local node indices; basis: m x 24 x 24, each K_b symmetric, so
   row j of K_b is its column j and the product is a sum of contiguous axpys that the
   compiler vectorises. */
void voxel_matvec(int64_t n_cells, const int32_t *cells, int32_t m,
                  const double *weights, const double *basis,
                  const double *x, double *y)
{
    double xe[24], ye[24];
    for (int64_t e = 0; e < n_cells; ++e) {
        const int32_t *c = cells + 8 * e;
        gather(c, x, xe, ye);
        const double *w = weights + (int64_t)m * e;
        for (int b = 0; b < m; ++b) {
            const double wb = w[b];
            if (wb == 0.0) continue;
            const double *K = basis + 576 * b;
            for (int j = 0; j < 24; ++j) {
                const double xj = wb * xe[j];
                const double *Kj = K + 24 * j;
                for (int i = 0; i < 24; ++i) ye[i] += Kj[i] * xj;
            }
        }
        scatter(c, ye, y);
    }
}

/* y += sum_e K_e x_e with one symmetric 24 x 24 matrix per element (mats: n x 576). */
void element_matvec(int64_t n_cells, const int32_t *cells, const double *mats,
                    const double *x, double *y)
{
    double xe[24], ye[24];
    for (int64_t e = 0; e < n_cells; ++e) {
        const int32_t *c = cells + 8 * e;
        gather(c, x, xe, ye);
        const double *K = mats + 576 * e;
        for (int j = 0; j < 24; ++j) {
            const double xj = xe[j];
            const double *Kj = K + 24 * j;
            for (int i = 0; i < 24; ++i) ye[i] += Kj[i] * xj;
        }
        scatter(c, ye, y);
    }
}

/* d += diagonal of the unassembled operator (same arguments as voxel_matvec). */
void voxel_diagonal(int64_t n_cells, const int32_t *cells, int32_t m,
                    const double *weights, const double *basis, double *d)
{
    for (int64_t e = 0; e < n_cells; ++e) {
        const int32_t *c = cells + 8 * e;
        const double *w = weights + (int64_t)m * e;
        for (int i = 0; i < 24; ++i) {
            double s = 0.0;
            for (int b = 0; b < m; ++b) s += w[b] * basis[576 * b + 25 * i];
            d[3 * (int64_t)c[i / 3] + i % 3] += s;
        }
    }
}
"""

_lib = None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bonefem"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def _load():
    """Compile (once per machine, under a file lock) and load the C library."""
    global _lib
    if _lib is not None:
        return _lib
    import fcntl
    import importlib.util
    import sys
    import tempfile

    import cffi

    # -march=native: the library is built on the machine that runs it; the CPU's flags
    # are in the key so that a home folder shared by different nodes keeps one per kind.
    tag = hashlib.sha256((_CDEF + _SOURCE + sys.version + _cpu_flags()).encode()).hexdigest()[:12]
    name = f"_bonefem_voxel_{tag}"
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:       # a read-only home (some container set-ups): compile per user in /tmp
        folder = Path(tempfile.gettempdir()) / f"bonefem-{os.getuid()}"
        folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as lock:
        # Ranks of one job (and jobs of a batch) share the cache: one compiles.
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = sorted(folder.glob(f"{name}.*.so")) + sorted(folder.glob(f"{name}.so"))
        if not found:
            ffi = cffi.FFI()
            ffi.cdef(_CDEF)
            ffi.set_source(name, _SOURCE, extra_compile_args=["-O3", "-march=native", "-std=c99"])
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                built = Path(ffi.compile(tmpdir=tmp, verbose=False))
                target = folder / built.name
                os.replace(built, target)
            found = [target]
    spec = importlib.util.spec_from_file_location(name, found[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _lib = module
    return _lib


def _ptr(ffi, array, ctype):
    return ffi.cast(ctype, ffi.from_buffer(array))


def matvec(cells: np.ndarray, weights: np.ndarray | None, basis: np.ndarray, x: np.ndarray,
           y: np.ndarray) -> None:
    """``y += K x`` for the elements ``cells`` (n, 8) int32.

    With ``weights`` (n, m): element e's matrix is sum_b weights[e, b] basis[b], basis
    (m, 24, 24). With ``weights`` None: ``basis`` holds one matrix per element (n, 24, 24).
    x, y: float64 node-major arrays (3 per node), y updated in place. Matrices symmetric.
    """
    lib = _load()
    ffi = lib.ffi
    assert cells.dtype == np.int32 and cells.flags.c_contiguous and cells.shape[1] == 8
    assert basis.dtype == np.float64 and basis.flags.c_contiguous and basis.shape[1:] == (24, 24)
    assert x.dtype == np.float64 and y.dtype == np.float64 and y.flags.c_contiguous
    x = np.ascontiguousarray(x)
    if weights is None:
        assert len(basis) == len(cells)
        lib.lib.element_matvec(len(cells), _ptr(ffi, cells, "int32_t *"), _ptr(ffi, basis, "double *"),
                               _ptr(ffi, x, "double *"), _ptr(ffi, y, "double *"))
        return
    assert weights.dtype == np.float64 and weights.flags.c_contiguous
    assert weights.shape == (len(cells), len(basis))
    lib.lib.voxel_matvec(len(cells), _ptr(ffi, cells, "int32_t *"), basis.shape[0],
                         _ptr(ffi, weights, "double *"), _ptr(ffi, basis, "double *"),
                         _ptr(ffi, x, "double *"), _ptr(ffi, y, "double *"))


def diagonal(cells: np.ndarray, weights: np.ndarray | None, basis: np.ndarray, n_nodes: int) -> np.ndarray:
    """Diagonal of the unassembled operator (arguments as :func:`matvec`), (3 n_nodes,)."""
    if weights is None:
        d = np.zeros(3 * n_nodes)
        idx = (3 * cells[:, :, None] + np.arange(3)).reshape(-1, 24)
        np.add.at(d, idx, np.diagonal(basis, axis1=1, axis2=2))
        return d
    lib = _load()
    ffi = lib.ffi
    d = np.zeros(3 * n_nodes)
    lib.lib.voxel_diagonal(len(cells), _ptr(ffi, cells, "int32_t *"), basis.shape[0],
                           _ptr(ffi, weights, "double *"), _ptr(ffi, basis, "double *"),
                           _ptr(ffi, d, "double *"))
    return d


def hex_stiffness(spacing, poisson: float) -> np.ndarray:
    """Stiffness of one box element of edges ``spacing`` (mm) for E = 1 MPa, (24, 24).

    Trilinear (Q1) displacement, 2 x 2 x 2 Gauss points (exact for a box), DOFs
    node-major in tensor-product corner order; units N/mm per MPa of modulus.
    """
    h = np.asarray(spacing, dtype=float)
    nu = float(poisson)
    lam, mu = nu / ((1 + nu) * (1 - 2 * nu)), 1 / (2 * (1 + nu))
    D = np.full((3, 3), lam) + 2 * mu * np.eye(3)
    C = np.zeros((6, 6))
    C[:3, :3] = D
    C[3:, 3:] = mu * np.eye(3)
    g = 0.5 + np.array([-1.0, 1.0]) / (2 * np.sqrt(3.0))   # Gauss points on [0, 1]
    K = np.zeros((24, 24))
    corners = HEX_CORNERS.astype(float)
    for q in np.array(np.meshgrid(g, g, g, indexing="ij")).reshape(3, -1).T:
        # d N_a / d xi_d for the tensor-product shape functions on the unit cube
        f = np.where(corners == 1, q, 1 - q)                # (8, 3) factors
        s = np.where(corners == 1, 1.0, -1.0)
        dN = np.empty((8, 3))
        for d in range(3):
            others = [e for e in range(3) if e != d]
            dN[:, d] = s[:, d] * f[:, others[0]] * f[:, others[1]]
        dN /= h                                             # to physical coordinates
        B = np.zeros((6, 24))
        for a in range(8):
            gx, gy, gz = dN[a]
            B[0, 3 * a], B[1, 3 * a + 1], B[2, 3 * a + 2] = gx, gy, gz
            B[3, 3 * a + 1], B[3, 3 * a + 2] = gz, gy        # gamma_yz
            B[4, 3 * a], B[4, 3 * a + 2] = gz, gx            # gamma_xz
            B[5, 3 * a], B[5, 3 * a + 1] = gy, gx            # gamma_xy
        K += B.T @ C @ B * np.prod(h) / 8.0
    return K
