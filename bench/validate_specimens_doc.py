"""Tables and figure of bench/validate_specimens.py, written into docs/specimens.md.

Reads bench/out/validate_specimens_{before,after,core}.json (whichever exist) and
replaces the text between ``<!-- validation:begin -->`` and ``<!-- validation:end -->``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DOC = ROOT / "docs" / "specimens.md"
FIGURE = ROOT / "docs" / "figures" / "specimens_validation.png"
COHORTS = ["early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic"]
BEGIN, END = "<!-- validation:begin -->", "<!-- validation:end -->"

# Human vertebral cancellous bone, n = 9 specimens, micro-CT and mechanical testing
# (PMC3352993, Table 1; read in the source): mean +- SD.
LITERATURE = {"bv_tv": (0.0675, 0.0245), "tb_th_mm": (0.132, 0.0222), "tb_sp_mm": (1.020, 0.217),
              "da_ratio": (1.48, 0.12), "smi": (1.70, 0.60), "conn_d_per_mm3": (4.84, 2.26),
              "E_MPa": (232, 36.7), "yield_MPa": (1.19, 0.26)}
LIT_REF = "[human vertebral cancellous bone, n = 9](https://pmc.ncbi.nlm.nih.gov/articles/PMC3352993/table/T1)"


def _load(tag):
    """Rows of every run tagged ``tag`` or ``tag_<part>`` (a run split over processes)."""
    rows = []
    for path in sorted(OUT.glob(f"validate_specimens_{tag}.json")) + sorted(OUT.glob(f"validate_specimens_{tag}_*.json")):
        rows += json.loads(path.read_text())
    morph = OUT / f"validate_morph_{tag}.json"
    if morph.exists():
        measured = json.loads(morph.read_text())
        for r in rows:
            if f"{r.get('cohort')}|{r.get('seed')}" in measured:
                r["morphometry"] = measured[f"{r['cohort']}|{r['seed']}"]
    return rows


def _stat(values, fmt="{:.2f}"):
    """Mean +- SD (sample SD, n - 1) over seeds; the value alone for one seed."""
    v = np.asarray([x for x in values if x is not None], float)
    if v.size == 0:
        return "-"
    if v.size == 1:
        return fmt.format(v[0])
    return f"{fmt.format(v.mean())} +- {fmt.format(v.std(ddof=1))}"


# Generator versions: the straight columns the issue was filed on, the short segments of
# the previous session (stop 21), and the current generator.
TAGS = {"before": "straight columns", "s21": "segments, stop 21", "after": "current"}


def _label(tag, rows) -> str:
    """The generator column: version, number of seeds and cube edge."""
    sizes = sorted({round(r.get("size_mm", 4.0), 2) for r in rows})
    return f"{TAGS.get(tag, tag)} (n = {len(rows)}, {'/'.join(f'{x:g}' for x in sizes)} mm)"


def _pct(values):
    return _stat([100 * v for v in values], "{:.1f}")


def removal_table(runs) -> list[str]:
    lines = ["| cohort | generator | trabeculae removed | bone lost (%) | removal: E / F loss (%) | "
             "thinning: E / F loss (%) | removal / thinning, E | removal / thinning, F |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in COHORTS:
        for tag, rows in runs:
            rows = [r for r in rows if r["cohort"] == name]
            for key, what in (("horizontal", "every horizontal"), ("random", "random sample")):
                parts = [r[key] for r in rows if key in r]
                if not parts:
                    continue
                ratio_e = [p["removal_E_loss"] / p["thinning_E_loss"] for p in parts]
                ratio_f = [p["removal_F_loss"] / p["thinning_F_loss"] for p in parts]
                lines.append(
                    f"| {name} | {_label(tag, [r for r in rows if key in r])} | {what} | {_pct([p['mass_loss'] for p in parts])} | "
                    f"{_pct([p['removal_E_loss'] for p in parts])} / {_pct([p['removal_F_loss'] for p in parts])} | "
                    f"{_pct([p['thinning_E_loss'] for p in parts])} / {_pct([p['thinning_F_loss'] for p in parts])} | "
                    f"{_stat(ratio_e)} | {_stat(ratio_f)} |")
    return lines


def _mech(rows):
    e = [r["base"]["E_MPa"] for r in rows]
    ex = [0.5 * (r["E_x_MPa"] + r["E_y_MPa"]) for r in rows]
    size = [r.get("size_mm", 4.0) for r in rows]
    return {"bv": [r["base"]["bv_tv"] for r in rows], "E": e, "Ex": [r["E_x_MPa"] for r in rows],
            "Ey": [r["E_y_MPa"] for r in rows],
            "aniso": [a / b if b > 0 else None for a, b in zip(e, ex)],
            "F": [r["base"]["F_N"] for r in rows],
            "sigma": [r["base"]["F_N"] / s ** 2 for r, s in zip(rows, size)]}


def mechanics_table(runs, core) -> list[str]:
    lines = ["| specimen | generator | BV/TV | E_z (MPa) | E_x (MPa) | E_y (MPa) | E_z / mean(E_x, E_y) | "
             "failure load (N) | failure stress (MPa) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in COHORTS:
        for tag, rows in runs:
            rows = [r for r in rows if r["cohort"] == name]
            if not rows:
                continue
            m = _mech(rows)
            lines.append(f"| {name} | {_label(tag, rows)} | {_stat(m['bv'], '{:.3f}')} | {_stat(m['E'], '{:.0f}')} | "
                         f"{_stat(m['Ex'], '{:.0f}')} | {_stat(m['Ey'], '{:.0f}')} | {_stat(m['aniso'], '{:.1f}')} | "
                         f"{_stat(m['F'], '{:.1f}')} | {_stat(m['sigma'], '{:.2f}')} |")
    for r in core:
        m = _mech([dict(r, size_mm=r.get("size_mm", 3.9))])
        lines.append(f"| real core, thresholded to BV/TV {r['target_bv_tv']} | - | {_stat(m['bv'], '{:.3f}')} | "
                     f"{_stat(m['E'], '{:.0f}')} | {_stat(m['Ex'], '{:.0f}')} | {_stat(m['Ey'], '{:.0f}')} | "
                     f"{_stat(m['aniso'], '{:.1f}')} | {_stat(m['F'], '{:.1f}')} | {_stat(m['sigma'], '{:.2f}')} |")
    bv, e, y = LITERATURE["bv_tv"], LITERATURE["E_MPa"], LITERATURE["yield_MPa"]
    lines.append(f"| {LIT_REF} (experiment, mean +- SD) | - | {bv[0]:.3f} +- {bv[1]:.3f} | {e[0]:.0f} +- {e[1]:.0f} | "
                 f"- | - | - | - | {y[0]:.2f} +- {y[1]:.2f} (yield) |")
    return lines


MORPH = [("bv_tv", "BV/TV", "{:.3f}", 1), ("tb_th_mm", "Tb.Th (mm)", "{:.3f}", 1),
         ("tb_sp_mm", "Tb.Sp (mm)", "{:.2f}", 1), ("tb_n_per_mm", "Tb.N (1/mm)", "{:.2f}", 1),
         ("conn_d_per_mm3", "Conn.D (1/mm^3)", "{:.1f}", 1), ("smi", "SMI", "{:.2f}", 1),
         ("da_ratio", "DA (MIL c/a)", "{:.2f}", 1)]


def morphometry_table(runs, core) -> list[str]:
    lines = ["| specimen | generator | " + " | ".join(m[1] for m in MORPH) + " |",
             "| --- | --- | " + " | ".join("---" for _ in MORPH) + " |"]
    for name in COHORTS:
        for tag, rows in runs:
            rows = [r for r in rows if r["cohort"] == name and "morphometry" in r]
            if rows:
                lines.append(f"| {name} | {_label(tag, rows)} | " + " | ".join(
                    _stat([r["morphometry"].get(k) for r in rows], f) for k, _, f, _ in MORPH) + " |")
    for r in core:
        lines.append(f"| real core, BV/TV {r['target_bv_tv']} | - | " + " | ".join(
            _stat([r["morphometry"].get(k)], f) for k, _, f, _ in MORPH) + " |")
    lit = []
    for k, _, f, _ in MORPH:
        lit.append(f"{f.format(LITERATURE[k][0])} +- {f.format(LITERATURE[k][1])}" if k in LITERATURE else "-")
    lines.append(f"| {LIT_REF} (mean +- SD) | - | " + " | ".join(lit) + " |")
    return lines


def figure(runs, core):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(COHORTS, ["tab:blue", "tab:orange", "tab:red"]))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    for tag, rows in runs:
        filled = tag == "after"
        for name in COHORTS:
            rs = [r for r in rows if r["cohort"] == name]
            if not rs:
                continue
            m = _mech(rs)
            kw = dict(color=colours[name], s=36, label=f"{name}, {TAGS.get(tag, tag)}",
                      facecolors=colours[name] if filled else "none",
                      marker={"before": "s", "s21": "^"}.get(tag, "o"))
            axes[0].scatter(m["bv"], m["E"], **kw)
            axes[1].scatter(m["bv"], m["sigma"], **kw)
    if core:
        m = _mech([dict(r, size_mm=3.9) for r in core])
        for ax, key in ((axes[0], "E"), (axes[1], "sigma")):
            ax.scatter(m["bv"], m[key], marker="x", color="black", s=50, label="real core (thresholded)")
    bv, e, y = LITERATURE["bv_tv"], LITERATURE["E_MPa"], LITERATURE["yield_MPa"]
    axes[0].errorbar(bv[0], e[0], xerr=bv[1], yerr=e[1], color="grey", capsize=3, label="experiment (n = 9), mean +- SD")
    axes[1].errorbar(bv[0], y[0], xerr=bv[1], yerr=y[1], color="grey", capsize=3,
                     label="experiment: yield stress (n = 9)")
    axes[0].set(xlabel="BV/TV", ylabel="apparent modulus E_z (MPa)", title="Modulus along z")
    axes[1].set(xlabel="BV/TV", ylabel="Pistoia failure load / area (MPa)", title="Strength along z")
    # one legend for both panels (upper left of the modulus panel is free), the strength
    # panel's own entry (yield stress) at its lower right
    axes[0].legend(fontsize=6, loc="upper left")
    handles, names = axes[1].get_legend_handles_labels()
    axes[1].legend([h for h, n in zip(handles, names) if n.startswith("experiment")],
                   [n for n in names if n.startswith("experiment")], fontsize=7, loc="lower right")
    for ax in axes[:2]:
        ax.set_ylim(bottom=0)
    # removal / thinning loss ratios
    labels, ratio_e, ratio_f = [], [], []
    for name in COHORTS:
        for tag, rows in runs:
            for key in ("horizontal", "random"):
                parts = [r[key] for r in rows if r["cohort"] == name and key in r]
                if parts:
                    labels.append(f"{name.split('-')[0]}\n{tag}, {'horiz.' if key == 'horizontal' else 'random'}")
                    ratio_e.append(np.mean([p["removal_E_loss"] / p["thinning_E_loss"] for p in parts]))
                    ratio_f.append(np.mean([p["removal_F_loss"] / p["thinning_F_loss"] for p in parts]))
    x = np.arange(len(labels))
    axes[2].bar(x - 0.2, ratio_e, 0.4, label="modulus")
    axes[2].bar(x + 0.2, ratio_f, 0.4, label="failure load")
    axes[2].axhline(1.0, color="black", lw=0.8)
    axes[2].set_xticks(x, labels, fontsize=7, rotation=60, ha="right")
    axes[2].set(ylabel="loss by removal / loss by thinning", title="Removal vs thinning, equal bone loss")
    axes[2].legend(fontsize=8)
    FIGURE.parent.mkdir(exist_ok=True)
    fig.savefig(FIGURE, dpi=110)


def write_doc():
    runs = [(tag, rows) for tag in TAGS if (rows := _load(tag))]
    core = _load("core")
    figure(runs, core)
    size = "; ".join(f"{tag}: " + ", ".join(
        f"{name} seeds {', '.join(str(r['seed']) for r in rows if r['cohort'] == name)}"
        for name in COHORTS if any(r["cohort"] == name for r in rows)) for tag, rows in runs)
    text = [BEGIN, "",
            f"Generated by `./bonefem exec python3 bench/validate_specimens.py doc` from the runs in "
            f"bench/out/ ({size}; cells give the mean +- SD over seeds, n seeds per cohort; the "
            f"cube edge is in the generator column; 40 um voxels).", "",
            "**Removal versus thinning at equal bone loss** (modulus E and Pistoia failure load F along z):", "",
            *removal_table(runs), "",
            "**Mechanics and anisotropy** (tissue modulus 10 GPa, uniaxial 1 % compression; failure stress is the "
            "Pistoia failure load over the loaded face):", "",
            *mechanics_table(runs, core), "",
            "**Morphometry** (`fem.specimen.morphometry`; Tb.Th and Tb.Sp by sphere fitting, SMI by surface "
            "dilation, DA as the ratio of the longest to the shortest mean intercept length):", "",
            *morphometry_table(runs, core), "",
            f"![validation](figures/{FIGURE.name})", "", END]
    doc = DOC.read_text()
    if BEGIN in doc:
        doc = doc[:doc.index(BEGIN)] + "\n".join(text) + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip() + "\n\n" + "\n".join(text) + "\n"
    DOC.write_text(doc)
    print(f"wrote {DOC} and {FIGURE}")


CAND_BEGIN, CAND_END = "<!-- candidate:begin -->", "<!-- candidate:end -->"


def _ratio(rows, key, what):
    parts = [r[key] for r in rows if key in r]
    return [p[f"removal_{what}_loss"] / p[f"thinning_{what}_loss"] for p in parts]


def candidate_table(base, cand) -> list[str]:
    """Today's generator (``base`` rows) and a candidate (``cand`` rows) side by side, per
    cohort, with the literature's values: one line per measure."""
    def cell(rows, get, fmt):
        return _stat([get(r) for r in rows], fmt)

    measures = [("E_z (MPa)", lambda r: r["base"]["E_MPa"], "{:.0f}", "E_MPa"),
                ("E_x (MPa)", lambda r: r["E_x_MPa"], "{:.0f}", None),
                ("E_y (MPa)", lambda r: r["E_y_MPa"], "{:.0f}", None),
                ("failure load (N)", lambda r: r["base"]["F_N"], "{:.1f}", None)]
    measures += [(label, (lambda k: lambda r: r.get("morphometry", {}).get(k))(k), f, k)
                 for k, label, f, _ in MORPH]
    for key, what in (("horizontal", "every horizontal"), ("random", "random sample")):
        for q in ("E", "F"):
            measures.append((f"removal / thinning, {what}, {'modulus' if q == 'E' else 'failure load'}",
                             (lambda key, q: lambda r: (r[key][f"removal_{q}_loss"] / r[key][f"thinning_{q}_loss"])
                              if key in r else None)(key, q), "{:.2f}", "ratio"))
    head = "| measure | " + " | ".join(f"{n.split('-')[0]}: today | {n.split('-')[0]}: candidate" for n in COHORTS)
    lines = [head + " | published |", "| --- |" + " --- |" * (2 * len(COHORTS) + 1)]
    for label, get, fmt, lit in measures:
        cells = []
        for name in COHORTS:
            for rows in (base, cand):
                cells.append(cell([r for r in rows if r["cohort"] == name], get, fmt))
        if lit == "ratio":
            ref = "> 1 (direction only)"
        elif lit in LITERATURE:
            ref = f"{fmt.format(LITERATURE[lit][0])} +- {fmt.format(LITERATURE[lit][1])}"
        else:
            ref = "-"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ref} |")
    return lines


def variants_table(variants, seed=0) -> list[str]:
    """One line per (label, rows) variant and cohort, seed ``seed`` only: E_z, DA, SMI and the
    removal / thinning modulus ratios (the trade-off between the values)."""
    lines = ["| variant (seed 0) | cohort | E_z (MPa) | DA | SMI | Conn.D (1/mm^3) | removal / thinning, horizontal, E | "
             "removal / thinning, random, E |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, rows in variants:
        for name in COHORTS:
            r = [r for r in rows if r["cohort"] == name and r["seed"] == seed]
            if not r:
                continue
            r, m = r[0], r[0].get("morphometry", {})
            ratio = [_stat(_ratio([r], k, "E")) for k in ("horizontal", "random")]
            lines.append(f"| {label} | {name} | {r['base']['E_MPa']:.0f} | {_stat([m.get('da_ratio')])} | "
                         f"{_stat([m.get('smi')])} | {_stat([m.get('conn_d_per_mm3')], '{:.1f}')} | {ratio[0]} | {ratio[1]} |")
    return lines


def write_candidate(base_tag, cand_tag, also=()):
    """The side-by-side table of ``base_tag`` and ``cand_tag`` (and, for seed 0, the variants
    ``also``: [(label, tag)]) into docs/specimens.md between ``<!-- candidate:begin -->``
    and ``<!-- candidate:end -->`` (which must exist)."""
    base, cand = _load(base_tag), _load(cand_tag)
    variants = "".join(f' --variant "{label}" {tag}' for label, tag in also)
    seeds = sorted({r["seed"] for r in cand})
    size = sorted({round(r.get("size_mm", 3.0), 2) for r in cand})
    text = [CAND_BEGIN, "",
            f"Generated by `./bonefem exec python3 bench/validate_specimens.py doc --candidate {cand_tag} "
            f"--baseline {base_tag}{variants}` (seeds {', '.join(map(str, seeds))}, {'/'.join(f'{s:g}' for s in size)} mm "
            f"cubes at 40 um, partial voxels at {cand[0].get('partial_volume', 'the default rule') if cand else '-'}; "
            f"mean +- SD over seeds; published: {LIT_REF}).", "",
            *candidate_table(base, cand), ""]
    if also:
        text += ["Variants on seed 0 (same command with `--tag TAG --seeds 0 --presets "
                 "fem/specimen/cohorts/candidate --set KEY=VALUE`; that folder's presets are the shipped ones since 7 December 2026):", "",
                 *variants_table([("today", base)] + [(label, _load(tag)) for label, tag in also]
                                 + [("candidate", cand)]), ""]
    text += [CAND_END]
    doc = DOC.read_text()
    if CAND_BEGIN not in doc:
        raise SystemExit(f"{DOC}: no {CAND_BEGIN} marker to write the candidate table at")
    doc = doc[:doc.index(CAND_BEGIN)] + "\n".join(text) + doc[doc.index(CAND_END) + len(CAND_END):]
    DOC.write_text(doc)
    print(f"wrote the candidate table into {DOC}")
