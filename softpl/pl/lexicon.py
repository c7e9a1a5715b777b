"""Pseudo-transcripts made of a lexicon's words (``--pl_lexicon``): each word of a transcript that the lexicon lacks
becomes the lexicon's closest word (character edit distance; among equally close words, the most frequent), or
under ``--pl_transcript lexicon_beam`` a beam search over the lexicon's words with a word LM finds the transcript
(:mod:`softpl.decode.lexicon_beam`).

A word-level prior for closed-vocabulary corpora, the cheapest form of the lexicon a decoder would use: a greedy CTC
transcript's misspellings ("FOGETYOU") are no word of the corpus, and training on them teaches the student the
labeler's spelling errors (egs/synth_en/EXPERIMENTS.md E21 measures what it does to the pseudo-labels' WER). It
assumes that the unlabeled speech uses the lexicon's words: on open-vocabulary speech it turns every new word into a
wrong one.
"""
from __future__ import annotations

import functools
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import editdistance
import torch

from softpl.decode.lexicon_beam import LexiconBeamSearch
from softpl.decode.ngram import read_sentences, write_bigram_arpa


class Lexicon:
    """The words of a text with their counts, and the closest of them to any word."""

    def __init__(self, counts: Counter):
        if not counts:
            raise ValueError("a lexicon needs at least one word")
        self.known = frozenset(counts)
        self.words = sorted(counts, key=lambda word: (-counts[word], word))  # by rank: the most frequent first
        self.by_length: dict[int, list[tuple[int, str]]] = defaultdict(list)  # length -> (rank, word), by rank
        for rank, word in enumerate(self.words):
            self.by_length[len(word)].append((rank, word))
        self._search = functools.lru_cache(maxsize=1 << 16)(self._nearest)  # misspellings recur; memory bounded

    def _nearest(self, word: str) -> str:
        """The word of least (edit distance, rank). Lengths are searched outwards from the word's own: a word whose
        length differs by d is at least d edits away, so the search stops once d exceeds the best distance."""
        best = (len(word) + max(self.by_length), len(self.words))
        best_word = ""
        for delta in range(max(len(word), max(self.by_length)) + 1):
            if delta > best[0]:
                break
            for length in {len(word) - delta, len(word) + delta}:
                for rank, known in self.by_length.get(length, ()):
                    key = (editdistance.eval(word, known), rank)
                    if key < best:
                        best, best_word = key, known
        return best_word

    def closest(self, word: str) -> str:
        """``word`` itself when the lexicon has it, else its closest lexicon word."""
        return word if word in self.known else self._search(word)

    def snap(self, text: str) -> str:
        """``text`` with every word replaced by :meth:`closest`."""
        return " ".join(self.closest(word) for word in text.split())


def read_lexicon(path: str | Path) -> Lexicon:
    """The lexicon of a Kaldi ``text`` file (``<utterance id> <transcript>`` per line): its transcripts' words."""
    counts = Counter(word for words in read_sentences(path) for word in words)
    if not counts:
        raise ValueError(f"--pl_lexicon: {path} holds no words; give a Kaldi text file "
                         "(<utterance id> <transcript> per line), or --pl_lexicon labeled")
    return Lexicon(counts)


def labeled_text(train_data_path_and_name_and_type: list) -> str:
    """``--pl_lexicon labeled``: the labeled set's text, the ``text`` entry of ESPnet's training data options."""
    for path, name, _ in train_data_path_and_name_and_type:
        if name == "text":
            return path
    raise ValueError("--pl_lexicon labeled reads the labeled set's text, but --train_data_path_and_name_and_type "
                     "has no 'text' entry; give --pl_lexicon <Kaldi text file>")


def word_separator(tokenize: Callable[[str], list[int]], word: str) -> int | None:
    """The token a tokenizer puts between two words that neither word's spelling holds (ESPnet's char
    ``<space>``), or None when each spelling carries its own word boundary (sentencepiece's ``▁``)."""
    one, two = tokenize(word), tokenize(f"{word} {word}")
    between = two[len(one):len(two) - len(one)]
    if two[:len(one)] != one or two[len(two) - len(one):] != one or len(between) > 1:
        raise ValueError(f"the tokenizer spells '{word} {word}' as {two}, not twice {one} with at most one token "
                         "between: --pl_transcript lexicon_beam cannot spell the lexicon's words with it")
    return between[0] if between else None


class LexiconTranscripts:
    """The token ids of pseudo-transcripts made of ``--pl_lexicon``'s words: the labeler's transcripts snapped to
    the lexicon, or (``--pl_transcript lexicon_beam``) the lexicon-constrained beam search's best word sequences.

    Args:
        options: CPLTrainerOptions (``pl_lexicon`` a Kaldi text file, ``pl_transcript``, ``pl_lm*``, ``output_dir``).
        tokenize: a text's token ids under the model's tokenizer (also spells the lexicon's words).
        token_list, blank_id: the model's tokens and CTC blank.
    """

    def __init__(self, options, tokenize: Callable[[str], list[int]], token_list: list[str], blank_id: int):
        self.lexicon = read_lexicon(options.pl_lexicon)
        self.tokenize = tokenize
        self.search = None
        if options.pl_transcript == "lexicon_beam":
            lm = options.pl_lm
            if lm == "lexicon":  # every rank writes the same file: each replaces it atomically
                lm = Path(options.output_dir) / "pl_lm_bigram.arpa"
                partial = lm.with_name(f"{lm.name}.{os.getpid()}")
                write_bigram_arpa(read_sentences(options.pl_lexicon), partial)
                os.replace(partial, lm)
            self.search = LexiconBeamSearch(
                self.lexicon.words, tokenize, lm, num_tokens=len(token_list), blank_id=blank_id,
                separator_id=word_separator(tokenize, self.lexicon.words[0]),
                lm_weight=options.pl_lm_weight, word_score=options.pl_word_score, beam_size=options.pl_lm_beam_size)

    def __call__(self, texts: list[str], log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Per utterance, the token ids of its transcript: ``texts`` (the labeler's) snapped, or the beam search's
        over the (B, T, V) log-posteriors with (B,) valid frames."""
        words = self.search(log_probs, lengths) if self.search else [self.lexicon.snap(text) for text in texts]
        return [self.tokenize(text) for text in words]
