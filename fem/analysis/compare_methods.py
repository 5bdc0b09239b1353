"""A trial's strength changes by several methods side by side: Pistoia, nonlinear, buckling.

Rows that ran the nonlinear test (``[analysis] strength = "nonlinear"``) carry its
ultimate and 0.2 % offset yield loads (fem.analysis.strength.NONLINEAR_COLUMNS); rows that
ran the buckling analysis (``[analysis] buckling = true``) carry the first buckling load
(fem.analysis.strength.BUCKLING_COLUMNS), both next to the Pistoia failure load. Their
changes are computed as the Pistoia ones (fem.analysis.compare.add_changes), and the
difference between a method and Pistoia is taken per specimen (paired: the same specimen,
arm and time), then summarised over specimens.
"""

from __future__ import annotations

from fem.analysis.compare import SHORT, add_changes, summarise

# method -> (its loads as row columns (N), its headline load's change name (compare.SHORT))
METHODS = {"nonlinear": (("nl_ultimate_load_N", "nl_yield_load_N"), "nl_ultimate"),
           "buckling": (("buckling_load_N",), "buckling")}
# extra per-specimen figures summarised with a method's changes
EXTRA = {"nonlinear": ("nl_strain_at_ultimate", "nl_yielded_fraction"),
         "buckling": ("buckling_mode_share",)}
# column of the difference (method minus Pistoia, percentage points) for each method
DIFF = {"nonlinear": "strength", "buckling": "buckling"}


def methods_run(rows: list[dict]) -> list[str]:
    """The methods beside Pistoia that some row ran, in METHODS order."""
    return [m for m, (cols, _) in METHODS.items() if any(r.get(cols[0]) is not None for r in rows)]


def method_keys(method: str) -> list[str]:
    """Summary keys of one method: its changes vs baseline (d_) and vs untreated (du_),
    their differences from Pistoia, and its extra figures."""
    cols, short = METHODS[method]
    names = [SHORT[c] for c in cols]
    return ([f"d_{n}_pct" for n in names] + [f"diff_d_{DIFF[method]}_pct", f"du_{short}_pct",
                                            f"diff_du_{DIFF[method]}_pct"] + list(EXTRA[method]))


def add_method_changes(rows: list[dict]) -> list[dict]:
    """Rows (with add_changes' Pistoia changes) plus ``d_``/``du_`` changes of every other
    method's loads (%) and ``diff_d_<m>_pct`` / ``diff_du_<m>_pct``: that method's change
    minus the Pistoia change, percentage points (m: ``strength`` for the nonlinear
    ultimate load, ``buckling`` for the buckling load). Rows unchanged when no row ran
    another method."""
    run = methods_run(rows)
    if not run:
        return rows
    out = add_changes(rows, tuple(c for m in run for c in METHODS[m][0]))
    for r in out:
        for m in run:
            short = METHODS[m][1]
            for prefix, pistoia in (("d", "d_failure_load_pct"), ("du", "du_failure_load_pct")):
                a, b = r.get(f"{prefix}_{short}_pct"), r.get(pistoia)
                r[f"diff_{prefix}_{DIFF[m]}_pct"] = None if a is None or b is None else a - b
    return out


def summarise_methods(rows: list[dict]) -> list[dict] | None:
    """Mean and SD over specimens of every method's changes and their paired differences
    from Pistoia per cohort x arm x time; None when only Pistoia ran. ``rows`` from
    add_method_changes."""
    run = methods_run(rows)
    if not run:
        return None
    keys = ["d_failure_load_pct", "du_failure_load_pct"]
    keys += [k for m in run for k in method_keys(m)]
    return summarise(rows, list(dict.fromkeys(keys)))
