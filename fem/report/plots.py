"""Trial figures (matplotlib, PNG and SVG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fem.analysis.paired import FIGURES

ARM_COLOURS = {"untreated": "0.4", "alfacalcidol": "tab:blue", "menatetrenone": "tab:green",
               "combined": "tab:red"}
COHORT_MARKERS = {"early-postmenopausal": "o", "late-postmenopausal": "s", "elderly-osteoporotic": "^"}
COHORT_LINES = ["--", ":", (0, (6, 2, 1, 2)), (0, (1, 4))]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path) -> list[Path]:
    path = Path(path)
    out = []
    for ext in (".png", ".svg"):
        p = path.with_suffix(ext)
        fig.savefig(p, dpi=150, bbox_inches="tight")
        out.append(p)
    _plt().close(fig)
    return out


def strength_vs_bmd(rows, exponents: dict, time_years: float, path) -> list[Path]:
    """Change in failure load against change in BMD (%, vs baseline) at one time, per
    specimen, with the identity line and each cohort's BMD-only prediction F ~ BMD^k."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    pts = [r for r in rows if r["arm"] != "baseline" and abs(r["time_years"] - time_years) < 1e-9]
    xs = [r["d_bmd_pct"] for r in pts if r.get("d_bmd_pct") is not None]
    lim = max([abs(v) for v in xs + [r["d_failure_load_pct"] for r in pts
                                        if r.get("d_failure_load_pct") is not None]] + [1.0]) * 1.15
    x = np.linspace(-lim, lim, 50)
    ax.plot(x, x, color="0.7", lw=1, label="identity")
    # Cohorts' exponents can be nearly equal, so their lines can coincide: each gets its
    # own dash pattern and its cohort's hollow marker at staggered places along it, so a
    # line drawn over another still shows. Black: the colours are the arms'.
    x = np.linspace(-lim, lim, 61)
    for i, ((cohort, k), ls) in enumerate(zip(exponents.items(), COHORT_LINES)):
        if k is not None:
            ax.plot(x, 100 * ((1 + x / 100) ** k - 1), ls=ls, lw=1.1, color="k", alpha=0.75,
                    marker=COHORT_MARKERS.get(cohort, "x"), markevery=(2 + 3 * i, 9), ms=5,
                    mfc="w", mec="k", mew=0.8, label=f"BMD-only, {cohort} (k = {k:.2f})")
    for r in pts:
        ax.scatter(r["d_bmd_pct"], r["d_failure_load_pct"], color=ARM_COLOURS.get(r["arm"], "k"),
                   marker=COHORT_MARKERS.get(r["cohort"], "x"), s=40, edgecolor="k", lw=0.5)
    for arm, c in ARM_COLOURS.items():
        ax.scatter([], [], color=c, label=arm)
    for cohort, m in COHORT_MARKERS.items():
        ax.scatter([], [], color="w", edgecolor="k", marker=m, label=cohort)
    ax.axhline(0, color="0.85", lw=0.8)
    ax.axvline(0, color="0.85", lw=0.8)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("change in BMD (%)")
    ax.set_ylabel("change in Pistoia failure load (%)")
    ax.set_title(f"Strength versus BMD after {time_years:g} years")
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    return _save(fig, path)


def trajectories(summary, cohorts, path) -> list[Path]:
    """BMD and failure load (% vs baseline, mean over specimens) over time, per cohort."""
    plt = _plt()
    # constrained layout keeps each axis' label clear of its own and its neighbour's ticks
    fig, axes = plt.subplots(2, len(cohorts), figsize=(4.2 * len(cohorts), 6.5), squeeze=False,
                             sharex=True, layout="constrained")
    for j, cohort in enumerate(cohorts):
        for arm, colour in ARM_COLOURS.items():
            ss = sorted((s for s in summary if s["cohort"] == cohort and s["arm"] == arm),
                        key=lambda s: s["time_years"])
            if not ss:
                continue
            t = [0.0] + [s["time_years"] for s in ss]
            for i, key in enumerate(("d_bmd_pct", "d_failure_load_pct")):
                y = [0.0] + [s[f"{key}_mean"] for s in ss]
                axes[i][j].plot(t, y, marker="o", color=colour, label=arm)
        axes[0][j].set_title(cohort)
        axes[1][j].set_xlabel("years")
        for i in (0, 1):
            axes[i][j].axhline(0, color="0.85", lw=0.8)
    axes[0][0].set_ylabel("BMD change vs baseline (%)")
    axes[1][0].set_ylabel("failure load change vs baseline (%)")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def attribution_bars(summary, cohorts, arms, time_years, path) -> list[Path]:
    """Stacked bars: mass, tissue and architecture parts of the strength change (%);
    architecture as open cavities and the permanent rest where the trial split it."""
    plt = _plt()
    parts = [("strength_mass_pct", "mass", "tab:gray"), ("strength_tissue_pct", "tissue", "tab:orange"),
             ("strength_architecture_pct", "architecture", "tab:purple")]
    if any(s.get("strength_cavities_pct_mean") is not None for s in summary):
        parts[2:] = [("strength_cavities_pct", "open cavities", "tab:cyan"),
                     ("strength_permanent_pct", "permanent architecture", "tab:purple")]
    labels, values = [], {p[0]: [] for p in parts}
    totals = []
    for cohort in cohorts:
        for arm in arms:
            s = next((s for s in summary if s["cohort"] == cohort and s["arm"] == arm
                      and abs(s["time_years"] - time_years) < 1e-9), None)
            if s is None or s.get("strength_mass_pct_mean") is None:
                continue
            labels.append(f"{cohort}: {arm}")
            for key, _, _ in parts:
                values[key].append(s[f"{key}_mean"])
            totals.append(s["d_failure_load_pct_mean"])
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(labels)), 5.5))
    x = np.arange(len(labels))
    pos, neg = np.zeros(len(labels)), np.zeros(len(labels))
    for key, name, colour in parts:
        v = np.asarray(values[key], float)
        bottom = np.where(v >= 0, pos, neg)
        ax.bar(x, v, bottom=bottom, color=colour, label=name)
        pos += np.where(v >= 0, v, 0)
        neg += np.where(v < 0, v, 0)
    ax.scatter(x, totals, color="k", zorder=3, label="total")
    ax.axhline(0, color="k", lw=0.8)
    # slanted one-line labels: side by side, two-line labels of long arm names collide
    ax.set_xticks(x, labels, fontsize=8, rotation=40, ha="right", rotation_mode="anchor")
    for k in range(1, len(cohorts)):        # a faint divider between cohorts
        edge = sum(1 for lab in labels if lab.split(":")[0] in cohorts[:k]) - 0.5
        if 0 < edge < len(labels) - 1:
            ax.axvline(edge, color="0.85", lw=0.8)
    ax.set_ylabel("change in failure load (%)")
    ax.set_title(f"Attribution of the strength change at {time_years:g} years")
    ax.legend(fontsize=8)
    return _save(fig, path)


def size_study(table, years: float, path) -> list[Path]:
    """Mean % change (95 % t interval as error bars; none with n = 1) against specimen
    edge, one panel per figure; ``table``: rows of bench/size_study.collect (edge_mm,
    cohort, arm, figure, n, mean, ci_low, ci_high); an arm named 'X - untreated' is the
    paired difference, drawn in black."""
    plt = _plt()
    figures = list(dict.fromkeys(r["figure"] for r in table))
    series = list(dict.fromkeys((r["cohort"], r["arm"]) for r in table))
    fig, axes = plt.subplots(1, len(figures), figsize=(4.3 * len(figures), 4.2), squeeze=False,
                             layout="constrained")
    for ax, figure in zip(axes[0], figures):
        for i, (cohort, arm) in enumerate(series):
            rs = sorted((r for r in table if (r["cohort"], r["arm"], r["figure"]) == (cohort, arm, figure)),
                        key=lambda r: r["edge_mm"])
            if not rs:
                continue
            # a small sideways offset per series keeps overlapping error bars apart
            x = np.array([r["edge_mm"] for r in rs]) + 0.04 * (i - (len(series) - 1) / 2)
            y = np.array([r["mean"] for r in rs])
            lo = np.array([r["mean"] - r["ci_low"] if r["n"] > 1 else 0.0 for r in rs])
            hi = np.array([r["ci_high"] - r["mean"] if r["n"] > 1 else 0.0 for r in rs])
            paired = arm.endswith(" - untreated")
            colour = "k" if paired else ARM_COLOURS.get(arm, "0.2")
            ax.errorbar(x, y, yerr=[lo, hi], color=colour, marker=COHORT_MARKERS.get(cohort, "o"),
                        ls="--" if paired else "-", capsize=3, ms=5, label=f"{cohort}: {arm}")
        ax.axhline(0, color="0.85", lw=0.8)
        ax.set_xlabel("specimen edge (mm)")
        ax.set_title(FIGURES.get(figure, figure))
    axes[0][0].set_ylabel(f"{years:g}-year change (%, points for differences)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    # below the panels: inside, it would cover points
    fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=8)
    return _save(fig, path)


def paired_differences(effects, path) -> list[Path]:
    """Forest plot: each arm minus untreated (paired, percentage points), mean and 95 %
    t interval per cohort, one panel per figure; n = 1: a hollow marker without a bar.
    ``effects``: dicts of fem.analysis.paired.paired_effects."""
    plt = _plt()
    figures = list(dict.fromkeys(e["figure"] for e in effects))
    keys = list(dict.fromkeys((e["cohort"], e["arm"]) for e in effects))
    fig, axes = plt.subplots(1, len(figures), figsize=(3.6 * len(figures) + 2.5, 0.35 * len(keys) + 1.6),
                             squeeze=False, sharey=True, layout="constrained")
    y = {k: len(keys) - 1 - i for i, k in enumerate(keys)}
    for ax, figure in zip(axes[0], figures):
        for e in (e for e in effects if e["figure"] == figure):
            colour = ARM_COLOURS.get(e["arm"], "k")
            yy = y[(e["cohort"], e["arm"])]
            marker = COHORT_MARKERS.get(e["cohort"], "o")
            if e["n"] > 1 and e.get("ci_low") is not None and np.isfinite(e["ci_low"]):
                ax.errorbar(e["mean"], yy, xerr=[[e["mean"] - e["ci_low"]], [e["ci_high"] - e["mean"]]],
                            color=colour, marker=marker, capsize=3, ms=6)
            else:
                ax.plot(e["mean"], yy, marker=marker, mfc="w", mec=colour, ms=6, ls="none")
        ax.axvline(0, color="0.6", lw=0.8)
        ax.set_title(FIGURES.get(figure, figure))
        ax.set_xlabel("arm - untreated (points)")
    axes[0][0].set_yticks(list(y.values()), [f"{c}: {a} (n = {max(e['n'] for e in effects if (e['cohort'], e['arm']) == (c, a))})"
                                             for c, a in y], fontsize=8)
    fig.suptitle("Paired differences against untreated, 95 % t intervals (hollow: n = 1, no interval)",
                 fontsize=9)
    return _save(fig, path)
