"""Markdown tables of a mechanism search (bench/mechanism_search.py's JSON), for docs/model.md.

    python3 bench/mechanism_table.py bench/out/mechanism_search_sitefix.json

Prints (1) each candidate's fitted balance shift and its 2-year BMD change per cohort (mean
+- SD over seeds; the calibrated cohort in bold) beside the review's observations, and (2)
where the strength study ran, the failure load against untreated (paired, points, mean +- SD)
and the perforations per specimen in 2 years (arm / untreated, means over seeds).
Plain JSON in, text out: runs on the host (NumPy only).
"""

from __future__ import annotations

import json
import sys

import numpy as np

COHORTS = ("early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic")
OBSERVED = {"early-postmenopausal": "+4.92", "late-postmenopausal": "+1.35",
            "elderly-osteoporotic": "falls"}


def _pm(values, digits=2) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():+.{digits}f} +- {v.std(ddof=1):.{digits}f}" if v.size > 1 else f"{v.mean():+.{digits}f}"


def bmd_table(results: dict) -> str:
    lines = ["| candidate | fitted shift | early | late | elderly |", "| --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        cal = r.get("calibrated_on", {})
        cells = []
        for c in COHORTS:
            text = _pm(r[c]["per_seed"])
            cells.append(f"**{text}** (calibrated)" if c in cal else f"{text}, predicted")
        lines.append(f"| {name} | {r['balance_shift']:+.3f} | " + " | ".join(cells) + " |")
    lines.append("| observed (seed) | | " + " | ".join(OBSERVED[c] for c in COHORTS) + " |")
    return "\n".join(lines)


def strength_table(results: dict) -> str:
    lines = ["| candidate | early | late | elderly |", "| --- | --- | --- | --- |"]
    for name, r in results.items():
        s = r.get("strength")
        if not s:
            continue
        cells = []
        for c in COHORTS:
            if c not in s:
                cells.append("-")
                continue
            x = s[c]
            cells.append(f"{_pm(x['vs_untreated'])}; {np.mean(x['perforations']):.0f} / "
                         f"{np.mean(x['perforations_untreated']):.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(path: str) -> None:
    results = json.loads(open(path).read())
    print("2-year BMD change, % from baseline (mean +- SD over seeds):\n")
    print(bmd_table(results))
    if any(r.get("strength") for r in results.values()):
        print("\nFailure load (Pistoia) against untreated, points (paired, mean +- SD over seeds); "
              "perforations per specimen in 2 years, arm / untreated:\n")
        print(strength_table(results))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
