"""The three runtimes (native Debian 13, debootstrap root file system, Docker) share one
package list and one install script."""

import re
import subprocess

from tests.conftest import ROOT

LIST = "fem/runtime/debian-packages.txt"
INSTALL = "fem/runtime/install-debian.sh"


def packages():
    text = (ROOT / LIST).read_text()
    return [p for line in text.splitlines() for p in line.split("#")[0].split()]


def test_dockerfile_and_launcher_use_the_same_list_and_script():
    docker = (ROOT / "Dockerfile").read_text()
    launcher = (ROOT / "bonefem").read_text()
    assert re.search(r"^FROM debian:trixie", docker, re.M)
    assert LIST in docker and f"sh /opt/bonefem/{INSTALL}" in docker
    assert '"$rtdir/debian-packages.txt"' in launcher and '"$rtdir/install-debian.sh"' in launcher
    assert 'rtdir="$project/fem/runtime"' in launcher
    # The install script reads the list that lies beside it, nothing else.
    script = (ROOT / INSTALL).read_text()
    assert 'list="$here/debian-packages.txt"' in script


def test_every_listed_package_is_installed_here():
    pkgs = packages()
    assert {"python3-dolfinx-real", "openmpi-bin", "python3-pyvista", "xvfb"} <= set(pkgs)
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\n", *pkgs],
                         capture_output=True, text=True).stdout
    installed = {line.split()[0] for line in out.splitlines() if "install ok installed" in line}
    assert set(pkgs) <= installed, set(pkgs) - installed


def test_no_mirror_address_is_written_in_the_runtime_files():
    for name in ("bonefem", "Dockerfile", INSTALL, LIST):
        assert not re.search(r"\b(https?|ftp)://", (ROOT / name).read_text()), name
