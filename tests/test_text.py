"""LibriSpeech-style transcript normalization (softpl.data.text)."""
from __future__ import annotations

import pytest

from softpl.data.text import normalize_transcript, unwritable_word


@pytest.mark.parametrize("raw, expected", [
    ("Hello, world!", "HELLO WORLD"),
    ("PEANUT butter", "PEANUT BUTTER"),
    ("  several   spaces\tand a tab ", "SEVERAL SPACES AND A TAB"),
    ("A long-forgotten loved one -- at last.", "A LONG FORGOTTEN LOVED ONE AT LAST"),
    ("'Tis the dogs' dinner, isn't it?", "TIS THE DOGS DINNER ISN'T IT"),
    ('He said: "Don\'t" (twice); ``really\'\'.', "HE SAID DON'T TWICE REALLY"),
    ("It\u2019s \u201cfine\u201d \u2014 really\u2026", "IT'S FINE REALLY"),
    ("Caf\u00e9 r\u00e9sum\u00e9", "CAFE RESUME"),
])
def test_normalize_transcript(raw, expected):
    assert normalize_transcript(raw) == expected


@pytest.mark.parametrize("raw", [
    "There is a 20% chance of rain.",  # digit
    "Room 101",  # digit
    "Tom & Jerry",  # no written-out form for &
    "and/or",
    "Stra\u00dfe",  # sharp s has no ASCII base letter
    "' -- !",  # nothing left
    "",
])
def test_normalize_transcript_rejects(raw):
    assert normalize_transcript(raw) == ""


def test_unwritable_word_names_the_word_normalization_rejects():
    assert unwritable_word("1984 IS A NUMBER") == "1984"
    assert unwritable_word("Rock & roll, baby!") == "&"
    assert unwritable_word("The 2nd time.") == "2nd"
    assert unwritable_word("Résumé, 'tis fine.") is None
