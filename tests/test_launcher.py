"""The launcher binds the folders of path arguments outside the project, so inputs are
found and results land where the user asked (issue 18), and refuses system folders.

The plan tests ask the launcher what it would bind (BONEFEM_SHOW_BINDS=1) and run
anywhere; the end-to-end tests enter the root file system and so run on the host only
(``python3 -m pytest tests/test_launcher.py`` there), not inside the runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

LAUNCHER = str(ROOT / "bonefem")


def _in_debian13() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    return "VERSION_CODENAME=trixie" in text or 'VERSION_ID="13"' in text


@pytest.fixture
def outside():
    """Two fresh folders outside the project and outside /tmp (which the runtime binds
    anyway, so it would test nothing): one under /var/tmp, one under /srv when writable."""
    made = []
    for parent in ("/var/tmp", "/srv"):
        try:
            made.append(Path(tempfile.mkdtemp(prefix="bonefem-test-", dir=parent)))
        except OSError:
            made.append(Path(tempfile.mkdtemp(prefix="bonefem-test-b-", dir="/var/tmp")))
    yield made
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def plan(*args, cwd=ROOT):
    """(exit status, {folder: 'ro' or 'rw'}, stderr) of the launcher's bind plan."""
    env = {k: v for k, v in os.environ.items() if k != "BONEFEM_BIND"}
    env.update(BONEFEM_NATIVE="0", BONEFEM_SHOW_BINDS="1")
    p = subprocess.run([LAUNCHER, *map(str, args)], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=60)
    binds = {}
    for line in p.stdout.splitlines():
        mode, folder = line.split(" ", 1)
        binds[folder] = mode
    return p.returncode, binds, p.stderr


def test_an_input_outside_the_project_binds_its_folder_read_only(outside):
    image = outside[0] / "bone.npy"
    image.write_bytes(b"")
    rc, binds, err = plan("solve", image, "--voxel-size", "0.04")
    assert rc == 0, err
    assert binds == {str(outside[0]): "ro"}


def test_an_output_that_does_not_exist_binds_its_nearest_existing_parent(outside):
    rc, binds, err = plan("run", "cases/demo.toml", "-o", outside[1] / "new" / "deeper" / "out")
    assert rc == 0, err
    assert binds == {str(outside[1]): "rw"}
    rc, binds, _ = plan("run", "cases/demo.toml", f"--output={outside[1] / 'x'}")
    assert binds == {str(outside[1]): "rw"}
    rc, binds, _ = plan("view", "results/demo", "--screenshot", outside[0] / "v.png")
    assert binds == {str(outside[0]): "rw"}


def test_a_case_file_binds_the_image_it_names(outside):
    image = outside[0] / "bone.npy"
    image.write_bytes(b"")
    case = outside[1] / "case.toml"
    case.write_text(f'[specimen]\nimage = "{image}"\nvoxel_size = 0.04\n')
    rc, binds, err = plan("run", case, "-o", outside[1] / "out")
    assert rc == 0, err
    assert binds == {str(outside[0]): "ro", str(outside[1]): "rw"}


def test_paths_the_runtime_sees_anyway_bind_nothing():
    rc, binds, err = plan("run", "cases/demo.toml", "-o", "/tmp/bonefem-x/out")
    assert rc == 0, err
    assert binds == {}
    rc, binds, err = plan("exec", "/usr/bin/python3", "-m", "pytest", "-q", "tests/test_case.py")
    assert rc == 0, err
    assert binds == {}


def test_system_folders_are_refused_with_an_explanation():
    rc, binds, err = plan("solve", "/etc/hostname")
    assert rc == 2 and "/etc/hostname" in err and "system folder" in err and "Traceback" not in err
    rc, binds, err = plan("run", "cases/demo.toml", "-o", "/usr/share/bonefem-results")
    assert rc == 2 and "/usr/share" in err
    rc, binds, err = plan("run", "cases/demo.toml", "-o", "/no-such-top-folder-18/out")
    assert rc == 2 and "'/'" in err and "mkdir -p" in err


host_only = pytest.mark.skipif(_in_debian13() or shutil.which("bwrap") is None,
                               reason="enters the root file system: run on the host with "
                                      "`python3 -m pytest tests/test_launcher.py`")


@host_only
def test_results_land_where_asked_from_an_image_outside_the_project(outside):
    """Before: 'file not found' for the image, and -o wrote into the cached runtime."""
    bone = np.zeros((6, 6, 6), bool)
    bone[1:5, 1:5, :] = True
    image = outside[0] / "bone.npy"
    np.save(image, bone)
    out = outside[1] / "new" / "run1"
    p = subprocess.run([LAUNCHER, "solve", str(image), "--voxel-size", "0.1", "-o", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    result = json.loads((out / "result.json").read_text())
    # a 4 x 4 voxel prism of 0.1 mm: E * A * strain = 10000 * 0.16 * 0.01 N
    assert result["reaction_force_N"] == pytest.approx(-16.0, rel=1e-6)


@host_only
def test_an_output_in_a_system_folder_is_refused_before_running(outside):
    p = subprocess.run([LAUNCHER, "run", "cases/demo.toml", "-o", "/etc/bonefem-test-18"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 2 and "system folder" in p.stderr
    assert not Path("/etc/bonefem-test-18").exists()
