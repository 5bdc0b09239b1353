"""Validation of the synthetic vertebral generator against the literature and the real core.

./bonefem exec python3 bench/validate_specimens.py run --tag after [--seeds 0 1 2] [--size 3]
    [--presets FOLDER] [--set key=value ...] [--only-z]
./bonefem exec python3 bench/validate_specimens.py core [--align] [--size MM] [--tag TAG] [--targets 0.10 0.125 0.15]
./bonefem exec python3 bench/validate_specimens.py morph --tag after
./bonefem exec python3 bench/validate_specimens.py doc [--candidate TAG --baseline TAG]

``run`` generates each cohort preset (``--size`` mm cube, default 3 mm as in a trial, 40 um
voxels) for each seed and solves it
(1 rank, matrix-free, rtol 1e-6, tissue modulus 10 GPa, uniaxial 1 % compression):

- along z, x and y (the level set is turned so that the loaded axis is z): E_z, E_x, E_y,
  and the Pistoia failure load along z;
- removal of every horizontal trabecula (the level set without its horizontal part) and
  uniform thinning of the intact specimen to the same bone volume (a surface move found by
  root-finding, fem.analysis.attribution.matching_move);
- removal of a random sample of all trabeculae (same bone-volume loss as the horizontal
  removal) and thinning to that volume, when the generator labels its trabeculae.

``--presets FOLDER`` takes the cohort presets from another folder (e.g. a candidate's,
bench/candidate_presets/), ``--set key=value`` replaces one generator value in every cohort
(after the presets; repeatable), and ``--only-z`` solves along z only, without the removal
solves (quick screening). The values used are saved with each row ("generator").
It saves the intact level sets (for ``morph``) and the figures to bench/out/. ``core`` does
the same solves and morphometry on the real human core (../shared/data/lhdl-3155_D_4_bc,
19.5 um), smoothed (Gaussian, 1 voxel), block-averaged 2x to 39 um (the generator's voxel)
and thresholded at the grey level that gives vertebral BV/TV 0.10, 0.125 and 0.15. ``doc``
``core --align`` first turns the smoothed grey image (linear interpolation) so that the
core's main trabecular direction (largest mean intercept length at BV/TV 0.125) lies along z
and crops the largest centred cube inside the turned data (results in
bench/out/validate_specimens_core_aligned.json); ``--size MM`` then keeps the centred cube
of that edge (to compare turned and unturned cores of one size). ``doc``
writes the tables and docs/figures/specimens_validation.png into docs/specimens.md
between the markers ``<!-- validation:begin -->`` and ``<!-- validation:end -->``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
CORE = ROOT.parent / "shared" / "data" / "lhdl-3155_D_4_bc"
E_TISSUE = 10000.0
COHORTS = ["early-postmenopausal", "late-postmenopausal", "elderly-osteoporotic"]


def _case():
    from fem.case import case_from_dict

    return case_from_dict({"specimen": {"synthetic": {}}, "solver": {"rtol": 1e-6},
                           "output": {"fields": False}}, source="validate_specimens")


def prepared(phi, spacing):
    """The level set as it is solved: floating pieces cut back to marrow."""
    from fem.specimen.load import specimen_from_levelset

    return specimen_from_levelset(phi, spacing, E_TISSUE).phi


def solve(phi, spacing, case, axis=2) -> dict:
    """Apparent modulus (MPa), Pistoia failure load (N), BV/TV, iterations, seconds of a
    compression along ``axis`` (0 = x, 1 = y, 2 = z)."""
    from fem.pipeline import solve_specimen
    from fem.specimen.load import specimen_from_levelset

    from fem.errors import BonefemError

    if axis != 2:  # turn the specimen so that the loaded axis becomes z
        phi = np.ascontiguousarray(np.moveaxis(phi, axis, 2))
    try:
        spec = specimen_from_levelset(phi, spacing, E_TISSUE)
    except BonefemError:   # no bone path between the loaded faces: it carries nothing
        return {"E_MPa": 0.0, "F_N": 0.0, "bv_tv": None, "iterations": 0, "dofs": 0, "seconds": 0.0}
    t0 = time.perf_counter()
    r = solve_specimen(spec, case, log=lambda *a, **k: None)
    return {"E_MPa": abs(r["apparent_modulus_MPa"]), "F_N": abs(r["pistoia"]["failure_load_N"]),
            "bv_tv": r["bv_tv"], "iterations": r["solver"]["iterations"], "dofs": r["dofs"],
            "seconds": time.perf_counter() - t0}


def removed_and_thinned(phi, removed, spacing):
    """``removed`` (a level set with trabeculae taken out) as it is solved, and ``phi``
    thinned uniformly to the same bone volume: (removed, thinned, mass loss, move in mm)."""
    from fem.analysis.attribution import matching_move
    from fem.specimen.levelset import bone_volume, move_surface

    removed = prepared(removed, spacing)     # count the islands it leaves as lost too
    v0, v1 = bone_volume(prepared(phi, spacing), spacing), bone_volume(removed, spacing)
    d = matching_move(phi, spacing, v1, limit=0.2)
    return removed, move_surface(phi, d, spacing), 1 - v1 / v0, d


def removal_vs_thinning(phi, removed, spacing, case, base) -> dict:
    """Solve ``removed`` (a level set with trabeculae taken out) and ``phi`` thinned uniformly
    to the same bone volume; losses are fractions of the intact ``base`` solve."""
    removed, thinned, loss, d = removed_and_thinned(phi, removed, spacing)
    r, t = solve(removed, spacing, case), solve(thinned, spacing, case)
    return {"mass_loss": loss, "thinning_um": 1000 * d,
            "removal_E_loss": 1 - r["E_MPa"] / base["E_MPa"],
            "removal_F_loss": 1 - r["F_N"] / base["F_N"],
            "thinning_E_loss": 1 - t["E_MPa"] / base["E_MPa"],
            "thinning_F_loss": 1 - t["F_N"] / base["F_N"], "solves": [r, t]}


def random_removal(net, target_loss, seed):
    """The level set without a random sample of trabeculae whose own volumes add up to
    ``target_loss`` of the bone volume; None when the generator does not label trabeculae."""
    if not hasattr(net, "without"):
        return None
    rng = np.random.default_rng(1000 + seed)
    vol = np.asarray(net.trabecula_volume, float)
    order = rng.permutation(len(vol))
    n = int(np.searchsorted(np.cumsum(vol[order]), target_loss * vol.sum())) + 1
    return net.without(order[:n])


def _generator(path):
    """The generator module: fem.specimen.vertebral, or an older copy of it at ``path``
    (for the "before" rows: python3 bench/validate_specimens.py run --tag before --legacy
    old_vertebral.py, with the old file from git history)."""
    if path is None:
        import fem.specimen.vertebral as module
        return module
    import importlib.util

    spec = importlib.util.spec_from_file_location("legacy_vertebral", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def overrides(pairs) -> dict:
    """``["key=value", ...]`` -> {key: float, or int for a whole number such as a seed}."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else float(value)
        except ValueError:
            raise SystemExit(f"validate_specimens: --set {pair!r}: expected key=number") from None
    return out


def run(args):
    import dataclasses

    from fem.specimen.cohorts import load_cohort

    gen = _generator(args.legacy)
    known = {f.name for f in dataclasses.fields(gen.VertebralParams)}
    extra = overrides(args.set)
    if set(extra) - known:
        raise SystemExit(f"validate_specimens: --set: unknown generator value(s) {sorted(set(extra) - known)}; "
                         f"expected some of {sorted(known)}")
    case = _case()
    OUT.mkdir(exist_ok=True)
    path = OUT / f"validate_specimens_{args.tag}.json"
    rows = json.loads(path.read_text()) if path.exists() else []   # resume
    done = {(r["cohort"], r["seed"]) for r in rows}
    for name in args.cohorts:
        # a legacy generator gets the preset values it knows (its own were the same)
        g = {k: v for k, v in load_cohort(name, args.presets)["generator"].items() if k in known}
        g.update(extra)
        for seed in args.seeds:
            if (name, seed) in done:
                continue
            t0 = time.perf_counter()
            net = gen.generate(**dict(g, seed=seed, size=args.size, voxel_size=0.04))
            t_gen = time.perf_counter() - t0
            np.savez_compressed(OUT / f"validate_{args.tag}_{name}_{seed}.npz", phi=net.phi,
                                spacing=np.asarray(net.spacing))
            base = solve(net.phi, net.spacing, case)
            row = {"cohort": name, "seed": seed, "generate_s": t_gen, "base": base,
                   "size_mm": net.spacing[2] * net.phi.shape[2], "counts": net.counts,
                   "generator": g, "partial_volume": case.material.partial_volume}
            if args.only_z:
                rows.append(row)
                print(f"{name} seed {seed}: gen {t_gen:.1f} s, E_z {base['E_MPa']:.0f} MPa, "
                      f"F {base['F_N']:.1f} N", flush=True)
                path.write_text(json.dumps(rows, indent=1))
                continue
            ex, ey = (solve(net.phi, net.spacing, case, axis=a) for a in (0, 1))
            row.update({"E_x_MPa": ex["E_MPa"], "E_y_MPa": ey["E_MPa"]})
            row["horizontal"] = removal_vs_thinning(net.phi, net.parts[gen.VERTICAL], net.spacing, case, base)
            rnd = random_removal(net, row["horizontal"]["mass_loss"], seed)
            if rnd is not None:
                row["random"] = removal_vs_thinning(net.phi, rnd, net.spacing, case, base)
            rows.append(row)
            h = row["horizontal"]
            print(f"{name} seed {seed}: gen {t_gen:.1f} s, E_z {base['E_MPa']:.0f} E_x {ex['E_MPa']:.0f} "
                  f"E_y {ey['E_MPa']:.0f} MPa, F {base['F_N']:.1f} N ({base['dofs']} DOF, "
                  f"{base['iterations']} it, {base['seconds']:.1f} s); horizontal removal "
                  f"{100 * h['mass_loss']:.1f} % mass: E -{100 * h['removal_E_loss']:.1f} % vs "
                  f"thinning -{100 * h['thinning_E_loss']:.1f} %"
                  + ("" if "random" not in row else
                     f"; random removal E -{100 * row['random']['removal_E_loss']:.1f} % vs "
                     f"-{100 * row['random']['thinning_E_loss']:.1f} %"), flush=True)
            path.write_text(json.dumps(rows, indent=1))


def _core_grey():
    """The real core's grey image, smoothed (Gaussian, 1 voxel) and block-averaged 2x:
    (float32 array, spacing in mm, 0.039 each)."""
    from scipy import ndimage

    from fem.specimen.io import read_image

    grey, spacing = read_image(CORE, 0.0195)
    grey = ndimage.gaussian_filter(np.asarray(grey, np.float32), 1.0)
    n = (np.array(grey.shape) // 2) * 2
    grey = grey[:n[0], :n[1], :n[2]].reshape(n[0] // 2, 2, n[1] // 2, 2, n[2] // 2, 2).mean(axis=(1, 3, 5))
    return grey, tuple(2 * s for s in spacing)


def main_direction(grey, spacing, bv=0.125) -> np.ndarray:
    """Unit vector (x, y, z order of the array axes) of the largest mean intercept length
    of ``grey`` thresholded to bone volume fraction ``bv``: its main trabecular direction."""
    from fem.specimen.morphometry import fabric

    return np.asarray(fabric(grey >= np.quantile(grey, 1 - bv), spacing)["main_direction"])


def to_z(direction) -> np.ndarray:
    """The rotation matrix (3, 3) that takes the unit vector along ``direction`` to z."""
    from scipy.spatial.transform import Rotation

    d = np.asarray(direction, float) / np.linalg.norm(direction)
    return Rotation.align_vectors([[0.0, 0.0, 1.0]], [d])[0].as_matrix()


def rotated(grey, r) -> np.ndarray:
    """``grey`` (isotropic voxels) turned by the rotation matrix ``r`` (array-axis order) by
    linear interpolation, cropped to the largest centred cube whose every voxel lies inside
    the original data; shape (m, m, m)."""
    from scipy import ndimage

    half_in = (np.array(grey.shape) - 1) / 2
    # A corner h * (+-1, +-1, +-1) of the output cube lands at r.T @ corner: component k
    # reaches h * sum_j |r[j, k]|, which must stay within half_in[k].
    m = int(np.floor(2 * np.min(half_in / np.abs(r).sum(axis=0))))
    if m < 2:
        raise ValueError(f"rotated: no cube fits in an image of shape {grey.shape}")
    c_out = np.full(3, (m - 1) / 2)
    return ndimage.affine_transform(np.asarray(grey, np.float32), r.T, offset=half_in - r.T @ c_out,
                                    output_shape=(m, m, m), order=1)


def aligned(grey, spacing, bv=0.125, passes=3) -> tuple[np.ndarray, np.ndarray]:
    """``grey`` turned so that its main trabecular direction (:func:`main_direction` at
    bone fraction ``bv``) lies along z, and cropped to a cube: (cube, rotation matrix).
    The direction is measured again on each pass's cube and the turn corrected, because
    the cropped centre of a bone can lean differently from the whole (the LHDL core: 49 deg
    from z over 3.9 mm, 64 deg in its central 2.6 mm)."""
    r = np.eye(3)
    for _ in range(passes):
        r = to_z(main_direction(rotated(grey, r), spacing, bv)) @ r
    return rotated(grey, r), r


def centred_cube(image, m) -> np.ndarray:
    """The centred cube of edge ``m`` voxels of ``image`` (error when it does not fit)."""
    if m > min(image.shape):
        raise ValueError(f"--size: a cube of {m} voxels does not fit in {image.shape}")
    a = [(n - m) // 2 for n in image.shape]
    return image[a[0]:a[0] + m, a[1]:a[1] + m, a[2]:a[2] + m]


def core_images(targets=(0.10, 0.125, 0.15), align=False, size=None):
    """The real core at 39 um (turned so its main trabecular direction is z and cropped to
    a cube when ``align``; then its centred cube of ``size`` mm when given), thresholded to
    each target BV/TV: [(target, mask, spacing)]."""
    from fem.specimen import islands

    grey, spacing = _core_grey()
    if align:
        if not np.allclose(spacing, spacing[0]):
            raise ValueError(f"{CORE}: --align needs isotropic voxels, got {spacing} mm")
        grey, r = aligned(grey, spacing)
        d = r[2]   # the image direction now along z
        rest = main_direction(grey, spacing)
        print(f"core main direction {np.round(d, 3).tolist()}, {np.degrees(np.arccos(abs(d[2]))):.1f} deg "
              f"from the image z; after the turn {np.degrees(np.arccos(abs(rest[2]))):.1f} deg; "
              f"cube {grey.shape[0]} voxels = {grey.shape[0] * spacing[0]:.2f} mm", flush=True)
    if size:
        grey = centred_cube(grey, int(round(size / spacing[0])))
    out = []
    for bv in targets:
        mask = grey >= np.quantile(grey, 1 - bv)
        mask, _ = islands.largest_component(mask)
        out.append((bv, mask, spacing))
    return out


def core(args):
    from fem.specimen.levelset import from_mask

    case = _case()
    path = OUT / (f"validate_specimens_core{'_aligned' if args.align else ''}"
                  f"{f'_{args.size:g}mm' if args.size else ''}{f'_{args.tag}' if args.tag else ''}.json")
    rows = json.loads(path.read_text()) if path.exists() else []   # resume
    done = {r["target_bv_tv"] for r in rows}
    for bv, mask, spacing in core_images([t for t in args.targets if t not in done], args.align, args.size):
        phi = from_mask(mask, spacing, band=0.2)
        base = solve(phi, spacing, case)
        ex, ey = (solve(phi, spacing, case, axis=a) for a in (0, 1))
        m = morph_of(phi, spacing)
        rows.append({"target_bv_tv": bv, "base": base, "size_mm": spacing[2] * mask.shape[2], "E_x_MPa": ex["E_MPa"], "E_y_MPa": ey["E_MPa"],
                     "morphometry": m})
        print(f"core BV/TV {bv}: E_z {base['E_MPa']:.0f} E_x {ex['E_MPa']:.0f} E_y {ey['E_MPa']:.0f} MPa, "
              f"F {base['F_N']:.1f} N, SMI {m.get('smi')}", flush=True)
        path.write_text(json.dumps(rows, indent=1))


def morph_of(phi, spacing) -> dict:
    from fem.specimen.levelset import volume_fraction
    from fem.specimen.morphometry import morphometry

    return morphometry(phi > 0, spacing, fraction=volume_fraction(phi, spacing))


def morph(args):
    """Morphometry of every saved specimen of the run ``tag`` (and its ``tag_*`` parts), into
    bench/out/validate_morph_<tag>.json (keyed "cohort|seed"; done ones are kept)."""
    path = OUT / f"validate_morph_{args.tag}.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    for npz in sorted(OUT.glob(f"validate_{args.tag}_*.npz")):
        cohort, seed = npz.stem[len(f"validate_{args.tag}_"):].rsplit("_", 1)
        if cohort not in COHORTS and "_" in cohort:   # a "tag_<part>" of a split run
            cohort = cohort.split("_", 1)[1]
        key = f"{cohort}|{seed}"
        if key in done:
            continue
        d = np.load(npz)
        done[key] = morph_of(d["phi"], tuple(d["spacing"]))
        print(key, {k: done[key].get(k) for k in ("bv_tv", "tb_th_mm", "tb_sp_mm", "smi", "da_ratio")},
              flush=True)
        path.write_text(json.dumps(done, indent=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--tag", required=True)
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--cohorts", nargs="+", default=COHORTS)
    r.add_argument("--size", type=float, default=3.0, help="cube edge (mm); 40 um voxels")
    r.add_argument("--legacy", help="path of an older fem/specimen/vertebral.py to run instead")
    r.add_argument("--presets", help="folder of cohort presets (*.toml) instead of fem/specimen/cohorts/")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="replace a generator value in every cohort (repeatable)")
    r.add_argument("--only-z", action="store_true", help="solve along z only (no E_x, E_y, removal)")
    c = sub.add_parser("core")
    c.add_argument("--targets", type=float, nargs="+", default=[0.10, 0.125, 0.15])
    c.add_argument("--align", action="store_true",
                   help="turn the core so its main trabecular direction (largest MIL) is z, crop a cube")
    c.add_argument("--size", type=float, help="then keep the centred cube of this edge (mm)")
    c.add_argument("--tag", help="suffix of the results file (a run under another rule, say)")
    m = sub.add_parser("morph")
    m.add_argument("--tag", required=True)
    d = sub.add_parser("doc")
    d.add_argument("--candidate", help="tag of a candidate's run: write only the side-by-side table "
                   "(candidate section of docs/specimens.md)")
    d.add_argument("--baseline", default="todayhs", help="tag of today's generator's run (with --candidate)")
    d.add_argument("--variant", nargs=2, action="append", metavar=("LABEL", "TAG"), default=[],
                   help="a seed-0 variant's run to list beside the candidate (repeatable)")
    args = p.parse_args(argv)
    if args.command == "doc":
        sys.path.insert(0, str(Path(__file__).parent))
        from validate_specimens_doc import write_candidate, write_doc
        if args.candidate:
            write_candidate(args.baseline, args.candidate, args.variant)
        else:
            write_doc()
    else:
        {"run": run, "core": core, "morph": morph}[args.command](args)


if __name__ == "__main__":
    main()
