"""Collapse regularizers: entropy, blank / confidence frame weights, factorized blank loss, marginal prior."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from softpl.losses.regularizers import (
    blank_frame_weights,
    confidence_weights,
    factorized_blank_loss,
    frame_entropy,
    marginal_prior_kl,
    token_prior,
)
from softpl.losses.soft_ctc import soft_cross_entropy

LN2, LN3 = math.log(2.0), math.log(3.0)


def _probs(*frames: list[float]) -> torch.Tensor:
    """One utterance (1, T, V) of the given frame distributions, float64."""
    return torch.tensor([list(frames)], dtype=torch.float64)


def test_entropy_of_uniform_is_log_v_and_of_one_hot_is_zero():
    # frame 0 uniform over V=4 -> ln 4; frame 1 one-hot -> 0; frame 2 is padding (uniform, must not count).
    log_probs = torch.log_softmax(torch.tensor([[[0.0] * 4, [0.0, -1e4, -1e4, -1e4], [0.0] * 4]]), -1)
    assert frame_entropy(log_probs[:, :1], torch.tensor([1])).item() == pytest.approx(math.log(4))
    assert frame_entropy(log_probs[:, 1:2], torch.tensor([1])).item() == pytest.approx(0.0, abs=1e-6)
    # mean over the 2 valid frames: (ln 4 + 0) / 2 = ln 2
    assert frame_entropy(log_probs, torch.tensor([2])).item() == pytest.approx(LN2)


@pytest.mark.parametrize(("beta", "sharpens"), [(0.1, True), (-0.1, False)])
def test_entropy_term_sign(beta, sharpens):
    # One gradient step on beta * H: beta > 0 lowers the entropy, beta < 0 raises it.
    logits = torch.tensor([[[1.0, 0.5, -0.5], [0.2, 0.1, 0.0]]], requires_grad=True)
    lengths = torch.tensor([2])
    before = frame_entropy(torch.log_softmax(logits, -1), lengths)
    (beta * before).backward()
    with torch.no_grad():
        after = frame_entropy(torch.log_softmax(logits - 1.0 * logits.grad, -1), lengths)
    assert (after < before).item() is sharpens


# Teacher frames (V = 3, blank = 0) of one utterance with lengths 3, the last frame padding:
#   (0.6, 0.3, 0.1) blank argmax, max 0.6 | (0.2, 0.7, 0.1) token, max 0.7 | (0.4, 0.1, 0.5) token, max 0.5
Q_FRAMES = _probs([0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.1, 0.5], [0.0, 0.9, 0.1])


@pytest.mark.parametrize(("blank_weight", "expected"), [(0.0, [0.0, 1.0, 1.0, 0.0]), (0.3, [0.3, 1.0, 1.0, 0.0])])
def test_blank_frame_weights(blank_weight, expected):
    weights = blank_frame_weights(Q_FRAMES, torch.tensor([3]), blank_weight=blank_weight)
    assert weights.tolist() == [pytest.approx(expected)]


def test_blank_frame_weights_with_another_blank_id():
    # blank = 2: only frame 2 (argmax 2) is blank-dominated.
    weights = blank_frame_weights(Q_FRAMES, torch.tensor([3]), blank_id=2)
    assert weights.tolist() == [[1.0, 1.0, 0.0, 0.0]]


def test_blank_frame_weights_rejects_weight_above_one():
    with pytest.raises(ValueError, match=r"blank_weight must lie in \[0, 1\]"):
        blank_frame_weights(Q_FRAMES, torch.tensor([3]), blank_weight=2.0)


def test_confidence_weights_are_strictly_above_threshold_on_valid_frames():
    # max q: 0.6, 0.7, 0.5 (not > 0.5), padding 0.9 (ignored)
    assert confidence_weights(Q_FRAMES, torch.tensor([3]), 0.5).tolist() == [[1.0, 1.0, 0.0, 0.0]]
    assert confidence_weights(Q_FRAMES, torch.tensor([3]), 0.65).tolist() == [[0.0, 1.0, 0.0, 0.0]]


# One frame, V = 3, blank = 0: q = (1/2, 1/4, 1/4), p = (1/4, 1/2, 1/4).
Q_ONE, P_ONE = _probs([0.5, 0.25, 0.25]), _probs([0.25, 0.5, 0.25])
# BCE(q_b, p_b) = -(1/2 ln 1/4 + 1/2 ln 3/4) = 2 ln 2 - 1/2 ln 3
# q~ = (1/2, 1/2), p~ = (2/3, 1/3): CE(q~, p~) = -(1/2 ln 2/3 + 1/2 ln 1/3) = ln 3 - 1/2 ln 2
# weighted by 1 - q_b = 1/2: 2 ln 2 - 1/2 ln 3 + 1/2 ln 3 - 1/4 ln 2 = 1.75 ln 2 (the plain soft CE)
# unweighted: 2 ln 2 - 1/2 ln 3 + ln 3 - 1/2 ln 2 = 1.5 ln 2 + 0.5 ln 3
FACTORIZED_WEIGHTED, FACTORIZED_UNWEIGHTED = 1.75 * LN2, 1.5 * LN2 + 0.5 * LN3


@pytest.mark.parametrize(
    ("weight_by_nonblank_mass", "expected"), [(True, FACTORIZED_WEIGHTED), (False, FACTORIZED_UNWEIGHTED)]
)
def test_factorized_blank_loss_hand_value(weight_by_nonblank_mass, expected):
    loss = factorized_blank_loss(
        P_ONE.log(), Q_ONE, torch.tensor([1]), weight_by_nonblank_mass=weight_by_nonblank_mass
    )
    assert loss.item() == pytest.approx(expected)


def test_factorized_blank_loss_follows_blank_id():
    # Move blank to id 2 by reversing the token order: same value.
    loss = factorized_blank_loss(P_ONE.flip(-1).log(), Q_ONE.flip(-1), torch.tensor([1]), blank_id=2)
    assert loss.item() == pytest.approx(FACTORIZED_WEIGHTED)


def test_factorized_blank_loss_with_mass_weighting_equals_soft_ce():
    generator = torch.Generator().manual_seed(1)
    log_probs = torch.log_softmax(torch.randn(2, 3, 5, generator=generator, dtype=torch.float64), -1)
    target = torch.softmax(torch.randn(2, 3, 5, generator=generator, dtype=torch.float64), -1)
    lengths, weights = torch.tensor([3, 2]), torch.tensor([[1.0, 0.0, 0.5], [1.0, 1.0, 0.0]], dtype=torch.float64)
    factorized = factorized_blank_loss(log_probs, target, lengths, frame_weights=weights)
    assert factorized.item() == pytest.approx(soft_cross_entropy(log_probs, target, lengths, weights).item())


@pytest.mark.parametrize("weight_by_nonblank_mass", [True, False])
def test_factorized_blank_loss_has_zero_gradient_when_student_matches_teacher(weight_by_nonblank_mass):
    target = _probs([0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.05, 0.15, 0.8])
    logits = target.log().clone().requires_grad_(True)
    loss = factorized_blank_loss(
        torch.log_softmax(logits, -1), target, torch.tensor([3]), weight_by_nonblank_mass=weight_by_nonblank_mass
    )
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.zeros_like(logits))
    assert loss.item() > 0  # the value is the teacher's entropy terms, not 0: only the gradient vanishes


def test_factorized_blank_loss_ignores_padding():
    # A padding frame of NaN log-probs and a nonsense target: value and gradient as for the valid frame alone.
    nan_frame = torch.full((1, 1, 3), float("nan"), dtype=torch.float64)
    log_probs = torch.cat([P_ONE.log(), nan_frame], 1).requires_grad_(True)
    target = torch.cat([Q_ONE, torch.tensor([[[3.0, -1.0, 0.0]]], dtype=torch.float64)], 1)
    loss = factorized_blank_loss(log_probs, target, torch.tensor([1]), weight_by_nonblank_mass=False)
    loss.backward()
    assert loss.item() == pytest.approx(FACTORIZED_UNWEIGHTED)
    assert log_probs.grad[0, 1].eq(0).all() and not log_probs.grad.isnan().any()


def test_marginal_prior_kl_is_zero_when_batch_marginal_equals_prior():
    # pbar = ((1/2, 1/4, 1/4) + (1/10, 11/20, 7/20)) / 2 = (3/10, 2/5, 3/10)
    log_probs = _probs([0.5, 0.25, 0.25], [0.1, 0.55, 0.35]).log()
    prior = torch.tensor([0.3, 0.4, 0.3], dtype=torch.float64)
    assert marginal_prior_kl(log_probs, torch.tensor([2]), prior).item() == pytest.approx(0.0, abs=1e-12)


def test_marginal_prior_kl_hand_value_ignores_padding():
    # valid frames both (1/2, 1/4, 1/4); prior (1/4, 1/2, 1/4):
    # KL = 1/2 ln 2 + 1/4 ln 1/2 + 1/4 ln 1 = 1/4 ln 2.  The padding frame (one-hot) must not count.
    log_probs = _probs([0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [1.0, 0.0, 0.0]).log()
    prior = torch.tensor([0.25, 0.5, 0.25])
    assert marginal_prior_kl(log_probs, torch.tensor([2]), prior).item() == pytest.approx(0.25 * LN2)


def test_marginal_prior_kl_rejects_a_prior_that_is_not_a_distribution():
    with pytest.raises(ValueError, match="prior must be a probability vector"):
        marginal_prior_kl(P_ONE.log(), torch.tensor([1]), torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match=r"prior must have shape \(V,\) = \(3,\)"):
        marginal_prior_kl(P_ONE.log(), torch.tensor([1]), torch.tensor([0.5, 0.5]))


def test_token_prior_from_sequences_has_the_blank_share_and_count_proportions():
    # V = 4, blank 0; counts 1:1, 2:2, 3:1; +1 smoothing -> 2, 3, 2 (sum 7); non-blank share 1 - 0.6 = 0.4
    prior = token_prior([[1, 2, 2], torch.tensor([3])], 4, blank_share=0.6)
    assert prior.tolist() == pytest.approx([0.6, 0.4 * 2 / 7, 0.4 * 3 / 7, 0.4 * 2 / 7])
    assert prior.sum().item() == pytest.approx(1.0)


def test_token_prior_from_counts_matches_sequences_and_smoothing_zero_leaves_unseen_at_zero():
    prior = token_prior(Counter({1: 3, 3: 1}), 4, blank_share=0.5, smoothing=0.0)
    assert prior.tolist() == pytest.approx([0.5, 0.375, 0.0, 0.125])
    assert token_prior({1: 1, 2: 2, 3: 1}, 4, blank_share=0.6).tolist() == pytest.approx(
        token_prior([[1, 2, 2], [3]], 4, blank_share=0.6).tolist()
    )


def test_token_prior_names_the_sequence_holding_a_blank():
    with pytest.raises(ValueError, match="sequence 1: holds the blank id 0"):
        token_prior([[1, 2], [3, 0]], 4, blank_share=0.6)
    with pytest.raises(ValueError, match=r"sequence 0: token id 4 is outside the vocabulary \[0, 4\)"):
        token_prior([[4]], 4, blank_share=0.6)
    with pytest.raises(ValueError, match=r"blank_share must lie in \[0, 1\)"):
        token_prior([[1]], 4, blank_share=1.0)
