"""English transcript normalization the LibriSpeech way (upper-case A-Z, apostrophe, single spaces).

The synthetic corpus (`softpl.corpora.fortunes`) and the generic importer (`softpl.data.manifest`) both use it, so
that models, token lists and scoring treat every corpus alike.
"""
from __future__ import annotations

import re
import unicodedata

# Typographic characters with a plain ASCII equivalent.
_TYPOGRAPHIC = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                              "\u2014": "-", "\u2026": "..."})
# Punctuation that carries no word of its own: it becomes a word boundary.
_SILENT_PUNCTUATION = re.compile(r"""[.,;:!?"()`-]""")
# Anything left after that besides letters, apostrophes and spaces has a spoken form we cannot write down
# (&, %, $, /, *, <, ...), so the sentence is rejected rather than transcribed wrongly.
_UNSPEAKABLE = re.compile(r"[^A-Za-z' ]")

# Reasons a text is rejected by normalization.
DIGIT = "contains a digit"
UNSPEAKABLE = "contains a character that cannot be normalized"


def normalize_or_reason(text: str) -> tuple[str, str | None]:
    """Normalize `text`; return ("", reason) instead when it holds a digit or an unspeakable character."""
    text = text.translate(_TYPOGRAPHIC)
    # Strip accents: "resume" for "résumé"; characters without an ASCII base (ß, £) stay and are rejected.
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    if any(c.isdigit() for c in text):
        return "", DIGIT
    text = _SILENT_PUNCTUATION.sub(" ", text)
    text = " ".join(text.split())
    if _UNSPEAKABLE.search(text):
        return "", UNSPEAKABLE
    words = (word.strip("'") for word in text.upper().split())
    return " ".join(word for word in words if word), None


def unwritable_word(text: str) -> str | None:
    """The first word of ``text`` that normalization rejects: one holding a digit ("1984") or a character with
    no written-out spoken form (&, %, /, ...); None when there is none."""
    for word in text.translate(_TYPOGRAPHIC).split():
        plain = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
        plain = _SILENT_PUNCTUATION.sub("", plain)
        if any(c.isdigit() for c in plain) or _UNSPEAKABLE.search(plain):
            return word
    return None


def normalize_transcript(text: str) -> str:
    """Normalize English text the LibriSpeech way: A-Z, inner apostrophes and single spaces.

    Punctuation and hyphens become word boundaries ("long-forgotten" -> "LONG FORGOTTEN"), apostrophes at the
    start or end of a word go ("'tis the dogs'" -> "TIS THE DOGS"), accents are stripped. Text holding a digit or
    a character with no written-out spoken form (&, %, /, ...) gives "", as does text with no words left.
    """
    return normalize_or_reason(text)[0]
