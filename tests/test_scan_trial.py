"""Micro-CT images as trial specimens: binary limit, calibration, a tiny trial end to end."""

import csv
import json
import tomllib

import numpy as np
import pytest

from fem.case import case_from_dict
from fem.errors import BonefemError, CaseError
from fem.remodel.bmu import RemodelParams
from fem.remodel.presets import FOLDER as PRESETS
from fem.specimen.levelset import from_mask, volume_fraction
from fem.specimen.load import specimen_from_levelset
from fem.specimen.scan import block_mean, crop_roi, scan_specimen
from fem.specimen.vertebral import generate
from fem.trial import measure, specimen_of
from fem.trial_cohorts import cohort_baseline, turnover_of, untreated_of
from tests.conftest import run_cli

H = 0.04


def _trial(tmp_path, **cohort):
    """A validated trial whose only cohort is the [trial.cohort.scan] table ``cohort``."""
    table = {"trial": {"arms": ["untreated"], "years": 1.0, "checkpoints": [1.0], "spinup_years": 0.0,
                       "cohort": {"scan": cohort}}}
    return case_from_dict(table, "t.toml", tmp_path).trial


def _slab(n=30, a=0.3013, b=0.5287):
    """Exact bone fraction of each voxel of an n^3 cube (edge h) holding the plate a < x < b
    (mm): a plate across x spans the loaded faces (z). Returns (fraction, exact BV/TV)."""
    lo = np.arange(n) * H
    f1 = np.clip(np.minimum(lo + H, b) - np.maximum(lo, a), 0, None) / H
    return np.broadcast_to(f1[:, None, None], (n, n, n)).copy(), (b - a) / (n * H)


def test_binary_image_gives_the_binary_levelset_specimen(tmp_path):
    net = generate(size=1.6, voxel_size=H, bv_tv=0.12, tb_n=1.35, th_horizontal=0.1,
                   strut_fraction=0.6, seed=2)
    mask = specimen_from_levelset(net.phi, net.spacing, 0.0).mask
    np.save(tmp_path / "bone.npy", np.where(mask, 255, 0).astype(np.uint8))
    scan = scan_specimen(tmp_path / "bone.npy", H)
    binary = specimen_from_levelset(from_mask(mask, (H,) * 3), (H,) * 3, 0.0)
    np.testing.assert_array_equal(scan.phi, binary.phi)
    assert scan.info["bv_tv"] == pytest.approx(binary.bone_volume_fraction, rel=1e-12)


def test_calibrated_scan_bmd_and_tissue_modulus_from_grey(tmp_path):
    # A scanner with marrow at grey 40 (0 mg HA/cm^3) and this bone at grey 200 (900 mg HA/cm^3).
    frac, bv_tv = _slab()
    slope = 900.0 / 160.0
    np.save(tmp_path / "slab.npy", 40.0 + 160.0 * frac)
    t = _trial(tmp_path, turnover="elderly-osteoporotic", images="slab.npy", voxel_size=H,
               threshold=120.0, density_slope=slope, density_intercept=-40.0 * slope,
               mineral_from_grey=True)
    assert turnover_of(t, "scan") == "elderly-osteoporotic"
    scan = scan_specimen(t.cohort_tables["scan"].images[0], H, 120.0, density_slope=slope,
                         density_intercept=-40.0 * slope, mineral_from_grey=True)
    # The scan's BMD (mean calibrated density) is the bone's density x its volume fraction.
    assert scan.info["scan_bmd_mg_per_cm3"] == pytest.approx(900.0 * bv_tv, rel=1e-9)
    # The trial's baseline keeps the measured mineral (no simulated history without spin-up):
    # BMD from the level set's volumes and m = 900 / 1100 is the same figure.
    base = cohort_baseline(t, "scan", 0, 1 / 12)
    m = measure(base)
    assert m["bv_tv"] == pytest.approx(bv_tv, rel=1e-5)
    assert m["bmd_mg_per_cm3"] == pytest.approx(900.0 * bv_tv, rel=1e-5)
    # Tissue modulus E = E_ref (TMD / 1100)^2.5 (fem.remodel.mineral) in every bone voxel.
    spec = specimen_of(base, 10000.0)
    bone = spec.mask
    np.testing.assert_allclose(spec.modulus[bone], 10000.0 * (900.0 / 1100.0) ** 2.5, rtol=1e-6)


def test_uncalibrated_scan_keeps_the_relative_mineral_definition(tmp_path):
    frac, _ = _slab()
    np.save(tmp_path / "slab.npy", 40.0 + 160.0 * frac)
    t = _trial(tmp_path, turnover="early-postmenopausal", images="slab.npy", voxel_size=H,
               threshold=120.0)
    base = cohort_baseline(t, "scan", 0, 1 / 12)
    # the simulated mineral history of the generated specimens: mean m below 1, not the scan's
    bone = base.fraction > 0.5
    assert 0.8 < base.mineral[bone].mean() < 1.0


def test_block_mean_and_roi():
    image = np.arange(6 ** 3, dtype=float).reshape(6, 6, 6)
    coarse = block_mean(image, 2)
    assert coarse.shape == (3, 3, 3)
    assert coarse[0, 0, 0] == pytest.approx(image[:2, :2, :2].mean())
    roi = crop_roi(image, (0.1,) * 3, size=0.2, centre=(0.3, 0.3, 0.3))
    np.testing.assert_array_equal(roi, image[2:4, 2:4, 2:4])
    with pytest.raises(BonefemError, match="does not fit"):
        crop_roi(image, (0.1,) * 3, size=0.4, centre=(0.1, 0.3, 0.3))


EARLY = {"turnover": "early-postmenopausal"}


@pytest.mark.parametrize("cohort, key", [
    ({**EARLY, "images": "slab.npy", "mineral_from_grey": True}, "mineral_from_grey"),
    ({**EARLY, "images": "slab.npy", "density_slope": 2.0}, "density_slope"),
    ({**EARLY, "images": "nothere.npy"}, "images"),
    ({**EARLY, "images": "slab.npy", "bv_tv": 0.1}, "bv_tv"),
    ({**EARLY, "roi_size": 2.0}, "roi_size"),
    ({"images": "slab.npy"}, "turnover"),      # 'scan' is no preset name
    ({"images": "slab.npy", "turnover": "young"}, "turnover"),
    ({**EARLY, "images": "slab.npy", "threshold": "median"}, "threshold"),
    ({**EARLY, "images": "slab.npy", "roi_centre": [1.0, 2.0]}, "roi_centre"),
])
def test_bad_cohort_tables_name_the_key(tmp_path, cohort, key):
    np.save(tmp_path / "slab.npy", np.zeros((4, 4, 4)))
    with pytest.raises(CaseError, match=f"\\[trial.cohort.scan.{key}\\]"):
        _trial(tmp_path, **cohort)


@pytest.fixture(scope="module")
def grey_trial(tmp_path_factory):
    """A tiny trial on a grey image (a generated specimen seen by a noisy scanner, .npy)."""
    d = tmp_path_factory.mktemp("scan-trial")
    net = generate(size=1.6, voxel_size=H, bv_tv=0.12, tb_n=1.35, th_horizontal=0.1,
                   strut_fraction=0.6, seed=2)
    f = volume_fraction(net.phi, net.spacing)
    rng = np.random.default_rng(0)
    grey = 40.0 + 160.0 * f + rng.normal(0.0, 4.0, f.shape)
    (d / "scans").mkdir()
    np.save(d / "scans" / "core.npy", grey.astype(np.float32))
    (d / "trial.toml").write_text(
        'title = "tiny scan trial"\n[trial]\narms = ["untreated", "combined"]\n'
        "years = 0.5\ncheckpoints = [0.5]\nseeds = [0]\nspinup_years = 0.5\n"
        '[trial.cohort.core]\nturnover = "elderly-osteoporotic"\nimages = ["scans/*.npy"]\n'
        "voxel_size = 0.04\nthreshold = 120\n")
    proc = run_cli("run", d / "trial.toml", "-o", d / "out", check=True)
    return d, proc


def test_tiny_scan_trial_runs_resumes_and_reports(grey_trial, tmp_path):
    d, proc = grey_trial
    out = d / "out"
    rows = list(csv.DictReader((out / "trial.csv").open()))
    assert [(r["cohort"], r["arm"]) for r in rows] == \
        [("core", "baseline"), ("core", "untreated"), ("core", "combined")]
    # every arm starts from the scan: its baseline BV/TV is the grey level set's after spin-up
    assert 0.1 < float(rows[0]["bv_tv"]) < 0.2
    assert json.loads((out / "result.json").read_text())["solves"] == 1 + 2 * (1 + 6)  # 6 counterfactuals each
    assert (out / "fields" / "core-s0-combined-0.5y" / "fields.pvd").exists()
    again = run_cli("run", d / "trial.toml", "-o", out, check=True)
    assert "rows reused" in again.stdout
    assert json.loads((out / "result.json").read_text())["this_run"]["solves"] == 0
    doc = tmp_path / "results.md"
    run_cli("report", out, "-o", doc, check=True)
    assert "core" in doc.read_text()


def test_real_core_roi_is_vertebral_like(lhdl_core):
    scan = scan_specimen(lhdl_core, 0.0195, 125.0, smooth_sigma=1.0, coarsen=2, roi_size=3.0)
    assert scan.phi.shape == (77, 77, 77)
    assert 0.12 < scan.info["bv_tv"] < 0.14
    # grey levels kept: partial-volume voxels, not only the binary level set's +-h/2 band
    binary = from_mask(scan.phi > 0, scan.spacing)
    assert np.count_nonzero(np.abs(scan.phi - binary) > 1e-4) > 1000


def test_missing_scan_fails_in_one_line_naming_the_key(tmp_path):
    (tmp_path / "t.toml").write_text('[trial]\n[trial.cohort.core]\nturnover = "early-postmenopausal"\n'
                                     'images = ["scans/core.npy"]\nvoxel_size = 0.04\n')
    proc = run_cli("run", tmp_path / "t.toml", "-o", tmp_path / "out")
    assert proc.returncode == 2
    assert "[trial.cohort.core.images] file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def _untreated_toml(cohort):
    """The untreated preset's numbers for ``cohort``, read from the file itself."""
    data = tomllib.loads((PRESETS / "untreated.toml").read_text())
    return {**data["common"], **data["cohort"][cohort]}


@pytest.mark.parametrize("turnover, key", [
    ({"activation_frequency": 0.3, "balance": 0.97, "speed": 2.0}, "turnover.speed"),
    ({"base": "elderly-osteoporotic", "balance": -0.5}, "turnover.balance"),
    ({"base": "elderly-osteoporotic", "primary_mineral": 1.5}, "turnover.primary_mineral"),
    ({"base": "elderly-osteoporotic", "tau_secondary": "long"}, "turnover.tau_secondary"),
    ({"base": "young"}, "turnover.base"),
    ({"balance": 0.97}, "turnover.activation_frequency"),     # no base to take it from
])
def test_bad_turnover_numbers_name_the_key(tmp_path, turnover, key):
    np.save(tmp_path / "slab.npy", np.zeros((4, 4, 4)))
    with pytest.raises(CaseError, match=f"t.toml: \\[trial.cohort.scan.{key}\\]") as err:
        _trial(tmp_path, images="slab.npy", turnover=turnover)
    assert "\n" not in str(err.value)


def test_turnover_numbers_default_to_their_base(tmp_path):
    np.save(tmp_path / "slab.npy", np.zeros((4, 4, 4)))
    t = _trial(tmp_path, images="slab.npy", turnover={"base": "late-postmenopausal", "balance": 0.9})
    assert untreated_of(t, "scan") == RemodelParams(**{**_untreated_toml("late-postmenopausal"),
                                                        "balance": 0.9})
    # without a base: [common] of untreated.toml and the two per-cohort numbers given
    t = _trial(tmp_path, images="slab.npy", turnover={"activation_frequency": 0.5, "balance": 1.0})
    common = tomllib.loads((PRESETS / "untreated.toml").read_text())["common"]
    assert untreated_of(t, "scan") == RemodelParams(**common, activation_frequency=0.5, balance=1.0)
    assert turnover_of(t, "scan") is None


def test_turnover_as_numbers_equal_to_a_preset_gives_identical_rows(tmp_path):
    """The same tiny trial with turnover named and given as the preset's numbers (one as an
    inline table, as a [trial.cohort.NAME.turnover] table in TOML is the same thing)."""
    frac, _ = _slab(n=16, a=0.2013, b=0.4287)
    rng = np.random.default_rng(1)
    np.save(tmp_path / "slab.npy", (40.0 + 160.0 * frac + rng.normal(0.0, 4.0, frac.shape)))
    numbers = ", ".join(f"{k} = {v!r}" for k, v in _untreated_toml("early-postmenopausal").items())
    head = ('[output]\nfields = false\n[trial]\narms = ["untreated", "combined"]\nyears = 0.25\n'
            'checkpoints = [0.25]\nspinup_years = 0.25\nattribution = false\n'
            '[trial.cohort.scan]\nimages = "slab.npy"\nvoxel_size = 0.04\nthreshold = 120\n')
    rows = []
    for name, turnover in [("named", '"early-postmenopausal"'), ("numbers", f"{{ {numbers} }}")]:
        (tmp_path / f"{name}.toml").write_text(head + f"turnover = {turnover}\n")
        run_cli("run", tmp_path / f"{name}.toml", "-o", tmp_path / name, check=True)
        # all but the job key, which hashes the case's text
        rows.append([{k: v for k, v in r.items() if k != "key"}
                     for r in csv.DictReader((tmp_path / name / "trial.csv").open())])
    assert len(rows[0]) == 3 and rows[0] == rows[1]
