"""What the DICOM reader did to the image, as data: slices interpolated across a gap, files skipped, series chosen.

The reader (:func:`osteoplan.imaging.dicom_series.read_series`) returns one :class:`ReaderNote` per such event in
``Volume.reader_notes`` -- the kind, the LPS positions (mm) of the slices concerned, counts, the fixed reason a file
was skipped -- and never a file name (file names may hold a patient's name). Each face writes the sentence from the
data with :func:`note_text`, in its language (English, French with decimal commas, ``docs/french_conventions.md``)
and with its own remedy (:mod:`osteoplan.remedies`); ``Volume.warnings`` holds the English sentence in the Python
API's words for callers that read text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from osteoplan.locale_fmt import decimal
from osteoplan.remedies import remedy_clause

__all__ = ["ReaderNote", "KINDS", "note_text", "gap_description", "reason_text", "MAX_LISTED"]

#: Kinds of reader notes: a gap interpolated (one note per gap), truncated or undecodable files of the series
#: skipped, other files skipped at the scan (one note per reason), the summary after skipped files, the series
#: chosen among several.
KINDS = ("gap_interpolated", "undecodable_files_skipped", "files_skipped", "files_unused", "series_chosen")

#: Positions listed in a sentence (the data keeps all of them).
MAX_LISTED = 3


@dataclass(frozen=True)
class ReaderNote:
    """One thing the reader did to the image (see :data:`KINDS`), without file names.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    count : int
        Slices missing in the gap (``gap_interpolated``); files skipped (``undecodable_files_skipped``,
        ``files_skipped``, ``files_unused``).
    points_lps_mm : tuple of (x, y, z)
        LPS positions (mm): of the missing slices' origins (``gap_interpolated``, all of them), of the skipped
        files' slices (``undecodable_files_skipped``).
    step_mm : float or None
        The series' usual slice step (mm): the thickness an interpolated slice stands for.
    gap_step_mm : float or None
        The measured step across the gap (mm).
    n_interpolated : int
        ``undecodable_files_skipped``: how many of their slices were interpolated across the gap they left (the
        others are held by another image at the same position).
    reason : str or None
        ``files_skipped``: why (a fixed text of the reader, e.g. ``"not a DICOM file"``; never a name or a value).
    n_images, n_series : int or None
        ``series_chosen``: images of the series read, series found.
    axial : bool or None
        ``series_chosen``: the series was chosen among the axial CT series.
    alike_series : tuple of int
        ``series_chosen``: 1-based numbers of smaller series that could hold slices of the one read.
    remedy : str or None
        Key of :data:`osteoplan.remedies.REMEDIES`: what the user can do about it (said in each face's words).
    """

    kind: str
    count: int = 0
    points_lps_mm: tuple[tuple[float, float, float], ...] = ()
    step_mm: float | None = None
    gap_step_mm: float | None = None
    n_interpolated: int = 0
    reason: str | None = None
    n_images: int | None = None
    n_series: int | None = None
    axial: bool | None = None
    alike_series: tuple[int, ...] = ()
    remedy: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown reader note kind {self.kind!r}")
        object.__setattr__(self, "points_lps_mm", tuple(tuple(float(v) for v in p) for p in self.points_lps_mm))
        object.__setattr__(self, "alike_series", tuple(int(v) for v in self.alike_series))

    @property
    def z_lps_mm(self) -> tuple[float, ...]:
        """LPS z (mm) of :attr:`points_lps_mm`."""
        return tuple(p[2] for p in self.points_lps_mm)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (lists for tuples)."""
        return {"kind": self.kind, "count": self.count, "points_lps_mm": [list(p) for p in self.points_lps_mm],
                "step_mm": self.step_mm, "gap_step_mm": self.gap_step_mm, "n_interpolated": self.n_interpolated,
                "reason": self.reason, "n_images": self.n_images, "n_series": self.n_series, "axial": self.axial,
                "alike_series": list(self.alike_series), "remedy": self.remedy}

    def __str__(self) -> str:
        return note_text(self)


def _num(v: float, lang: str, nd: int = 2) -> str:
    return decimal(v, nd, lang) if abs(v) < 1e7 else format(float(v), ".6g")


def _point(p, lang: str) -> str:
    """``(1.00, 2.00, -40.00) mm LPS`` / ``(1,00 ; 2,00 ; -40,00) mm LPS``."""
    sep = " ; " if lang == "fr" else ", "
    return "(" + sep.join(_num(v, lang) for v in p) + ") mm LPS"


def _points(points, lang: str, limit: int = MAX_LISTED) -> str:
    shown = ", ".join(_point(p, lang) for p in points[:limit])
    return shown + (" ..." if len(points) > limit else "")


def _zs(zs, lang: str, limit: int = MAX_LISTED) -> str:
    sep = " ; " if lang == "fr" else ", "
    return sep.join(_num(z, lang) for z in list(zs)[:limit]) + (" ..." if len(zs) > limit else "")


#: Fixed reasons of the reader for skipping a file (prefix, French); the rest of the reason (an exception's
#: type name, an operating system's message) is kept as it is.
_REASONS_FR: tuple[tuple[str, str], ...] = (
    ("not a DICOM file", "pas un fichier DICOM"),
    ("unreadable DICOM header (file truncated before the pixel data)",
     "en-tête DICOM illisible (fichier tronqué avant les pixels)"),
    ("unreadable DICOM header (file truncated inside the preamble)",
     "en-tête DICOM illisible (fichier tronqué dans le préambule)"),
    ("unreadable DICOM header (damaged element", "en-tête DICOM illisible (élément endommagé"),
    ("unreadable DICOM header", "en-tête DICOM illisible"),
    ("not a regular file (named pipe, socket or device)", "pas un fichier ordinaire (tube nommé, socket ou "
                                                          "périphérique)"),
    ("DICOM file without an image (e.g. DICOMDIR, report)", "fichier DICOM sans image (p. ex. DICOMDIR, compte "
                                                            "rendu)"),
    ("image without usable geometry", "image sans géométrie utilisable"),
    ("folder not readable", "dossier illisible"),
    ("not readable", "illisible"),
    ("folder nested more than", "dossier imbriqué à plus de"),
    ("larger than", "plus grand que"),
    ("unreadable", "illisible"),
)


def reason_text(reason: str | None, lang: str = "en") -> str:
    """A skipped file's reason in *lang* (French: the reader's fixed words translated, the rest kept)."""
    reason = reason or "unusable"
    if lang != "fr":
        return reason
    for en, fr in _REASONS_FR:
        if reason.startswith(en):
            rest = reason[len(en):]
            rest = rest.replace(" levels deep: not searched", " niveaux : non exploré")
            rest = rest.replace(": not read", " : non lu")
            return fr + rest.replace("damaged element: ", "élément endommagé : ")
    if reason == "unusable":
        return "inutilisable"
    return reason


def gap_description(note: Any, lang: str = "en") -> str:
    """Where a gap is: ``"1 slice(s) missing at (0.00, 0.00, -98.00) mm LPS (step 4.00 mm instead of 2.00 mm)"``
    (the first :data:`MAX_LISTED` positions, then ``...``), from a ``gap_interpolated`` note."""
    n = int(note.count or 0)
    where = _points([tuple(p) for p in (note.points_lps_mm or ())], lang)
    if lang == "fr":
        return (f"{n} coupe(s) manquante(s) en {where} (intervalle de {_num(note.gap_step_mm, lang)} mm au lieu "
                f"de {_num(note.step_mm, lang)} mm)")
    return (f"{n} slice(s) missing at {where} (step {_num(note.gap_step_mm, lang)} mm instead of "
            f"{_num(note.step_mm, lang)} mm)")


def note_text(note: Any, lang: str = "en", face: str | None = "api") -> str:
    """The sentence of a reader note in *lang* (``"en"`` or ``"fr"``), with *face*'s remedy when it has one.

    Parameters
    ----------
    note : ReaderNote or an object with the same attributes (e.g. :class:`osteoplan.planning.model.ImageNote`)
    lang : {"en", "fr"}
        Another language is written as English. French writes decimal commas and separates the numbers of a
        position by semicolons (``docs/french_conventions.md``).
    face : {"api", "cli", "web", "batch"} or None
        Whose remedy is added (:mod:`osteoplan.remedies`); None: no remedy (a document, ``plan.json``).

    Returns
    -------
    str
        One sentence without a file name. English ``gap_interpolated``: ``"gap interpolated: 1 slice(s) missing at
        (0.00, 0.00, -98.00) mm LPS (step 4.00 mm instead of 2.00 mm)"``.
    """
    fr = lang == "fr"
    kind = note.kind
    n = int(note.count or 0)
    pts = [tuple(p) for p in (note.points_lps_mm or ())]
    if kind == "gap_interpolated":
        return ("trou interpolé : " if fr else "gap interpolated: ") + gap_description(note, lang)
    if kind == "undecodable_files_skipped":
        zs = [p[2] for p in pts]
        k = int(note.n_interpolated or 0)
        if fr:
            s = (f"{n} fichier(s) tronqué(s) ou indécodable(s) ignoré(s) (noms de fichiers non enregistrés : ils "
                 f"peuvent identifier le patient)")
            if zs:
                s += f" ; leur(s) coupe(s) à z = {_zs(zs, lang)} mm (LPS)"
                if k == 0:
                    s += " sont fournies par une autre image à la même position"
                elif k == len(zs):
                    s += " ont été interpolées entre les coupes voisines, non mesurées"
                else:
                    s += f" : {k} interpolée(s) entre les coupes voisines, les autres fournies par une autre image"
            return s
        s = f"{n} truncated or undecodable file(s) skipped (file names not recorded: they may identify the patient)"
        if zs:
            s += f"; their slice(s) at z = {_zs(zs, lang)} mm (LPS)"
            if k == 0:
                s += " are held by another image at the same position"
            elif k == len(zs):
                s += " were interpolated from the neighbouring slices, not measured"
            else:
                s += f": {k} interpolated from the neighbouring slices, the others held by another image"
        return s
    if kind == "files_skipped":
        why = reason_text(note.reason, lang)
        if fr:
            return (f"un fichier a été ignoré (nom non enregistré) : {why}" if n <= 1
                    else f"{n} fichiers ont été ignorés (noms non enregistrés) : {why}")
        return (f"a file was skipped (name not recorded): {why}" if n <= 1
                else f"{n} files were skipped (names not recorded): {why}")
    if kind == "files_unused":
        if fr:
            return (f"{n} fichier(s) inutilisable(s) : la série a été lue sans eux ; si l'un était une coupe de cette "
                    "série à l'une de ses extrémités, le volume ne la contient pas (fichiers ignorés ci-dessus)")
        return (f"{n} file(s) could not be used and the series was read without them: if one was a slice of this "
                "series at either end, the volume lacks it (the skipped files are counted above)")
    if kind == "series_chosen":
        clause = remedy_clause(note.remedy, face) if face else None
        if fr:
            what = "scanner axiale" if note.axial else "scanner"
            s = f"lu la plus grande série {what} ({note.n_images} images) parmi {note.n_series} séries trouvées"
            if clause:
                s += f" ; {clause}"  # the faces' remedies are English (the web app, the command line)
            if note.alike_series:
                s += (f". Série(s) {', '.join(map(str, note.alike_series))} : même étude, même référentiel, même "
                      "orientation, même taille d'image et même taille de pixel ; si l'une contient des coupes de "
                      "cette série dont le SeriesInstanceUID a été endommagé, le volume ne les contient pas")
            return s
        what = "axial CT" if note.axial else "CT"
        s = f"read the largest {what} series ({note.n_images} images) of {note.n_series} series found"
        if clause:
            s += f"; {clause}"
        if note.alike_series:
            s += (f". Series {', '.join(map(str, note.alike_series))} share its study, frame of reference, "
                  "orientation, image size and pixel spacing: if one holds slices of this series whose "
                  "SeriesInstanceUID was damaged, the volume lacks them")
        return s
    raise ValueError(f"unknown reader note kind {kind!r}")
