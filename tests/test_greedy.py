"""Greedy CTC decoding and the CTC collapse against hand-made paths."""
from __future__ import annotations

import pytest
import torch

from softpl.decode.greedy import collapse_path, collapse_paths, greedy_ctc_decode


def log_probs_for(paths: list[list[int]], vocab_size: int) -> torch.Tensor:
    """(B, T, V) log-posteriors whose per-frame argmax is the given path."""
    logits = 5.0 * torch.nn.functional.one_hot(torch.tensor(paths), vocab_size).float()
    return logits.log_softmax(dim=-1)


def test_greedy_merges_repeats_drops_blanks_and_ignores_padding():
    # utt 0: "1 1 _ 1 2 2" -> 1 1 2 (a blank separates the two 1s)
    # utt 1: "2 _ _ _ | 1 1" with 4 valid frames -> 2 (padding frames must not add a 1)
    # utt 2: all padding -> empty
    log_probs = log_probs_for([[1, 1, 0, 1, 2, 2], [2, 0, 0, 0, 1, 1], [3, 3, 3, 3, 3, 3]], vocab_size=4)
    lengths = torch.tensor([6, 4, 0])
    assert greedy_ctc_decode(log_probs, lengths) == [[1, 1, 2], [2], []]


def test_greedy_with_nonzero_blank_id():
    log_probs = log_probs_for([[3, 1, 1, 3, 3, 2, 0]], vocab_size=4)
    assert greedy_ctc_decode(log_probs, torch.tensor([7]), blank_id=3) == [[1, 2, 0]]


def test_repeat_across_the_padding_boundary_is_not_merged_backwards():
    # the valid part ends on token 2; padding repeats of 2 and new tokens must be ignored
    paths = torch.tensor([[1, 2, 2, 1, 2], [1, 1, 1, 1, 1]])
    assert collapse_paths(paths, torch.tensor([3, 5])) == [[1, 2], [1]]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([0, 0, 1, 1, 0, 1, 2, 2, 0], [1, 1, 2]),
        ([0, 0, 0], []),
        ([], []),
        ([5], [5]),
        ([4, 4, 4, 3, 3, 4], [4, 3, 4]),
    ],
)
def test_collapse_path(path, expected):
    assert collapse_path(torch.tensor(path, dtype=torch.long)) == expected


def test_lengths_beyond_the_padded_frames_name_the_utterance():
    log_probs = log_probs_for([[1, 2], [1, 2]], vocab_size=3)
    with pytest.raises(ValueError, match="utterance 1 .*lengths\\[1\\]=3"):
        greedy_ctc_decode(log_probs, torch.tensor([2, 3]))


def test_wrong_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        greedy_ctc_decode(torch.zeros(2, 3), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        greedy_ctc_decode(torch.zeros(2, 3, 4), torch.tensor([3]))
