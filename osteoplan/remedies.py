"""What each face tells its user to do about a CT the reader refused or read with a choice: one table for all faces.

The DICOM reader (:mod:`osteoplan.imaging.dicom_series`) speaks to its Python callers: "pass allow_gaps=True".
Each face offers other means, and must name only what ITS user can do:

* ``"api"``: the Python API's arguments (``read_volume(..., allow_gaps=True)``), as the reader writes them;
* ``"cli"``: the command line's options (``osteoplan plan CT --allow-gaps``);
* ``"web"``: the web app's planning form, which has no gap, resampling or series option (it plans on the series
  uploaded or retrieved from the PACS as it is): the step to take there;
* ``"batch"``: ``osteoplan batch``, which has no such option nor CSV column: the step to take for that case.

:data:`REMEDIES` maps a remedy key (the ``remedy`` of a :class:`osteoplan.imaging.reader_notes.ReaderNote`, the
``remedy`` attribute of a reader's :class:`~osteoplan.errors.DicomSeriesError`) to the clause each face shows.
:func:`for_face` rewrites a reader message (written with the API's or the command line's clause, e.g. an error
line a web job's ``osteoplan plan`` child printed) with another face's clauses.
"""

from __future__ import annotations

__all__ = ["FACES", "REMEDIES", "remedy_clause", "for_face"]

#: The faces a reader message may be shown on.
FACES = ("api", "cli", "web", "batch")

#: Remedy key -> face -> the clause shown. A clause is a whole part of a sentence: the reader puts the "api" one
#: where the others go (see each key's use in :mod:`osteoplan.imaging.dicom_series`).
REMEDIES: dict[str, dict[str, str]] = {
    # the gap error: "Gap in the series: ... Find the missing file(s) or re-export the series; <clause>."
    "allow_gaps": {
        "api": "to interpolate across the gap instead, pass allow_gaps=True",
        "cli": "to interpolate across the gap instead, add --allow-gaps",
        "web": "the web app reads only series without gaps: start again with the complete series",
        "batch": "the batch does not interpolate: to do so, plan this case alone with 'osteoplan plan CT "
                 "--allow-gaps'",
    },
    # a truncated file leaves an interior hole: "... Re-export or re-copy the series; <clause>."
    "allow_gaps_interior": {
        "api": "pass allow_gaps=True to interpolate an interior slice",
        "cli": "add --allow-gaps to interpolate an interior slice",
        "web": "the web app does not interpolate a missing slice: start again with the complete series",
        "batch": "to interpolate an interior slice, plan this case alone with 'osteoplan plan CT --allow-gaps'",
    },
    # uneven spacing: "Slice spacing varies within the series (measured steps: ...). <clause>."
    "resample_uniform": {
        "api": "Resample to a uniform grid explicitly with resample_uniform=True, or choose another series",
        "cli": "Resample to a uniform grid explicitly with --resample-uniform, or choose another series",
        "web": "The web app does not resample: start again with another series of the study (a reconstruction "
               "with a regular slice spacing)",
        "batch": "The batch does not resample: give this case another series, or plan this case alone with "
                 "'osteoplan plan CT --resample-uniform'",
    },
    # several series: "read the largest axial CT series (N images) of M series found; <clause>"
    "series_uid": {
        "api": "pass series_uid to choose another",
        "cli": "pass --series-uid to choose another",
        "web": "to use another, start again with a zip holding only that series (or pick it from the PACS)",
        "batch": "to plan on another, give this case a folder or zip holding only that series",
    },
}


def remedy_clause(key: str | None, face: str = "api") -> str | None:
    """The clause *face* shows for the remedy *key* (None for no remedy or an unknown key).

    Raises
    ------
    ValueError
        *face* is not one of :data:`FACES`.
    """
    if face not in FACES:
        raise ValueError(f"unknown face {face!r}; one of {', '.join(FACES)}")
    if not key or key not in REMEDIES:
        return None
    return REMEDIES[key][face]


def for_face(text: str, face: str) -> str:
    """*text* (a reader message in the API's or the command line's words) with every remedy clause in *face*'s.

    ``for_face("Gap in the series: ...; to interpolate across the gap instead, add --allow-gaps.", "web")`` ends
    ``"...; the web app reads only series without gaps: start again with the complete series."``.
    Text without a known clause is returned unchanged.
    """
    if face not in FACES:
        raise ValueError(f"unknown face {face!r}; one of {', '.join(FACES)}")
    for key, clauses in REMEDIES.items():
        for other in FACES:
            if other != face and clauses[other] in text:
                text = text.replace(clauses[other], clauses[face])
    return text
