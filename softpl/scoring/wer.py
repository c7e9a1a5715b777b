"""Word and character error counts computed the way NIST sclite computes them.

sclite (``-i rm``, the options ESPnet recipes use) aligns each reference/hypothesis pair by
minimising a weighted edit cost -- substitution 4, insertion 3, deletion 3, match 0 -- after
lower-casing ASCII letters, and breaks ties in favour of a substitution (or match), then a
deletion, then an insertion. Several alignments can share the minimal cost yet split the errors
differently (three substitutions cost the same as two insertions, one match and two deletions),
so :func:`align` reproduces that rule exactly: its Sub/Del/Ins totals equal sclite's, which is
what lets ``softpl.bin.score`` cross-check one against the other.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
from espnet2.text.build_tokenizer import build_tokenizer

METRICS = {"wer": "word", "cer": "char"}  # metric (and score_<metric> folder) -> ESPnet token type
SUB_COST = 4
INS_COST = 3
DEL_COST = 3

# sclite folds case byte-wise in the C locale: ASCII letters only ("É" and "é" stay different).
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# Back-pointer codes of the alignment grid.
_SUB, _DEL, _INS = 0, 1, 2


@dataclasses.dataclass
class ErrorCounts:
    """Error counts over one or more utterances, as in sclite's ``Sum`` line.

    ``del_`` has a trailing underscore only because ``del`` is a Python keyword; it is ``"del"``
    in :meth:`to_dict`.
    """

    n_sent: int = 0
    n_ref: int = 0
    corr: int = 0
    sub: int = 0
    del_: int = 0
    ins: int = 0
    sent_err: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.del_ + self.ins

    @property
    def error_rate(self) -> float:
        """(Sub + Del + Ins) / reference tokens, in percent; 0.0 without reference tokens, as sclite prints."""
        return self.percent(self.errors)

    def percent(self, count: int) -> float:
        """``count`` as a percentage of the reference tokens (sclite's Corr/Sub/Del/Ins/Err columns)."""
        return 100.0 * count / self.n_ref if self.n_ref else 0.0

    @property
    def sent_error_rate(self) -> float:
        """Utterances with at least one error, in percent of the utterances (sclite's S.Err)."""
        return 100.0 * self.sent_err / self.n_sent if self.n_sent else 0.0

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def to_dict(self) -> dict[str, int | float]:
        """JSON-ready counts plus ``err`` and ``error_rate`` (percent)."""
        return {
            "n_sent": self.n_sent,
            "n_ref": self.n_ref,
            "corr": self.corr,
            "sub": self.sub,
            "del": self.del_,
            "ins": self.ins,
            "err": self.errors,
            "sent_err": self.sent_err,
            "error_rate": self.error_rate,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ErrorCounts:
        """Inverse of :meth:`to_dict` (derived keys are ignored)."""
        return cls(
            n_sent=d["n_sent"], n_ref=d["n_ref"], corr=d["corr"], sub=d["sub"], del_=d["del"], ins=d["ins"],
            sent_err=d["sent_err"],
        )


def align(ref: Sequence[str], hyp: Sequence[str]) -> ErrorCounts:
    """Align one utterance's reference and hypothesis tokens with sclite's costs and tie-breaking.

    Rows of the cost grid are filled with numpy: the insertion term of a row is a running minimum,
    ``D[i, j] = min_k (T[k] + INS_COST * (j - k))`` where ``T`` is the best of the substitution and
    deletion moves, so a row costs a few vector operations instead of a Python loop per cell.
    """
    vocab: dict[str, int] = {}
    ref_ids = np.array([vocab.setdefault(t.translate(_ASCII_LOWER), len(vocab)) for t in ref], dtype=np.int64)
    hyp_ids = np.array([vocab.setdefault(t.translate(_ASCII_LOWER), len(vocab)) for t in hyp], dtype=np.int64)
    n, m = len(ref_ids), len(hyp_ids)
    steps = np.arange(m + 1, dtype=np.int64) * INS_COST

    back = np.empty((n + 1, m + 1), dtype=np.int8)
    back[0, :] = _INS
    prev = steps.copy()  # row 0: insert every hypothesis token
    for i in range(1, n + 1):
        sub = prev[:-1] + np.where(hyp_ids == ref_ids[i - 1], 0, SUB_COST)
        dele = prev + DEL_COST
        best_no_ins = dele.copy()
        best_no_ins[1:] = np.minimum(sub, dele[1:])
        row = np.minimum.accumulate(best_no_ins - steps) + steps
        ins = row[:-1] + INS_COST
        choice = np.where(dele[1:] < ins, _DEL, _INS)
        choice[(sub <= dele[1:]) & (sub <= ins)] = _SUB
        back[i, 0] = _DEL
        back[i, 1:] = choice
        prev = row

    counts = ErrorCounts(n_sent=1, n_ref=n)
    i, j = n, m
    while i > 0 or j > 0:
        move = back[i, j]
        if move == _SUB:
            i, j = i - 1, j - 1
            if ref_ids[i] == hyp_ids[j]:
                counts.corr += 1
            else:
                counts.sub += 1
        elif move == _DEL:
            i -= 1
            counts.del_ += 1
        else:
            j -= 1
            counts.ins += 1
    counts.sent_err = int(counts.errors > 0)
    return counts


@functools.cache
def _tokenizer(token_type: str):
    return build_tokenizer(token_type=token_type)


def tokenize(text: str, token_type: str) -> list[str]:
    """Split a transcript into scoring tokens as ESPnet's ``tokenize_text`` does for ``score_{wer,cer}``.

    ``token_type`` is ``"word"`` (split on whitespace) or ``"char"`` (characters, each space written
    as ``<space>``). Runs of whitespace count as one space, as in ESPnet's ``-f 2-`` field handling.
    """
    if token_type not in ("word", "char"):
        raise ValueError(f"token_type must be 'word' or 'char', got {token_type!r}")
    return _tokenizer(token_type).text2tokens(" ".join(text.split()))
