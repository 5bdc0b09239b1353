"""Turning a grey image so that its main trabecular direction lies along z
(bench/validate_specimens.py ``core --align``), checked on synthetic rods of known tilt."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vs():
    spec = importlib.util.spec_from_file_location("validate_specimens", ROOT / "bench" / "validate_specimens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rods(shape, direction, period):
    """Grey image (voxel units) of a square lattice of parallel rods along ``direction``:
    cos(2 pi u / period) + cos(2 pi v / period), u and v the coordinates across the rods."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    u = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    x = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), axis=-1)
    k = 2 * np.pi / period
    return np.cos(k * (x @ u)) + np.cos(k * (x @ v))


def test_tilted_rods_come_to_z_with_their_volume_fraction(vs):
    # Rods 40 deg from z in a plane leaning from x towards y: the turn must find them.
    tilt = np.radians(40)
    d = np.array([np.sin(tilt) * np.cos(0.5), np.sin(tilt) * np.sin(0.5), np.cos(tilt)])
    grey = rods((64, 64, 64), d, period=8.0)
    spacing = (0.04, 0.04, 0.04)
    bone = 1.2                       # threshold: a ~10 % rod fraction
    before = float(np.mean(grey >= bone))
    assert 0.05 < before < 0.2
    cube, r = vs.aligned(grey, spacing, bv=before)
    # The rotation takes the known rod direction to z (sign free) within 2 deg ...
    assert np.degrees(np.arccos(abs((r @ d)[2]))) < 2.0
    # ... and, measured independently on the turned cube, so does the rods' fabric.
    found = vs.main_direction(cube, spacing, bv=before)
    assert np.degrees(np.arccos(abs(found[2]))) < 2.0
    # The cube lies inside the data (no zero padding) and keeps the rods' volume fraction.
    assert 30 <= cube.shape[0] < 64 and cube.min() > grey.min() - 1e-6
    assert abs(float(np.mean(cube >= bone)) - before) < 0.01 * before + 0.003


def test_inscribed_cube_of_a_turn_about_z(vs):
    # A 45 deg turn about z fits a cube of edge (n - 1) / sqrt(2) in x and y.
    r = vs.to_z([0, 0, 1])
    assert np.allclose(r, np.eye(3))
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    turn = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    out = vs.rotated(np.ones((41, 41, 41), np.float32), turn)
    assert out.shape[0] == int(np.floor(40 / np.sqrt(2)))
    assert np.allclose(out, 1.0)     # every voxel interpolated from inside the data
