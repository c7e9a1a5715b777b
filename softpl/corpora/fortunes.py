"""Sentences for the synthetic corpus of `egs/synth_en`, read from Debian's fortune files.

A fortune file holds fortunes separated by lines holding only `%`; each fortune is split into sentences,
attributions left out, and every sentence normalized with `softpl.data.text.normalize_transcript`'s rules.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from softpl.data.text import normalize_or_reason

# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket) and white space.
_SENTENCE_END = re.compile(r"""(?<=[.!?])\s+|(?<=[.!?]["')])\s+""")
# A full stop after these is an abbreviation or an initial, not the end of a sentence.
_ABBREVIATION_END = re.compile(r"(?:^|\s|\()(?:Mr|Mrs|Ms|Dr|St|Prof|Rev|Mt|vs|e\.g|i\.e|[A-Z])\.$")
# An attribution line ("-- Mark Twain"); the indented lines right after it continue it.
_ATTRIBUTION = re.compile(r"^\s*--")
# A character followed by a backspace: terminal overstriking (underline, bold, accents) in the fortune files.
_OVERSTRIKE = re.compile(r".\x08")

# Reasons a candidate sentence is dropped besides those of normalization (softpl.data.text.DIGIT,
# softpl.data.text.UNSPEAKABLE), as printed in the summary.
TOO_SHORT = "too few words"
TOO_LONG = "too many words"
DUPLICATE = "duplicate"
RARE_WORD = "a word outside the vocabulary"


def list_fortune_files(root: str | Path) -> list[Path]:
    """The fortune files directly under `root`: plain files without a dot (not *.dat, *.u8 or folders like off/)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: no fortune folder here; install Debian's fortunes with `sudo apt-get install fortunes` "
            "or point --fortune_dir at a folder of fortune files")
    files = sorted(p for p in root.iterdir() if p.is_file() and "." not in p.name)
    if not files:
        raise FileNotFoundError(f"{root}: holds no fortune files (plain files without a dot in the name)")
    return files


def _read_utf8(path: Path) -> str:
    """The text of `path`; a byte that is not UTF-8 is an error naming the file and line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not valid UTF-8 ({err.reason}); convert the file with iconv "
                         "or leave it out") from err


def _split_fortunes(text: str) -> list[list[str]]:
    """The fortunes of one file, each as its lines; fortunes are separated by lines holding only `%`."""
    fortunes: list[list[str]] = [[]]
    for line in _OVERSTRIKE.sub("", text).splitlines():
        if line.strip() == "%":
            fortunes.append([])
        else:
            fortunes[-1].append(line)
    return [lines for lines in fortunes if any(line.strip() for line in lines)]


def _fortune_sentences(lines: list[str]) -> list[str]:
    """Split one fortune into raw sentences, leaving out attributions; blank lines end a sentence too."""
    paragraphs: list[list[str]] = [[]]
    in_attribution = False
    for line in lines:
        if _ATTRIBUTION.match(line):
            in_attribution = True
        elif in_attribution and line.strip() and line[0].isspace():
            continue  # an indented line right after an attribution continues it
        elif line.strip():
            in_attribution = False
            paragraphs[-1].append(line.strip())
        else:
            in_attribution = False
            paragraphs.append([])
    sentences: list[str] = []
    for paragraph in filter(None, paragraphs):
        merged: list[str] = []
        for piece in _SENTENCE_END.split(" ".join(paragraph)):
            if merged and _ABBREVIATION_END.search(merged[-1]):
                merged[-1] += " " + piece
            else:
                merged.append(piece)
        sentences.extend(merged)
    return sentences


@dataclass
class FortuneSentences:
    """Usable sentences (normalized, deduplicated, in reading order) and what was dropped on the way."""

    sentences: list[str]
    files: int
    fortunes: int
    read: int
    dropped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One line for the log: how many were read, kept, and dropped for which reason."""
        reasons = ", ".join(f"{count} {reason}" for reason, count in self.dropped.most_common())
        return (f"read {self.read} sentences from {self.fortunes} fortunes in {self.files} files; "
                f"kept {len(self.sentences)}; dropped {sum(self.dropped.values())} ({reasons or 'none'})")


def read_fortune_sentences(paths: Iterable[str | Path], min_words: int = 4,
                           max_words: int = 20) -> FortuneSentences:
    """Extract normalized sentences of `min_words`..`max_words` words from fortune files.

    Attribution lines (`-- Author`, with their indented continuation lines) are left out; a sentence holding a
    digit or a character that cannot be normalized is dropped (see `normalize_transcript`), and so is any repeat
    of an earlier sentence. Every drop is counted by reason in the result.
    """
    if min_words < 1 or max_words < min_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got min_words={min_words}, max_words={max_words}")
    paths = [Path(p) for p in paths]
    result = FortuneSentences(sentences=[], files=len(paths), fortunes=0, read=0)
    seen: set[str] = set()
    for path in paths:
        fortunes = _split_fortunes(_read_utf8(path))
        result.fortunes += len(fortunes)
        for lines in fortunes:
            for raw in _fortune_sentences(lines):
                result.read += 1
                sentence, reason = normalize_or_reason(raw)
                num_words = len(sentence.split())
                if reason is None and num_words < min_words:
                    reason = TOO_SHORT
                elif reason is None and num_words > max_words:
                    reason = TOO_LONG
                elif reason is None and sentence in seen:
                    reason = DUPLICATE
                if reason is None:
                    seen.add(sentence)
                    result.sentences.append(sentence)
                else:
                    result.dropped[reason] += 1
    return result


def closed_vocabulary(found: FortuneSentences, vocab_size: int) -> FortuneSentences:
    """Only the sentences made entirely of the ``vocab_size`` most frequent words of ``found`` (ties broken by first
    occurrence), the rest counted as dropped (``RARE_WORD``): a closed-vocabulary corpus, in which word errors are
    errors of hearing more than of spelling words the labeled text never showed."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
    counts = Counter(word for sentence in found.sentences for word in sentence.split())
    vocabulary = {word for word, _ in counts.most_common(vocab_size)}
    kept = [s for s in found.sentences if all(word in vocabulary for word in s.split())]
    dropped = found.dropped + Counter({RARE_WORD: len(found.sentences) - len(kept)})
    return FortuneSentences(sentences=kept, files=found.files, fortunes=found.fortunes, read=found.read,
                            dropped=dropped)
