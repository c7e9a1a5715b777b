"""--pl_transcript lexicon_beam: the bigram LM written as ARPA (softpl.decode.ngram), the lexicon-constrained CTC
beam search over it (softpl.decode.lexicon_beam) and its use by the labeler (softpl.pl.lexicon)."""
from __future__ import annotations

import argparse
import math

import pytest
import torch
from espnet2.train.preprocessor import CommonPreprocessor
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

from cpl_data import TOKENS
from softpl.decode.lexicon_beam import LexiconBeamSearch
from softpl.decode.ngram import bigram_probabilities, read_sentences, write_bigram_arpa
from softpl.pl.labeler import text_tokenizer
from softpl.pl.lexicon import LexiconTranscripts, word_separator

SENTENCES = [["A", "B"], ["A"]]


def test_bigram_probabilities_by_hand():
    """Counts: A 2, B 1, </s> 2 (of 5); <s> -> A twice; A -> B once, A -> </s> once; B -> </s> once. D = 0.75."""
    unigram, bigram, backoff = bigram_probabilities(SENTENCES, discount=0.75)
    assert unigram == pytest.approx({"A": 0.4, "B": 0.2, "</s>": 0.4})
    assert backoff == pytest.approx({"<s>": 0.375, "A": 0.75, "B": 0.75})
    assert bigram[("<s>", "A")] == pytest.approx(1.25 / 2 + 0.375 * 0.4)
    assert bigram[("A", "B")] == pytest.approx(0.25 / 2 + 0.75 * 0.2)
    assert bigram[("A", "</s>")] == pytest.approx(0.25 / 2 + 0.75 * 0.4)
    for history in backoff:  # seen successors plus the backed-off remainder: one
        seen = {w: p for (h, w), p in bigram.items() if h == history}
        total = sum(seen.values()) + backoff[history] * sum(p for w, p in unigram.items() if w not in seen)
        assert total == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one sentence"):
        bigram_probabilities([])


def test_the_arpa_file_scores_as_the_model_through_kenlm(tmp_path):
    text = tmp_path / "text"
    text.write_text("u1 A B\nu2 A\n\n")
    assert read_sentences(text) == SENTENCES
    arpa = tmp_path / "lm.arpa"
    write_bigram_arpa(read_sentences(text), arpa)
    words = Dictionary()
    for word in ("A", "B", "<unk>"):
        words.add_entry(word)
    lm = KenLM(str(arpa), words)
    start = lm.start(False)
    after_a, score_a = lm.score(start, 0)
    assert score_a == pytest.approx(math.log10(0.775), abs=1e-5)
    assert lm.score(after_a, 1)[1] == pytest.approx(math.log10(0.275), abs=1e-5)  # seen: A B
    assert lm.score(after_a, 0)[1] == pytest.approx(math.log10(0.75 * 0.4), abs=1e-5)  # unseen: A A backs off
    assert lm.finish(after_a)[1] == pytest.approx(math.log10(0.425), abs=1e-5)


def sentencepiece_spell(word: str) -> list[int]:
    """Spellings as a sentencepiece character model gives them: the word boundary first."""
    return [TOKENS.index("▁")] + [TOKENS.index(c) for c in word]


def posteriors(frames: list[dict[str, float]]) -> torch.Tensor:
    """(1, T, V) log-posteriors: each frame's listed tokens get their probabilities, the rest share what is left."""
    log_probs = torch.empty(1, len(frames), len(TOKENS))
    for t, probs in enumerate(frames):
        rest = (1.0 - sum(probs.values())) / (len(TOKENS) - len(probs))
        row = torch.full((len(TOKENS),), math.log(rest))
        for token, p in probs.items():
            row[TOKENS.index(token)] = math.log(p)
        log_probs[0, t] = row
    return log_probs


def search(tmp_path, sentences, **kwargs) -> LexiconBeamSearch:
    arpa = tmp_path / "lm.arpa"
    write_bigram_arpa(sentences, arpa)
    words = sorted({w for s in sentences for w in s})
    return LexiconBeamSearch(words, sentencepiece_spell, arpa, num_tokens=len(TOKENS), blank_id=0, **kwargs)


def test_the_search_spells_only_lexicon_words_where_greedy_misspells(tmp_path):
    """Greedy reads "BAE" (E at 0.5 beats D at 0.4); no lexicon word is BAE: the closest path is BAD's."""
    log_probs = posteriors([{"▁": 0.9}, {"B": 0.9}, {"A": 0.9}, {"E": 0.5, "D": 0.4}, {"<blank>": 0.9}])
    decode = search(tmp_path, [["BAD"], ["BEE"], ["CAB"]], lm_weight=0.0)
    assert decode(log_probs, torch.tensor([5])) == ["BAD"]
    assert decode(log_probs, torch.tensor([0])) == [""]
    with pytest.raises(ValueError, match=r"log_probs must be \(B, T, 9\)"):
        decode(log_probs[..., :5], torch.tensor([5]))


def test_the_lm_decides_what_the_acoustics_leave_open(tmp_path):
    """"CAB" then a word whose last letter is D or B at even odds: the bigram picks the one it saw after CAB."""
    frames = [{"▁": 0.9}, {"C": 0.9}, {"A": 0.9}, {"B": 0.9}, {"▁": 0.9}, {"B": 0.9}, {"A": 0.9},
              {"D": 0.45, "B": 0.45}]
    log_probs = posteriors(frames)
    after_cab_bad = [["CAB", "BAD"]] * 3 + [["BAB", "CAB"]] * 3
    after_cab_bab = [["CAB", "BAB"]] * 3 + [["BAD", "CAB"]] * 3
    assert search(tmp_path, after_cab_bad)(log_probs, torch.tensor([8])) == ["CAB BAD"]
    assert search(tmp_path, after_cab_bab)(log_probs, torch.tensor([8])) == ["CAB BAB"]


def test_a_word_separator_token_is_found_from_the_tokenizer():
    char_with_space = CommonPreprocessor(train=True, token_type="char", token_list=TOKENS, space_symbol="▁")
    tokenize = text_tokenizer(argparse.Namespace(dataset=argparse.Namespace(preprocess=char_with_space)), "test")
    assert word_separator(tokenize, "BAD") == TOKENS.index("▁")  # B A D ▁ B A D
    assert word_separator(sentencepiece_spell_text, "BAD") is None  # ▁ B A D ▁ B A D
    with pytest.raises(ValueError, match="cannot spell the lexicon's words"):
        word_separator(lambda text: [1] * len(text) ** 2, "BAD")


def sentencepiece_spell_text(text: str) -> list[int]:
    return [token for word in text.split() for token in sentencepiece_spell(word)]


def test_the_labeler_writes_the_bigram_and_labels_with_the_search(tmp_path):
    """LexiconTranscripts under lexicon_beam: the bigram of the lexicon's text in the output dir; the beam's words
    replace the greedy text, tokenized; a missing LM file is named."""
    text = tmp_path / "text"
    text.write_text("u1 BAD CAB\nu2 BEE\n")
    options = argparse.Namespace(pl_lexicon=str(text), pl_transcript="lexicon_beam", pl_lm="lexicon",
                                 pl_lm_weight=2.3, pl_word_score=0.0, pl_lm_beam_size=10, output_dir=str(tmp_path))
    transcripts = LexiconTranscripts(options, sentencepiece_spell_text, TOKENS, blank_id=0)
    assert (tmp_path / "pl_lm_bigram.arpa").read_text().startswith("\\data\\\nngram 1=5\nngram 2=")
    log_probs = posteriors([{"▁": 0.9}, {"B": 0.9}, {"A": 0.9}, {"E": 0.5, "D": 0.4}, {"<blank>": 0.9}])
    assert transcripts(["BAE"], log_probs, torch.tensor([5])) == [sentencepiece_spell_text("BAD")]
    options.pl_transcript = "greedy"  # snapping: BAE is one edit from BAD and from BEE; BAD is as frequent, first
    assert LexiconTranscripts(options, sentencepiece_spell_text, TOKENS, 0)(["BAE"], log_probs, None) == [
        sentencepiece_spell_text("BAD")]
    options.pl_transcript, options.pl_lm = "lexicon_beam", str(tmp_path / "missing.arpa")
    with pytest.raises(FileNotFoundError, match="missing.arpa: no such file"):
        LexiconTranscripts(options, sentencepiece_spell_text, TOKENS, 0)


def test_lexicon_beam_without_a_lexicon_is_refused():
    from softpl.tasks.cpl_asr import CPLASRTask
    from softpl.train.cpl_trainer import CPLTrainer

    args = CPLASRTask.get_parser().parse_args(["--pl_transcript", "lexicon_beam", "--output_dir", "unused"])
    with pytest.raises(ValueError, match="lexicon_beam searches over the words of --pl_lexicon"):
        CPLTrainer.build_options(args)
