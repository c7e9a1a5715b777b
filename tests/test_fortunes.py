"""Sentence extraction from fortune files for the synthetic corpus (softpl.corpora.fortunes)."""
from __future__ import annotations

from collections import Counter

import pytest

from softpl.corpora.fortunes import (DUPLICATE, RARE_WORD, TOO_LONG, TOO_SHORT, FortuneSentences, closed_vocabulary,
                                     list_fortune_files, read_fortune_sentences)
from softpl.data.text import DIGIT, UNSPEAKABLE


FORTUNES = """\
A day for firm decisions!!!!!  Or is it?
%
A long-forgotten loved one will appear soon.

Buy the negatives at any price.
%
Don't worry.  Life's too long.
\t\t-- Vincent Sardi, a famous restaurant owner in New York
%
Mr. Smith went to Washington by train today.
\t\t-- Addison Mizner and Oliver Herford, "The Entirely
\t\t   New Cynic's Calendar of Revised Wisdom for Today"
%
There is a 20% chance of tomorrow.
%
Buy the negatives at any price.
%
Tom & Jerry are a cat and a mouse.
%
A _\bb_\bo_\bl_\bd move wins the day.
%
The quick brown fox
jumps over the lazy dog.
%
This sentence has far too many words to be kept because it goes on and on and on and on without end.
"""


@pytest.fixture
def fortune_dir(tmp_path):
    root = tmp_path / "fortunes"
    root.mkdir()
    (root / "fake").write_text(FORTUNES)
    (root / "fake.dat").write_bytes(b"\x00\x01")  # strfile index: not a fortune file
    (root / "off").mkdir()  # offensive fortunes live in a folder: left out
    (root / "off" / "rude").write_text("A rude remark that nobody should read.\n")
    return root


def test_list_fortune_files_takes_plain_files_without_dot(fortune_dir):
    assert list_fortune_files(fortune_dir) == [fortune_dir / "fake"]


def test_list_fortune_files_missing_folder_names_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install fortunes"):
        list_fortune_files(tmp_path / "nowhere")


def test_read_fortune_sentences(fortune_dir):
    found = read_fortune_sentences([fortune_dir / "fake"])
    assert found.sentences == [
        "A DAY FOR FIRM DECISIONS",
        "A LONG FORGOTTEN LOVED ONE WILL APPEAR SOON",
        "BUY THE NEGATIVES AT ANY PRICE",
        "MR SMITH WENT TO WASHINGTON BY TRAIN TODAY",  # no split after the abbreviation "Mr."
        "A BOLD MOVE WINS THE DAY",  # overstriking removed
        "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",  # a sentence across lines
    ]
    # Attributions and their indented continuation lines are not sentences at all.
    assert (found.files, found.fortunes, found.read) == (1, 10, 13)
    assert found.dropped == {TOO_SHORT: 3, DIGIT: 1, DUPLICATE: 1, UNSPEAKABLE: 1, TOO_LONG: 1}
    assert found.summary().startswith("read 13 sentences from 10 fortunes in 1 files; kept 6; dropped 7 (")


def test_read_fortune_sentences_word_limits(fortune_dir):
    found = read_fortune_sentences([fortune_dir / "fake"], min_words=6, max_words=8)
    assert found.sentences == [
        "A LONG FORGOTTEN LOVED ONE WILL APPEAR SOON",
        "BUY THE NEGATIVES AT ANY PRICE",
        "MR SMITH WENT TO WASHINGTON BY TRAIN TODAY",
        "A BOLD MOVE WINS THE DAY",
    ]
    assert found.dropped[TOO_SHORT] == 4 and found.dropped[TOO_LONG] == 2


def test_read_fortune_sentences_bad_limits(fortune_dir):
    with pytest.raises(ValueError, match="min_words=5, max_words=4"):
        read_fortune_sentences([fortune_dir / "fake"], min_words=5, max_words=4)


def test_read_fortune_sentences_names_file_and_line_of_bad_bytes(tmp_path):
    bad = tmp_path / "latin1"
    bad.write_bytes("A fine first line.\nA caf\u00e9 on the second line.\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{bad}:2: not valid UTF-8"):
        read_fortune_sentences([bad])


def test_closed_vocabulary_keeps_sentences_of_the_most_frequent_words():
    found = FortuneSentences(sentences=["THE CAT SAT", "THE DOG SAT", "THE CAT RAN", "A ZEBRA SAT"], files=1,
                             fortunes=4, read=5, dropped=Counter({DUPLICATE: 1}))
    # counts: THE 3, SAT 3, CAT 2, then DOG, RAN, A, ZEBRA once each (DOG first seen)
    assert closed_vocabulary(found, 3).sentences == ["THE CAT SAT"]
    four = closed_vocabulary(found, 4)
    assert four.sentences == ["THE CAT SAT", "THE DOG SAT"]
    assert four.dropped == Counter({DUPLICATE: 1, RARE_WORD: 2}) and (four.read, four.fortunes) == (5, 4)
    assert closed_vocabulary(found, 100).sentences == found.sentences
    with pytest.raises(ValueError, match="at least 1"):
        closed_vocabulary(found, 0)
