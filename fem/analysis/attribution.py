"""Attribution of a strength change to mass, architecture and tissue, free of order.

A treated state T differs from its baseline B (same specimen) in three ways, each a
"player": **mass** (bone volume), **architecture** (where the bone is, at equal volume:
perforations, lost connectivity, redistribution) and **tissue** (mineral and matrix
quality). Each coalition S of players is a counterfactual specimen, F(S) its Pistoia
failure load:

=====================  ==========================================  ===============
coalition              geometry                                    tissue
=====================  ==========================================  ===============
{}                     B                                           B
{mass}                 B moved uniformly to T's bone volume        B
{architecture}         T moved uniformly to B's bone volume        B
{mass, architecture}   T                                           B
{tissue}               B                                           T (carried)
{mass, tissue}         B moved to T's volume                       T (carried)
{architecture, tissue} T moved to B's volume                       T (carried)
all                    T                                           T
=====================  ==========================================  ===============

(uniform moves: :func:`matching_move` with fem.specimen.levelset.move_surface; a tissue
field carried onto another geometry: :func:`baseline_tissue_on`). A sequential split
(mass first, then tissue, architecture the rest) depends on the order chosen; the
Shapley value, each player's change averaged over every order of adding the players,
does not, and the parts add up to the total exactly. All parts are percent of F(B).
F(B) and F(T) are the trial's own solves; the six other coalitions
(:data:`COUNTERFACTUALS`) cost a solve each.

This module only combines failure loads; the caller builds the specimens and solves
them, so it stays free of MPI and DOLFINx.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, permutations

import numpy as np
from scipy.optimize import brentq

from fem.specimen.levelset import bone_volume, move_surface, volume_fraction

PLAYERS = ("mass", "architecture", "tissue")
# the coalitions other than B (empty) and T (all), in the order a trial solves them
COUNTERFACTUALS = tuple(frozenset(c) for r in (1, 2) for c in combinations(PLAYERS, r))


@dataclass
class Attribution:
    """Parts of a failure-load change, percent of F(B); they sum to ``total_pct``."""

    total_pct: float
    mass_pct: float
    tissue_pct: float
    architecture_pct: float
    mass_only_pct: float     # F{mass} / F(B) - 1: B thinned or thickened to T's volume alone
    mass_move_um: float      # uniform surface move of that mass counterfactual, um


def shapley(value, players=PLAYERS) -> dict:
    """Shapley value of each player: its marginal change of ``value`` averaged over
    every order in which the players can be added.

    value : callable(frozenset) -> float, or a dict keyed by frozensets of players
    Returns {player: part}; the parts sum to value(all) - value(empty).
    """
    v = value.__getitem__ if isinstance(value, dict) else value
    parts = dict.fromkeys(players, 0.0)
    orders = list(permutations(players))
    for order in orders:
        have = frozenset()
        for p in order:
            parts[p] += v(have | {p}) - v(have)
            have = have | {p}
    return {p: x / len(orders) for p, x in parts.items()}


def matching_move(phi, spacing, target_volume: float, limit: float = 0.1) -> float:
    """Uniform surface move (mm) after which the level set holds ``target_volume`` mm^3
    (the move re-initialises, so bone that vanishes stays gone)."""
    def gap(d):
        return bone_volume(move_surface(phi, d, spacing), spacing) - target_volume
    if gap(0.0) == 0:
        return 0.0
    return float(brentq(gap, -limit, limit, xtol=1e-7))


def baseline_tissue_on(treated_phi, baseline_phi, baseline_field, spacing):
    """A per-voxel tissue field (mineral or quality) of one state carried onto another
    geometry: its values where it had bone, else its bone-weighted mean. (Named for the
    baseline's tissue on the treated geometry; the same call carries the treated tissue
    onto the baseline geometry with the arguments swapped. ``treated_phi`` is not used.)"""
    fb = volume_fraction(baseline_phi, spacing)
    mean = float(np.sum(fb * baseline_field) / max(fb.sum(), 1e-30))
    return np.where(fb > 0, baseline_field, mean).astype(np.float32)


def coalitions(base_phi, base_tissue, treated_phi, treated_tissue, spacing):
    """The counterfactual specimens of every coalition (module docstring), arrays in and out.

    base_tissue, treated_tissue : tuples of per-voxel tissue fields, e.g. (mineral, quality)
    Returns ``({coalition: (phi, tissue tuple)}, d_mass)`` with d_mass (mm) the uniform
    move of the baseline to the treated bone volume. The empty and the full coalition
    are B and T themselves; the other six need a solve each.
    """
    d_mass = matching_move(base_phi, spacing, bone_volume(treated_phi, spacing))
    d_arch = matching_move(treated_phi, spacing, bone_volume(base_phi, spacing))
    geometry = {(): base_phi, ("mass",): move_surface(base_phi, d_mass, spacing),
                ("architecture",): move_surface(treated_phi, d_arch, spacing),
                ("mass", "architecture"): treated_phi}
    out = {}
    for geo, phi in geometry.items():
        # each tissue field carried onto this geometry from B and from T
        from_base = tuple(baseline_tissue_on(phi, base_phi, f, spacing) for f in base_tissue)
        from_treated = tuple(baseline_tissue_on(phi, treated_phi, f, spacing) for f in treated_tissue)
        out[frozenset(geo)] = (phi, tuple(base_tissue) if geo == () else from_base)
        out[frozenset(geo) | {"tissue"}] = (phi, tuple(treated_tissue) if len(geo) == 2 else from_treated)
    return out, d_mass


def attribute(loads: dict, mass_move: float = 0.0) -> Attribution:
    """Split F(T) - F(B) (percent of F(B)) into mass, architecture and tissue, order-free.

    loads : failure load (N) of every coalition, keyed by frozensets of :data:`PLAYERS`
        (all eight: frozenset() is B, frozenset(PLAYERS) is T)
    mass_move : uniform surface move (mm) of the {mass} counterfactual
    """
    missing = [sorted(k) for k in (frozenset(), frozenset(PLAYERS), *COUNTERFACTUALS) if k not in loads]
    if missing:
        raise ValueError(f"attribute needs the failure load of every coalition; missing {missing}")
    f_b = loads[frozenset()]
    parts = shapley({k: 100.0 * v / f_b for k, v in loads.items()})
    return Attribution(100.0 * (loads[frozenset(PLAYERS)] / f_b - 1.0), parts["mass"], parts["tissue"],
                       parts["architecture"], 100.0 * (loads[frozenset(["mass"])] / f_b - 1.0),
                       1000.0 * mass_move)
