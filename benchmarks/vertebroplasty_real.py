"""Vertebroplasty plans on the real spine CTs of ../shared/data, with independent checks, as a table.

Cases (see ../shared/data/README.md):

* ``spine-chest-lidc`` -- no masks: levels named classically, a transpedicular plan per level T4-T12 (one needle,
  across the midline), an image through each needle;
* ``chest-totalseg`` -- TotalSegmentator masks: T5-L1, the aorta, cord and oesophagus from the masks; each
  needle's distance to them recomputed by brute force on the voxel centres (independent of the distance maps);
* ``lumbar-verse`` -- VerSe vertebra masks, L3 bipedicular: the skin is outside the crop, so the route is not
  assessable; the paths' part inside the image is reported, their pedicle passage recomputed by brute force
  against the vertebra mask;
* ``abdomen-pelvis-ts`` -- TotalSegmentator vertebra labels, L1-L5 at 3 mm: flagged coarse;
* DICOM vs NIfTI -- a crop of spine-chest-lidc written as a DICOM series and read back plans the same.

The comparison column is the obvious alternative a user has without osteoplan: nothing automatic, so the table
compares each figure with its independent recomputation. Usage::

    python benchmarks/vertebroplasty_real.py [--cases lidc,totalseg,verse,apts,dicom] [--out docs/vertebroplasty_real.md]
        [--images docs/images/vertebroplasty] [--smoke]

``--smoke`` plans on the synthetic vertebra of the test suite only (no shared data).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))


def _segment_pts(t, step=0.25, bone_only=False):
    a = np.asarray(t.bone_entry_lps_mm if bone_only else t.skin_entry_lps_mm, float)
    b = np.asarray(t.target_lps_mm, float)
    n = max(2, int(np.linalg.norm(b - a) / step) + 1)
    return a[None] + np.linspace(0, 1, n)[:, None] * (b - a)[None]


def brute_clearance_mm(volume, mask, t) -> float:
    """Needle surface to the nearest voxel centre of *mask* (mm), brute force (KD-tree on voxel centres)."""
    from scipy.spatial import cKDTree

    idx = np.argwhere(mask)
    if len(idx) == 0:
        return float("inf")
    tree = cKDTree(volume.index_to_world(idx.astype(float)))
    r = (t.needle_diameter_mm or 0.0) / 2
    return float(tree.query(_segment_pts(t))[0].min() - r)


def brute_pedicle_margin_mm(volume, vert_mask, t, skip_mm) -> float:
    """Needle surface to the nearest voxel centre outside the vertebra between the bone entry (+ skip) and the
    posterior half of the path in bone (mm), minus half a voxel (the surface lies between voxel centres)."""
    from scipy.spatial import cKDTree

    pts = _segment_pts(t, bone_only=True)
    s = np.linalg.norm(pts - np.asarray(t.bone_entry_lps_mm), axis=1)
    pts = pts[(s >= skip_mm) & (s <= 0.5 * s.max())]
    k = np.rint(volume.world_to_index(pts)).astype(int)
    lo, hi = np.maximum(k.min(0) - 15, 0), np.minimum(k.max(0) + 16, volume.shape)
    sub = ~vert_mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    out = volume.index_to_world(np.argwhere(sub).astype(float) + lo)
    return float(cKDTree(out).query(pts)[0].min() - 0.5 * float(np.min(volume.spacing_mm)) - t.needle_diameter_mm / 2)


def _plan(volume, masks, levels, needles=1, protocol="vertebroplasty-transpedicular", level_point=None):
    from osteoplan.planning.planner import plan_from_anatomy
    from osteoplan.planning.procedures import get_procedure
    from osteoplan.planning.protocol import load_protocol

    proto = load_protocol(protocol).model_copy(update={"needles_per_level": needles})
    t0 = time.perf_counter()
    an = get_procedure(proto.procedure).build_anatomy(volume, masks=masks, levels=levels, level_point=level_point)
    t1 = time.perf_counter()
    plan = plan_from_anatomy(volume, an, proto, level=levels)
    return an, plan, t1 - t0, time.perf_counter() - t1


def _image(volume, plan, labelmap, index, path: Path) -> None:
    from osteoplan.views.geometry import pathspec_from_plan
    from osteoplan.views.reformat import render_reformat

    ps = pathspec_from_plan(plan, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = {n: labelmap.get(n) for n in labelmap.names() if n.startswith(("vertebrae_", "pedicle_", "spinal_canal",
                                                                           "aorta", "lung", "esophagus"))}
    from osteoplan.anatomy.labelmap import LabelMap

    lm = LabelMap(volume, keep, {n: labelmap.sources.get(n, "") for n in keep})
    path.write_bytes(render_reformat(volume, ps, "path_oblique", lm, fov_mm=120.0,
                                     title=f"{plan.trajectories[index].level} needle (plane of the path)"))


def _rows_for(plan, extra=lambda t: {}):
    rows = []
    ts = plan.placed or plan.partial_trajectories or plan.trajectories  # (the levels planned when one is not)
    for t in ts:
        rows.append({"level": t.level, "side": t.side, "needle_mm": t.needle_diameter_mm,
                     "pedicle_mm": t.pedicle_margin_mm, "grade": t.pedicle_breach_grade,
                     "tip_frac": t.tip_anterior_fraction, "midline_mm": t.tip_from_midline_mm,
                     "canal_mm": (t.check("spinal_canal").clearance_mm if t.check("spinal_canal") else None),
                     **extra(t)})
    return rows


def case_lidc(images: Path | None):
    from osteoplan.imaging import read_volume

    vol = read_volume(DATA / "spine-chest-lidc" / "ct.nii.gz")
    an, plan, ta, tp = _plan(vol, None, "T4-T12")
    sp = an.spine
    if images is not None:
        for i, t in enumerate(plan.trajectories):
            _image(vol, plan, an.labelmap, i, images / f"lidc_{t.level}_{t.side}.png")
    return {"case": "spine-chest-lidc T4-T12 (no masks)", "verdict": plan.verdict.text_en,
            "levels": f"{sp.level_method}, confidence {sp.level_confidence:.2f}"
                      + ("; CONFIRMATION REQUESTED" if sp.needs_confirmation else ""),
            "anatomy_s": ta, "plan_s": tp, "rows": _rows_for(plan)}


def case_totalseg():
    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.anatomy.loaders import load_nifti_file
    from osteoplan.imaging import read_volume

    d = DATA / "chest-totalseg"
    vol = read_volume(d / "ct.nii.gz")
    lm = LabelMap(vol)
    names = [f"vertebrae_{x}" for x in ("T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2")]
    names += ["spinal_cord", "aorta", "esophagus", "inferior_vena_cava", "lung_upper_lobe_left", "lung_lower_lobe_left",
              "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right"]
    for n in names:
        if (d / "totalseg" / f"{n}.nii.gz").exists():
            load_nifti_file(d / "totalseg" / f"{n}.nii.gz", vol, labelmap=lm)
    an, plan, ta, tp = _plan(vol, lm, "T5-L1")

    def check(t):
        out = {}
        for n in ("aorta", "spinal_cord", "esophagus"):
            c = t.check(n)
            brute = brute_clearance_mm(vol, an.labelmap.get(n), t)
            out[f"{n}_brute_mm"] = round(brute, 2)
            out[f"{n}_ok"] = bool(brute >= (c.margin_mm if c else 0) - 0.5)
        return out

    return {"case": "chest-totalseg T5-L1 (TotalSegmentator masks)", "verdict": plan.verdict.text_en,
            "levels": an.spine.level_method, "anatomy_s": ta, "plan_s": tp, "rows": _rows_for(plan, check)}


def case_verse():
    from osteoplan.anatomy.loaders import load_masks
    from osteoplan.imaging import read_volume

    d = DATA / "lumbar-verse"
    vol = read_volume(d / "ct.nii.gz")
    m = load_masks(d / "vertebrae.nii.gz", vol)
    an, plan, ta, tp = _plan(vol, m, "L3", needles=2)
    vert = an.labelmap.get("vertebrae_L3")

    def check(t):
        b = brute_pedicle_margin_mm(vol, vert, t, t.containment_entry_skip_mm)
        return {"pedicle_brute_mm": round(b, 2)}

    return {"case": "lumbar-verse L3 bipedicular (VerSe masks; skin outside the crop)", "verdict": plan.verdict.text_en,
            "levels": an.spine.level_method, "anatomy_s": ta, "plan_s": tp, "rows": _rows_for(plan, check)}


def case_apts():
    from osteoplan.anatomy.loaders import load_masks
    from osteoplan.imaging import read_volume

    d = DATA / "abdomen-pelvis-ts"
    vol = read_volume(d / "ct.nii.gz")
    m = load_masks(d / "vertebrae_multilabel.nii.gz", vol)
    an, plan, ta, tp = _plan(vol, m, "L1-L5")
    coarse = any("Coarse CT" in w for w in plan.warnings)
    return {"case": "abdomen-pelvis-ts L1-L5 (3 mm)", "verdict": plan.verdict.text_en + ("; flagged COARSE" if coarse else ""),
            "levels": an.spine.level_method, "anatomy_s": ta, "plan_s": tp, "rows": _rows_for(plan)}


def case_dicom(tmp: Path):
    """A crop of spine-chest-lidc (T9-T12) written as a DICOM series by pydicom, read back, planned like the NIfTI."""
    from osteoplan.export.dicom import DicomContext, ct_datasets, write_ct_series
    from osteoplan.imaging import read_volume
    from osteoplan.imaging.volume import Volume

    vol = read_volume(DATA / "spine-chest-lidc" / "ct.nii.gz")
    n = vol.shape[0]
    zs = vol.index_to_world(np.stack([np.arange(n), np.zeros(n), np.zeros(n)], 1).astype(float))[:, 2]
    keep = np.nonzero(zs <= np.percentile(zs, 40))[0]  # the lower 40 % of the slices (T10-L1)
    k0, k1 = int(keep[0]), int(keep[-1]) + 1
    aff = vol.affine.copy()
    aff[:3, 3] = vol.index_to_world(np.array([k0, 0, 0], float))
    crop = Volume(np.ascontiguousarray(vol.array[k0:k1]), aff)
    out = tmp / "lidc-dicom"
    dsets = ct_datasets(crop, DicomContext.for_volume(crop, "lidc-crop"))
    for ds in dsets:  # an acquired series, as a scanner writes it (osteoplan's own export says DERIVED)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    write_ct_series(out, dsets)
    back = read_volume(out)
    res = {}
    for name, v in (("nifti", crop), ("dicom", back)):
        an, plan, ta, tp = _plan(v, None, "T11")
        res[name] = plan
    a, b = res["nifti"], res["dicom"]
    same = (a.verdict.code == b.verdict.code and len(a.trajectories) == len(b.trajectories)
            and all(np.allclose(x.target_lps_mm, y.target_lps_mm, atol=0.01) for x, y in zip(a.trajectories, b.trajectories)))
    return {"case": "spine-chest-lidc crop as DICOM vs NIfTI, T11", "verdict": f"{a.verdict.code} / {b.verdict.code}; "
            f"identical plans: {same}", "levels": "", "anatomy_s": 0.0, "plan_s": 0.0, "rows": _rows_for(b)}


def smoke():
    from tests.planning.synthetic_vertebra import make_lumbar

    from osteoplan.planning.planner import make_plan

    vol, lm, spine = make_lumbar(("L1",))
    plan = make_plan(vol, lm, SimpleNamespace(labelmap=lm, spine=spine, messages=[], lesion=None),
                     "vertebroplasty-transpedicular", level="L1")
    t = plan.best
    canal = brute_clearance_mm(vol, lm.get("spinal_canal"), t)
    return {"case": "synthetic L1 (smoke)", "verdict": plan.verdict.text_en, "levels": "synthetic", "anatomy_s": 0.0,
            "plan_s": 0.0, "rows": _rows_for(plan, lambda t: {"canal_brute_mm": round(canal, 2)})}


def table(results) -> str:
    lines = ["| case | verdict | levels | anatomy s | plan s |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['case']} | {r['verdict']} | {r['levels']} | {r['anatomy_s']:.1f} | {r['plan_s']:.1f} |")
    lines.append("")
    for r in results:
        if not r["rows"]:
            continue
        keys = list(r["rows"][0])
        lines += [f"**{r['case']}**", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for row in r["rows"]:
            lines.append("| " + " | ".join("" if row[k] is None else str(row[k]) for k in keys) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="lidc,totalseg,verse,apts,dicom")
    ap.add_argument("--out", default=None, help="write the markdown table here")
    ap.add_argument("--images", default=None, help="folder for the per-needle images (lidc)")
    ap.add_argument("--smoke", action="store_true", help="synthetic vertebra only (no shared data)")
    a = ap.parse_args(argv)
    if a.smoke:
        results = [smoke()]
    else:
        import tempfile

        results = []
        todo = a.cases.split(",")
        with tempfile.TemporaryDirectory() as tmp:
            for name in todo:
                t0 = time.perf_counter()
                fn = {"lidc": lambda: case_lidc(Path(a.images) if a.images else None), "totalseg": case_totalseg,
                      "verse": case_verse, "apts": case_apts, "dicom": lambda: case_dicom(Path(tmp))}[name]
                r = fn()
                if r is not None:
                    results.append(r)
                print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    text = table(results)
    print(text)
    if a.out:
        Path(a.out).write_text("# Vertebroplasty plans on real spine CT\n\nMade by `benchmarks/vertebroplasty_real.py`."
                               "\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
