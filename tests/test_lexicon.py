"""--pl_lexicon: pseudo-transcripts' words outside the lexicon become its closest word (softpl.pl.lexicon)."""
from __future__ import annotations

import argparse
from collections import Counter

import pytest
import torch

from cpl_data import TOKENS
from softpl.pl.lexicon import Lexicon, LexiconTranscripts, labeled_text, read_lexicon


def test_a_known_word_stays_and_an_unknown_one_becomes_the_closest():
    lexicon = Lexicon(Counter({"THE": 5, "DIFFERENCE": 1, "FORGET": 1, "YOU": 3}))
    assert lexicon.closest("THE") == "THE"
    assert lexicon.closest("DIFERENCE") == "DIFFERENCE"  # one deletion away
    assert lexicon.snap("THE  DIFERENCE FORGOT YOU") == "THE DIFFERENCE FORGET YOU"
    assert lexicon.snap("") == ""


def test_among_equally_close_words_the_more_frequent_wins():
    assert Lexicon(Counter({"BAD": 2, "BEE": 1})).closest("BAE") == "BAD"
    assert Lexicon(Counter({"BAD": 1, "BEE": 2})).closest("BAE") == "BEE"


def test_the_search_by_length_finds_what_a_search_of_every_word_finds():
    """The search stops at lengths that cannot be closer; it must agree with min over the whole lexicon by
    (edit distance, rank), ties included."""
    import random

    import editdistance

    rng = random.Random(0)
    letters = "ABCDE"
    counts = Counter({"".join(rng.choices(letters, k=rng.randint(1, 7))): rng.randint(1, 5) for _ in range(300)})
    lexicon = Lexicon(counts)
    for _ in range(500):
        word = "".join(rng.choices(letters, k=rng.randint(1, 10)))
        expected = min(enumerate(lexicon.words), key=lambda pair: (editdistance.eval(word, pair[1]), pair[0]))[1]
        assert lexicon.closest(word) == (word if word in counts else expected)


def test_a_lexicon_is_read_from_a_kaldi_text_file(tmp_path):
    text = tmp_path / "text"
    text.write_text("u1 THE CAT\nu2 THE DOG\nu3\n")
    lexicon = read_lexicon(text)
    assert lexicon.known == {"THE", "CAT", "DOG"} and lexicon.words[0] == "THE"
    (tmp_path / "empty").write_text("u1\n")
    with pytest.raises(ValueError, match=r"--pl_lexicon: .*empty holds no words"):
        read_lexicon(tmp_path / "empty")


def test_labeled_means_the_text_entry_of_the_training_data():
    assert labeled_text([["a/wav.scp", "speech", "sound"], ["a/text", "text", "text"]]) == "a/text"
    with pytest.raises(ValueError, match="has no 'text' entry"):
        labeled_text([["a/wav.scp", "speech", "sound"]])


def test_pseudo_transcripts_are_snapped_then_tokenized_as_the_labeled_text(tmp_path):
    """SlimIPL's labeling: the greedy transcript "BAE CAB" becomes "BAD CAB" (BAD and BEE are both one edit away;
    BAD is the more frequent), tokenized by the task's own preprocessor."""
    from espnet2.train.preprocessor import CommonPreprocessor

    from softpl.pl.labeler import text_tokenizer
    from softpl.pl.slimipl import SlimIPL

    slimipl = object.__new__(SlimIPL)
    text = tmp_path / "text"
    text.write_text("u1 BAD CAB\nu2 BAD BEE\n")  # BAD twice, BEE and CAB once
    preprocess = CommonPreprocessor(train=True, token_type="char", token_list=TOKENS, space_symbol="▁")
    tokenize = text_tokenizer(argparse.Namespace(dataset=argparse.Namespace(preprocess=preprocess)), "test")
    slimipl.lexicon = LexiconTranscripts(argparse.Namespace(pl_lexicon=str(text), pl_transcript="greedy"), tokenize,
                                         TOKENS, 0)
    model = argparse.Namespace(blank_id=0, ids_to_text=lambda ids: "".join(TOKENS[i] for i in ids).replace("▁", " "))
    path = [4, 0, 3, 7, 7, 2, 5, 3, 0, 4]  # B - A E E ▁ C A - B: greedy "BAE CAB"
    log_probs = torch.full((1, len(path), len(TOKENS)), -10.0)
    log_probs[0, torch.arange(len(path)), torch.tensor(path)] = 0.0
    [label], texts = slimipl._transcribe(model, log_probs, torch.tensor([len(path)]), None, keep_soft=False,
                                         topk=None)
    assert label.tokens == [4, 3, 6, 2, 5, 3, 4] and texts == ["BAE CAB"]  # B A D ▁ C A B; the text before
    slimipl.lexicon = None
    [label], texts = slimipl._transcribe(model, log_probs, torch.tensor([len(path)]), None, keep_soft=False,
                                         topk=None)
    assert label.tokens == [4, 3, 7, 2, 5, 3, 4] and texts is None  # without a lexicon: the greedy one
