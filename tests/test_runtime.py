"""The runtime has every package of the list that the three runtimes (native Debian 13,
debootstrap root file system, the image) install. That the image really ships the same
stack and gives the same numbers is checked by building and running it
(tests/test_image.py, `fem/runtime/image.sh check`)."""

import re
import subprocess

from tests.conftest import ROOT

LIST = "fem/runtime/debian-packages.txt"
INSTALL = "fem/runtime/install-debian.sh"


def packages():
    text = (ROOT / LIST).read_text()
    return [p for line in text.splitlines() for p in line.split("#")[0].split()]


def test_every_listed_package_is_installed_here():
    pkgs = packages()
    assert {"python3-dolfinx-real", "openmpi-bin", "python3-pyvista", "xvfb"} <= set(pkgs)
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\n", *pkgs],
                         capture_output=True, text=True).stdout
    installed = {line.split()[0] for line in out.splitlines() if "install ok installed" in line}
    assert set(pkgs) <= installed, set(pkgs) - installed


def test_no_mirror_address_is_written_in_the_runtime_files():
    for name in ("bonefem", "Dockerfile", INSTALL, LIST, "fem/runtime/image.sh", "fem/runtime/slurm-local.sh",
                 "fem/runtime/host-pytest.sh"):
        assert not re.search(r"\b(https?|ftp)://", (ROOT / name).read_text()), name
