"""Shared helpers: small specimens with known answers and a way to run the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, mpi=0, cwd=None, check=False):
    """Run ``python3 -m fem ARGS`` (under ``mpirun -n MPI`` if mpi) and return the process."""
    cmd = [sys.executable, "-m", "fem", *map(str, args)]
    if mpi:
        cmd = ["mpirun", "-n", str(mpi), *cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def fails(proc, *fragments):
    """Assert a user error: exit status 2, no traceback, and each fragment in stderr."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in proc.stderr, proc.stderr


def read_result(outdir) -> dict:
    return json.loads((Path(outdir) / "result.json").read_text())


@pytest.fixture
def case_factory():
    """Build a validated Case from keyword sections, e.g. case_factory(load={"test": "axial"})."""
    from fem.case import case_from_dict

    def make(**sections):
        table = {"specimen": {"synthetic": {}}, **sections}
        return case_from_dict(table, source="test")

    return make


def prism(cross_section: np.ndarray, nz: int) -> np.ndarray:
    """Extrude a 2-D boolean cross-section (nx, ny) along z into (nx, ny, nz)."""
    return np.repeat(np.asarray(cross_section, bool)[:, :, None], nz, axis=2)


# Real micro-CT beside the project (../shared/data); a user's clone does not have it.
SHARED_DATA = ROOT.parent / "shared" / "data"
LHDL = SHARED_DATA / "lhdl-3155_D_4_bc"


@pytest.fixture
def lhdl_core() -> Path:
    """Folder of the real human trabecular core (200 TIFF slices, 19.5 um); skips without it."""
    if not LHDL.is_dir():
        pytest.skip(f"real micro-CT not available: {LHDL} is absent (it sits beside the project "
                    "in the developers' and CI's checkouts, not in a user's clone)")
    return LHDL


def require_host(command: str, how: str) -> None:
    """Skip (or, with BONEFEM_HOST_TESTS set, fail) unless ``command`` is on the host's
    PATH and we are root: the image and SLURM checks drive host tools, not the runtime's."""
    import shutil

    if shutil.which(command) is not None and os.geteuid() == 0:
        return
    if os.environ.get("BONEFEM_HOST_TESTS"):
        pytest.fail(f"this check needs root and the host's {command} ({how} installs it)")
    pytest.skip(f"needs root and the host's {command}: run {how} check")
