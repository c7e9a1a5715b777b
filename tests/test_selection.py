"""--pl_keep_share / --pl_confidence: the most confident share of each pseudo-labeled batch is trained on."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from softpl.pl.lexicon import Lexicon
from softpl.pl.selection import (Selection, frame_max_confidence, keep_most_confident, lexicon_share,
                                 select_rows)


def test_frame_max_confidence_is_the_mean_largest_posterior_over_valid_frames():
    probs = torch.tensor([[[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]],     # 3 frames: (0.9 + 0.6 + 0.5) / 3
                          [[0.2, 0.8], [0.7, 0.3], [0.0, 1.0]]])    # 2 valid frames: (0.8 + 0.7) / 2
    conf = frame_max_confidence(probs.clamp(min=1e-9).log(), torch.tensor([3, 2]))
    assert conf == pytest.approx([2.0 / 3, 0.75])


def test_lexicon_share_counts_known_words():
    assert lexicon_share(["BAD CAB", "BAE CAB", "XYZ", ""], frozenset({"BAD", "CAB"})) == [1.0, 0.5, 0.0, 0.0]


def test_the_most_confident_share_is_kept_rounded_up_and_at_least_one():
    assert keep_most_confident([0.2, 0.9, 0.5, 0.7], 0.5) == [False, True, False, True]
    assert keep_most_confident([0.2, 0.9, 0.5, 0.7], 0.6) == [False, True, True, True]  # ceil(2.4) = 3
    assert keep_most_confident([0.2, 0.9, 0.5], 0.1) == [False, True, False]  # at least one
    assert keep_most_confident([0.5, 0.5, 0.5], 0.34) == [True, True, False]  # ties: the earlier first
    assert keep_most_confident([0.1] * 10, 0.7) == [True] * 7 + [False] * 3  # 0.7 x 10 is 7, not 8
    assert keep_most_confident([0.3, 0.1], 1.0) == [True, True]


def test_lexicon_confidence_ranks_by_known_words_then_frames():
    lexicon = Lexicon(Counter({"BAD": 2, "CAB": 1}))
    selection = Selection(0.5, "lexicon", lexicon)
    # utterance 0: all words known, low frame confidence; 1: half known, high; 2 and 3: all known, 2 surer than 3
    log_probs = torch.log(torch.tensor([[[0.5, 0.5]], [[1.0, 1e-9]], [[0.9, 0.1]], [[0.6, 0.4]]]))
    texts = ["BAD CAB", "BAE CAB", "CAB", "BAD"]
    assert selection.keep(log_probs, torch.ones(4, dtype=torch.long), texts) == [False, False, True, True]
    assert Selection(0.5, "frame_max").keep(log_probs, torch.ones(4, dtype=torch.long), texts) == \
        [False, True, True, False]
    assert not Selection(1.0, "frame_max").active and selection.active


def test_bad_selection_options_are_refused():
    with pytest.raises(ValueError, match=r"--pl_keep_share 0.0 must be in \(0, 1\]"):
        Selection(0.0, "frame_max")
    with pytest.raises(ValueError, match="give --pl_lexicon labeled"):
        Selection(0.5, "lexicon", None)


def test_select_rows_keeps_the_chosen_utterances_and_trims_the_padding():
    speech = torch.arange(3 * 6, dtype=torch.float32).reshape(3, 6)
    batch = {"speech": speech, "speech_lengths": torch.tensor([6, 4, 3]), "pl_features": torch.ones(1)}
    keys, kept, labels = select_rows(["a", "b", "c"], batch, ["la", "lb", "lc"], [False, True, True])
    assert keys == ["b", "c"] and labels == ["lb", "lc"]
    assert torch.equal(kept["speech"], speech[1:, :4]) and kept["speech_lengths"].tolist() == [4, 3]
    assert torch.equal(kept["pl_features"], torch.ones(1))
    assert select_rows(["a"], batch, ["la"], None)[1] is batch
