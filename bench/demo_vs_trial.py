"""Does the demo point the full trial's way? Directions of two finished trials side by side.

    ./bonefem exec python3 bench/demo_vs_trial.py results/demo results/batch-dec8/trial

For every cohort x arm of the first trial (the demo) and figure (BMD, failure load): the
change from baseline and, for treated arms, the paired effect against untreated, each as mean
[95 % t interval] with its direction ('falls', 'rises', 'not resolved': the interval spans 0)
in both trials; "same sign" compares the means, "agrees" says that no direction resolved in
one trial is contradicted in the other. Prints a Markdown table and a one-line verdict.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fem.report.paired_report import direction, interval_text
from fem.report.results_doc import paired_of

LABELS = {"bmd": "BMD", "failure_load": "failure load", "modulus": "apparent modulus"}


def statistics(folder: Path) -> dict:
    """{(kind, cohort, arm, figure): interval dict} of a finished trial folder."""
    result = json.loads((folder / "result.json").read_text())
    final = max(result["case"]["trial"]["checkpoints"])
    paired = paired_of(folder, result, final)
    out = {("from baseline", c["cohort"], c["arm"], c["figure"]): c for c in paired["changes"]}
    out.update({("vs untreated", e["cohort"], e["arm"], e["figure"]): e for e in paired["effects"]
                if e["figure"] in ("bmd", "failure_load")})
    return out


def compare(demo: dict, full: dict) -> tuple[list[str], int, int]:
    lines = ["| change | cohort | arm | figure | demo | demo direction | full trial | full direction "
             "| same sign | agrees |", "| --- " * 10 + "|"]
    same = agree = 0
    for key, d in demo.items():
        f = full.get(key)
        if f is None:
            continue
        dd, fd = direction(d), direction(f)
        s = (d["mean"] > 0) == (f["mean"] > 0)
        a = "not resolved" in (dd, fd) or dd == fd
        same += s
        agree += a
        kind, cohort, arm, figure = key
        lines.append(f"| {kind} | {cohort} | {arm} | {LABELS.get(figure, figure)} | "
                     f"{interval_text(d, say_n=False)} | {dd} | {interval_text(f, say_n=False)} | {fd} | "
                     f"{'yes' if s else 'NO'} | {'yes' if a else 'NO'} |")
    return lines, same, agree


def main(demo_dir: str, full_dir: str) -> None:
    lines, same, agree = compare(statistics(Path(demo_dir)), statistics(Path(full_dir)))
    n = len(lines) - 2
    print("\n".join(lines))
    print(f"\n{n} comparisons: same sign of the mean in {same}; no resolved direction contradicted "
          f"in {agree}.")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
