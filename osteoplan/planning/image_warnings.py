"""The CT reader's warnings about the image itself, carried into the plan as data, without identifying data.

The DICOM reader returns what it had to do to the image as data in ``Volume.reader_notes``
(:class:`osteoplan.imaging.reader_notes.ReaderNote`: gaps interpolated with the LPS positions of the missing slices,
files skipped counted by reason, the series chosen among several), and its other warnings (uneven spacing resampled,
gantry tilt, lossy compression...) as English sentences in ``Volume.warnings``. A plan made on such an image must say
so: an interpolated slice holds invented voxels, and a path that crosses it is planned on them.

:func:`image_notes` turns the reader's notes into the plan's :class:`~osteoplan.planning.model.ImageNote` records
(``Plan.image_notes``, each standing for one plan warning, ``text_en``), :func:`image_warnings` gives the plan
warnings (prefixed ``"CT image: "``), :func:`gap_crossing_notes` says when a planned path crosses an interpolated
slice, and :func:`plan_warning_lines` writes a plan's warnings for a face: the image notes from their data, in the
face's language (English, French) and with the face's remedy (:mod:`osteoplan.remedies`). No sentence is parsed back.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, Callable, Iterable

from osteoplan.imaging.reader_notes import note_text
from osteoplan.locale_fmt import decimal
from osteoplan.planning.model import ImageNote

#: prefix of every plan warning that comes from the CT reader (English: the plan's own text)
PREFIX = "CT image: "
#: the prefix as each language writes it
PREFIXES = {"en": PREFIX, "fr": "Image scanner : "}
#: kind of the note of a planned path that crosses interpolated slices
CROSSING = "path_crosses_interpolated"

_FILE_NAME = re.compile(r"\bfile [^\s,;:()]+\.\w{1,5}\b")


def _prefix(lang: str) -> str:
    return PREFIXES.get(lang, PREFIX)


def _items(volume: Any) -> list[tuple[Any, str | None]]:
    """(reader note, None) or (None, other warning) in the reader's order, every note once."""
    notes = list(getattr(volume, "reader_notes", ()) or ())
    by_text = {note_text(n): n for n in notes}
    used: set[int] = set()
    out: list[tuple[Any, str | None]] = []
    for w in getattr(volume, "warnings", ()) or ():
        n = by_text.get(str(w))
        if n is not None and id(n) not in used:
            used.add(id(n))
            out.append((n, None))
        elif n is None:
            # a warning of another reader (NIfTI, NRRD) or an older one: a file name in it is never passed on
            out.append((None, _FILE_NAME.sub("file <name not recorded>", str(w))))
    out.extend((n, None) for n in notes if id(n) not in used)
    return out


def image_notes(volume: Any) -> list[ImageNote]:
    """The reader's notes of *volume* as plan image notes, in the reader's order.

    Returns
    -------
    list of ImageNote
        ``text_en`` is the plan warning each stands for (``"CT image: "`` + the English sentence, without remedy).
    """
    out = []
    for n, _ in _items(volume):
        if n is None:
            continue
        out.append(ImageNote(kind=n.kind, text_en=PREFIX + note_text(n, "en", None), count=n.count,
                             points_lps_mm=tuple(n.points_lps_mm), step_mm=n.step_mm, gap_step_mm=n.gap_step_mm,
                             n_interpolated=n.n_interpolated, reason=n.reason, n_images=n.n_images,
                             n_series=n.n_series, axial=n.axial, alike_series=tuple(n.alike_series),
                             remedy=n.remedy))
    return list({x.text_en: x for x in out}.values())


def image_warnings(volume: Any, face: str | None = None, lang: str = "en") -> list[str]:
    """The reader's warnings of *volume* as plan warnings, each prefixed ``"CT image: "``, without file names.

    Parameters
    ----------
    volume : Volume
        The CT as read; its ``reader_notes`` (data) and ``warnings`` (the other sentences) are used.
    face : {"api", "cli", "web", "batch"} or None
        Whose remedy a note with one carries (e.g. the command line's ``--series-uid``); None: none (the plan).
    lang : {"en", "fr"}
        Language of the notes' sentences (the other warnings stay English).

    Returns
    -------
    list of str
        One warning per reader warning, in order; a skipped file is counted, never named.
    """
    out = []
    for n, text in _items(volume):
        out.append(_prefix(lang) + (note_text(n, lang, face) if n is not None else text))
    return list(dict.fromkeys(out))


def interpolated_slices(volume: Any) -> list[tuple[float, float]]:
    """The interpolated (gap-filled) slices of *volume* (or of a plan's ``image_notes``), from the reader's data.

    Returns
    -------
    list of (z_mm, step_mm)
        LPS z of each missing slice (every one of each gap) and the series' usual slice step (mm), i.e. the
        slice's thickness.
    """
    notes = getattr(volume, "reader_notes", None)
    if notes is None:
        notes = getattr(volume, "image_notes", ()) or ()
    found: list[tuple[float, float]] = []
    for n in notes:
        if n.kind == "gap_interpolated":
            found.extend((float(p[2]), float(n.step_mm)) for p in n.points_lps_mm)
    return found


def _crossing_text(count: int, zs: Iterable[float], path: str | None, lang: str = "en") -> str:
    zs = list(zs)
    if lang == "fr":
        side = {"left": "gauche", "right": "droite"}
        who = ("le trajet prévu" if not path
               else "le trajet (" + " ".join(side.get(w, w) for w in path.split()) + ")")
        return (f"{_prefix(lang)}{who} traverse {count} coupe(s) interpolée(s) à z = "
                + " ; ".join(decimal(z, 2, "fr") for z in zs) + " mm (LPS) : ses voxels y ont été interpolés à "
                "travers un trou de la série, non mesurés ; vérifier le trajet sur les images originales.")
    who = f"the path ({path})" if path else "the planned path"
    return (f"{PREFIX}{who} crosses {count} interpolated slice(s) at z = " + ", ".join(f"{z:.2f}" for z in zs)
            + " mm (LPS): its voxels there were interpolated across a gap, not measured; check the path on the "
            "original images.")


def gap_crossing_notes(volume: Any, trajectories: Iterable[Any]) -> list[ImageNote]:
    """Notes for each planned path that crosses an interpolated slice of *volume*.

    A path crosses an interpolated slice when the slice's z (LPS) lies within the path's z-range (skin entry to
    target) widened by half the slice step: the slice stands for that slab, and every voxel the path samples in it
    was interpolated from the neighbouring slices, not measured.

    Parameters
    ----------
    volume : Volume
        The CT as read (its ``gap_interpolated`` reader notes give the slices).
    trajectories : iterable of Trajectory
        With ``skin_entry_lps_mm`` and ``target_lps_mm`` (LPS mm); ``level`` and ``side`` name it when several.

    Returns
    -------
    list of ImageNote
        Kind ``path_crosses_interpolated``, one per crossing path (``z_lps_mm``: the slices crossed; ``path``:
        ``"<level> <side>"`` when several paths), empty when no slice was interpolated or no path crosses one.
    """
    slices = interpolated_slices(volume)
    if not slices:
        return []
    trajs = [t for t in trajectories if t is not None]
    out = []
    for t in trajs:
        z0, z1 = sorted((float(t.skin_entry_lps_mm[2]), float(t.target_lps_mm[2])))
        hit = sorted({round(z, 2) for z, step in slices if z0 - step / 2 <= z <= z1 + step / 2})
        if not hit:
            continue
        path = f"{t.level} {t.side}" if len(trajs) > 1 else None
        out.append(ImageNote(kind=CROSSING, text_en=_crossing_text(len(hit), hit, path), count=len(hit),
                             z_lps_mm=tuple(hit), path=path))
    return out


def gap_crossing_warnings(volume: Any, trajectories: Iterable[Any]) -> list[str]:
    """The English warnings of :func:`gap_crossing_notes` (one per crossing path)."""
    return [n.text_en for n in gap_crossing_notes(volume, trajectories)]


def image_note_text(note: Any, lang: str = "en", face: str | None = None) -> str:
    """A plan image note (an :class:`ImageNote` or its JSON dict) written for *lang* with *face*'s remedy."""
    if isinstance(note, dict):
        note = SimpleNamespace(**_with_defaults(note))
    if note.kind == CROSSING:
        return _crossing_text(int(note.count), note.z_lps_mm, note.path, lang)
    return _prefix(lang) + note_text(note, lang, face)


def _with_defaults(d: dict) -> dict:
    """An image note's JSON dict with the defaults of the fields it leaves out."""
    out = {name: f.default for name, f in ImageNote.model_fields.items() if not f.is_required()}
    out.update(d)
    return out


def plan_warning_lines(plan: Any, lang: str = "en", face: str | None = None,
                       translate: Callable[[str], str] | None = None) -> list[str]:
    """A plan's warnings as *face* shows them: its image notes written from their data in *lang* with *face*'s
    remedy, the other warnings through *translate* (e.g. :func:`osteoplan.views.i18n.translate_text`) or as they are.

    Parameters
    ----------
    plan : Plan or dict
        A plan, or its JSON (``warnings``, ``image_notes``); a plan written before schema 1.3 has no image notes:
        its warnings are shown as they were written.
    lang : {"en", "fr"}
    face : {"cli", "web", "batch", "api"} or None
        None: no remedy (a document: the report).
    translate : callable, optional
        Applied to the warnings that are not image notes.

    Returns
    -------
    list of str
        One line per warning, in the plan's order.
    """
    if isinstance(plan, dict):
        warnings, notes = plan.get("warnings") or [], plan.get("image_notes") or []
    else:
        warnings, notes = plan.warnings, plan.image_notes
    by_text = {(n["text_en"] if isinstance(n, dict) else n.text_en): n for n in notes}
    out = []
    for w in warnings:
        n = by_text.get(w)
        if n is not None:
            out.append(image_note_text(n, lang, face))
        else:
            out.append(translate(w) if translate else w)
    return out
