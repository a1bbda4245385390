"""How numbers and orientation letters are written in each language of osteoplan's pages (English, French).

For DISPLAYED text only: the data (``plan.json``, JSON answers, DICOM, CSV, file names) keeps the decimal point and
the LPS letters whatever the page's language.

French conventions:

* the decimal marker is the comma (``2,5 mm``; the SI Brochure, BIPM 9th edition, leaves point or comma on the
  line to the language's custom, and French writes the comma); a list of such numbers is separated by semicolons
  (``(1,5 ; -2,0 ; 3,0)``) so that the commas stay unambiguous;
* image edges are marked D (droite) and G (gauche) for the patient's right and left, as on French radiology
  workstations and films; A, P, S and I are the initials of the French words too (antérieur, postérieur, supérieur,
  inférieur) and stay as they are. :data:`osteoplan.views.i18n.STRINGS` already writes "droite" / "gauche" in
  full in the French captions; these letters are their initials.

* C-arm angulations are written as French angiography writes them: OAG / OAD (oblique antérieure gauche /
  droite) for LAO / RAO, CRA / CAU for CRAN / CAUD (:func:`carm_label`), so that no English L / R abbreviation
  stands beside the D / G letters of the pictures.

* French typography (:func:`french_typography`): a no-break space (U+00A0) before ``:`` ``;`` ``?`` ``!`` and inside
  the guillemets ``« »`` (Lexique des règles typographiques en usage à l'Imprimerie nationale: a space before
  the two-part signs, never at the start of a line: hence no-break), ``±`` for ``+/-``, an en dash in a range of
  numbers followed by its unit (``2,0–4,0 mL``). One kind of no-break space for all four signs (not the narrow one
  before ``; ? !``): every font of the pages has it.

English keeps the decimal point, R / L / A / P / S / I and LAO / RAO / CRAN / CAUD. The plan's data (``plan.json``
``guidance.*.label``, the check's JSON) keeps the English abbreviations.
"""

from __future__ import annotations

import re

__all__ = ["CARM_WORDS", "DECIMAL_SEPARATOR", "NBSP", "ORIENTATION_LETTERS", "carm_label", "decimal",
           "french_typography", "localize_html", "localize_numbers", "orientation_letters"]

#: Decimal separator of displayed numbers per language.
DECIMAL_SEPARATOR: dict[str, str] = {"en": ".", "fr": ","}
#: Orientation letter (of an LPS direction: R, L, A, P, S, I) -> the letter shown, per language.
ORIENTATION_LETTERS: dict[str, dict[str, str]] = {
    "en": {"R": "R", "L": "L", "A": "A", "P": "P", "S": "S", "I": "I"},
    "fr": {"R": "D", "L": "G", "A": "A", "P": "P", "S": "S", "I": "I"},
}

#: C-arm angulation abbreviations (as :func:`osteoplan.planning.guidance` spells a view, ``"LAO 29° / CAUD 64°"``) ->
#: the ones shown, per language (French: oblique antérieure gauche / droite, crânial / caudal).
CARM_WORDS: dict[str, dict[str, str]] = {
    "fr": {"LAO": "OAG", "RAO": "OAD", "CRAN": "CRA", "CAUD": "CAU"},
}
_CARM_WORD = re.compile(r"\b(LAO|RAO|CRAN|CAUD)(?= \d)")


def carm_label(text: str, lang: str = "en") -> str:
    """The C-arm abbreviations of a displayed text written for *lang* (``carm_label("LAO 29° / CAUD 64°", "fr") ==
    "OAG 29° / CAU 64°"``); only an abbreviation followed by its angle is changed. English is returned unchanged."""
    table = CARM_WORDS.get(lang)
    if not table:
        return text
    return _CARM_WORD.sub(lambda m: table[m.group(1)], text)


def decimal(value: float, nd: int | None = None, lang: str = "en") -> str:
    """*value* written for a page in *lang*: ``decimal(2.5, 1, "fr") == "2,5"``.

    Parameters
    ----------
    value : float
    nd : int, optional
        Digits after the separator; None: the shortest form (``format(value, "g")``, ``3.5`` -> ``"3,5"``).
    lang : {"en", "fr"}
        Another language is written as English.
    """
    text = format(float(value), f".{nd}f") if nd is not None else format(float(value), "g")
    return text.replace(".", DECIMAL_SEPARATOR.get(lang, "."))


def orientation_letters(letters: str, lang: str = "en") -> str:
    """Orientation letters (``"LA"``, as :func:`osteoplan.views.render.orientation_letters` names an LPS
    direction) written for *lang*: ``orientation_letters("LA", "fr") == "GA"``. Other characters are kept."""
    table = ORIENTATION_LETTERS.get(lang, ORIENTATION_LETTERS["en"])
    return "".join(table.get(c, c) for c in letters)


#: A decimal number in running text: not part of a word, a dotted identifier (UID, version 1.2.3) or a longer number.
_DECIMAL = r"-?\d+\.\d+"
_NUMBER_IN_TEXT = re.compile(rf"(?<![\w.]){_DECIMAL}(?![\w]|\.\d)")
#: Two or more numbers separated by ", " of which at least one is decimal (a coordinate triple, a list of values).
_NUMBER_LIST = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:, -?\d+(?:\.\d+)?)+(?![\w]|\.\d)")


def localize_numbers(text: str, lang: str = "en") -> str:
    """The decimal numbers of a displayed sentence written for *lang* (French: ``"tip 2.5 mm from (1.0, -2.0,
    3.5)"`` -> ``"tip 2,5 mm from (1,0 ; -2,0 ; 3,5)"``); English text is returned unchanged.

    Dotted identifiers (UIDs, versions such as ``1.2.840.10008``) and integers are left alone; a list of numbers
    that holds a decimal one is separated by semicolons so that its commas stay unambiguous. Use it on text shown
    to a reader (a verdict sentence stored in English and French in the plan, a caption), never on data.
    """
    if DECIMAL_SEPARATOR.get(lang, ".") == ".":
        return text
    sep = DECIMAL_SEPARATOR[lang]

    def as_list(m: re.Match) -> str:
        parts = m.group(0).split(", ")
        if not any("." in p for p in parts):
            return m.group(0)
        return " ; ".join(p.replace(".", sep) for p in parts)

    text = _NUMBER_LIST.sub(as_list, text)
    return _NUMBER_IN_TEXT.sub(lambda m: m.group(0).replace(".", sep), text)


#: The no-break space French puts before ``:`` ``;`` ``?`` ``!`` and inside guillemets.
NBSP = "\u00a0"
#: Spaces that may stand before a French two-part sign (any of them becomes :data:`NBSP`).
_SPACES = " \u00a0\u202f\u2009"
#: An HTML character reference (``&amp;``, ``&#39;``): its ``;`` is not punctuation.
_ENTITY = r"&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);"
#: A two-part sign of running text: after spaces (any) or glued to what precedes it, and followed by a space, a
#: closing bracket or the end of the text (so ``18:51``, ``http://``, ``?lang=fr``, ``clearance:spinal_canal`` are not
#: punctuation).
_TWO_PART = re.compile(rf"({_ENTITY})|(?:[{_SPACES}]+|(?<=[^{_SPACES}]))([:;?!])(?=[\s)\]]|$)|^([:;?!])(?=\s)")
#: A range of two numbers followed by a unit: ``2,0-4,0 mL``, ``210-230 mL``, ``C 2-4 mm`` (not a date or an ID).
_RANGE = re.compile(r"(?<![\w.,/-])(\d+(?:,\d+)?)-(\d+(?:,\d+)?)"
                    r"(?= ?(?:mm|mL|ml|cm|%|°|UH|HU|Gy|min|s)\b|(?= ?[%°]))")


#: A space between a number and the degree sign of an angle (not °C / °F): French writes ``63,7°``.
_DEGREE = re.compile(r"(?<=\d)[ \u00a0]°(?![CF]\b)")


def french_typography(text: str) -> str:
    """*text* (French running text, its numbers already written the French way) with French typography: a no-break
    space before ``:`` ``;`` ``?`` ``!`` (replacing any space there, or added when the sign is glued to its word) and
    inside ``« »``; ``±`` for ``+/-``; an en dash between two numbers of a range followed by a unit; the degree sign
    of an angle against its number (``63,7°``).

    HTML character references (``&amp;``) are left whole. Signs not followed by a space (``18:51``, ``http://``,
    ``clearance:spinal_canal``) are not punctuation and are left as they are.

    >>> french_typography("Structures évaluées: aucune ; 2,9 +/- 0,7 mL (2,0-4,0 mL) « vue »")
    'Structures évaluées\xa0: aucune\xa0; 2,9 ± 0,7 mL (2,0–4,0 mL) «\xa0vue\xa0»'
    """
    text = text.replace("+/-", "±")

    def sign(m: re.Match) -> str:
        if m.group(1):
            return m.group(1)
        return NBSP + (m.group(2) or m.group(3))

    text = _TWO_PART.sub(sign, text)
    text = _DEGREE.sub("°", text)
    text = re.sub(rf"«[{_SPACES}]*", "«" + NBSP, text)
    text = re.sub(rf"[{_SPACES}]*»", NBSP + "»", text)
    return _RANGE.sub(lambda m: f"{m.group(1)}–{m.group(2)}", text)


#: A tag, comment, or a whole <style> / <script> element (their content is code, never localized).
_HTML_CODE = re.compile(r"<(style|script)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.S | re.I)


def localize_html(html: str, lang: str = "en") -> str:
    """A rendered page (the PDF report's HTML, a check's page) with the numbers, C-arm abbreviations and typography of
    its TEXT written for *lang* (:func:`localize_numbers`, :func:`carm_label` and, in French,
    :func:`french_typography` on every text node); tags, their attributes (image data, links, sizes), style sheets
    and scripts are left as they are, and English pages are returned unchanged.

    One call on the finished page writes every number the page shows the same way, whichever part of the code
    formatted it (``f"{v:.1f}"``, a template filter, a translated sentence).
    """
    if DECIMAL_SEPARATOR.get(lang, ".") == ".":
        return html
    typo = french_typography if lang == "fr" else (lambda x: x)
    out, pos = [], 0
    for m in _HTML_CODE.finditer(html):
        out.append(typo(carm_label(localize_numbers(html[pos:m.start()], lang), lang)))
        out.append(m.group(0))
        pos = m.end()
    out.append(typo(carm_label(localize_numbers(html[pos:], lang), lang)))
    return "".join(out)
