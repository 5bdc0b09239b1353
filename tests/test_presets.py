"""The shipped drug presets reproduce the seed paper's 2-year lumbar BMD results.

Mean over three seeded 3 mm specimens per cohort (the calibration setting). Targets
(ANCHORS.md, seed paper refs 28-30): untreated loses about 1-1.6 %/yr; early
postmenopausal: combined +4.92 %, monotherapies about 0; late postmenopausal: combined
+1.35 %, monotherapies about 0; elderly with established osteoporosis: combined and
menatetrenone fall, alfacalcidol rises. Within +-1 percentage point.
"""

import numpy as np
import pytest

from fem.remodel.calibrate import Setting, arm_change

EARLY, LATE, ELDERLY = "early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic"


@pytest.fixture(scope="module")
def change():
    cache = {}

    def get(cohort, arm):
        if (cohort, arm) not in cache:
            cache[cohort, arm] = float(np.mean(arm_change(cohort, arm, Setting())))
        return cache[cohort, arm]
    return get


@pytest.mark.parametrize("cohort", [EARLY, LATE, ELDERLY])
def test_untreated_loses_1_to_1_6_percent_a_year(change, cohort):
    assert -3.2 - 1.0 <= change(cohort, "untreated") <= -2.0 + 1.0


@pytest.mark.parametrize("cohort, arm, target", [
    (EARLY, "combined", 4.92), (EARLY, "alfacalcidol", 0.0), (EARLY, "menatetrenone", 0.0),
    (LATE, "combined", 1.35), (LATE, "alfacalcidol", 0.0), (LATE, "menatetrenone", 0.0),
])
def test_calibrated_arms_hit_the_clinical_bmd_change(change, cohort, arm, target):
    assert change(cohort, arm) == pytest.approx(target, abs=1.0)


def test_elderly_pattern(change):
    assert change(ELDERLY, "combined") < 0
    assert change(ELDERLY, "menatetrenone") < 0
    assert change(ELDERLY, "alfacalcidol") > 0
