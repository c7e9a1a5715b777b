"""Lexicon-constrained CTC beam search with a word n-gram LM: flashlight-text's ``LexiconDecoder`` over KenLM, the
pseudo-transcripts of ``--pl_transcript lexicon_beam``.

Every hypothesis is a sequence of the lexicon's words, each spelled by the model's own tokenizer, scored by the CTC
posteriors plus ``lm_weight`` x the LM's score and ``word_score`` per word. Iterative pseudo-labeling (Xu et al.
2020) labels this way; slimIPL labels greedily. On a closed vocabulary it corrects what a greedy transcript
misspells and what its acoustics leave open (egs/synth_en/EXPERIMENTS.md E23 measures it); on open-vocabulary
speech every word outside the lexicon becomes a wrong one.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from flashlight.lib.text.decoder import (CriterionType, LexiconDecoder, LexiconDecoderOptions, SmearingMode,
                                         Trie)
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

UNKNOWN_WORD = "<unk>"


class LexiconBeamSearch:
    """Beam search of word sequences over a batch of CTC log-posteriors.

    Args:
        words: the lexicon (the only words a transcript can hold).
        spell: a word's token ids under the model's tokenizer (sentencepiece's: with its leading word boundary).
        lm_path: an ARPA file or KenLM binary over (a superset of) ``words``.
        num_tokens: the model's vocabulary size (the posteriors' last dimension).
        blank_id: the CTC blank.
        separator_id: the token between words that no spelling holds (ESPnet's char ``<space>``), or None when
            every spelling carries its own word boundary (sentencepiece's ``▁``).
        lm_weight: weight of the LM's scores, in KenLM's units (log10), as flashlight's and torchaudio's decoders.
        word_score: added per word (a length bonus; negative: a penalty).
        beam_size, beam_threshold: hypotheses kept per frame, and the score margin below the best that is pruned.
    """

    def __init__(self, words: list[str], spell: Callable[[str], list[int]], lm_path: str | Path, *, num_tokens: int,
                 blank_id: int, separator_id: int | None = None, lm_weight: float = 2.3, word_score: float = 0.0,
                 beam_size: int = 50, beam_threshold: float = 25.0):
        if not Path(lm_path).is_file():
            raise FileNotFoundError(f"--pl_lm {lm_path}: no such file; give an ARPA file or a KenLM binary, or "
                                    "--pl_lm lexicon (a bigram of the lexicon's text)")
        self.words = list(words)
        self.num_tokens = num_tokens
        dictionary = Dictionary()
        for word in [*self.words, UNKNOWN_WORD]:
            dictionary.add_entry(word)
        self.lm = KenLM(str(lm_path), dictionary)
        silence = blank_id if separator_id is None else separator_id
        trie = Trie(num_tokens, silence)
        start = self.lm.start(False)
        for index, word in enumerate(self.words):
            spelling = spell(word)
            if spelling:
                trie.insert(spelling, index, self.lm.score(start, index)[1])
        trie.smear(SmearingMode.MAX)
        options = LexiconDecoderOptions(
            beam_size=beam_size, beam_size_token=num_tokens, beam_threshold=beam_threshold, lm_weight=lm_weight,
            word_score=word_score, unk_score=float("-inf"), sil_score=0.0, log_add=False,
            criterion_type=CriterionType.CTC)
        self.decoder = LexiconDecoder(options, trie, self.lm, silence, blank_id, len(self.words), [], False)

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """The best word sequence of each utterance of (B, T, V) log-posteriors with (B,) valid frames."""
        if log_probs.dim() != 3 or log_probs.size(-1) != self.num_tokens:
            raise ValueError(f"log_probs must be (B, T, {self.num_tokens}), got {tuple(log_probs.shape)}")
        texts = []
        for emissions, length in zip(log_probs.detach().float().cpu(), lengths.tolist()):
            emissions = emissions[:length].contiguous()
            if length == 0:
                texts.append("")
                continue
            best = self.decoder.decode(emissions.data_ptr(), length, self.num_tokens)[0]
            texts.append(" ".join(self.words[i] for i in best.words if 0 <= i < len(self.words)))
        return texts
