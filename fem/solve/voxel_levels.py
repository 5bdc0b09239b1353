"""The voxel hierarchy of geometric multigrid, as plain arrays (no MPI, no PETSc).

Level 0 is the specimen's voxel mesh; level l + 1 has one box element of twice the
edge for every 2 x 2 x 2 block of level-l elements that holds at least one of them.
A coarse element's stiffness is the Galerkin product P^T K P of its (up to) eight
children with trilinear interpolation P (level 1 may instead be rediscretised with the
children's mean modulus, :func:`first_coarse`). On level 1, with a piecewise-constant
modulus, that is exactly ``sum_s E_s B_s`` over the child slots s with eight fixed
24 x 24 matrices B_s (:func:`galerkin_basis`): eight numbers per element, no matrix.
Above a level of one box matrix per element (level 1 by default) the same holds, so
level 2 is kept as eight weights per element too (:func:`next_coarse`); deeper levels
have few elements and store one 24 x 24 matrix each, the sum of their children's
P_s^T K P_s; so every level below 1 is the exact Galerkin operator of the one below
(rediscretised deeper levels cost many more CG iterations: docs/benchmark.md).

Lattice ids number nodes and elements of a level z-major (``(k * NY + j) * NX + i``),
so sorting ids sorts by z: contiguous id ranges are z slabs, which is how coarse
levels are split over MPI ranks (fem.solve.multigrid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fem.mesh.voxel import HEX_CORNERS
from fem.solve.voxel_kernel import galerkin_add, hex_stiffness


@dataclass
class CoarseLevel:
    """One coarse level, the same on every rank.

    cells : (n, 3) int64 lattice coordinates (i, j, k) of the elements' lowest corners,
        sorted z-major; above level 1 with split nodes a cell repeats once per extra
        piece of bone in it (fem.solve.coarse_pieces.element_pieces)
    weights : (n, 8) children's moduli (level 1), MPa; None on deeper levels. Elements
        with a child that touches a constrained DOF have zero weights and their matrix
        in ``extra`` instead (the Galerkin product of the constrained operator)
    basis : (8, 24, 24) matrices of the level's elements for unit weights, N/mm per MPa
        (level 1); (n, 24, 24) one stiffness matrix per element, N/mm (deeper levels)
    nodes : (n_nodes,) sorted lattice ids of the level's nodes (its global numbering)
    dims : (NX, NY, NZ) node lattice dimensions
    spacing : (3,) element edges, mm
    """

    cells: np.ndarray
    weights: np.ndarray
    basis: np.ndarray
    nodes: np.ndarray
    dims: tuple
    spacing: np.ndarray
    extra: tuple | None = None   # (index (k,), matrices (k, 24, 24)) added to those elements
    # (n, 8) positions in ``nodes`` of each element's corners where nodes are split into
    # copies per piece of bone (fem.solve.coarse_pieces; ``nodes`` then repeats lattice
    # ids); None: one node per lattice point
    corners: np.ndarray | None = None
    # (n_child,) element of this level holding each element of the level below, where that
    # level has split nodes (so ``cells`` can repeat: one element per piece of a cell)
    child_parent: np.ndarray | None = None

    def node_ids(self, ijk: np.ndarray) -> np.ndarray:
        """Lattice ids of nodes (..., 3)."""
        NX, NY, _ = self.dims
        return (ijk[..., 2] * NY + ijk[..., 1]) * NX + ijk[..., 0]

    def corner_ids(self) -> np.ndarray:
        """(n, 8) lattice ids of every element's corners, tensor-product order."""
        return self.node_ids(self.cells[:, None, :] + HEX_CORNERS[None, :, :])

    def corner_nodes(self) -> np.ndarray:
        """(n, 8) positions in ``nodes`` of every element's corners."""
        return self.corners if self.corners is not None else self.index_of(self.corner_ids())

    def element_at(self, cells: np.ndarray) -> np.ndarray:
        """Element indices of lattice cells ``cells`` (n, 3) that are elements of a level
        with one element per cell (level 1)."""
        ids = self.node_ids(self.cells)
        out = np.searchsorted(ids, self.node_ids(np.asarray(cells, dtype=np.int64)))
        if len(out) and (out.max() >= len(ids) or np.any(ids[out] != self.node_ids(cells))):
            raise RuntimeError("multigrid: a cell that is not an element of the coarse level")
        return out

    def index_of(self, ids: np.ndarray) -> np.ndarray:
        """Positions in ``nodes`` of lattice ids ``ids`` (any shape); -1 where not a node.

        A dense lattice-sized table (4 bytes per lattice point of this coarse level) instead
        of a binary search: the transfers look up eight parents for every fine node."""
        if self.corners is not None:
            raise ValueError("a level with split nodes has no one node per lattice point")
        if getattr(self, "_table", None) is None:
            self._table = np.full(int(np.prod(self.dims)), -1, dtype=np.int32)
            self._table[self.nodes] = np.arange(len(self.nodes), dtype=np.int32)
        return self._table[ids]

    @property
    def dofs(self) -> int:
        return 3 * len(self.nodes)


def child_interpolation() -> np.ndarray:
    """(8, 24, 24): P_s interpolates a box's 8 corner displacements trilinearly to the
    corners of its child in slot s = sx + 2 sy + 4 sz (node-major DOFs)."""
    out = np.empty((8, 24, 24))
    for s, offset in enumerate(HEX_CORNERS):
        pos = (offset[None, :] + HEX_CORNERS) / 2.0                    # child corners in [0, 1]
        # w[a, b]: weight of coarse corner b at child corner a
        w = np.prod(np.where(HEX_CORNERS[None, :, :] == 1, pos[:, None, :], 1 - pos[:, None, :]), axis=2)
        out[s] = np.kron(w, np.eye(3))
    return out


def galerkin_basis(child_spacing, poisson: float) -> np.ndarray:
    """(8, 24, 24): B_s = P_s^T K_child P_s for the child in slot s of a coarse box, with
    K_child the E = 1 stiffness of a box of edges ``child_spacing``. sum_s B_s is the
    coarse box's own stiffness."""
    K = hex_stiffness(child_spacing, poisson)
    P = child_interpolation()
    return np.einsum("sai,ab,sbj->sij", P, K, P)


def parent_cells(cells: np.ndarray):
    """The level above elements ``cells`` ((n, 3) lattice): its elements (sorted, unique,
    (m, 3) lattice), each child's parent index (n,) and slot (n,) in 0..7."""
    parent = cells >> 1
    slot = (cells & 1) @ np.array([1, 2, 4])
    dims = parent.max(axis=0) + 2
    pid = (parent[:, 2] * dims[1] + parent[:, 1]) * dims[0] + parent[:, 0]
    ids, index = np.unique(pid, return_inverse=True)
    coarse = np.column_stack(np.unravel_index(ids, tuple(dims[::-1])))[:, ::-1].astype(np.int64)
    return coarse, index, slot


def _level(cells, weights, basis, spacing) -> CoarseLevel:
    dims = tuple(int(d) for d in cells.max(axis=0) + 2)   # node lattice
    level = CoarseLevel(cells, None if weights is None else np.ascontiguousarray(weights),
                        np.ascontiguousarray(basis), np.empty(0, np.int64), dims, spacing)
    level.nodes = np.unique(level.corner_ids())
    return level


class Constraints:
    """Which DOFs of a level are constrained: the loaded faces k = 0 and k = ``top``,
    and for "uniaxial" the two pins (lattice ``pins``, (2, 3)); see :func:`boundary_dofs`."""

    def __init__(self, top: int, test: str, pins: np.ndarray | None):
        self.top, self.test, self.pins = int(top), test, pins

    def coarser(self, top: int) -> "Constraints":
        return Constraints(top, self.test, None if self.pins is None else self.pins >> 1)

    def element_mask(self, cells: np.ndarray) -> np.ndarray:
        """(n, 24) bool: DOFs of elements ``cells`` ((n, 3) lattice) that are constrained."""
        near = (cells[:, 2] == 0) | (cells[:, 2] + 1 >= self.top)
        if self.pins is not None:
            for p in self.pins:
                near |= np.all((cells <= p) & (cells >= p - 1), axis=1)
        out = np.zeros((len(cells), 24), dtype=bool)
        sel = np.flatnonzero(near)     # only elements on the loaded faces can be constrained
        flat = (cells[sel, None, :] + HEX_CORNERS[None, :, :]).reshape(-1, 3)
        mask = np.zeros(flat.shape[0] * 3, dtype=bool)
        mask[boundary_dofs(flat, self.top, self.test, self.pins)] = True
        out[sel] = mask.reshape(-1, 24)
        return out


def _galerkin_add(child_K: np.ndarray, child_mask: np.ndarray, slot: np.ndarray,
                  parent: np.ndarray, out: np.ndarray) -> None:
    """``out[parent] += P_s^T (I - D) K (I - D) P_s`` for children with matrices ``child_K``
    (n, 24, 24), constrained-DOF masks ``child_mask`` (n, 24), slots ``slot`` (n,) and
    parent indices ``parent`` (n,) into ``out`` (n_parents, 24, 24)."""
    K = child_K
    hit = child_mask.any(axis=1)
    if hit.any():
        keep = ~child_mask[hit]
        K = K.copy()
        K[hit] *= keep[:, :, None] * keep[:, None, :]
    # P_s = kron(W_s, I_3): the C kernel contracts with the 8 x 8 W_s (3x fewer operations)
    galerkin_add(K, slot, parent, child_interpolation()[:, ::3, ::3], out)


def first_coarse(cells: np.ndarray, modulus: np.ndarray, spacing, poisson: float,
                 fixed: Constraints, exact: bool = True, split: bool = False,
                 chunk: int = 4096) -> CoarseLevel:
    """Level 1 above the voxel elements ``cells`` ((n, 3) lattice corners, all ranks'),
    ``modulus`` (n,) MPa, edges ``spacing`` mm, constraints ``fixed`` of the voxel level.

    ``exact``: eight child moduli per element (m = 8), the exact Galerkin product with
    :func:`galerkin_basis`; otherwise one box of the children's mean modulus (m = 1).
    Elements with a constrained child get their exact matrix in ``extra`` either way.
    ``split``: one node copy per piece of bone in its support (fem.solve.coarse_pieces).
    ``chunk``: children per block of the Galerkin products (the result does not depend on it).
    """
    spacing = np.asarray(spacing, dtype=float)
    coarse, index, slot = parent_cells(cells)
    W = np.zeros((len(coarse), 8))
    W[index, slot] = modulus
    mask = fixed.element_mask(cells)
    touched = np.flatnonzero(mask.any(axis=1))
    special = np.unique(index[touched])
    children = np.flatnonzero(np.isin(index, special))
    K = hex_stiffness(spacing, poisson)
    local = np.searchsorted(special, index[children])
    mats = np.zeros((len(special), 24, 24))
    for lo in range(0, len(children), chunk):   # (n, 24, 24) at once: 4.6 kB per child
        part = children[lo:lo + chunk]
        _galerkin_add(modulus[part, None, None] * K, mask[part], slot[part], local[lo:lo + chunk], mats)
    W[special] = 0.0
    if exact:
        level = _level(coarse, W, galerkin_basis(spacing, poisson), 2 * spacing)
    else:
        level = _level(coarse, W.mean(axis=1, keepdims=True), hex_stiffness(2 * spacing, poisson)[None],
                       2 * spacing)
    level.extra = (special, mats)
    if split:
        _split_nodes(level, cells, None, index)
    return level


def element_matrices(level: CoarseLevel, index: np.ndarray) -> np.ndarray:
    """(len(index), 24, 24) stiffness matrices of elements ``index`` of a level."""
    if level.weights is None:
        return level.basis[index]
    K = (level.weights[index] @ level.basis.reshape(len(level.basis), -1)).reshape(-1, 24, 24)
    if level.extra is not None:
        special, mats = level.extra
        pos = np.searchsorted(special, index)
        hit = (pos < len(special)) & (special[np.minimum(pos, len(special) - 1)] == index)
        K[hit] += mats[pos[hit]]
    return K


def next_coarse(child: CoarseLevel, fixed: Constraints, chunk: int = 4096, split: bool = False,
                pieces: bool = True) -> CoarseLevel:
    """The level above ``child`` (whose constraints are ``fixed``), exact Galerkin: each
    element's matrix is sum_s P_s^T (I - D) K_s (I - D) P_s over its children (one 24 x 24
    matrix per element, stored; coarse levels have few elements). ``split``: node copies
    per piece of bone, as in :func:`first_coarse`; with ``pieces`` too, where ``child`` has
    split nodes, each lattice cell gets one element per connected piece of its children
    (exact node connectivity on every level: fem.solve.coarse_pieces); else the children
    of a cell are one piece.

    Where ``child`` is weighted (K_c = sum_b w_cb basis_b) and a child touches no
    constraint, its share is sum_b w_cb (P_s^T basis_b P_s): a product of the weights with
    8 m fixed matrices, one GEMM for the whole level instead of two 24 x 24 products per
    child (an order of magnitude faster).
    """
    coarse, index, slot = parent_cells(child.cells)
    if split and pieces and child.corners is not None:
        from fem.solve.coarse_pieces import element_pieces

        label = element_pieces(child.corners, index)
        base = int(label.max(initial=0)) + 1
        keys, index = np.unique(index * base + label, return_inverse=True)
        coarse = coarse[keys // base]
    regular = np.zeros(len(index), dtype=bool)
    if child.weights is not None:
        for start in range(0, len(index), 1 << 16):
            part = slice(start, start + (1 << 16))
            regular[part] = ~fixed.element_mask(child.cells[part]).any(axis=1)
        if child.extra is not None:
            regular[child.extra[0]] = False
        m = child.weights.shape[1]
        P = child_interpolation()
        # basis2[s * m + b] = P_s^T basis_b P_s
        basis2 = np.einsum("sai,bac,scj->sbij", P, child.basis, P).reshape(8 * m, 576)
        W = np.zeros((len(coarse), 8 * m))
        sel = np.flatnonzero(regular)
        # add: two pieces of one child cell can be children of the same parent in one slot
        np.add.at(W, (index[sel, None], slot[sel, None] * m + np.arange(m)), child.weights[sel])
    rest = np.flatnonzero(~regular)
    # Above a level of one box matrix per element the regular part stays eight weights per
    # element: the kernel rebuilds the matrix from them (voxel_kernel.galerkin_blocks),
    # 2.5x faster than streaming a stored one; the children that touch a constraint add
    # their matrices as extras. Otherwise every element stores its matrix.
    weighted = child.weights is not None and m == 1
    if weighted:
        special = np.unique(index[rest])
        out, target = np.zeros((len(special), 24, 24)), np.searchsorted(special, index)
    else:
        out = np.zeros((len(coarse), 24, 24)) if child.weights is None else (W @ basis2).reshape(-1, 24, 24)
        target = index
    for start in range(0, len(rest), chunk):
        part = rest[start: start + chunk]
        _galerkin_add(element_matrices(child, part), fixed.element_mask(child.cells[part]),
                      slot[part], target[part], out)
    if not weighted:
        level = _level(coarse, None, out, 2 * child.spacing)
    else:
        level = _level(coarse, W, basis2.reshape(8, 24, 24), 2 * child.spacing)
        level.extra = (special, out)
    if split:
        _split_nodes(level, child.cells, child.corner_nodes(), index)
        level.child_parent = index.astype(np.int32)
    return level


def _split_nodes(level: CoarseLevel, child_cells: np.ndarray, child_corners, index: np.ndarray) -> None:
    """Give ``level`` one node copy per piece of bone (fem.solve.coarse_pieces) from its
    children (lattice ``child_cells``, nodes ``child_corners`` or None for voxels) and
    their parent elements ``index``."""
    from fem.solve.coarse_pieces import corner_pieces, sharing_parents, touching_parents

    if child_corners is None:
        pairs = touching_parents(child_cells, index, len(level.cells))
    else:
        pairs = sharing_parents(child_corners, index)
    level.corners, level.nodes = corner_pieces(level.cells, pairs, level.dims)


def node_holders(level: CoarseLevel) -> np.ndarray:
    """(n_nodes,) index of one element of ``level`` holding each node."""
    which = np.empty(len(level.nodes), dtype=np.int64)
    which[level.corner_nodes().ravel()] = np.repeat(np.arange(len(level.cells)), 8)
    return which


def interpolation_parents(ijk: np.ndarray, coarse: CoarseLevel, holder: np.ndarray | None = None,
                          chunk: int = 100_000):
    """Trilinear interpolation from level ``coarse`` to nodes ``ijk`` ((n, 3) lattice of
    the level below).

    Returns ``(cols, w)``: (n, 8) int32 positions in ``coarse.nodes`` of each node's parents
    in corner order and (n, 8) weights; an even coordinate has one parent (weight 1), an
    odd one two (1/2 each), so unused entries have weight 0 (and repeat a valid parent).
    Where ``coarse`` has split nodes (``coarse.corners``), ``holder`` (n,) gives the element
    of ``coarse`` whose piece holds each node (the parent of an element of the level
    below that holds it): that element's corner copies are the node's parents.
    Built per axis and ``chunk`` nodes at a time, not as (n, 8, 3) arrays: this runs for
    every fine node.
    """
    ijk = np.asarray(ijk, dtype=np.int64)
    cols = np.empty((len(ijk), 8), dtype=np.int32)
    weights = np.empty((len(ijk), 8))
    NX, NY = int(coarse.dims[0]), int(coarse.dims[1])
    if coarse.corners is not None and holder is None:
        raise ValueError("a level with split nodes needs the fine nodes' holder elements")
    for start in range(0, len(ijk), chunk):
        part = slice(start, start + chunk)
        lo = ijk[part] >> 1
        odd = (ijk[part] & 1).astype(bool)
        bit = odd[:, :, None] * np.array([0, 1])                                   # (n, 3, 2)
        wd = np.where(odd[:, :, None], 0.5, np.array([1.0, 0.0]))                   # (n, 3, 2)
        weights[part] = (wd[:, 2, :, None, None] * wd[:, 1, None, :, None] * wd[:, 0, None, None, :]).reshape(-1, 8)
        if coarse.corners is None:
            coord = lo[:, :, None] + bit
            # corner c = cx + 2 cy + 4 cz: axis order (z, y, x) in the (n, 2, 2, 2) products
            ids = (coord[:, 2, :, None, None] * NY + coord[:, 1, None, :, None]) * NX + coord[:, 0, None, None, :]
            cols[part] = coarse.index_of(ids.reshape(-1, 8))
            continue
        element = np.asarray(holder[part], dtype=np.int64)
        rel = (lo - coarse.cells[element])[:, :, None] + bit                                         # corner bits in the parent
        a = (rel[:, 2, :, None, None] * 4 + rel[:, 1, None, :, None] * 2 + rel[:, 0, None, None, :]).reshape(-1, 8)
        cols[part] = coarse.corners[element[:, None], a]
    if len(cols) and cols.min() < 0:
        raise RuntimeError("multigrid: a fine node has no parent on the coarse level")
    return cols, weights


def boundary_dofs(ijk: np.ndarray, top: int, test: str, pins_ijk: np.ndarray | None) -> np.ndarray:
    """Constrained DOFs (node-major unrolled) of nodes ``ijk`` ((n, 3) lattice) on a level
    whose loaded faces are k = 0 and k = ``top``, for load case ``test``.

    ``uniaxial``: u_z on both faces, u_x and u_y at pin A, u_y at pin B (pins_ijk (2, 3));
    ``axial``: every component on both faces (fem.solve.loadcases).
    """
    bottom, topf = ijk[:, 2] == 0, ijk[:, 2] == top
    comps = [np.flatnonzero(bottom | topf) * 3 + 2]
    if test == "axial":
        face = np.flatnonzero(bottom | topf)
        comps += [face * 3, face * 3 + 1]
    else:
        a = np.flatnonzero(np.all(ijk == pins_ijk[0], axis=1))
        b = np.flatnonzero(np.all(ijk == pins_ijk[1], axis=1))
        comps += [a * 3, a * 3 + 1, b * 3 + 1]
    return np.unique(np.concatenate(comps)).astype(np.int64)
