"""Element-by-element stiffness products on voxel (box) elements, compiled C.

Every element of a voxel level is a box of the same size, so its stiffness is a
combination of a few fixed 24 x 24 reference matrices (``basis``, shape (m, 24, 24))
with per-element weights (shape (n_cells, m)): m = 1 on the finest level (the
reference stiffness for E = 1 times the element modulus), m = 8 on a Galerkin coarse
level (one matrix per child voxel, weighted by the child's modulus; see
fem.solve.multigrid). Nothing is assembled.

The product loops are written in C (voxel_kernel.c) and compiled once per machine with cffi and the C
compiler that DOLFINx's own form compiler needs anyway; NumPy's gather / matmul /
scatter version of the same loop is about 5x slower (its temporaries are 24 doubles
per element per step), and the loop is the hot spot of the matrix-free solver
(docs/benchmark.md). Where the matrix is one box stiffness times a modulus (m = 1, the
finest level and a rediscretised level 1) the product goes through the box's mirror
symmetry (:func:`box_blocks`): 8 blocks of 3 x 3 instead of 24 x 24, about twice as
fast (bench/kernels.py). The coarse levels' Galerkin
products are here too (:func:`galerkin_add`). The library is cached under
``$XDG_CACHE_HOME/bonefem`` (default ``~/.cache/bonefem``) keyed by a hash of the source.

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
void box_matvec(int64_t n_cells, const int32_t *cells, const double *w,
                const double *blocks, const double *x, double *y);
void galerkin8_matvec(int64_t n_cells, const int32_t *cells, const double *w,
                      const double *G, const double *x, double *y);
void galerkin_add(int64_t n, const double *K, const int32_t *slot, const int64_t *parent,
                  const double *W, double *out);
void interpolate_add(int64_t n, const int32_t *parent, const uint8_t *odd, const uint8_t *fixed,
                     const double *xc, double *y);
void restrict_add(int64_t n, const int32_t *parent, const uint8_t *odd, const uint8_t *fixed,
                  const double *y, double *xc);
"""

_SOURCE = (Path(__file__).with_name("voxel_kernel.c")).read_text()

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
            ffi.set_source(name, _SOURCE, extra_compile_args=["-O3", "-march=native", "-std=gnu99"])
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
    if len(basis) == 8 and (G := galerkin_blocks(basis)) is not None:
        lib.lib.galerkin8_matvec(len(cells), _ptr(ffi, cells, "int32_t *"), _ptr(ffi, weights, "double *"),
                                 _ptr(ffi, G, "double *"), _ptr(ffi, x, "double *"),
                                 _ptr(ffi, y, "double *"))
        return
    blocks = box_blocks(basis[0]) if len(basis) == 1 else None
    if blocks is not None:
        lib.lib.box_matvec(len(cells), _ptr(ffi, cells, "int32_t *"), _ptr(ffi, weights, "double *"),
                           _ptr(ffi, blocks, "double *"), _ptr(ffi, x, "double *"),
                           _ptr(ffi, y, "double *"))
        return
    lib.lib.voxel_matvec(len(cells), _ptr(ffi, cells, "int32_t *"), basis.shape[0],
                         _ptr(ffi, weights, "double *"), _ptr(ffi, basis, "double *"),
                         _ptr(ffi, x, "double *"), _ptr(ffi, y, "double *"))


def _hadamard_transform() -> np.ndarray:
    """(24, 24) T: each displacement component's 8 corner values to Walsh-Hadamard modes,
    T[3 m + c, 3 a + c] = (-1)^popcount(m & a) (node-major DOFs, corner a = ax + 2 ay + 4 az)."""
    m = np.arange(8)
    parity = np.array([[bin(i & j).count("1") % 2 for j in m] for i in m])
    return np.kron(1.0 - 2.0 * parity, np.eye(3))


_BLOCKS: dict = {}


def _class_dofs(p: int) -> list[int]:
    """The three DOFs 3 m + c (m = p ^ 2^c) of parity class ``p`` in the Hadamard basis."""
    return [3 * (p ^ (1 << c)) + c for c in range(3)]


def box_blocks(K: np.ndarray) -> np.ndarray | None:
    """The eight 3 x 3 blocks of a box element's stiffness ``K`` (24, 24) in the Hadamard
    basis, (8, 3, 3) C-contiguous, or None if ``K`` lacks the box's symmetry.

    A box with a material symmetric under the three mirror planes through its centre
    (isotropic, or orthotropic along the box axes) has a stiffness that commutes with
    the mirrors. Mode m of component c changes sign under mirror d iff bit d of m differs
    from (c == d); so K couples only the three (m, c) of each parity class p = m ^ 2^c,
    and T K T / 64 is block diagonal with eight 3 x 3 blocks (T = :func:`_hadamard_transform`,
    T T = 8 I). The kernel applies those instead of the dense matrix: 72 instead of 576
    multiply-adds per element. Checked here rather than assumed: a matrix that is not of
    this form (a Galerkin child, a rotated material) returns None and goes the dense way.
    """
    key = K.tobytes()
    if key not in _BLOCKS:
        T = _hadamard_transform()
        Kh = T @ K @ T / 64.0
        blocks = np.empty((8, 3, 3))
        inside = np.zeros((24, 24), dtype=bool)
        for p in range(8):
            idx = _class_dofs(p)
            blocks[p] = Kh[np.ix_(idx, idx)]
            inside[np.ix_(idx, idx)] = True
        ok = np.abs(Kh[~inside]).max() <= 1e-13 * np.abs(Kh).max()
        _BLOCKS[key] = np.ascontiguousarray(blocks) if ok else None
    return _BLOCKS[key]


def galerkin_blocks(basis: np.ndarray) -> np.ndarray | None:
    """The class blocks of the eight Galerkin matrices of a box's children, (8, 8, 3, 3),
    or None if ``basis`` (8, 24, 24) is not of that form.

    Child s is child 0 mirrored by the bits of s, so in the Hadamard basis
    B_s[i, j] = sigma_s(i) sigma_s(j) B_0[i, j] with sigma_s(i) = (-1)^popcount(s & class(i)),
    and sum_s w_s B_s = B_0[i, j] hw[class(i) ^ class(j)] with hw the Hadamard transform of
    the weights. Returned: G[P, Q] = the 3 x 3 block of T B_0 T / 64 between classes P, Q.
    Verified for all eight matrices here, not assumed.
    """
    key = basis.tobytes()
    if key not in _BLOCKS:
        T = _hadamard_transform()
        Bh = np.einsum("ij,sjk,kl->sil", T, basis, T) / 64.0
        cls = [(i // 3) ^ (1 << (i % 3)) for i in range(24)]      # class of DOF 3 m + c
        parity = np.array([[bin(s & c).count("1") % 2 for c in cls] for s in range(8)])
        sigma = 1.0 - 2.0 * parity                                            # (8, 24)
        ok = np.abs(Bh - sigma[:, :, None] * sigma[:, None, :] * Bh[0]).max() <= 1e-13 * np.abs(Bh).max()
        G = np.empty((8, 8, 3, 3))
        for P in range(8):
            for Q in range(8):
                G[P, Q] = Bh[0][np.ix_(_class_dofs(P), _class_dofs(Q))]
        _BLOCKS[key] = np.ascontiguousarray(G) if ok else None
    return _BLOCKS[key]


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


def galerkin_add(K: np.ndarray, slot: np.ndarray, parent: np.ndarray, weights: np.ndarray,
                 out: np.ndarray) -> None:
    """``out[parent[e]] += P_s^T K[e] P_s`` with ``P_s = kron(weights[slot[e]], I_3)``.

    K (n, 24, 24) symmetric child matrices; slot (n,) int in 0..7; parent (n,) indices
    into out (n_parents, 24, 24), updated in place; weights (8, 8, 8) trilinear weights
    (fem.solve.voxel_levels.child_interpolation without the I_3).
    """
    lib = _load()
    ffi = lib.ffi
    K = np.ascontiguousarray(K, dtype=np.float64)
    slot = np.ascontiguousarray(slot, dtype=np.int32)
    parent = np.ascontiguousarray(parent, dtype=np.int64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    assert K.shape[1:] == (24, 24) and len(slot) == len(K) == len(parent)
    assert out.dtype == np.float64 and out.flags.c_contiguous and out.shape[1:] == (24, 24)
    assert weights.shape == (8, 8, 8) and (len(parent) == 0 or 0 <= parent.min() <= parent.max() < len(out))
    lib.lib.galerkin_add(len(K), _ptr(ffi, K, "double *"), _ptr(ffi, slot, "int32_t *"),
                         _ptr(ffi, parent, "int64_t *"), _ptr(ffi, weights, "double *"),
                         _ptr(ffi, out, "double *"))


def interpolate_add(parent: np.ndarray, odd: np.ndarray, fixed: np.ndarray, xc: np.ndarray,
                    y: np.ndarray) -> None:
    """``y += P xc`` for trilinear P (fine nodes: ``parent`` (n, 8) int32 indices into the
    node-major coarse array ``xc``, ``odd`` (n,) uint8 odd-coordinate bits, ``fixed``
    (3 n,) uint8 constrained fine DOFs, whose rows are zero); y (3 n,) float64."""
    lib = _load()
    ffi = lib.ffi
    lib.lib.interpolate_add(len(parent), _ptr(ffi, parent, "int32_t *"), _ptr(ffi, odd, "uint8_t *"),
                            _ptr(ffi, fixed, "uint8_t *"), _ptr(ffi, xc, "double *"), _ptr(ffi, y, "double *"))


def restrict_add(parent: np.ndarray, odd: np.ndarray, fixed: np.ndarray, y: np.ndarray,
                 xc: np.ndarray) -> None:
    """``xc += P^T y`` (the transpose of :func:`interpolate_add`, same arguments)."""
    lib = _load()
    ffi = lib.ffi
    lib.lib.restrict_add(len(parent), _ptr(ffi, parent, "int32_t *"), _ptr(ffi, odd, "uint8_t *"),
                         _ptr(ffi, fixed, "uint8_t *"), _ptr(ffi, y, "double *"), _ptr(ffi, xc, "double *"))


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
