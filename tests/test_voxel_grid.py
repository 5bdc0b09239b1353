"""The voxel grid built chunk by chunk (fem.mesh.voxel.voxel_grid) is the grid built in one
piece: same cells, nodes, voxel indices and reaction force, whatever the chunk size."""

import numpy as np
import pytest

from fem.case import case_from_dict
from fem import pipeline
from fem.mesh import voxel
from fem.mesh.voxel import HEX_CORNERS, VoxelGrid, voxel_grid
from fem.pipeline import run_case


def one_piece(mask, spacing):
    """The grid in one piece, independently: every used corner's flat index, sorted and made
    unique (np.unique), numbers the nodes (the build before chunking)."""
    shape = np.array(mask.shape) + 1
    ijk = np.argwhere(mask)
    corners = (ijk[:, None, :] + HEX_CORNERS[None, :, :]).reshape(-1, 3)
    used, cells = np.unique(np.ravel_multi_index(corners.T, shape), return_inverse=True)
    points = np.column_stack(np.unravel_index(used, shape)).astype(float) * np.asarray(spacing, float)
    return cells.reshape(-1, 8), points, np.ravel_multi_index(ijk.T, mask.shape)


def islands_across_chunks(shape, seed):
    """Random bone with pieces that cross x-row boundaries: thin columns and 1-voxel islands."""
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < 0.25
    mask[:, shape[1] // 2, :] = False            # split into pieces
    mask[::3, 1, :] = True                       # columns along z in every third x-row
    return mask


@pytest.mark.parametrize("shape", [(7, 5, 9), (13, 4, 3), (1, 6, 5), (10, 11, 12)])
@pytest.mark.parametrize("chunk", [1, 7, 31, 97, None])
def test_chunked_grid_is_the_grid_in_one_piece(shape, chunk):
    mask = islands_across_chunks(shape, seed=sum(shape))
    spacing = (0.02, 0.03, 0.05)
    grid = voxel_grid(mask, spacing, chunk)
    cells, points, voxels = one_piece(mask, spacing)
    assert grid.cells.dtype == np.int64 and grid.voxels.dtype == np.int64
    assert np.array_equal(grid.cells, cells)
    assert np.array_equal(grid.points, points)           # bit for bit
    assert np.array_equal(grid.voxels, voxels)


def test_empty_and_solid_masks():
    for mask in (np.zeros((4, 3, 5), bool), np.ones((4, 3, 5), bool)):
        grid = voxel_grid(mask, (1.0, 1.0, 1.0), 9)
        cells, points, voxels = one_piece(mask, (1.0, 1.0, 1.0))
        assert np.array_equal(grid.cells, cells) and np.array_equal(grid.points, points)
        assert grid.cells.shape == (mask.sum(), 8) and np.array_equal(grid.voxels, voxels)


def test_chunk_size_does_not_change_the_solve(tmp_path, monkeypatch):
    mask = islands_across_chunks((9, 8, 10), seed=3)
    mask[4, 4, :] = True                          # a column from platen to platen
    np.save(tmp_path / "bone.npy", mask.astype(np.uint8))
    case = case_from_dict({"specimen": {"image": "bone.npy", "voxel_size": 0.05},
                           "solver": {"rtol": 1e-10}, "output": {"fields": False}}, "test", tmp_path)
    with monkeypatch.context() as m:     # the solve on the grid built in one piece
        m.setattr(pipeline, "voxel_grid", lambda mask, spacing: VoxelGrid(
            *one_piece(mask, spacing), mask.shape, tuple(spacing)))
        whole = run_case(case, log=lambda *a, **k: None)
    monkeypatch.setattr(voxel, "CHUNK_CORNERS", 13)       # one x-row of corners is 99
    chunked = run_case(case, log=lambda *a, **k: None)
    assert chunked["reaction_force_N"] == whole["reaction_force_N"]
    assert (chunked["elements"], chunked["nodes"]) == (whole["elements"], whole["nodes"])
    assert whole["elements"] > 100
