"""Displayed numbers and orientation letters per language (osteoplan.locale_fmt): French decimal comma and D/G."""

from __future__ import annotations

import pytest

from osteoplan.locale_fmt import decimal, localize_numbers, orientation_letters


class TestDecimal:
    """A number written for a page."""

    @pytest.mark.parametrize("value, nd, lang, want", [(2.5, 1, "fr", "2,5"), (2.5, 1, "en", "2.5"),
                                                        (-0.04, 2, "fr", "-0,04"), (3.5, None, "fr", "3,5"),
                                                        (34.0, None, "fr", "34"), (7.25, 1, "de", "7.2")])
    def test_values(self, value, nd, lang, want):
        """French writes a comma; English, and a language without its own convention, the point."""
        assert decimal(value, nd, lang) == want


class TestOrientationLetters:
    """Image-edge letters."""

    def test_french_right_left_are_d_g(self):
        """R -> D (droite), L -> G (gauche); A, P, S, I are French initials too."""
        assert orientation_letters("R", "fr") == "D" and orientation_letters("LA", "fr") == "GA"
        assert orientation_letters("PSI", "fr") == "PSI" and orientation_letters("RL", "en") == "RL"


class TestLocalizeNumbers:
    """Decimal numbers in a displayed sentence."""

    def test_french_sentence(self):
        """Decimals get a comma, a coordinate list semicolons; integers and words are untouched."""
        text = "tip 2.5 mm from the plan at (1.0, -2.0, 3.5) mm; levels 2, 3; screw 4 x 34 mm"
        assert localize_numbers(text, "fr") == ("tip 2,5 mm from the plan at (1,0 ; -2,0 ; 3,5) mm; levels 2, 3; "
                                                "screw 4 x 34 mm")

    def test_identifiers_and_english_are_left_alone(self):
        """UIDs and dotted versions are not numbers; English text comes back unchanged."""
        text = "series 1.2.840.10008.5 (osteoplan 0.9.1), margin 3.0 mm"
        assert localize_numbers(text, "fr") == "series 1.2.840.10008.5 (osteoplan 0.9.1), margin 3,0 mm"
        assert localize_numbers(text, "en") == text
