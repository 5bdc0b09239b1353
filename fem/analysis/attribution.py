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

**Remodelling space** (``[trial] remodelling_space``). Open resorption cavities are
stress risers, and a drug that lowers turnover closes many of them; they are reversible,
unlike a perforation. The architecture part then splits into **cavities** and the
**permanent** rest (perforations, lost connectivity, redistribution). A geometry with its
open cavities *closed* (key marker :data:`CLOSED`) is its level set with every open,
non-perforating cavity refilled by the BMU model's formation rule up to the surface it
was dug from, or to its balance where formation leaves a deficit
(fem.remodel.bmu.refilled), moved uniformly back to its own bone volume: the cavities'
volume (their share of BMD) stays in the mass part, and the cavity part is what they
cost at equal BMD. The split is nested in the architecture player: every marginal change
of architecture in the Shapley sum, from a baseline-side geometry G0 to a treated-side
G1 (same mass and tissue players), is split along the path G0 -> G0 closed -> G1 closed
-> G1; the first and last steps (closing B's cavities, opening T's) are the cavity part,
the middle step the permanent part, each weighted as the architecture marginal is. Mass
and tissue are today's Shapley parts unchanged, the four parts add up to the total
exactly, and with no open cavities the cavity part is exactly 0. A full four-player
Shapley value would need "T's cavities on B's architecture", which is no specimen
(cavities sit on T's surfaces); giving the cavity player no effect outside architecture
would make Shapley hand half of the cavities' effect to architecture. Cost: four more
solves per side that has open cavities (eight: 14 counterfactuals instead of 6).

This module only combines failure loads; the caller builds the specimens and solves
them, so it stays free of MPI and DOLFINx.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, permutations
from math import factorial

import numpy as np
from scipy.optimize import brentq

from fem.specimen.levelset import bone_volume, move_surface, volume_fraction

PLAYERS = ("mass", "architecture", "tissue")
# the coalitions other than B (empty) and T (all), in the order a trial solves them
COUNTERFACTUALS = tuple(frozenset(c) for r in (1, 2) for c in combinations(PLAYERS, r))
# marker in a coalition key: that coalition's geometry with its open cavities closed
CLOSED = "closed"


@dataclass
class Attribution:
    """Parts of a failure-load change, percent of F(B); they sum to ``total_pct``."""

    total_pct: float
    mass_pct: float
    tissue_pct: float
    architecture_pct: float
    mass_only_pct: float     # F{mass} / F(B) - 1: B thinned or thickened to T's volume alone
    mass_move_um: float      # uniform surface move of that mass counterfactual, um
    cavities_pct: float = 0.0   # of architecture_pct: open cavities (remodelling space)
    # what the open cavities of B and of T cost each state alone: F(state) / F(state with
    # its cavities closed) - 1, % (0 without open cavities or without the split)
    cavity_cost_base_pct: float = 0.0
    cavity_cost_pct: float = 0.0

    @property
    def permanent_pct(self) -> float:
        """Of architecture_pct, the rest: perforations and other lasting changes."""
        return self.architecture_pct - self.cavities_pct


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


def closed_geometry(phi, refilled_phi, spacing):
    """A geometry with its open cavities closed at equal bone volume: ``refilled_phi``
    (the same level set with its cavities refilled, fem.remodel.bmu.refilled) moved
    uniformly back to the bone volume of ``phi`` (mm^3), so the cavities' volume stays
    with the mass player. Arrays (nx, ny, nz), mm."""
    d = matching_move(refilled_phi, spacing, bone_volume(phi, spacing))
    return move_surface(refilled_phi, d, spacing)


def coalitions(base_phi, base_tissue, treated_phi, treated_tissue, spacing,
               base_refilled=None, treated_refilled=None):
    """The counterfactual specimens of every coalition (module docstring), arrays in and out.

    base_tissue, treated_tissue : tuples of per-voxel tissue fields, e.g. (mineral, quality)
    base_refilled, treated_refilled : the level set of B or T with its open cavities
        refilled (fem.remodel.bmu.refilled), or None where the state has none or the
        remodelling-space split is off
    Returns ``({coalition: (phi, tissue tuple)}, d_mass)`` with d_mass (mm) the uniform
    move of the baseline to the treated bone volume. The empty and the full coalition
    are B and T themselves; the other six need a solve each, and so do the four keys
    with the :data:`CLOSED` marker of each side given a refilled level set.
    """
    v_base, v_treated = bone_volume(base_phi, spacing), bone_volume(treated_phi, spacing)
    d_mass = matching_move(base_phi, spacing, v_treated)

    def geometries(phi_b, phi_t, d_b):
        """{geometry players: phi} of a baseline-side and a treated-side level set."""
        d_arch = matching_move(phi_t, spacing, v_base)
        return {(): phi_b, ("mass",): move_surface(phi_b, d_b, spacing),
                ("architecture",): move_surface(phi_t, d_arch, spacing),
                ("mass", "architecture"): phi_t}

    out = {}

    def dress(geometry, marker=(), own=True):
        """Each geometry with B's and with T's tissue (carried, unless its own state's)."""
        for geo, phi in geometry.items():
            from_base = tuple(baseline_tissue_on(phi, base_phi, f, spacing) for f in base_tissue)
            from_treated = tuple(baseline_tissue_on(phi, treated_phi, f, spacing) for f in treated_tissue)
            key = frozenset(geo) | frozenset(marker)
            out[key] = (phi, tuple(base_tissue) if own and geo == () else from_base)
            out[key | {"tissue"}] = (phi, tuple(treated_tissue) if own and len(geo) == 2 else from_treated)

    dress(geometries(base_phi, treated_phi, d_mass))
    closed = {}
    if base_refilled is not None:
        b = closed_geometry(base_phi, base_refilled, spacing)
        closed.update({k: v for k, v in geometries(b, treated_phi, matching_move(b, spacing, v_treated))
                       .items() if "architecture" not in k})
    if treated_refilled is not None:
        t = closed_geometry(treated_phi, treated_refilled, spacing)
        closed.update({k: v for k, v in geometries(base_phi, t, d_mass).items() if "architecture" in k})
    dress(closed, (CLOSED,), own=False)
    return out, d_mass


def cavity_part(values: dict) -> float:
    """The open cavities' share of the architecture player's Shapley part.

    values : {coalition: value} over :data:`PLAYERS`, plus the :data:`CLOSED` keys of
        either side (module docstring); a side without them has no open cavities.
    Every architecture marginal v(S + arch) - v(S), S without architecture, is split
    along S -> S closed -> (S + arch) closed -> S + arch; the cavity part is the sum of
    the first and last steps, with the Shapley weight |S|! (n - 1 - |S|)! / n! of S.
    """
    n, others = len(PLAYERS), [p for p in PLAYERS if p != "architecture"]
    subsets = [frozenset(c) for r in range(n) for c in combinations(others, r)]
    for side in (subsets, [s | {"architecture"} for s in subsets]):
        have = [s | {CLOSED} in values for s in side]
        if any(have) and not all(have):
            raise ValueError("cavity_part needs the closed-cavity value of every coalition of a side "
                             f"or of none; missing {[sorted(s) for s, h in zip(side, have) if not h]}")
    part = 0.0
    for s in subsets:
        a = s | {"architecture"}
        weight = factorial(len(s)) * factorial(n - 1 - len(s)) / factorial(n)
        opened_b = values[s] - values.get(s | {CLOSED}, values[s])      # closing B's cavities, negated
        opened_t = values[a] - values.get(a | {CLOSED}, values[a])      # opening T's cavities
        part += weight * (opened_t - opened_b)
    return part


def attribute(loads: dict, mass_move: float = 0.0) -> Attribution:
    """Split F(T) - F(B) (percent of F(B)) into mass, architecture and tissue, order-free,
    and the architecture part into open cavities and the permanent rest.

    loads : failure load (N) of every coalition, keyed by frozensets of :data:`PLAYERS`
        (all eight: frozenset() is B, frozenset(PLAYERS) is T), and optionally the
        :data:`CLOSED` coalitions of either side (:func:`coalitions`)
    mass_move : uniform surface move (mm) of the {mass} counterfactual
    """
    missing = [sorted(k) for k in (frozenset(), frozenset(PLAYERS), *COUNTERFACTUALS) if k not in loads]
    if missing:
        raise ValueError(f"attribute needs the failure load of every coalition; missing {missing}")
    f_b = loads[frozenset()]
    pct = {k: 100.0 * v / f_b for k, v in loads.items()}
    parts = shapley({k: v for k, v in pct.items() if CLOSED not in k})

    def cost(key):
        closed = loads.get(key | {CLOSED})
        return 0.0 if closed is None else 100.0 * (loads[key] / closed - 1.0)

    return Attribution(100.0 * (loads[frozenset(PLAYERS)] / f_b - 1.0), parts["mass"], parts["tissue"],
                       parts["architecture"], 100.0 * (loads[frozenset(["mass"])] / f_b - 1.0),
                       1000.0 * mass_move, cavity_part(pct), cost(frozenset()), cost(frozenset(PLAYERS)))
