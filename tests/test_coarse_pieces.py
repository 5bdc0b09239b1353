"""Connectivity-aware coarse nodes (fem.solve.coarse_pieces) on configurations whose
pieces are known by hand."""

import numpy as np

from fem.solve.voxel_levels import Constraints, first_coarse


def level_of(mask, split):
    cells = np.argwhere(mask).astype(np.int64)
    top = int(cells[:, 2].max()) + 1
    return first_coarse(cells, np.full(len(cells), 1000.0), (0.1, 0.1, 0.1), 0.3,
                        Constraints(top, "axial", None), exact=False, split=split)


def copies(level):
    ids, count = np.unique(level.nodes, return_counts=True)
    NX, NY, _ = level.dims
    return {(int(i % NX), int(i // NX % NY), int(i // (NX * NY))): int(c)
            for i, c in zip(ids, count) if c > 1}


def test_two_columns_a_voxel_apart_get_their_own_copies_of_the_shared_coarse_nodes():
    # columns at voxel x = 0 and x = 2 (a gap of one voxel): coarse cells x = 0 and x = 1
    # share the coarse nodes at x = 1, but no voxel of one touches a voxel of the other
    mask = np.zeros((3, 1, 4), bool)
    mask[0, 0, :] = mask[2, 0, :] = True
    plain, split = level_of(mask, False), level_of(mask, True)
    # coarse node lattice: x 0..2, y 0..1, z 0..2; shared plane x = 1: 2 x 3 nodes, each twice
    assert copies(split) == {(1, j, k): 2 for j in range(2) for k in range(3)}
    assert len(split.nodes) == len(plain.nodes) + 6
    # each coarse element's corners at x = 1 are its own copies
    left, right = split.corners[split.cells[:, 0] == 0], split.corners[split.cells[:, 0] == 1]
    assert not set(left[:, [1, 3, 5, 7]].ravel()) & set(right[:, [0, 2, 4, 6]].ravel())


def test_touching_columns_and_diagonal_contact_share_the_coarse_nodes():
    # x = 0 and x = 1 touch (a face) inside one coarse cell; x = 1 and a voxel at x = 2,
    # z shifted by one, touch along an edge: node-connected, so no copies anywhere
    mask = np.zeros((4, 1, 4), bool)
    mask[0, 0, :] = mask[1, 0, :] = True
    mask[2, 0, 1:] = True
    assert copies(level_of(mask, True)) == {}


def test_a_piece_bridged_outside_the_support_still_splits():
    # two columns a voxel apart joined by a bridge at the top only: connected as a whole,
    # but not inside the support of the coarse nodes near the bottom
    mask = np.zeros((3, 1, 8), bool)
    mask[0, 0, :] = mask[2, 0, :] = True
    mask[:, 0, 7] = True
    c = copies(level_of(mask, True))
    assert (1, 0, 0) in c and (1, 0, 1) in c and (1, 0, 4) not in c
