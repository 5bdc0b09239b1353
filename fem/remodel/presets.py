"""Remodelling presets: untreated remodelling per cohort, and drug arms.

Presets are data files in ``presets/`` (TOML), not code. ``untreated.toml`` holds the
BMU parameters of each cohort (its anchored turnover and its own loss); a drug file
holds one set of factors applied to them, the same for every cohort:

- ``activation_factor``: x activation frequency (turnover)
- ``depth_factor``: x resorption depth (deeper cavities: more resorption per BMU)
- ``balance_shift``: + remodelling balance (formed / resorbed volume per BMU)
- ``tau_factor``: x secondary mineralisation time constant
- ``quality``: matrix-quality multiplier of bone formed under the drug
- ``activation_frequency``, ``balance`` (optional): absolute values that replace the
  cohort's instead (a drug that sets turnover or the per-BMU balance to its own level,
  whatever the cohort's untreated state); the factors above then do not apply to them
- ``balance_shift_acf_ref`` (optional, 1/yr; mechanism search, docs/model.md section 15):
  the drug adds a fixed osteoblast supply per unit of surface and year, shared by the
  cohort's BMUs, so the per-BMU shift is ``balance_shift x ref / Ac.f`` (Ac.f: the
  cohort's untreated activation frequency)
- ``balance_thickness_ref`` (optional, mm; mechanism search): the overfill of each BMU
  scales with the local thickness T of the trabecula it digs into,
  ``balance_shift x min(T, 2 ref) / ref`` (fem.remodel.bmu.RemodelParams.thickness_ref)

- ``thin_activation_ref`` (optional, mm; mechanism search): the drug's extra activation,
  (activation_factor - 1) x Ac.f, starts BMUs only on surface whose local thickness is
  below ref (fem.remodel.bmu.RemodelParams.thin_ref); needs activation_factor >= 1

These optional keys are off (None) by default and then change nothing.

so one drug acts on every cohort through the same mechanism, and the cohorts' different
responses come from their bone, not from per-cohort values: a drug file with
[cohort.NAME] tables is refused. Each file states every value's evidence, or says that
it is assumed or calibrated (and to what).
"""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace
from pathlib import Path

from fem.errors import BonefemError
from fem.remodel.bmu import RemodelParams

FOLDER = Path(__file__).with_name("presets")
ARMS = ("untreated", "alfacalcidol", "menatetrenone", "combined")
FACTORS = {"activation_factor": 1.0, "depth_factor": 1.0, "balance_shift": 0.0,
           "tau_factor": 1.0, "quality": 1.0, "activation_frequency": None, "balance": None,
           "balance_shift_acf_ref": None, "balance_thickness_ref": None, "thin_activation_ref": None}


def _read(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise BonefemError(f"{path}: preset file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise BonefemError(f"{path}: malformed TOML: {err}") from None


def preset_path(arm: str) -> Path:
    """The file of a shipped arm, or ``arm`` itself if it is a path to a user preset."""
    if arm in ARMS:
        return FOLDER / f"{arm}.toml"
    path = Path(arm)
    if path.suffix == ".toml":
        return path
    raise BonefemError(f"unknown arm {arm!r}; expected one of {', '.join(ARMS)} or a preset .toml file")


def untreated_values(cohort: str | None, path: Path | None = None) -> dict:
    """The untreated BMU values of a cohort as written (its [cohort.NAME] over [common]),
    or only the [common] ones for ``cohort=None``."""
    path = path or FOLDER / "untreated.toml"
    data = _read(path)
    if cohort is not None and cohort not in data.get("cohort", {}):
        raise BonefemError(f"{path}: no [cohort.{cohort}] table; expected one of "
                           f"{', '.join(data.get('cohort', {}))}")
    return {**data.get("common", {}), **(data["cohort"][cohort] if cohort is not None else {})}


def untreated(cohort: str, path: Path | None = None) -> RemodelParams:
    """BMU parameters of a cohort without treatment."""
    path = path or FOLDER / "untreated.toml"
    values = untreated_values(cohort, path)
    known = {f.name for f in fields(RemodelParams)}
    unknown = set(values) - known
    if unknown:
        raise BonefemError(f"{path}: [cohort.{cohort}] unknown keys {sorted(unknown)}; "
                           f"expected some of {sorted(known)}")
    return RemodelParams(**values)


def drug_factors(arm: str, cohort: str | None = None) -> dict:
    """The factors of an arm (all neutral for 'untreated'), the same for every cohort
    (``cohort`` is accepted for callers that pass it and is not used)."""
    if arm == "untreated":
        return dict(FACTORS)
    path = preset_path(arm)
    data = _read(path)
    if "cohort" in data:
        raise BonefemError(f"{path}: [cohort.*] tables are not allowed in a drug preset; a drug is "
                           "one set of [factors] for every cohort")
    table = dict(data.get("factors", {}))
    unknown = set(table) - set(FACTORS)
    if unknown:
        raise BonefemError(f"{path}: unknown factor keys {sorted(unknown)}; expected some of "
                           f"{sorted(FACTORS)}")
    return {**FACTORS, **table}


def apply_factors(base: RemodelParams, factors: dict) -> RemodelParams:
    """BMU parameters under a drug: the cohort's untreated values with the factors applied."""
    acf = factors.get("activation_frequency")
    balance = factors.get("balance")
    shift = factors["balance_shift"]
    acf_ref = factors.get("balance_shift_acf_ref")
    if acf_ref is not None:
        # A fixed supply of extra formation per unit surface, shared by the cohort's BMUs.
        shift = shift * acf_ref / base.activation_frequency
    thickness_ref = factors.get("balance_thickness_ref")
    extra = {}
    if thickness_ref is not None:
        # The shift is applied per BMU, scaled by the local thickness (fem.remodel.bmu).
        extra = {"thickness_ref": thickness_ref, "thickness_shift": shift}
        shift = 0.0
    thin_ref = factors.get("thin_activation_ref")
    acf = acf if acf is not None else base.activation_frequency * factors["activation_factor"]
    if thin_ref is not None:
        if factors["activation_factor"] < 1.0:
            raise BonefemError(f"thin_activation_ref needs activation_factor >= 1, got "
                               f"{factors['activation_factor']}")
        # The cohort's own activation everywhere; the drug's extra on thin surface only.
        extra.update(thin_ref=thin_ref, thin_activation=acf - base.activation_frequency)
        acf = base.activation_frequency
    return replace(
        base,
        activation_frequency=acf,
        resorption_depth=base.resorption_depth * factors["depth_factor"],
        resorption_depth_sd=base.resorption_depth_sd * factors["depth_factor"],
        balance=balance if balance is not None else base.balance + shift,
        tau_secondary=base.tau_secondary * factors["tau_factor"],
        quality=factors["quality"],
        **extra,
    )


def arm_params(cohort: str, arm: str) -> RemodelParams:
    """BMU parameters for one cohort x arm."""
    return apply_factors(untreated(cohort), drug_factors(arm, cohort))
