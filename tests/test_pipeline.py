"""One path for every specimen kind, the row store, and checks made before anything large
is built. Uses the shipped specimen files in meshes/ (meshes/README.md)."""

import json

import numpy as np
import pytest

from fem import pipeline
from fem.case import case_from_dict
from fem.errors import BonefemError
from fem.mesh.struts import cubic_cell
from fem.pipeline import run_case, run_strut_model
from fem.report.store import append_row, read_rows
from fem.solve import memory
from fem.specimen import islands
from tests.conftest import ROOT

MESHES = ROOT / "meshes"


def quiet(*args, **kwargs):
    pass


def case(**specimen):
    return case_from_dict({"specimen": specimen, "solver": {"rtol": 1e-12},
                           "output": {"fields": False}}, source="test", base_dir=MESHES)


def test_a_cut_line_is_skipped_and_does_not_swallow_the_next_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_row(path, {"arm": "baseline", "n": 1})
    with path.open("a") as f:
        f.write('{"arm": "untreated", "n"')          # a run killed in the middle of a write
    assert read_rows(path) == [{"arm": "baseline", "n": 1}]
    append_row(path, {"arm": "combined", "n": 3})
    assert read_rows(path) == [{"arm": "baseline", "n": 1}, {"arm": "combined", "n": 3}]
    assert read_rows(tmp_path / "none.jsonl") == []


def test_shipped_strut_mesh_is_the_strut_model_it_says(tmp_path):
    # meshes/README.md: strut-cell.msh is cubic_cell(1.0, 0.2, 0.12) meshed with h = 0.1.
    from_file = run_case(case(image="strut-cell.msh"), log=quiet)
    built = run_strut_model(cubic_cell(1.0, 0.2, 0.12), 0.1, case(image="strut-cell.msh"), log=quiet)
    assert from_file["mesh"]["cell_type"] == "tetrahedron"
    assert from_file["reaction_force_N"] == pytest.approx(built["reaction_force_N"], rel=1e-10)


def test_modulus_field_of_a_shipped_hexahedral_mesh_is_used():
    # E rises linearly from 8000 to 12000 MPa along z: layers in series along the load.
    # A prism would be exactly as stiff as with the harmonic mean of E(z), 4000 / ln 1.5
    # = 9865 MPa, against 10000 MPa everywhere; the foam's mostly vertical struts are
    # within 1 % of that ratio (0.9908 measured).
    graded = run_case(case(image="foam-hexahedra.vtu", modulus_field="E"), log=quiet)
    uniform = run_case(case(image="foam-hexahedra.vtu"), log=quiet)
    ratio = graded["reaction_force_N"] / uniform["reaction_force_N"]
    assert ratio == pytest.approx(4000 / np.log(1.5) / 10000, abs=0.01)
    assert graded["mesh"]["modulus_field"] == "E" and uniform["mesh"]["cell_type"] == "hexahedron"


def test_grey_image_needs_a_threshold():
    with pytest.raises(BonefemError, match="did you forget --threshold"):
        run_case(case(image="vertebral-elderly-1.6mm.nii.gz"), log=quiet)
    grey = run_case(case(image="vertebral-elderly-1.6mm.nii.gz", threshold=0.5), log=quiet)
    nonzero = run_case(case(image="vertebral-elderly-1.6mm.nii.gz", threshold="nonzero"), log=quiet)
    # The image is each voxel's bone fraction. With a threshold its partial volumes are kept
    # (the same elements, each at its fraction); 'nonzero' makes every voxel with any bone
    # full bone: more bone on the same voxels.
    assert nonzero["bv_tv"] > grey["bv_tv"] > 0.05
    assert nonzero["elements"] == grey["elements"]


def test_too_large_a_model_is_refused_before_the_grid_is_built(monkeypatch, tmp_path):
    np.save(tmp_path / "solid.npy", np.ones((12, 12, 12), np.uint8))
    c = case_from_dict({"specimen": {"image": "solid.npy", "voxel_size": 0.05}}, "test", tmp_path)

    def not_now(*args):
        raise AssertionError("built before the memory check")

    monkeypatch.setattr(memory, "available_bytes", lambda: 1e8)      # pretend 100 MB
    monkeypatch.setattr(islands, "held_by_platens", not_now)     # the first full-size step
    monkeypatch.setattr(pipeline, "voxel_grid", not_now)
    monkeypatch.setattr(pipeline, "create_dolfinx_mesh", not_now)
    with pytest.raises(BonefemError) as err:
        run_case(c, tmp_path / "out", log=quiet)
    # 13^3 nodes x 3 DOF; the message has the estimate and what is available
    assert "0.01 M DOF" in str(err.value) and "0.1 GB available" in str(err.value)
    assert "1728 bone voxels" in str(err.value)
    # the larger of the build (700 B per bone voxel) and the solve, plus 0.3 GB per rank
    assert "about 0.3 GB needed" in str(err.value) and "0.3 GB to build" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_model_size_counts_the_nodes_of_the_grid():
    from fem.mesh.voxel import voxel_grid

    rng = np.random.default_rng(0)
    mask = rng.random((7, 5, 6)) < 0.3
    nodes, voxels = pipeline.model_size(mask)
    grid = voxel_grid(mask, (1.0, 1.0, 1.0))
    assert (nodes, voxels) == (len(grid.points), len(grid.cells))


def test_result_json_of_every_kind_has_the_same_keys(tmp_path):
    keys = []
    for spec in ({"image": "strut-cell.msh"}, {"image": "vertebral-elderly-1.6mm.nii.gz", "threshold": 0.5}):
        run_case(case(**spec), tmp_path / spec["image"], log=quiet)
        keys.append(set(json.loads((tmp_path / spec["image"] / "result.json").read_text())))
    mesh, image = keys
    assert image - mesh == {"voxels_removed", "image_shape", "voxel_size_mm"}
    assert mesh - image == {"mesh"}
