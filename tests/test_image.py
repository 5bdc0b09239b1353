"""The container image, built from the Dockerfile and run: the same numbers as the runtime.

Host-side (podman is a host tool): ``fem/runtime/image.sh check`` builds the image and runs
this file with ``-m image``. The default suite skips it (pyproject addopts).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT, require_host

pytestmark = pytest.mark.image

IMAGE_SH = str(ROOT / "fem/runtime/image.sh")
TAG = os.environ.get("BONEFEM_IMAGE", "bonefem")
KEYS = ("reaction_force_N", "stiffness_N_per_mm", "apparent_modulus_MPa", "strain_energy_mJ", "bv_tv")

CASE = """title = "image check: small synthetic foam"
[specimen.synthetic]
size = 1.2
voxel_size = 0.03
bv_tv = 0.2
spacing = 0.4
seed = 3
[material]
modulus = 10000.0
poisson = 0.3
[load]
test = "uniaxial"
strain = -0.01
[solver]
rtol = 1e-10
"""


def _sh(*cmd, timeout=1800):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def image():
    """The built image's tag: (re)built by image.sh (a no-op when nothing changed)."""
    require_host("podman", "fem/runtime/image.sh")
    _sh(IMAGE_SH, "build", TAG)
    return TAG


def _in_image(*args, mounts=(), entrypoint=None):
    cmd = [IMAGE_SH, "run", "--network", "none"]
    for host, inside, mode in mounts:
        cmd += ["-v", f"{host}:{inside}:{mode}"]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    return _sh(*cmd, TAG, *args)


def _close(a: dict, b: dict, rtol=1e-10):
    pairs = [(a[k], b[k]) for k in KEYS] + [(a["pistoia"]["failure_load_N"], b["pistoia"]["failure_load_N"])]
    print(f"largest relative difference, image vs runtime: "
          f"{max(abs(x - y) / max(abs(x), abs(y), 1e-300) for x, y in pairs):.1e}")
    for key in KEYS:
        assert a[key] == pytest.approx(b[key], rel=rtol, abs=0), key
    assert a["pistoia"]["failure_load_N"] == pytest.approx(b["pistoia"]["failure_load_N"], rel=rtol)
    assert a["elements"] == b["elements"] and a["dofs"] == b["dofs"]


def test_run_with_mounted_folders_matches_the_runtime(image, tmp_path):
    cases, out = tmp_path / "cases", tmp_path / "out"
    cases.mkdir()
    out.mkdir()
    (cases / "foam.toml").write_text(CASE)
    # as docs/docker.md: input read-only, output folder mounted
    _in_image("run", "/work/cases/foam.toml", "-o", "/work/results/foam",
              mounts=[(cases, "/work/cases", "ro"), (out, "/work/results", "rw")])
    _sh(ROOT / "bonefem", "run", cases / "foam.toml", "-o", tmp_path / "ref")
    got = json.loads((out / "foam/result.json").read_text())
    ref = json.loads((tmp_path / "ref/result.json").read_text())
    assert got["solver"]["converged_reason"] == ref["solver"]["converged_reason"]
    assert got["reaction_force_N"] < 0          # a real compression result, not an empty one
    _close(got, ref)
    assert (out / "foam/fields.pvd").exists()


def test_mpi_solve_in_the_image_matches_the_runtime(image, tmp_path):
    (tmp_path / "foam.toml").write_text(CASE)
    # a specimen image written by bonefem itself (NIfTI, bone volume fraction)
    _sh(ROOT / "bonefem", "specimen", tmp_path / "foam.toml", "-o", tmp_path / "spec", "--no-render")
    nii = next((tmp_path / "spec").glob("*.nii.gz"))
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(nii, work / "bone.nii.gz")
    # rtol 1e-12: a 2-rank solve repeats only to about its tolerance (ghost contributions
    # are summed in the order messages arrive: 7e-8 apart at the default 1e-8, 1e-12 here)
    args = ["--threshold", "0.5", "--rtol", "1e-12", "--no-fields"]
    _in_image("-n", "2", "bonefem", "solve", "bone.nii.gz", *args, "-o", "image-out",
              mounts=[(work, "/work", "rw")], entrypoint="mpirun")
    _sh(ROOT / "bonefem", "exec", "mpirun", "-n", "2", "python3", "-m", "fem", "solve",
        work / "bone.nii.gz", *args, "-o", work / "runtime-out")
    got = json.loads((work / "image-out/result.json").read_text())
    ref = json.loads((work / "runtime-out/result.json").read_text())
    assert got["ranks"] == ref["ranks"] == 2
    assert got["reaction_force_N"] < 0
    _close(got, ref)


def test_the_image_keeps_no_caches_or_build_leftovers(image):
    listing = _in_image("-c", "ls -A /var/lib/apt/lists /var/cache/apt/archives; "
                        "find /opt/bonefem /root -name __pycache__ -o -name .git -o -name results; "
                        "ls -A /opt/bonefem", entrypoint="sh")
    lines = listing.split()
    assert not [n for n in lines if n.endswith(".deb") or n.endswith("_Packages") or "InRelease" in n]
    assert not [n for n in lines if "__pycache__" in n or n.endswith("/.git") or n.endswith("/results")]
    assert "fem" in lines and ".git" not in lines


def test_the_image_ships_the_runtimes_package_list_and_versions(image):
    """Every package of fem/runtime/debian-packages.txt at the version the runtime has: the
    Dockerfile and ./bonefem install the same list with the same script."""
    text = (ROOT / "fem/runtime/debian-packages.txt").read_text()
    pkgs = [p for line in text.splitlines() for p in line.split("#")[0].split()]
    query = ["dpkg-query", "-W", "-f=${Package} ${Version} ${Status}\\n", *pkgs]
    in_image = _in_image(*query[1:], entrypoint=query[0])
    in_runtime = _sh(ROOT / "bonefem", "exec", *query)
    assert in_image == in_runtime
    assert len(in_image.splitlines()) == len(pkgs) and "not-installed" not in in_image
    # the entry point answers and reports the same stack
    info = [line for line in _in_image("info").splitlines() if not line.startswith("ranks")]
    ref = [line for line in _sh(ROOT / "bonefem", "info").splitlines() if not line.startswith("ranks")]
    assert info == ref and any(line.startswith("dolfinx") and "0.9" in line for line in info)
