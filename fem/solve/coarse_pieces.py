"""Connectivity-aware coarse nodes: one copy of a coarse node per piece of bone around it.

A coarse node of the voxel multigrid interpolates to every fine node in its support, the
2 x 2 x 2 coarse elements around it. In porous bone that support often holds pieces of
bone that do not touch inside it (two trabeculae passing close by), and one trilinear
coarse node then ties them together: the coarse space cannot represent them moving
apart, and multigrid needs many more iterations on real bone than on bone whose struts
are far apart. The known remedy for geometric multigrid on voxel models: give every
coarse node one copy per connected piece of the finer level's elements inside its
support, and let each fine node interpolate from the copies of its own piece.

Two coarse elements of a node's support are connected when a child of one shares a node
with a child of the other (a node copy, on levels that have copies), and pieces are the
connected components of (coarse element, corner) pairs. On the voxel level the children
of one coarse cell are always one piece (they all share the cell's centre node), and
touching elements are found by looking up each voxel's 13 forward lattice neighbours.
Above it the children of one coarse cell need not touch (two copies of the centre
node): :func:`element_pieces` gives such a cell one coarse element per connected piece
of its children, so the same lattice cell can hold several coarse elements, and
:func:`sharing_parents` finds the touching ones from the children's shared node copies.
That is exact node connectivity on every level (docs/benchmark.md measures it).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fem.mesh.voxel import HEX_CORNERS

PAIR_CHUNK = 1 << 18      # element pairs per block in corner_pieces

# 13 of the 26 neighbour directions, one of each pair (d, -d)
DIRECTIONS = np.array([d for d in np.ndindex(3, 3, 3) if tuple(np.array(d) - 1) > (0, 0, 0)]) - 1


def _lattice_ids(cells: np.ndarray, dims) -> np.ndarray:
    NX, NY = int(dims[0]), int(dims[1])
    return (cells[..., 2] * NY + cells[..., 1]) * NX + cells[..., 0]


def touching_parents(child_cells: np.ndarray, index: np.ndarray, n_parents: int) -> np.ndarray:
    """Pairs of coarse elements (k, 2) whose children, voxels, share a node.

    child_cells : (m, 3) lattice corners of the voxels, unique (any order)
    index : (m,) parent element of each voxel

    Neighbours are found in a dense table of the voxel lattice (4 bytes per lattice
    cell), padded by one cell on every side, so a neighbour in direction d is one add and
    one gather away (on the voxel level two lattice neighbours always share a node).
    """
    dims = child_cells.max(axis=0, initial=0) + 3
    ids = _lattice_ids(child_cells + 1, dims)
    table = np.full(int(np.prod(dims)), -1, dtype=np.int32)
    table[ids] = np.arange(len(ids), dtype=np.int32)
    index = np.asarray(index, dtype=np.int64)
    keys = []
    for d in DIRECTIONS:
        pos = table[ids + int(_lattice_ids(d, dims))]
        e = np.flatnonzero(pos >= 0)
        f = pos[e]
        differ = index[e] != index[f]
        keys.append(np.unique(index[e[differ]] * n_parents + index[f[differ]]))
    keys = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)
    return np.column_stack([keys // n_parents, keys % n_parents])


def element_pieces(child_corners: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Piece of each child within its coarse cell: (n,) labels, equal for two children of
    the same cell exactly when they are connected through node copies inside it.

    child_corners : (n, 8) node copies of the children (positions in the level's nodes)
    index : (n,) coarse lattice cell of each child (fem.solve.voxel_levels.parent_cells)
    Two children of one cell that share a node copy are connected; pieces are the
    connected components of the bipartite child / (cell, node copy) graph.
    """
    n = len(index)
    key = np.asarray(index, dtype=np.int64)[:, None] * (int(child_corners.max(initial=0)) + 1) \
        + child_corners.astype(np.int64)
    _, key = np.unique(key.ravel(), return_inverse=True)
    graph = coo_matrix((np.ones(8 * n, dtype=np.int8), (np.repeat(np.arange(n), 8), n + key)),
                       shape=(n + int(key.max(initial=-1)) + 1,) * 2)
    _, label = connected_components(graph, directed=False)
    return label[:n]


def sharing_parents(child_corners: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Pairs of coarse elements (k, 2) whose children share a node copy.

    child_corners : (n, 8) node copies of the children; parent : (n,) coarse element of
    each child. A node copy lies in at most eight children, so after sorting the
    (node, parent) incidences by node, every pair is at most seven places apart.
    """
    node = child_corners.astype(np.int64).ravel()
    par = np.repeat(np.asarray(parent, dtype=np.int64), 8)
    n_par = int(par.max(initial=0)) + 1
    inc = np.unique(node * n_par + par)
    node, par = inc // n_par, inc % n_par
    keys = []
    for d in range(1, 8):
        same = np.flatnonzero(node[d:] == node[:-d])
        keys.append(par[same] * n_par + par[same + d])
    keys = np.unique(np.concatenate(keys))
    return np.column_stack([keys // n_par, keys % n_par])


# For an offset o in {-1, 0, 1}^3 between two coarse elements (code 9 (oz+1) + 3 (oy+1) +
# ox+1) and a corner a of the first: the same corner's number in the second, or -1.
_SAME_CORNER = np.full((27, 8), -1, dtype=np.int64)
for _code, _o in enumerate(np.array(list(np.ndindex(3, 3, 3)))[:, ::-1] - 1):
    for _a, _bits in enumerate(HEX_CORNERS):
        _other = _bits - _o
        if np.all((_other >= 0) & (_other <= 1)):
            _SAME_CORNER[_code, _a] = _other @ np.array([1, 2, 4])


def corner_pieces(cells: np.ndarray, pairs: np.ndarray, dims) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the coarse nodes, one per connected piece in each node's support.

    cells : (n, 3) lattice corners of the coarse elements, sorted z-major (a cell repeats
        once per extra piece of it, :func:`element_pieces`)
    pairs : (k, 2) touching coarse elements (:func:`touching_parents`, :func:`sharing_parents`)
    dims : (NX, NY, NZ) node lattice dimensions of the coarse level

    Returns ``(corners, nodes)``: (n, 8) int32 node of each element corner (tensor-product
    order), positions in ``nodes``, the (n_nodes,) lattice ids of the node copies, sorted
    (a lattice id repeats once per extra piece).
    """
    n = len(cells)
    # The graph's edges, PAIR_CHUNK pairs at a time and as int32 where 8 n fits: the (k, 8)
    # int64 temporaries of all pairs at once were the peak of the whole solve's memory
    # (about 220 B per pair, 13 pairs per coarse element; bench/grid_memory.py).
    index_type = np.int32 if 8 * n < 2**31 else np.int64
    rows, cols = [], []
    for lo in range(0, len(pairs), PAIR_CHUNK):
        p1, p2 = pairs[lo:lo + PAIR_CHUNK, 0], pairs[lo:lo + PAIR_CHUNK, 1]
        o = cells[p2] - cells[p1] + 1                   # in {0, 1, 2}^3
        same = _SAME_CORNER[(o[:, 2] * 3 + o[:, 1]) * 3 + o[:, 0]]        # (k, 8)
        ok = same >= 0
        rows.append((8 * p1[:, None] + np.arange(8))[ok].astype(index_type))
        cols.append((8 * p2[:, None] + same)[ok].astype(index_type))
    rows = np.concatenate(rows) if rows else np.empty(0, index_type)
    cols = np.concatenate(cols) if cols else np.empty(0, index_type)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(8 * n, 8 * n))
    del rows, cols
    _, label = connected_components(graph, directed=False)
    corner_ids = _lattice_ids(cells[:, None, :] + HEX_CORNERS[None, :, :], dims)
    # number the copies z-major by lattice id (the slab layout needs sorted nodes)
    base = int(label.max(initial=0)) + 1
    uniq, corners = np.unique(corner_ids.ravel() * base + label, return_inverse=True)
    return corners.reshape(n, 8).astype(np.int32), uniq // base
