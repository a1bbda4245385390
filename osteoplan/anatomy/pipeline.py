"""Anatomy for the planner: provided masks + classical segmentation + C2 landmarks + lesion.

:func:`build_anatomy` is what the planner calls. Provided masks (TotalSegmentator output, Slicer,
RT contours, phantom truth) take precedence over classical segmentation for the same structure;
every structure records its source, and every structure that was NOT segmented is listed in the
messages so that a plan can report it as "not assessed".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from osteoplan.anatomy.labelmap import LabelMap
from osteoplan.anatomy.landmarks import DensLandmarks
from osteoplan.anatomy.lesion import LesionResult, segment_lesion
from osteoplan.errors import AnatomyError, InputError, OsteoplanError, safe_path
from osteoplan.imaging.volume import Volume
from osteoplan.anatomy import _local

#: Structures a C2 plan checks; those missing at the end are reported as NOT segmented.
PLANNING_STRUCTURES = (
    "spinal_canal", "spinal_cord", "vertebral_artery_left", "vertebral_artery_right",
    "common_carotid_artery_left", "common_carotid_artery_right", "internal_carotid_artery_left",
    "internal_carotid_artery_right", "internal_jugular_vein_left", "internal_jugular_vein_right",
    "airway", "esophagus", "mandible", "vertebral_artery_canal_left", "vertebral_artery_canal_right",
)


@dataclass
class Anatomy:
    """Everything the planner needs to know about the patient's anatomy.

    Attributes
    ----------
    labelmap : LabelMap
        Masks on the CT grid with their sources (``provided:...``, ``classical``, ...).
    landmarks : DensLandmarks or None
        C2 / dens landmarks (None when C2 could not be located; see messages).
    lesion : LesionResult or None
    contrast_detected : bool
    messages : list[str]
        What was segmented how, and what was NOT segmented (and why).
    spine : SpineAnatomy or None
        :class:`osteoplan.anatomy.spine.SpineAnatomy` for thoracolumbar procedures (see
        :mod:`osteoplan.anatomy.spine_pipeline`).
    """

    labelmap: LabelMap
    landmarks: DensLandmarks | None
    lesion: LesionResult | None
    contrast_detected: bool
    messages: list[str] = field(default_factory=list)
    #: Thoracolumbar spine (levels, bodies, pedicles) for vertebroplasty plans; None for the C2 pipeline.
    spine: Any = None
    #: The structures a plan on this anatomy checks (reported NOT segmented when absent).
    planning_structures: tuple[str, ...] = PLANNING_STRUCTURES

    def not_segmented(self) -> list[str]:
        """Planning structures absent from the label map (to report as NOT ASSESSED)."""
        return [s for s in self.planning_structures if not self.labelmap.has(s)]

    def summary(self) -> dict:
        """Plain-JSON summary (no masks)."""
        return {
            "structures": self.labelmap.summary(),
            "not_segmented": self.not_segmented(),
            "landmarks": self.landmarks.to_dict() if self.landmarks is not None else None,
            "spine": self.spine.to_dict() if self.spine is not None else None,
            "lesion": self.lesion.summary() if self.lesion is not None else None,
            "contrast_detected": self.contrast_detected,
            "messages": list(self.messages),
        }

    def save(self, out_dir: str | Path) -> dict:
        """Write ``anatomy.json`` and ``labels.nii.gz`` (multilabel, table in the JSON) atomically.

        Returns the summary dict (with the file names written).

        Raises
        ------
        InputError
            *out_dir* exists and is not empty.
        """
        import nibabel as nib

        from osteoplan.atomic import atomic_dir

        out = Path(out_dir)
        summ = self.summary()
        arr, table = self.labelmap.to_multilabel()
        summ["label_table"] = {str(k): v for k, v in table.items()}
        summ["files"] = ["anatomy.json", "labels.nii.gz"]
        img = self.labelmap.volume.with_array(arr.astype(np.float32)).to_nifti(dtype=np.uint16)
        try:
            with atomic_dir(out, manifest="segment") as tmp:
                tmp = Path(tmp)
                nib.save(img, str(tmp / "labels.nii.gz"))
                (tmp / "anatomy.json").write_text(json.dumps(summ, indent=1, default=float))
        except FileExistsError:
            raise InputError(f"Output folder {safe_path(out)} exists and is not empty; choose another "
                             "folder or remove it.") from None
        return summ


def _load_provided(volume: Volume, masks, warnings: list[str]) -> LabelMap:
    if isinstance(masks, LabelMap):
        if masks.volume.shape != volume.shape or not np.allclose(masks.volume.affine, volume.affine, atol=1e-3):
            raise AnatomyError("The provided label map is on another grid than the CT; load it with "
                               "osteoplan.anatomy.loaders.load_masks(path, volume) so it is resampled.")
        return masks
    try:
        from osteoplan.anatomy.loaders import load_masks
    except ImportError as exc:  # pragma: no cover - loaders are part of the package
        raise AnatomyError(f"Mask loading is unavailable ({exc}); give a LabelMap instead.") from None
    p = Path(masks)
    if not p.exists():
        raise AnatomyError(f"Masks not found: {safe_path(p)}. Check the path.")
    return load_masks(p, volume, warnings=warnings)


def _c2_with_its_lesion(lm: LabelMap) -> str | None:
    """Put a provided lesion back into a provided C2 where it touches it (in place).

    In osteoplan a vertebra's mask includes its lytic cavities (as :func:`~osteoplan.anatomy.c2.locate_c2`
    returns it), but a multilabel file can hold one label per voxel, so exported label maps (and
    other tools') carve the lesion out of C2. Left carved, the narrowest *bone* section of the dens
    is the lesion itself and the dens waist lands in it. The lesion's connected parts that touch C2
    are added to C2; parts away from it (another vertebra, soft tissue) are not.

    Returns
    -------
    str or None
        A message when voxels were added.
    """
    if not (lm.has("vertebrae_C2") and lm.has("lesion")):
        return None
    from scipy import ndimage as ndi

    c2, les = lm.get("vertebrae_C2"), lm.get("lesion")
    extra = les & ~c2
    if not extra.any() or not c2.any():
        return None
    lab, n = _local.cc_label(extra, structure=ndi.generate_binary_structure(3, 1))
    touching = np.unique(lab[ndi.binary_dilation(c2, structure=ndi.generate_binary_structure(3, 1)) & (lab > 0)])
    if touching.size == 0:
        return None
    add = np.isin(lab, touching)
    lm.masks["vertebrae_C2"] = c2 | add
    return (f"provided vertebrae_C2 completed with the provided lesion where it touches C2 "
            f"({int(add.sum())} voxels): a vertebra's mask includes its lytic cavities")


def _body_box(body: np.ndarray, shape: tuple[int, int, int], margin: int = 3) -> tuple[slice, slice, slice]:
    """Bounding box (slices) of the body plus a margin; the whole grid when the body is empty."""
    if not body.any():
        return tuple(slice(0, n) for n in shape)  # type: ignore[return-value]
    out = []
    for d in range(3):  # first and last index along each axis from the mask's projection (no voxel list)
        nz = np.flatnonzero(body.any(axis=tuple(x for x in range(3) if x != d)))
        out.append(slice(max(int(nz[0]) - margin, 0), min(int(nz[-1]) + margin + 1, int(shape[d]))))
    return tuple(out)  # type: ignore[return-value]


def _crop(volume: Volume, box: tuple[slice, slice, slice]) -> Volume:
    """The sub-volume *box* with its exact affine (same LPS world)."""
    if all(sl.start == 0 and sl.stop == n for sl, n in zip(box, volume.shape)):
        return volume
    aff = volume.affine.copy()
    aff[:3, 3] = volume.index_to_world(np.array([sl.start for sl in box], float))
    return Volume(volume.array[box], aff, volume.info, volume.warnings, volume.reader_notes)


def _pad(mask: np.ndarray, box: tuple[slice, slice, slice], shape: tuple[int, int, int]) -> np.ndarray:
    """A mask on the cropped grid put back on the full grid."""
    if mask.shape == tuple(shape):
        return mask
    out = np.zeros(shape, bool)
    out[box] = mask
    return out


#: A C2 found farther than this from the user's point inside C2 contradicts the point (mm; author's
#: default: locate_c2 itself requires bone within 5 mm of the point).
HINT_TOLERANCE_MM = 5.0


def check_hint(volume: Volume, hint_lps) -> np.ndarray:
    """Validate a user point inside C2 (LPS mm) before any long computation.

    Parameters
    ----------
    volume : Volume
        The CT.
    hint_lps : (3,) array-like
        The point, LPS millimetres.

    Returns
    -------
    numpy.ndarray, shape (3,)

    Raises
    ------
    InputError
        Not three finite numbers, or a point outside the CT (the message gives the CT's LPS extent).
    """
    try:
        h = np.asarray(hint_lps, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise InputError("The point inside C2 must be three numbers (LPS mm: x y z).") from None
    if h.shape != (3,):
        raise InputError(f"The point inside C2 must be three numbers (LPS mm: x y z); got {h.size}.")
    if not np.all(np.isfinite(h)):
        raise InputError("The point inside C2 must be finite numbers (LPS mm: x y z).")
    lo, hi = volume.bounds_lps_mm()
    if np.any(np.abs(h) > 100_000.0):  # a typing slip (1e308): the CT's extent is named, the value is not echoed
        raise InputError("The point inside C2 lies far outside the CT (a coordinate beyond 100 m); the CT spans LPS "
                         "x {:.1f}..{:.1f}, y {:.1f}..{:.1f}, z {:.1f}..{:.1f} mm: give LPS millimetres inside the "
                         "image.".format(lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]))
    if not bool(volume.contains(h[None])[0]):
        raise InputError("The point inside C2 (LPS {:.1f}, {:.1f}, {:.1f} mm) lies outside the CT, which spans LPS "
                         "x {:.1f}..{:.1f}, y {:.1f}..{:.1f}, z {:.1f}..{:.1f} mm; give LPS millimetres (x to the "
                         "patient's left, y posterior, z superior) inside the image.".format(
                             *h, lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]))
    return h


def _include_point(box: tuple[slice, slice, slice], volume: Volume, point: np.ndarray,
                   margin: int = 3) -> tuple[slice, slice, slice]:
    """Grow a crop box so that it holds *point* (LPS) with a margin of voxels."""
    k = np.rint(volume.world_to_index(point)).astype(int)
    return tuple(slice(int(max(min(sl.start, c - margin), 0)), int(min(max(sl.stop, c + margin + 1), n)))
                 for sl, c, n in zip(box, k, volume.shape))  # type: ignore[return-value]


AIRWAY_PARTS = ("pharynx", "larynx", "trachea")


def _resplit_airway_at_c2(sub: Volume, box: tuple[slice, slice, slice], lm: LabelMap, lm_sub: LabelMap,
                          landmarks: DensLandmarks, have: set[str], msgs: list[str]) -> None:
    """Split the classical airway again, now that the C2 level is known (in place).

    :func:`~osteoplan.anatomy.segment.run_classical` splits the airway from the lumen shape alone
    (C2 is located after it); with the C2 inferior end-plate the laryngeal inlet is searched in
    the window below C2 and placed at the vertebral level when the lumen shows no widening there
    (see :func:`osteoplan.anatomy.airway.split_airway`). On OpenKBP this raised the cases whose
    larynx overlaps the provided Larynx from 35/51 to 46/51 (benchmarks/openkbp_airway.py).
    Provided or TotalSegmentator parts are left alone; the classical split's messages are replaced.
    """
    from osteoplan.anatomy.airway import split_airway

    parts = [n for n in AIRWAY_PARTS if n not in have]
    if not parts or not lm_sub.has("airway") or lm_sub.sources.get("airway") != "classical":
        return
    air = lm_sub.get("airway")
    if not air.any():
        return
    split = split_airway(sub, air, lm_sub.get("body") if lm_sub.has("body") else None,
                         c2_inferior_z_mm=float(landmarks.anteroinferior_body_lps_mm[2]))
    masks = split.masks()
    for n in parts:
        lm.masks.pop(n, None)
        lm.sources.pop(n, None)
        lm_sub.masks.pop(n, None)
        lm_sub.sources.pop(n, None)
        if split.segmented.get(n):
            lm.add(n, _pad(masks[n], box, lm.volume.shape), "classical")
            lm_sub.add(n, masks[n], "classical")
    msgs[:] = [m for m in msgs if not m.startswith("airway split: ")
               and not any(m.startswith(f"{n}: partial (") for n in AIRWAY_PARTS)]
    msgs.extend(f"airway split: {t}" for t in split.notes)
    msgs.extend(f"{n}: partial ({why})" for n, why in split.partial.items() if n in parts)


#: Least Dice between the C2 found from the user's point and the C2 found without it when the point
#: lies in or next to the latter (engineering default: the same vertebra found twice overlaps far more;
#: measured on the CThead CT, a point at the C2/C3 disc gave a lower-C2 + C3 'C2' at Dice 0.03).
HINT_MIN_AGREEMENT_DICE = 0.5


def _automatic_c2_at_hint(sub: Volume, lm_sub, hint_lps: np.ndarray, bone: np.ndarray, canal):
    """The C2 found without the user's point when the point lies in or next to it; refuse a point below it.

    The point decides the level when the automatic search went wrong from the top of the column
    (a CT whose top cuts the dens, a C1 or skull-base structure taken first: the point then lies
    above what was found). When the automatic search finds a C2 that the plausibility gate accepts:

    - a point farther than :data:`HINT_TOLERANCE_MM` from it and beneath the anteroinferior point of
      its body (along the dens axis) is more likely in C3 than a sign of a wrong automatic level,
      and the vertebra at the point can itself pass the gate (measured on the CThead CT: a point
      4-16 mm below the C2 body gave a 'C2' made of the lower C2 body and C3, its 'dens apex' in
      the C2 body, AI-apex 26.7 mm, inside the gate): neither is trusted;
    - a point within :data:`HINT_TOLERANCE_MM` of it: its mask is returned, and the caller refuses a
      C2 found from the point that overlaps it less than :data:`HINT_MIN_AGREEMENT_DICE` (a point near
      the C2/C3 disc, cut at the discs nearest to it, can take the vertebra below).

    Returns the automatic C2 mask (second case) or ``None`` (no automatic C2, or the point lies
    above or beside it: the search from the point decides).

    Raises
    ------
    AnatomyError
        The point lies below the automatic C2 (the message gives the distance and what to do).
    """
    from osteoplan.anatomy.c2 import locate_c2

    try:
        auto_c2, auto_lm = locate_c2(sub, lm_sub, hint_lps=None, bone=bone, canal=canal)
    except AnatomyError:
        return None
    pts = sub.index_to_world(np.argwhere(auto_c2).astype(float))
    d_mm = float(np.min(np.linalg.norm(pts - hint_lps, axis=1))) if len(pts) else float("inf")
    if d_mm <= HINT_TOLERANCE_MM:
        return auto_c2
    below_mm = -float((np.asarray(hint_lps) - np.asarray(auto_lm.anteroinferior_body_lps_mm)) @ auto_lm.axis_unit)
    if below_mm > 0.0:
        raise AnatomyError(
            f"the point given lies {d_mm:.0f} mm below the C2 found without it ({below_mm:.0f} mm beneath the "
            "anteroinferior corner of its body, along the dens axis): it may be in C3. The automatic level and the "
            "point disagree, so neither is trusted. Check the point (LPS mm, in the C2 body or dens) or give a C2 "
            "mask (--masks).")
    return None


def _add_bony_canal(sub: Volume, box: tuple[slice, slice, slice], lm: LabelMap, lm_sub: LabelMap, cl,
                    have: set[str], msgs: list[str]) -> None:
    """Add the bony canal of the vertebral arteries (transverse foramina, C1 sulcus) to the label map (in place).

    Runs :func:`osteoplan.anatomy.foramina.segment_transverse_foramina` on the cropped CT with the
    classical bone, the spinal canal in the label map and the vertebra masks present (the C2
    located above is enough to name the levels). A side is added only when it counts as segmented
    (its C2 foramen found, see :attr:`~osteoplan.anatomy.foramina.ForaminaResult.segmented`); otherwise
    it stays absent, i.e. "not assessed" (an empty or partial canal is no evidence that the path is clear).
    Skipped when both names are already provided; a provided or segmented ``vertebral_artery_left/right``
    (contrast CT) is kept beside it.
    """
    from osteoplan.anatomy.foramina import CANAL_NAMES, SOURCE, segment_transverse_foramina

    todo = [n for n in CANAL_NAMES if n not in have]
    if not todo:
        return
    if not lm_sub.has("spinal_canal") or not lm_sub.get("spinal_canal").any():
        msgs.append("vertebral_artery_canal: NOT segmented (no spinal canal to search beside)")
        return
    verts = {f"C{i}": lm_sub.get(f"vertebrae_C{i}") for i in range(1, 8) if lm_sub.has(f"vertebrae_C{i}")}
    try:
        fr = segment_transverse_foramina(sub, cl.bone.bone, lm_sub.get("spinal_canal"), vertebrae=verts,
                                         wall_threshold_hu=cl.bone.cancellous_threshold_hu)
    except OsteoplanError as exc:
        msgs.append(f"vertebral_artery_canal: NOT segmented ({exc})")
        return
    for n, m in fr.masks(segmented_only=True).items():
        if n in todo:
            lm.add(n, _pad(m, box, lm.volume.shape), SOURCE)
            lm_sub.add(n, m, SOURCE)
    msgs.extend(f"vertebral_artery_canal: {t}" for t in fr.messages)
    for f in fr.foramina:
        msgs.append("vertebral_artery_canal: {} foramen {}: {:.0f} mm^2 at LPS ({:.0f}, {:.0f}, {:.0f}) mm".format(
            f.side, f.level or f"#{f.order} (level unknown)", f.area_mm2, *f.centre_lps_mm))


def build_anatomy(volume: Volume, masks=None, hint_lps=None, use_totalsegmentator: bool = False) -> Anatomy:
    """Build the planner's anatomy from a CT, optional provided masks and an optional C2 hint.

    Parameters
    ----------
    volume : Volume
        CT in HU.
    masks : LabelMap, str, Path or None
        Provided masks (a LabelMap on the CT grid, or a path read by
        :func:`osteoplan.anatomy.loaders.load_masks`). They take precedence over classical
        segmentation for the same structure.
    hint_lps : (3,) array-like, optional
        One point inside C2 (LPS mm), checked first (:func:`check_hint`: InputError when malformed
        or outside the CT). When the C2 found lies more than :data:`HINT_TOLERANCE_MM` from it, or
        the point lies below a plausible C2 found without it (:func:`_automatic_c2_at_hint`), C2 is
        reported NOT located (the automatic level and the user's point disagree), as when the point
        lies in or next to that C2 and the C2 found from the point differs from it.
    use_totalsegmentator : bool
        Run the optional TotalSegmentator backend first (when installed); its masks rank
        between provided masks and classical ones.

    Returns
    -------
    Anatomy

    Raises
    ------
    OsteoplanError
        Every failure (unreadable masks, masks off the CT, bad hint) is an OsteoplanError
        subclass with a clear message. C2 not found is NOT raised: the anatomy is returned with
        ``landmarks=None`` and the reason in ``messages`` (the planner decides).
    """
    from osteoplan.anatomy.c2 import locate_c2
    from osteoplan.anatomy.segment import run_classical
    from osteoplan.progress import stage

    msgs: list[str] = []
    if hint_lps is not None:
        hint_lps = check_hint(volume, hint_lps)
    load_warnings: list[str] = []
    provided = _load_provided(volume, masks, load_warnings) if masks is not None else None
    msgs.extend(f"masks: {w}" for w in load_warnings)
    if provided is not None:
        msg = _c2_with_its_lesion(provided)
        if msg:
            msgs.append(msg)
    ts = None
    if use_totalsegmentator:
        try:
            from osteoplan.anatomy import totalseg  # type: ignore[attr-defined]

            ts_warn: list[str] = []
            ts = totalseg.run_totalsegmentator(volume, warnings=ts_warn)
            msgs.extend(f"TotalSegmentator: {w}" for w in ts_warn)
            msgs.append("TotalSegmentator masks used where not provided")
        except ImportError:
            msgs.append("TotalSegmentator backend not available in this build: classical segmentation only")
        except OsteoplanError as exc:
            msgs.append(f"TotalSegmentator not used: {exc}")
    have = set(provided.names()) if provided is not None else set()
    if ts is not None:
        have |= set(ts.names())
    # work inside the body's bounding box (the air around the patient is most of many CTs)
    from osteoplan.anatomy.segment import segment_body

    with stage("body (skin outline, for the working box)"):
        try:
            body_full = segment_body(volume)
        except AnatomyError:
            body_full = None
    box = _body_box(body_full, volume.shape) if body_full is not None else tuple(slice(0, n) for n in volume.shape)
    if hint_lps is not None:
        box = _include_point(box, volume, hint_lps)
    sub = _crop(volume, box)
    with stage("classical segmentation"):
        try:
            cl = run_classical(sub, skip=frozenset(have), body=None if body_full is None else body_full[box])
        except OsteoplanError:
            raise
        except Exception as exc:  # keep the planner robust: never a traceback for a segmentation fault
            raise AnatomyError(f"Classical segmentation failed ({type(exc).__name__}); provide masks instead.") from None
    lm = LabelMap(volume)
    for n in cl.labelmap.names():
        lm.add(n, _pad(cl.labelmap.get(n), box, volume.shape), cl.labelmap.sources[n])
    for src_lm in (ts, provided):
        if src_lm is None:
            continue
        for n in src_lm.names():
            lm.add(n, src_lm.get(n), src_lm.sources.get(n, "provided"))
    lm_sub = LabelMap(sub, {n: m[box] for n, m in lm.masks.items()}, dict(lm.sources))
    if provided is not None:
        msgs.append("provided masks: " + ", ".join(f"{n}" for n in provided.names()))
    msgs.extend(cl.messages)
    # C2 and landmarks
    landmarks = None
    lesion = None
    canal_arg = cl.canal if not (provided is not None and provided.has("spinal_canal")) else None
    with stage("C2 and its landmarks"):
        try:
            auto = None
            if hint_lps is not None and not lm_sub.has("vertebrae_C2"):
                auto = _automatic_c2_at_hint(sub, lm_sub, hint_lps, cl.bone.bone, canal_arg)
            c2, landmarks = locate_c2(sub, lm_sub, hint_lps=hint_lps, bone=cl.bone.bone, canal=canal_arg)
            if auto is not None:
                dice = 2.0 * float((c2 & auto).sum()) / max(float(c2.sum() + auto.sum()), 1.0)
                if dice < HINT_MIN_AGREEMENT_DICE:
                    landmarks = None
                    raise AnatomyError(
                        f"the C2 found from the point given and the C2 found without it, which the point lies in or "
                        f"next to, differ (Dice {dice:.2f}): the automatic level and the point disagree, so neither is "
                        "trusted. Check the point (LPS mm, in the C2 body or dens) or give a C2 mask (--masks).")
            if hint_lps is not None:
                c2_pts = sub.index_to_world(np.argwhere(c2).astype(float))
                d_mm = float(np.min(np.linalg.norm(c2_pts - hint_lps, axis=1))) if len(c2_pts) else float("inf")
                if d_mm > HINT_TOLERANCE_MM:
                    landmarks = None
                    raise AnatomyError(
                        f"the C2 found lies {d_mm:.0f} mm from the point given inside C2: the automatic level and the "
                        "point disagree, so neither is trusted. Check the point (LPS mm, in the C2 body or dens) or give "
                        "a C2 mask (--masks).")
            if not lm.has("vertebrae_C2"):
                lm.add("vertebrae_C2", _pad(c2, box, volume.shape), "classical")
                lm_sub.add("vertebrae_C2", c2, "classical")
            msgs.append(f"C2 located ({landmarks.method}, confidence {landmarks.confidence:.2f})")
            msgs.extend(f"C2: {n}" for n in landmarks.notes)
        except AnatomyError as exc:
            msgs.append(f"C2 NOT located: {exc}")
    with stage("airway split at C2, lesion"):
        if landmarks is not None:
            _resplit_airway_at_c2(sub, box, lm, lm_sub, landmarks, have, msgs)
            if lm.has("lesion"):
                from osteoplan.anatomy.lesion import lesion_from_mask

                try:
                    lesion = lesion_from_mask(sub, lm_sub.get("vertebrae_C2"), lm_sub.get("lesion"), landmarks,
                                              source=lm.sources.get("lesion", "provided"))
                    lesion.mask = _pad(lesion.mask, box, volume.shape)
                    msgs.append(f"lesion: provided mask used ({lesion.volume_ml:.2f} mL)" if lesion.found
                                else "lesion: provided mask used (empty: no lesion)")
                except AnatomyError as exc:
                    msgs.append(f"lesion: provided mask used, NOT measured: {exc}")
            else:
                try:
                    lesion = segment_lesion(sub, lm_sub.get("vertebrae_C2"), landmarks,
                                            lm_sub.get("vertebrae_C3") if lm_sub.has("vertebrae_C3") else None)
                    lesion.mask = _pad(lesion.mask, box, volume.shape)
                    lm.add("lesion", lesion.mask, "classical")
                    msgs.append(f"lesion: {lesion.volume_ml:.2f} mL lytic (threshold {lesion.reference_hu['threshold_hu']} HU "
                                f"from {lesion.reference_hu['source']})" if lesion.found else "lesion: none found in C2")
                except AnatomyError as exc:
                    msgs.append(f"lesion NOT assessed: {exc}")
    with stage("vertebral-artery bony canal"):
        _add_bony_canal(sub, box, lm, lm_sub, cl, have, msgs)
    missing = [s for s in PLANNING_STRUCTURES if not lm.has(s)]
    if missing:
        msgs.append("NOT segmented (not assessed): " + ", ".join(missing))
    return Anatomy(lm, landmarks, lesion, bool(cl.contrast.detected), msgs)


def save_anatomy(anatomy: Anatomy, out_dir: str | Path) -> dict:
    """Write an :class:`Anatomy` to *out_dir* (see :meth:`Anatomy.save`)."""
    return anatomy.save(out_dir)
