"""Case files: TOML -> validated, resolved :class:`Case`.

Every key has a default except the specimen's source. Errors name the file, the
dotted key and what was expected. Units: mm, MPa; strains are plain fractions.

Example::

    [specimen]
    image = "bone.nii.gz"      # or [specimen.synthetic]
    threshold = 0.5

    [material]
    modulus = 10000.0          # MPa
    poisson = 0.3

    [load]
    test = "uniaxial"          # or "axial"
    strain = -0.01
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from fem.errors import BonefemError, CaseError
from fem.mesh.external import MESH_SUFFIXES, is_mesh_file
from fem.remodel.presets import ARMS, untreated_values
from fem.specimen.partial import DEFAULT_RULE, RULES
from fem.specimen.cohorts import SPECIMEN_SIZE_MM, VOXEL_SIZE_MM, cohort_names, load_cohort
from fem.specimen.vertebral import VertebralParams


def _f(default, doc, **rules):
    """A case field: default, one-line doc (with units) and validation rules."""
    kw = {"default_factory": default} if callable(default) else {"default": default}
    return field(metadata={"doc": doc, **rules}, **kw)


@dataclass
class Synthetic:
    """Seeded synthetic trabecular-like cube (see fem.specimen.foam)."""

    size: float = _f(2.4, "cube edge, mm", gt=0)
    voxel_size: float = _f(0.03, "voxel edge, mm", gt=0)
    bv_tv: float = _f(0.15, "target bone volume fraction", gt=0, lt=1)
    spacing: float = _f(0.6, "mean distance between trabeculae (1/Tb.N), mm", gt=0)
    anisotropy: float = _f(2.0, "correlation length along z / across (>= 1 gives vertical trabeculae)", gt=0)
    seed: int = _f(0, "random seed", ge=0)


@dataclass
class Vertebral:
    """Synthetic vertebral rod-and-plate network (fem.specimen.vertebral); unset values
    come from the cohort preset (fem/specimen/cohorts/), then the generator defaults."""

    cohort: str | None = _f(None, "cohort preset: early-postmenopausal, late-postmenopausal or elderly-osteoporotic")
    size: float | None = _f(None, "cube edge, mm (default 4.0)", gt=0)
    voxel_size: float | None = _f(None, "voxel edge, mm (default 0.04)", gt=0)
    bv_tv: float | None = _f(None, "target bone volume fraction", gt=0, lt=1)
    tb_n: float | None = _f(None, "vertical trabeculae per mm (1 / their mean spacing)", gt=0)
    th_vertical: float | None = _f(None, "vertical rod diameter and plate thickness, mm", gt=0)
    th_horizontal: float | None = _f(None, "horizontal strut diameter, mm", gt=0)
    strut_fraction: float | None = _f(None, "fraction of horizontal strut sites occupied (connectivity)", ge=0, le=1)
    level_spacing: float | None = _f(None, "mean distance along z between strut levels, mm", gt=0)
    node_offset: float | None = _f(None, "SD of a node's lateral offset from its column axis, mm", ge=0)
    curvature: float | None = _f(None, "SD of a trabecula's mid-length bow over its length", ge=0)
    thickness_cv: float | None = _f(None, "coefficient of variation of trabecula diameters", ge=0)
    plate_holes: float | None = _f(None, "fraction of vertical plates perforated by a hole", ge=0, le=1)
    oblique_fraction: float | None = _f(None, "fraction of oblique strut sites occupied (default 0: "
                                        "none; docs/specimens.md, candidate values)", ge=0, le=1)
    horizontal_plates: float | None = _f(None, "fraction of horizontal plate sites occupied (the "
                                         "cohort presets: 0.06 / 0.045 / 0.03, early / late / "
                                         "elderly; without a cohort 0: none; docs/specimens.md)", ge=0, le=1)
    plate_span: int | None = _f(None, "node intervals one vertical plate covers (default 1: a "
                                "single panel; more: a wall folded at the offset nodes; "
                                "docs/specimens.md, screening)", ge=1)
    seed: int = _f(0, "random seed", ge=0)


@dataclass
class Specimen:
    image: str | None = _f(None, "bone image (.npy, .npz, .nii, .nii.gz, .mha, .mhd, or TIFF: a .tif/.tiff file or a folder of slices) or volume "
                           "mesh (" + ", ".join(MESH_SUFFIXES) + "), relative to the case file")
    voxel_size: float | list[float] | None = _f(
        None, "voxel edge in mm: one value or [dx, dy, dz]; required for .npy/.npz, overrides NIfTI",
        gt=0, length=3)
    threshold: float | str | None = _f(
        None, "grey level: voxels >= threshold are bone, a grey image's surface voxels keep their "
        "partial volumes (docs/real-scans.md); 'otsu'; or 'nonzero' (every nonzero voxel); "
        "none: a binary image's nonzero voxels, and a grey image is refused")
    modulus_field: str | None = _f(None, "meshes: cell data array holding each element's modulus, MPa")
    synthetic: Synthetic | None = _f(None, "generate a simple trabecular-like foam instead of reading an image")
    vertebral: Vertebral | None = _f(None, "generate a vertebral rod-and-plate network instead of reading an image")


@dataclass
class Material:
    modulus: float = _f(10000.0, "tissue Young's modulus, MPa (micro-FE practice; nanoindentation 6.9 GPa, Zysset et al. 1999, J Biomech 32:1005)", gt=0)
    poisson: float = _f(0.3, "tissue Poisson ratio", gt=-1, lt=0.5)
    partial_volume: str = _f(DEFAULT_RULE, "stiffness of a voxel with bone fraction f (grey and "
                             "level-set specimens): hashin-shtrikman (E x the Hashin-Shtrikman "
                             "upper bound of f; docs/real-scans.md) or linear (E x f, which "
                             "over-stiffens coarse voxels; the rule of results before 2026-12-07)",
                             choices=RULES)


@dataclass
class Load:
    test: str = _f("uniaxial", "load case along z", choices=("uniaxial", "axial"))
    strain: float = _f(-0.01, "applied apparent strain along z (negative = compression)",
                       gt=-0.5, lt=0.5, nonzero=True)


@dataclass
class Solver:
    rtol: float = _f(1e-7, "relative residual tolerance of CG", gt=0, lt=1)
    max_iterations: int = _f(5000, "CG iteration limit; reaching it is an error", gt=0)
    memory_check: bool = _f(True, "refuse a model whose estimated memory exceeds the available memory")
    method: str = _f("auto", "linear solver: auto (matfree on voxel meshes, fast otherwise), "
                     "matfree (matrix-free voxel operator + geometric multigrid), fast (assembled, "
                     "GAMG), demo (assembled, the DOLFINx demo's GAMG)",
                     choices=("auto", "matfree", "fast", "demo"))


@dataclass
class Pistoia:
    critical_volume: float = _f(2.0, "percent of bone volume allowed above the critical strain", gt=0, lt=100)
    critical_strain: float = _f(0.007, "critical effective strain (Pistoia et al. 2002)", gt=0)


@dataclass
class Analysis:
    """Strength analysis (fem.solve.nonlinear, docs/nonlinear.md)."""

    strength: str = _f("pistoia", "pistoia (linear solve, Pistoia criterion) or nonlinear (also a "
                       "displacement-controlled tissue-yield test past the peak)",
                       choices=("pistoia", "nonlinear"))
    yield_compression: float = _f(0.0081, "tissue yield strain in compression (attributed to Bayraktar "
                                  "et al. 2004, not checked in the source: docs/nonlinear.md)", gt=0, lt=0.5)
    yield_tension: float = _f(0.0033, "tissue yield strain in tension (attributed to Bayraktar et al. 2004; "
                              "about half what the sources reached imply: docs/nonlinear.md)", gt=0, lt=0.5)
    post_yield: float = _f(0.05, "tissue post-yield modulus as a fraction of E", ge=0, lt=1)
    softening: bool = _f(False, "tissue softening (a damage law: the stress falls past softening_onset, "
                         "so the curve has a peak; parameters illustrative: docs/nonlinear.md)")
    softening_onset: float = _f(2.0, "tissue strain where softening starts, in yield strains", ge=1)
    softening_end: float = _f(4.0, "tissue strain where the stress reaches the residual, in yield "
                              "strains (> softening_onset)", gt=1)
    residual: float = _f(0.1, "residual tissue stress after softening, as a fraction of the yield "
                         "stress", ge=0, lt=1)
    crack_band: float = _f(0.0, "mm; with softening, the element size at which softening_end holds: "
                           "other element sizes h get softening_onset + (softening_end - "
                           "softening_onset) x crack_band / h, the same fracture energy per unit "
                           "crack area (crack band, Bazant & Oh 1983); 0: off", ge=0)
    nonlocal_radius: float = _f(0.0, "mm; the damage follows the Gaussian average (this standard "
                                "deviation) of the tissue yield index over the bone around each "
                                "element (integral nonlocal, Pijaudier-Cabot & Bazant 1987); "
                                "0: off (the element's own)", ge=0)
    strain_max: float = _f(-0.03, "last apparent strain of the nonlinear test (negative = compression)",
                           gt=-0.5, lt=0.5, nonzero=True)
    steps: int = _f(15, "load steps of the nonlinear test after the first yield", gt=0)
    geometry: str = _f("small", "small (small strain, matrix-free multigrid) or large (large deformation, "
                       "DOLFINx Newton with LU: small models only)", choices=("small", "large"))
    buckling: bool = _f(False, "also the first linear buckling load (load factor x the reaction force, "
                        "SLEPc with a MUMPS factorisation: about 7 kB per DOF, so models up to about "
                        "1 M DOF here; docs/nonlinear.md); in a trial, beside the Pistoia load")


@dataclass
class Output:
    fields: bool = _f(True, "write displacement and element fields (VTK .pvd)")


@dataclass
class TrialSpecimen:
    """Generator overrides applied to every cohort's preset in a trial."""

    size: float = _f(SPECIMEN_SIZE_MM, "cube edge, mm", gt=0)
    voxel_size: float = _f(VOXEL_SIZE_MM, "voxel edge, mm", gt=0)


@dataclass
class Turnover:
    """A cohort's untreated remodelling given as numbers, ``[trial.cohort.NAME.turnover]``:
    the keys of fem/remodel/presets/untreated.toml (fem.remodel.bmu.RemodelParams); keys
    left out come from ``base`` (or, without it, from the file's [common] table, and then
    activation_frequency and balance are required)."""

    base: str | None = _f(None, "cohort preset whose values the keys left out take")
    activation_frequency: float | None = _f(None, "fraction of the bone surface activated per year, 1/yr", ge=0)
    balance: float | None = _f(None, "formed / resorbed volume of a BMU", ge=0)
    resorption_depth: float | None = _f(None, "maximum cavity depth, mm", gt=0)
    resorption_depth_sd: float | None = _f(None, "spread of the cavity depth, mm", ge=0)
    cavity_area: float | None = _f(None, "mean cavity footprint, mm^2", gt=0)
    cavity_area_sd: float | None = _f(None, "spread of the cavity footprint, mm^2", ge=0)
    resorption_days: float | None = _f(None, "duration of resorption, days", gt=0)
    formation_days: float | None = _f(None, "duration of formation, days", gt=0)
    primary_mineral: float | None = _f(None, "relative mineral content of new bone", gt=0, le=1)
    tau_secondary: float | None = _f(None, "secondary mineralisation time constant, years", gt=0)
    quality: float | None = _f(None, "matrix quality of bone formed untreated", gt=0)


@dataclass
class TrialCohort:
    """A cohort of a trial defined in the case file, ``[trial.cohort.NAME]``: its own
    specimens (micro-CT images, fem.specimen.scan; or the generator at another BV/TV) with
    the remodelling turnover of a named cohort preset (docs/real-scans.md)."""

    turnover: str | Turnover | None = _f(None, "cohort preset whose untreated remodelling (turnover, "
                                         "balance) this cohort takes, or a table of numbers (below); "
                                         "default: NAME itself if it is a preset")
    images: list[str] | str | None = _f(None, "micro-CT images (files, folders of TIFF slices or "
                                        "glob patterns) relative to the case file; seed s uses "
                                        "image s mod their number")
    voxel_size: float | None = _f(None, "voxel edge of the images, mm (required for .npy/TIFF)", gt=0)
    threshold: float | str | None = _f(None, "grey level of the bone surface (bone >= T) or 'otsu'; "
                                       "none: a binary image's two levels")
    smooth_sigma: float | None = _f(None, "Gaussian smoothing before thresholding, voxels of the image", ge=0)
    coarsen: int = _f(1, "block-mean coarsening factor (2: 2x2x2 voxels -> 1)", ge=1)
    roi_size: float | None = _f(None, "edge of a cubic region of interest, mm (default: the "
                                "largest cube in the image)", gt=0)
    roi_centre: list[float] | None = _f(None, "centre of the region of interest [x, y, z], mm "
                                        "from the image corner (default: the image centre)",
                                        length=3)
    density_slope: float | None = _f(None, "scanner calibration: mg HA/cm^3 per grey level", nonzero=True)
    density_intercept: float | None = _f(None, "scanner calibration: mg HA/cm^3 at grey level 0")
    mineral_from_grey: bool = _f(False, "tissue mineral (and modulus) of each voxel from its "
                                 "calibrated grey level instead of a simulated history")
    bv_tv: float | None = _f(None, "generated cohorts (no images): the preset's generator at this "
                             "BV/TV", gt=0, lt=1)
    # the cohort's untreated RemodelParams values when turnover is a table (_resolve_turnover)
    params: dict | None = field(default=None, metadata={"internal": True})


@dataclass
class Trial:
    """A virtual trial: cohorts x arms x seeded specimens, remodelled and solved over time."""

    cohorts: list[str] = _f(lambda: ["early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic"],
                            "cohort presets (fem/specimen/cohorts/)")
    arms: list[str] = _f(lambda: ["untreated", "alfacalcidol", "menatetrenone", "combined"],
                         "arms: untreated, alfacalcidol, menatetrenone, combined, or a preset .toml path")
    years: float = _f(2.0, "treatment duration, years", gt=0, le=20)
    checkpoints: list[float] = _f(lambda: [1.0, 2.0], "solve times, years after baseline (<= years)")
    seeds: list[int] = _f(lambda: [0], "one specimen per seed and cohort")
    spinup_years: float = _f(1.0, "untreated remodelling before baseline, years", ge=0)
    dt_months: float = _f(1.0, "remodelling time step, months", gt=0, le=12)
    attribution: bool | str = _f("final", "split strength changes into mass, architecture and tissue "
                                 "(6 extra solves each): \"final\" (last checkpoint), \"all\" or false")
    remodelling_space: bool = _f(False, "split the architecture part into open resorption cavities "
                                 "and the permanent rest (up to 8 more solves per split; docs/trial.md)")
    specimen: TrialSpecimen = _f(TrialSpecimen, "specimen size and resolution")
    # [trial.cohort.NAME] tables (TrialCohort), validated by _load_cohort_tables
    cohort_tables: dict = field(default_factory=dict, metadata={"internal": True})


@dataclass
class Case:
    title: str = _f("", "free text")
    specimen: Specimen = _f(Specimen, "bone specimen")
    material: Material = _f(Material, "tissue material")
    load: Load = _f(Load, "boundary conditions")
    solver: Solver = _f(Solver, "linear solver")
    pistoia: Pistoia = _f(Pistoia, "strength criterion")
    analysis: Analysis = _f(Analysis, "strength analysis: Pistoia or nonlinear")
    output: Output = _f(Output, "what to write")
    trial: Trial | None = _f(None, "run a virtual trial instead of one specimen")
    source: str = field(default="", metadata={"internal": True})


# ---------------------------------------------------------------------------
# Generic validation of a TOML table against a dataclass

def _typename(tp) -> str:
    names = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}
    if dataclasses.is_dataclass(tp):
        return "a table"
    if typing.get_origin(tp) is list:
        return "a list"
    return names.get(tp, str(tp))


def _convert(value, tp, path, key, meta):
    """Check one value against a type annotation; return it converted."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [t for t in typing.get_args(tp) if t is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(value, option, path, key, meta)
            except CaseError as err:
                errors.append(err)
        # Report the error of the option of the value's own kind (a list for a list...).
        kinds = [isinstance(value, list) == (typing.get_origin(o) is list)
                 and isinstance(value, dict) == dataclasses.is_dataclass(o) for o in options]
        if len(errors) == 1 or kinds.count(True) == 1:
            raise errors[kinds.index(True) if kinds.count(True) == 1 else 0]
        raise CaseError(path, key, f"expected {' or '.join(_typename(o) for o in options)}, "
                                   f"got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise CaseError(path, key, f"expected a table, got {value!r}")
        return _load_table(value, tp, path, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        n = meta.get("length")
        if not isinstance(value, list) or (n is not None and len(value) != n):
            what = f"a list of {n} numbers" if n else f"a list (of {_typename(item)} each)"
            raise CaseError(path, key, f"expected {what}, got {value!r}")
        return [_convert(v, item, path, key, {k: m for k, m in meta.items() if k != "length"})
                for v in value]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CaseError(path, key, f"expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise CaseError(path, key, f"expected a finite number, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CaseError(path, key, f"expected an integer, got {value!r}")
    elif tp is bool:
        if not isinstance(value, bool):
            raise CaseError(path, key, f"expected true or false, got {value!r}")
        return value
    elif tp is str:
        if not isinstance(value, str):
            raise CaseError(path, key, f"expected a string, got {value!r}")
    _check_rules(value, path, key, meta)
    return value


def _check_rules(value, path, key, meta):
    if "choices" in meta and value not in meta["choices"]:
        raise CaseError(path, key, f"expected one of {', '.join(map(repr, meta['choices']))}, "
                                   f"got {value!r}")
    bounds = [("gt", ">", lambda a, b: a > b), ("ge", ">=", lambda a, b: a >= b),
              ("lt", "<", lambda a, b: a < b), ("le", "<=", lambda a, b: a <= b)]
    for name, sym, ok in bounds:
        if name in meta and not ok(value, meta[name]):
            raise CaseError(path, key, f"expected a value {sym} {meta[name]}, got {value!r}")
    if meta.get("nonzero") and value == 0:
        raise CaseError(path, key, f"expected a non-zero value, got {value!r}")


def _load_table(table: dict, cls, path, prefix=""):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for k in table:
        if k not in fields:
            full = f"{prefix}.{k}" if prefix else k
            raise CaseError(path, full, f"unknown key; expected one of: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        if name in table:
            full = f"{prefix}.{name}" if prefix else name
            values[name] = _convert(table[name], hints[name], path, full, f.metadata)
    return cls(**values)


# ---------------------------------------------------------------------------

def case_from_dict(table: dict, source: str | Path = "", base_dir: str | Path = ".") -> Case:
    """Validate a TOML-like dict into a resolved :class:`Case`.

    Relative image paths are resolved against ``base_dir`` and must exist.
    """
    table, cohort_tables = _split_cohort_tables(table, source)
    case = _load_table(table, Case, source)
    case.source = str(source)
    if cohort_tables is not None:
        if case.trial is None:
            case.trial = Trial()
        _load_cohort_tables(case.trial, cohort_tables, table.get("trial", {}), source, base_dir)
    an = case.analysis
    if an.softening_end <= an.softening_onset:
        raise CaseError(source, "analysis.softening_end", f"expected a value > softening_onset "
                        f"({an.softening_onset}), got {an.softening_end!r}")
    if an.crack_band and not an.softening:
        raise CaseError(source, "analysis.crack_band", "regularises the softening law: set "
                        "softening = true, or crack_band = 0")
    if an.nonlocal_radius and an.geometry == "large":
        raise CaseError(source, "analysis.nonlocal_radius", "the large-deformation solver has "
                        "no nonlocal yield index: set geometry = \"small\", or nonlocal_radius = 0")
    spec = case.specimen
    given = [k for k in ("image", "synthetic", "vertebral") if getattr(spec, k) is not None]
    if case.trial is not None:
        _check_trial(case.trial, source)
        if given:
            raise CaseError(source, "specimen", "a trial generates its specimens from the cohorts; "
                            "remove [specimen] or [trial]")
        return case
    if len(given) != 1:
        raise CaseError(source, "specimen", "expected exactly one of 'image', 'synthetic' or "
                        f"'vertebral', got {', '.join(given) or 'none'}")
    if spec.vertebral is not None:
        _resolve_vertebral(spec.vertebral, source)
    if isinstance(spec.threshold, str) and spec.threshold not in ("otsu", "nonzero"):
        raise CaseError(source, "specimen.threshold", f"expected a number, 'otsu' or 'nonzero', "
                        f"got {spec.threshold!r}")
    mesh = spec.image is not None and is_mesh_file(spec.image)
    if mesh and (spec.voxel_size is not None or spec.threshold is not None):
        raise CaseError(source, "specimen", f"{spec.image}: voxel size and threshold apply to "
                        "images, not to a mesh (its coordinates are read in mm)")
    if spec.modulus_field is not None and not mesh:
        raise CaseError(source, "specimen.modulus_field", "applies to volume meshes, not to images")
    if spec.image is not None:
        image = Path(spec.image)
        if not image.is_absolute():
            image = Path(base_dir) / image
        if not image.exists():
            raise CaseError(source, "specimen.image", f"file not found: {image}")
        spec.image = str(image.resolve())
        if case.analysis.strength == "nonlinear" and is_mesh_file(image):
            raise CaseError(source, "analysis.strength", "the nonlinear analysis needs a voxel specimen "
                            "(an image or a generator), not a volume mesh")
    return case


def _split_cohort_tables(table: dict, source):
    """The case table without ``trial.cohort``, and the ``[trial.cohort.NAME]`` tables
    (None when there are none): a dict of tables is not a dataclass field type."""
    trial = table.get("trial")
    if not isinstance(trial, dict) or "cohort" not in trial:
        return table, None
    tables = trial["cohort"]
    if not isinstance(tables, dict) or not tables or not all(isinstance(v, dict) for v in tables.values()):
        raise CaseError(source, "trial.cohort", "expected [trial.cohort.NAME] tables, one per cohort")
    table = dict(table, trial={k: v for k, v in trial.items() if k != "cohort"})
    return table, tables


def _load_cohort_tables(t: Trial, tables: dict, raw_trial: dict, source, base_dir):
    """Validate ``[trial.cohort.NAME]`` tables into ``t.cohort_tables``; without a
    ``cohorts`` key the trial's cohorts are these tables, in file order."""
    from fem.specimen.scan import expand_images  # the readers load only when needed

    for name, raw in tables.items():
        key = f"trial.cohort.{name}"
        c = _load_table(raw, TrialCohort, source, key)
        if isinstance(c.turnover, Turnover):
            _resolve_turnover(c, name, source, f"{key}.turnover")
        else:
            c.turnover = name if c.turnover is None else c.turnover
            _check_preset(c.turnover, source, f"{key}.turnover")
        if isinstance(c.threshold, str) and c.threshold != "otsu":
            raise CaseError(source, f"{key}.threshold", f"expected a number or 'otsu', got {c.threshold!r}")
        calibrated = (c.density_slope is None, c.density_intercept is None)
        if calibrated.count(True) == 1:
            raise CaseError(source, f"{key}.density_slope", "give density_slope and "
                            "density_intercept together (density = slope x grey + intercept)")
        if c.mineral_from_grey and c.density_slope is None:
            raise CaseError(source, f"{key}.mineral_from_grey", "needs the scanner calibration "
                            "density_slope and density_intercept (mg HA/cm^3)")
        if c.images is None:
            image_only = [k for k in ("voxel_size", "threshold", "smooth_sigma", "roi_size",
                                      "roi_centre", "density_slope", "mineral_from_grey")
                          if getattr(c, k) not in (None, False)] + (["coarsen"] if c.coarsen != 1 else [])
            if image_only:
                raise CaseError(source, f"{key}.{image_only[0]}", "applies to image cohorts; "
                                "give images = [...] or remove it")
        else:
            if c.bv_tv is not None:
                raise CaseError(source, f"{key}.bv_tv", "applies to generated cohorts; an image "
                                "cohort's BV/TV is the scan's (set threshold)")
            try:
                c.images = expand_images(c.images, base_dir)
            except BonefemError as err:
                raise CaseError(source, f"{key}.images", str(err)) from None
        t.cohort_tables[name] = c
    if "cohorts" not in raw_trial:
        t.cohorts = list(tables)


def _check_preset(name, source, key):
    if name not in cohort_names():
        raise CaseError(source, key, f"unknown cohort preset {name!r}; expected one of "
                        f"{', '.join(cohort_names())}")


def _resolve_turnover(c: TrialCohort, name: str, source, key: str):
    """A turnover table -> ``c.params`` (every RemodelParams value) and ``c.turnover`` (the
    base preset's name, whose generator a generated cohort uses; None without a base)."""
    given = {k: v for k, v in dataclasses.asdict(c.turnover).items() if v is not None and k != "base"}
    base = c.turnover.base
    if base is None and name in cohort_names():
        base = name
    if base is not None:
        _check_preset(base, source, f"{key}.base")
    c.params = {**untreated_values(base), **given}
    missing = [k for k in ("activation_frequency", "balance") if k not in c.params]
    if missing:
        raise CaseError(source, f"{key}.{missing[0]}", "required without base = PRESET "
                        f"(one of {', '.join(cohort_names())}) to take it from")
    if base is None and c.images is None:
        raise CaseError(source, f"{key}.base", "a generated cohort (no images) takes its "
                        "generator from a preset: give base = PRESET")
    c.turnover = base


def _check_trial(t: Trial, source):
    for c in t.cohorts:
        if c not in cohort_names() and c not in t.cohort_tables:
            raise CaseError(source, "trial.cohorts", f"unknown cohort {c!r}; expected some of "
                            f"{', '.join(cohort_names() + list(t.cohort_tables))}")
    for a in t.arms:
        if a not in ARMS and not (a.endswith(".toml") and Path(a).exists()):
            raise CaseError(source, "trial.arms", f"unknown arm {a!r}; expected some of "
                            f"{', '.join(ARMS)} or an existing preset .toml file")
    if "untreated" not in t.arms:
        raise CaseError(source, "trial.arms", "the arms must include 'untreated' (the reference arm)")
    if not t.checkpoints or any(c <= 0 or c > t.years + 1e-9 for c in t.checkpoints):
        raise CaseError(source, "trial.checkpoints", f"expected times in (0, {t.years}] years, "
                        f"got {t.checkpoints}")
    if not t.seeds or not t.cohorts:
        raise CaseError(source, "trial", "expected at least one seed and one cohort")
    if t.attribution not in ("final", "all", False):
        raise CaseError(source, "trial.attribution", 'expected "final" (the last checkpoint), "all" '
                        f"(every checkpoint) or false, got {t.attribution!r}")


def _resolve_vertebral(v: Vertebral, source):
    """Fill unset generator values from the cohort preset, then the generator defaults."""
    preset = {}
    if v.cohort is not None:
        try:
            preset = load_cohort(v.cohort)["generator"]
        except BonefemError as err:
            raise CaseError(source, "specimen.vertebral.cohort", str(err)) from None
    defaults = dataclasses.asdict(VertebralParams())
    for name in defaults:
        if getattr(v, name) is None:
            setattr(v, name, preset.get(name, defaults[name]))


def read_case_table(path: str | Path) -> dict:
    """The TOML table of a case file, not yet validated; CaseError naming the file if it
    cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise CaseError(path, None, f"cannot read the case file ({err.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CaseError(path, None, f"malformed TOML: {err}") from None


def load_case(path: str | Path) -> Case:
    """Read and validate a case file."""
    path = Path(path)
    return case_from_dict(read_case_table(path), source=path, base_dir=path.parent)


def case_to_dict(case: Case) -> dict:
    """The resolved case as a TOML-ready dict (None values dropped)."""
    def clean(obj):
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if v is not None}
        return obj
    d = clean(dataclasses.asdict(case))
    d.pop("source", None)
    return d


def default(cls, name: str):
    """The default of field ``name`` of a case table ``cls`` (e.g. ``default(Material,
    "modulus")``): for the command line's help, so each default is declared once, here."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def describe(cls=Case, prefix="") -> list[tuple[str, str, str]]:
    """(key, default, doc) rows for the case-file reference (docs/case-files.md)."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if cls is Trial and f.name == "cohort_tables":
            key = f"{prefix}.cohort.NAME"
            rows.append((key, "(table)", "a cohort of this case: images or the generator at another "
                         "BV/TV, with a preset's turnover (docs/real-scans.md)"))
            rows += describe(TrialCohort, key)
            continue
        if f.metadata.get("internal"):
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        inner = [t for t in typing.get_args(tp) if dataclasses.is_dataclass(t)]
        if dataclasses.is_dataclass(tp) or inner:
            rows.append((key, "(table)", f.metadata["doc"]))
            rows += describe(tp if dataclasses.is_dataclass(tp) else inner[0], key)
        else:
            default = f.default if f.default is not dataclasses.MISSING else None
            rows.append((key, repr(default), f.metadata["doc"]))
    return rows


def reference_table() -> str:
    """The case-file reference as a Markdown table (docs/case-files.md holds a copy)."""
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{k}` | {d} | {doc} |" for k, d, doc in describe()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # python3 -m fem.case > table: regenerates the reference in docs/case-files.md
    print(reference_table(), end="")
