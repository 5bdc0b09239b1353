"""Stress renders and trial figures as a reader sees them (issue 18): a colour range from
percentiles said in the bar, a title naming the specimen, the listing of a trial's
specimens, and figure labels that do not collide."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fem.errors import BonefemError
from fem.report import plots, view
from tests.conftest import fails, run_cli

COHORTS = ["early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic"]
ARMS = ["untreated", "alfacalcidol", "menatetrenone", "combined"]


@pytest.fixture(scope="module")
def trial_like(tmp_path_factory):
    """A folder laid out like a trial's fields (two specimens), from one small solve."""
    d = tmp_path_factory.mktemp("render")
    bone = np.zeros((8, 8, 10), bool)
    bone[1:7, 1:7, :] = True
    bone[3:5, 3:5, 4:6] = False            # a hole: a stress concentration
    np.save(d / "bone.npy", bone)
    run_cli("solve", d / "bone.npy", "--voxel-size", "0.05", "-o", d / "single", check=True)
    fields = d / "trial" / "fields"
    for name in ("late-postmenopausal-s0-baseline", "late-postmenopausal-s0-combined-2y"):
        shutil.copytree(d / "single", fields / name)
    return d


def test_percentile_range_ignores_a_few_peaks():
    values = np.concatenate([np.linspace(0, 10, 1000), [1e6] * 5])
    lo, hi = view.percentile_range(values)
    assert 0 < lo < 1 and 9 < hi < 10                      # the peaks do not stretch the scale
    assert view.percentile_range(np.full(10, 3.0))[1] > 3.0  # a uniform field: non-empty range
    assert "2-98th percentile" in view.bar_title("von_mises")
    assert view.bar_title("von_mises").startswith("von Mises stress (MPa)")


def test_titles_name_the_specimen_not_the_folder(trial_like):
    fields = trial_like / "trial" / "fields"
    assert view.describe(fields / "late-postmenopausal-s0-combined-2y") == \
        "late-postmenopausal, seed 0, combined after 2 years"
    assert view.describe(fields / "late-postmenopausal-s0-baseline" / "fields.pvd") == \
        "late-postmenopausal, seed 0, baseline"
    assert view.describe(trial_like / "single") == "bone.npy"


def test_a_trial_folder_lists_its_specimens_instead_of_showing_one(trial_like):
    with pytest.raises(BonefemError) as err:
        view.find_field_file(trial_like / "trial")
    text = str(err.value)
    assert "holds 2 stress fields" in text
    assert "late-postmenopausal, seed 0, baseline" in text and "combined after 2 years" in text
    proc = run_cli("view", trial_like / "trial", "--screenshot", trial_like / "x.png")
    fails(proc, "holds 2 stress fields", "late-postmenopausal-s0-combined-2y")
    assert not (trial_like / "x.png").exists()
    # picking one: by its folder name or a unique part of it
    fields = trial_like / "trial" / "fields"
    assert view.find_field_file(trial_like / "trial", "combined") == \
        fields / "late-postmenopausal-s0-combined-2y" / "fields.pvd"
    assert view.find_field_file(trial_like / "trial", "late-postmenopausal-s0-baseline").parent.name \
        == "late-postmenopausal-s0-baseline"
    with pytest.raises(BonefemError, match="no specimen matches 'elderly'"):
        view.find_field_file(trial_like / "trial", "elderly")
    with pytest.raises(BonefemError, match="2 stress fields matching 'late'"):
        view.find_field_file(trial_like / "trial", "late")


def test_a_screenshot_into_a_missing_folder_is_a_clear_error(trial_like):
    proc = run_cli("view", trial_like / "single", "--screenshot", trial_like / "no" / "v.png")
    fails(proc, "does not exist")


def test_screenshot_shows_the_field_over_the_percentile_range(trial_like, tmp_path):
    from matplotlib.image import imread

    png = tmp_path / "v.png"
    view.screenshot(trial_like / "single", png)
    img = imread(png)[..., :3]
    assert img.shape[1] >= 800 and img.shape[0] >= 500
    # The bone is not left black by a saturated scale: among coloured pixels of the
    # panel (not white, not grey), the dark ones are a minority.
    coloured = img[(img.max(axis=2) - img.min(axis=2)) > 0.15]
    assert len(coloured) > 5000
    assert np.mean(coloured.max(axis=1) < 0.25) < 0.5


def test_side_by_side_of_a_trial_specimen(trial_like, tmp_path):
    from matplotlib.image import imread

    fields = trial_like / "trial" / "fields"
    out = view.side_by_side([(fields / "late-postmenopausal-s0-baseline", "baseline"),
                             (fields / "late-postmenopausal-s0-combined-2y", "combined, 2 y")],
                            tmp_path / "s.png", size=(400, 400), title="late-postmenopausal, seed 0")
    assert imread(out).shape[1] > imread(out).shape[0]


# --- trial figures ----------------------------------------------------------------------

def _summary():
    rng = np.random.default_rng(3)
    out = []
    for c in COHORTS:
        for a in ARMS:
            s = {"cohort": c, "arm": a, "time_years": 2.0, "n": 1}
            for key in ("d_bmd_pct", "d_failure_load_pct", "strength_mass_pct",
                        "strength_tissue_pct", "strength_architecture_pct"):
                s[f"{key}_mean"] = float(rng.normal(0, 10))
            out.append(s)
    return out


@pytest.fixture
def capture(monkeypatch):
    """The figure a plots function draws, laid out as when saved, instead of files."""
    figs = []

    def keep(fig, path):
        fig.canvas.draw()
        figs.append(fig)
        return []

    monkeypatch.setattr(plots, "_save", keep)
    return figs


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_attribution_labels_do_not_collide(capture):
    plots.attribution_bars(_summary(), COHORTS, ARMS, 2.0, "unused")
    (fig,) = capture
    r = fig.canvas.get_renderer()
    labels = [t for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert len(labels) == 12
    angle = np.radians(labels[0].get_rotation())
    if angle == 0:
        boxes = [t.get_window_extent(r) for t in labels]
        assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    else:
        # parallel slanted one-line labels: the gap across them, tick spacing x sin(angle),
        # must exceed a line of text (axis-aligned boxes of slanted text always overlap)
        assert all("\n" not in t.get_text() for t in labels)
        x = [fig.axes[0].transData.transform((tick, 0))[0] for tick in fig.axes[0].get_xticks()]
        line = 1.2 * labels[0].get_fontsize() * fig.dpi / 72
        assert np.min(np.diff(x)) * np.sin(angle) > line


def test_trajectory_labels_clear_their_ticks(capture):
    summary = _summary()
    # a wide range in one panel: long tick labels, which the middle y-label used to cross
    for s in summary:
        if s["cohort"] == "late-postmenopausal":
            s["d_failure_load_pct_mean"] *= 30
    plots.trajectories(summary, COHORTS, "unused")
    (fig,) = capture
    r = fig.canvas.get_renderer()
    ticks = [t.get_window_extent(r) for ax in fig.axes for t in ax.get_yticklabels() if t.get_text()]
    labels = [(ax, ax.yaxis.label.get_window_extent(r)) for ax in fig.axes if ax.get_ylabel()]
    assert labels and not any(_overlap(lab, t) for _, lab in labels for t in ticks)
    # nor does a y-label lie on a neighbouring panel (where it crossed its tick labels)
    assert not any(_overlap(lab, other.get_window_extent(r))
                   for ax, lab in labels for other in fig.axes if other is not ax)


def test_bmd_only_lines_stay_apart_when_the_exponents_agree(capture):
    rows = [{"arm": "combined", "cohort": c, "time_years": 2.0, "d_bmd_pct": -5.0,
             "d_failure_load_pct": -7.0} for c in COHORTS]
    exponents = {"early-postmenopausal": 1.28, "late-postmenopausal": 1.02, "elderly-osteoporotic": 1.27}
    plots.strength_vs_bmd(rows, exponents, 2.0, "unused")
    (fig,) = capture
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("BMD-only")]
    assert len(lines) == 3
    styles = {(str(ln.get_linestyle()), str(ln.get_dashes() if hasattr(ln, "get_dashes") else ""),
               ln.get_marker()) for ln in lines}
    assert len(styles) == 3                                   # every line drawn differently
    assert len({ln.get_marker() for ln in lines}) == 3         # and marked with its cohort


def test_specimen_render_has_its_title_and_a_bar_clear_of_the_bone(tmp_path):
    from matplotlib.image import imread

    from fem.report.render import render_specimen

    # a rod along z: signed distance to a cylinder of radius 0.3 mm in a 1 mm cube
    h = 0.05
    x, y, _ = np.meshgrid(*(np.arange(20) * h,) * 3, indexing="ij")
    phi = 0.3 - np.hypot(x - 0.5, y - 0.5)
    png = render_specimen(phi, (h, h, h), tmp_path / "s.png", title="a rod", size=(400, 400))
    img = imread(png)[..., :3]
    # laid out by matplotlib (6.5 x 5.2 in at 130 dpi), not VTK's own 400 x 400 window
    assert img.shape[:2] == (676, 845)
    # the bar's gradient: a row below the scene running from black to white
    grey = img.mean(axis=2)
    low = grey[int(0.8 * len(grey)):]
    assert any(r.min() < 0.1 and r.max() > 0.9 and np.sum(np.diff(r) > 0) > 200 for r in low)
