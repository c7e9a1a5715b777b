"""Soft CE / KL and frame-level hard CE: hand-computed values, exact logit gradients, padding and frame weights."""
from __future__ import annotations

import math

import pytest
import torch

from softpl.losses.soft_ctc import frame_cross_entropy, soft_cross_entropy, valid_frame_mask

LN2 = math.log(2.0)

# One utterance, T=2, V=3 (blank = 0), probabilities that are powers of 2 so the logs are multiples of ln 2.
# frame 0: q = (1/2, 1/4, 1/4), p = (1/4, 1/2, 1/4)
# frame 1: q = (1, 0, 0),       p = (1/2, 1/4, 1/4)
Q = torch.tensor([[[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]]], dtype=torch.float64)
P = torch.tensor([[[0.25, 0.5, 0.25], [0.5, 0.25, 0.25]]], dtype=torch.float64)
# CE frame 0 = -(1/2 ln 1/4 + 1/4 ln 1/2 + 1/4 ln 1/4) = (1 + 1/4 + 1/2) ln 2 = 1.75 ln 2
# CE frame 1 = -ln 1/2 = ln 2
CE_FRAMES = (1.75 * LN2, LN2)


def _batch_of_two() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (2, 3, 4), teacher posteriors and lengths (3, 2): five valid frames, one padding frame."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, generator=generator, dtype=torch.float64)
    target = torch.softmax(torch.randn(2, 3, 4, generator=generator, dtype=torch.float64), -1)
    target[1, 2] = 0.0
    return logits, target, torch.tensor([3, 2])


def test_valid_frame_mask_marks_frames_below_length():
    mask = valid_frame_mask(torch.tensor([2, 0, 3]), 3)
    assert mask.tolist() == [[True, True, False], [False, False, False], [True, True, True]]


def test_valid_frame_mask_rejects_length_beyond_frames():
    with pytest.raises(ValueError, match=r"batch entries \[1\] are \[4\], outside \[0, 3\]"):
        valid_frame_mask(torch.tensor([3, 4]), 3)


def test_soft_ce_hand_values():
    ce = soft_cross_entropy(P.log(), Q, torch.tensor([2]))
    assert ce.item() == pytest.approx(sum(CE_FRAMES) / 2)  # 1.375 ln 2


def test_gradient_wrt_logits_is_p_minus_q_times_weight_over_valid_frames():
    logits, target, lengths = _batch_of_two()
    weights = torch.tensor([[1.0, 0.5, 0.0], [0.25, 1.0, 0.0]], dtype=torch.float64)
    logits.requires_grad_(True)
    soft_cross_entropy(torch.log_softmax(logits, -1), target, lengths, weights).backward()
    expected = (torch.softmax(logits.detach(), -1) - target) * weights.unsqueeze(-1) / 5  # N = 3 + 2
    expected[1, 2] = 0.0  # padding
    torch.testing.assert_close(logits.grad, expected)


def test_ce_and_kl_have_identical_gradients():
    logits, target, lengths = _batch_of_two()
    grads = []
    for kind in ("ce", "kl"):
        leaf = logits.clone().requires_grad_(True)
        soft_cross_entropy(torch.log_softmax(leaf, -1), target, lengths).backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_padding_frames_change_neither_value_nor_gradient():
    logits, target, lengths = _batch_of_two()
    clean = torch.log_softmax(logits, -1).requires_grad_(True)
    loss_clean = soft_cross_entropy(clean, target, lengths)
    loss_clean.backward()
    garbage_logits, garbage_target = clean.detach().clone(), target.clone()
    garbage_logits[1, 2] = torch.tensor([float("nan"), float("-inf"), 7.0, -3.0])
    garbage_target[1, 2] = torch.tensor([5.0, -1.0, float("nan"), 0.3])
    garbage = garbage_logits.requires_grad_(True)
    loss_garbage = soft_cross_entropy(garbage, garbage_target, lengths)
    loss_garbage.backward()
    assert loss_garbage.item() == pytest.approx(loss_clean.item())
    torch.testing.assert_close(garbage.grad, clean.grad)
    assert garbage.grad[1, 2].eq(0).all()


def test_dropping_a_frame_does_not_rescale_the_others():
    # Weight 0 on frame 1 leaves frame 0 divided by N = 2 valid frames: 1.75 ln 2 / 2, not 1.75 ln 2.
    loss = soft_cross_entropy(P.log(), Q, torch.tensor([2]), torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    assert loss.item() == pytest.approx(CE_FRAMES[0] / 2)


def test_half_weight_halves_that_frame():
    # (1.75 ln 2 + 0.5 * ln 2) / 2 = 1.125 ln 2
    loss = soft_cross_entropy(P.log(), Q, torch.tensor([2]), torch.tensor([[1.0, 0.5]], dtype=torch.float64))
    assert loss.item() == pytest.approx(1.125 * LN2)


def test_soft_ce_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="target_probs must have the shape"):
        soft_cross_entropy(P.log(), Q[:, :1], torch.tensor([2]))
    with pytest.raises(ValueError, match=r"frame_weights must have shape \(B, T\) = \(1, 2\)"):
        soft_cross_entropy(P.log(), Q, torch.tensor([2]), torch.ones(1, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(1,\)"):
        soft_cross_entropy(P.log(), Q, torch.tensor([2, 2]))


def test_frame_cross_entropy_hand_value_ignores_padding_targets():
    # Two utterances; the second has one valid frame, its padding target is -1 (ignored).
    # -ln p[0, 0, 1] = -ln 1/2 = ln 2; -ln p[0, 1, 0] = ln 2; -ln p[1, 0, 2] = -ln 1/4 = 2 ln 2  ->  4 ln 2 / 3
    log_probs = torch.cat([P, P]).log()
    targets = torch.tensor([[1, 0], [2, -1]])
    loss = frame_cross_entropy(log_probs, targets, torch.tensor([2, 1]))
    assert loss.item() == pytest.approx(4 * LN2 / 3)


def test_frame_cross_entropy_gradient_is_p_minus_one_hot_over_n():
    logits, _, lengths = _batch_of_two()
    targets = torch.tensor([[0, 3, 1], [2, 2, 0]])
    logits.requires_grad_(True)
    frame_cross_entropy(torch.log_softmax(logits, -1), targets, lengths).backward()
    expected = (torch.softmax(logits.detach(), -1) - torch.nn.functional.one_hot(targets, 4)) / 5
    expected[1, 2] = 0.0
    torch.testing.assert_close(logits.grad, expected)


def test_frame_cross_entropy_names_the_bad_target():
    with pytest.raises(ValueError, match=r"target_ids\[0, 1\] = 3 is not a token id in \[0, 3\)"):
        frame_cross_entropy(P.log(), torch.tensor([[1, 3]]), torch.tensor([2]))
