"""A trial's strength changes by two methods side by side: Pistoia and nonlinear.

Rows that ran the nonlinear test (``[analysis] strength = "nonlinear"``) carry its
ultimate and 0.2 % offset yield loads (fem.analysis.strength.NONLINEAR_COLUMNS) next to
the Pistoia failure load. Their changes are computed as the Pistoia ones
(fem.analysis.compare.add_changes), and the difference between the methods is taken per
specimen (paired: the same specimen, arm and time), then summarised over specimens.
"""

from __future__ import annotations

from fem.analysis.compare import add_changes, summarise

NONLINEAR_FIGURES = ("nl_ultimate_load_N", "nl_yield_load_N")
# difference column -> (nonlinear change, Pistoia change), percentage points
DIFFERENCES = {"diff_d_strength_pct": ("d_nl_ultimate_pct", "d_failure_load_pct"),
               "diff_du_strength_pct": ("du_nl_ultimate_pct", "du_failure_load_pct")}
KEYS = ("d_failure_load_pct", "d_nl_ultimate_pct", "d_nl_yield_pct", "diff_d_strength_pct",
        "du_failure_load_pct", "du_nl_ultimate_pct", "diff_du_strength_pct", "nl_strain_at_ultimate",
        "nl_yielded_fraction")


def has_nonlinear(rows: list[dict]) -> bool:
    return any(r.get("nl_ultimate_load_N") is not None for r in rows)


def add_method_changes(rows: list[dict]) -> list[dict]:
    """Rows (with add_changes' Pistoia changes) plus ``d_``/``du_`` changes of the
    nonlinear loads (%) and ``diff_d_strength_pct`` / ``diff_du_strength_pct``:
    nonlinear ultimate change minus Pistoia change, percentage points. Rows unchanged
    when no row ran the nonlinear test."""
    if not has_nonlinear(rows):
        return rows
    out = add_changes(rows, NONLINEAR_FIGURES)
    for r in out:
        for diff, (nl, pistoia) in DIFFERENCES.items():
            a, b = r.get(nl), r.get(pistoia)
            r[diff] = None if a is None or b is None else a - b
    return out


def summarise_methods(rows: list[dict]) -> list[dict] | None:
    """Mean and SD over specimens of both methods' changes and their paired difference
    per cohort x arm x time; None without nonlinear rows. ``rows`` from add_method_changes."""
    return summarise(rows, list(KEYS)) if has_nonlinear(rows) else None
