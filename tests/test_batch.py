"""MPI batch: groups of ranks take jobs from a shared counter; same numbers as serial."""

import numpy as np
import pytest

from fem.specimen.synthetic import trabecular_foam
from tests.conftest import read_result, run_cli


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    paths = []
    for seed in (1, 2, 3):
        np.save(d / f"foam{seed}.npy", trabecular_foam(size=0.6, voxel_size=0.03, bv_tv=0.3,
                                                       spacing=0.3, seed=seed).astype(np.uint8))
        p = d / f"case{seed}.toml"
        p.write_text(f'[specimen]\nimage = "foam{seed}.npy"\nvoxel_size = 0.03\n'
                     "[solver]\nrtol = 1e-12\n[output]\nfields = false\n")
        paths.append(p)
    return d, paths


@pytest.mark.mpi
@pytest.mark.parametrize("k", [1, 2])
def test_batch_groups_give_the_serial_numbers(cases, tmp_path, k):
    d, paths = cases
    serial = {}
    for p in paths:
        run_cli("run", p, "-o", tmp_path / "serial" / p.stem, check=True)
        serial[p.stem] = read_result(tmp_path / "serial" / p.stem)["reaction_force_N"]
    proc = run_cli("batch", *paths, "--ranks-per-job", k, "-o", tmp_path / "b", mpi=2, check=True)
    assert proc.stdout.count("solved") == 3
    for p in paths:
        r = read_result(tmp_path / "b" / p.stem)
        assert r["ranks"] == k
        assert r["reaction_force_N"] == pytest.approx(serial[p.stem], rel=1e-8)
    # a re-run finds every job done
    again = run_cli("batch", *paths, "--ranks-per-job", k, "-o", tmp_path / "b", mpi=2, check=True)
    assert again.stdout.count("done earlier") == 3
    out = tmp_path / "all.csv"
    run_cli("collect", tmp_path / "b", "-o", out, check=True)
    assert len(out.read_text().splitlines()) == 1 + 3
