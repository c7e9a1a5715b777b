"""A word bigram language model estimated from a text and written as an ARPA file: the LM of ``--pl_transcript
lexicon_beam`` when none is given (``--pl_lm lexicon``). Any ARPA file or KenLM binary (KenLM's ``lmplz``) can
replace it.

Interpolated absolute discounting (Ney, Essen and Kneser 1994) with discount D: for a history h seen c(h) times
with N(h) distinct successors, p(w | h) = max(c(h, w) - D, 0) / c(h) + D N(h) / c(h) p(w), where p(w) = c(w) / N
is the unigram over the words and ``</s>``. The ARPA file stores the interpolated probability of every seen bigram
and the backoff weight D N(h) / c(h) of every history, so an unseen bigram gets exactly the interpolation's
remainder and every history's distribution sums to one.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

BOS, EOS = "<s>", "</s>"


def read_sentences(path: str | Path) -> list[list[str]]:
    """The transcripts of a Kaldi ``text`` file (``<utterance id> <transcript>`` per line) as word lists."""
    with open(path, encoding="utf-8") as f:
        return [words for words in (line.split()[1:] for line in f) if words]


def bigram_probabilities(sentences: Iterable[list[str]], discount: float = 0.75):
    """(unigram, bigram, backoff): natural probabilities of the discounted bigram model of ``sentences``.

    ``unigram`` maps every word and ``</s>`` to p(w); ``bigram`` maps (h, w) to p(w | h) for every seen pair (h
    is a word or ``<s>``); ``backoff`` maps every history to its weight D N(h) / c(h)."""
    if not 0.0 < discount < 1.0:
        raise ValueError(f"the bigram's discount must be in (0, 1), got {discount}")
    unigram_counts: Counter = Counter()
    successors: dict[str, Counter] = defaultdict(Counter)
    for words in sentences:
        for history, word in zip([BOS, *words], [*words, EOS]):
            unigram_counts[word] += 1
            successors[history][word] += 1
    if not successors:
        raise ValueError("a bigram language model needs at least one sentence")
    total = sum(unigram_counts.values())
    unigram = {word: count / total for word, count in unigram_counts.items()}
    bigram, backoff = {}, {}
    for history, counts in successors.items():
        seen = sum(counts.values())
        backoff[history] = discount * len(counts) / seen
        for word, count in counts.items():
            bigram[history, word] = (count - discount) / seen + backoff[history] * unigram[word]
    return unigram, bigram, backoff


def write_bigram_arpa(sentences: Iterable[list[str]], path: str | Path, discount: float = 0.75) -> None:
    """Write the discounted bigram model of ``sentences`` (word lists) to ``path`` in ARPA format."""
    unigram, bigram, backoff = bigram_probabilities(sentences, discount)
    lines = ["\\data\\", f"ngram 1={len(unigram) + 1}", f"ngram 2={len(bigram)}", "", "\\1-grams:",
             f"-99\t{BOS}\t{math.log10(backoff[BOS]):.7f}"]  # <s> is only ever a history
    for word in sorted(unigram):
        weight = f"\t{math.log10(backoff[word]):.7f}" if word in backoff else ""
        lines.append(f"{math.log10(unigram[word]):.7f}\t{word}{weight}")
    lines += ["", "\\2-grams:"]
    lines += [f"{math.log10(p):.7f}\t{history} {word}" for (history, word), p in sorted(bigram.items())]
    lines += ["", "\\end\\", ""]
    Path(path).write_text("\n".join(lines), encoding="utf-8")
