"""Speed of the BMU simulation: 2 simulated years on a 5 mm cube at 30 um (4.6 M voxels).

./bonefem exec python3 bench/bmu_speed.py [COHORT] [ARM]
One core (the simulation is serial NumPy); prints seconds per phase and the final row.
"""

import sys
import time

from fem.remodel.arms import baseline_state, run_arm
from fem.specimen.cohorts import load_cohort
from fem.specimen.vertebral import generate

cohort = sys.argv[1] if len(sys.argv) > 1 else "late-postmenopausal"
arm = sys.argv[2] if len(sys.argv) > 2 else "combined"
t0 = time.perf_counter()
net = generate(**dict(load_cohort(cohort)["generator"], size=5.0, voxel_size=0.03, seed=0))
t1 = time.perf_counter()
base = baseline_state(net.phi, net.spacing, cohort, seed=0, spinup_years=1.0)
t2 = time.perf_counter()
history, _ = run_arm(base, cohort, arm, 2.0, seed=0)
t3 = time.perf_counter()
print(f"{net.phi.size / 1e6:.2f} M voxels, {cohort}, {arm}")
print(f"generate {t1 - t0:.1f} s, 1-year spin-up {t2 - t1:.1f} s, 2 years of {arm} {t3 - t2:.1f} s")
last = history[-1]
print(f"activations {last['activations']}, perforations {last['perforations']}, "
      f"BMD change {100 * (last['bmd_mg_cm3'] / history[0]['bmd_mg_cm3'] - 1):+.2f} %")
