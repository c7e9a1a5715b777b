"""Collapse diagnostics, the pseudo-label length ratio and the collapse alarm."""
from __future__ import annotations

import logging
import math

import pytest
import torch

from softpl.metrics.collapse import (
    CollapseAlarm,
    CollapseDetected,
    length_ratio,
    posterior_stats,
    tokens_per_second,
)

LN2 = math.log(2.0)


def float_stats(*args, **kwargs) -> dict[str, float]:
    return {name: float(value) for name, value in posterior_stats(*args, **kwargs).items()}


def _log(probs: list) -> torch.Tensor:
    """log of a nested list of frame distributions (zeros become -inf, as real log-softmax never quite does)."""
    return torch.tensor(probs, dtype=torch.float32).log()


def test_blank_only_model_has_full_blank_rate_and_no_information() -> None:
    log_probs = _log([[[1.0, 0.0, 0.0]] * 4] * 2)
    stats = float_stats(log_probs, torch.tensor([4, 3]))
    assert stats == pytest.approx(
        {"blank_rate": 1.0, "blank_prob": 1.0, "frame_entropy": 0.0, "marginal_entropy": 0.0, "mi_proxy": 0.0}
    )


def test_uniform_frames_have_max_entropy_and_zero_mi() -> None:
    log_probs = torch.full((1, 3, 4), math.log(0.25))
    stats = float_stats(log_probs, torch.tensor([3]))
    assert stats["blank_prob"] == pytest.approx(0.25)
    assert stats["frame_entropy"] == pytest.approx(math.log(4))
    assert stats["marginal_entropy"] == pytest.approx(math.log(4))
    assert stats["mi_proxy"] == pytest.approx(0.0, abs=1e-6)


def test_two_distinct_one_hot_frames_give_mi_log2() -> None:
    log_probs = _log([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    stats = float_stats(log_probs, torch.tensor([2]))
    assert stats["blank_rate"] == 0.0
    assert stats["blank_prob"] == 0.0
    assert stats["frame_entropy"] == pytest.approx(0.0)
    assert stats["marginal_entropy"] == pytest.approx(LN2)
    assert stats["mi_proxy"] == pytest.approx(LN2)


def test_padding_is_ignored_and_mixed_frames_match_hand_values() -> None:
    # utt 0 keeps 1 of 3 frames, utt 1 keeps 1; padding is NaN so any leak would show.
    nan = float("nan")
    log_probs = _log(
        [
            [[0.5, 0.25, 0.25], [nan, nan, nan], [nan, nan, nan]],
            [[0.0, 0.0, 1.0], [nan, nan, nan], [nan, nan, nan]],
        ]
    )
    stats = float_stats(log_probs, torch.tensor([1, 1]))
    # H([.5,.25,.25]) = 1.5 ln2, H(one-hot) = 0; mean p = [.25, .125, .625]
    marginal = 0.875 * LN2 + 0.625 * math.log(1.6)
    assert stats["blank_rate"] == pytest.approx(0.5)
    assert stats["blank_prob"] == pytest.approx(0.25)
    assert stats["frame_entropy"] == pytest.approx(0.75 * LN2)
    assert stats["marginal_entropy"] == pytest.approx(marginal)
    assert stats["mi_proxy"] == pytest.approx(marginal - 0.75 * LN2)
    shifted = float_stats(log_probs, torch.tensor([1, 1]), blank_id=2)
    assert shifted["blank_rate"] == pytest.approx(0.5)
    assert shifted["blank_prob"] == pytest.approx(0.625)


def test_posterior_stats_needs_no_grad_and_returns_scalar_tensors() -> None:
    logits = torch.randn(2, 5, 4, requires_grad=True)
    stats = posterior_stats(logits.log_softmax(-1), torch.tensor([5, 2]))
    assert all(value.shape == () and not value.requires_grad for value in stats.values())
    assert logits.grad is None


def test_posterior_stats_ignore_nan_padding() -> None:
    log_probs = _log([[[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]])
    log_probs[0, 1] = math.nan  # padding may hold anything
    assert float_stats(log_probs, torch.tensor([1]))["frame_entropy"] == pytest.approx(LN2)


@pytest.mark.parametrize(
    ("lengths", "match"),
    [(torch.tensor([0, 0]), "no valid frame"), (torch.tensor([3, 4]), "exceed"), (torch.tensor([3]), r"\(2,\)")],
)
def test_posterior_stats_rejects_bad_lengths(lengths: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        posterior_stats(torch.zeros(2, 3, 4), lengths)


def test_tokens_per_second_and_length_ratio() -> None:
    assert tokens_per_second([[1, 2, 3], [4, 5, 6, 7, 8]], [2.0, 2.0]) == pytest.approx(2.0)
    assert tokens_per_second(["abc", ""], [1.0, 2.0]) == pytest.approx(1.0)
    assert length_ratio(1.0, 4.0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="2 utterances but durations_s has 1"):
        tokens_per_second([[1], [2]], [1.0])
    with pytest.raises(ValueError, match="utterance #1 has duration 0.0"):
        tokens_per_second([[1], [2]], [1.0, 0.0])
    with pytest.raises(ValueError, match="labeled_rate must be positive"):
        length_ratio(1.0, 0.0)


BLANK_ONLY = {"blank_rate": 1.0, "blank_prob": 1.0, "frame_entropy": 0.0, "marginal_entropy": 0.0, "mi_proxy": 0.0}
HEALTHY = {"blank_rate": 0.65, "blank_prob": 0.6, "frame_entropy": 0.4, "marginal_entropy": 2.1, "mi_proxy": 1.7}


def test_blank_only_trips_alarm_after_patience_checks_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    alarm = CollapseAlarm(patience=3)
    with caplog.at_level(logging.WARNING):
        fired = [alarm.update(BLANK_ONLY, step) for step in (10, 20, 30, 40)]
    assert fired == [False, False, True, True]
    assert alarm.fired_step == 30
    assert "blank_rate=1.0000 >= 0.95" in alarm.fired_reason
    assert "mi_proxy=0.0000 <= 0.05" in alarm.fired_reason
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "step 30" in warnings[0].getMessage()


def test_healthy_stats_never_fire_and_a_healthy_check_resets_the_streak() -> None:
    alarm = CollapseAlarm(patience=3)
    assert not any(alarm.update(HEALTHY, step) for step in range(10))
    sequence = [BLANK_ONLY, BLANK_ONLY, HEALTHY, BLANK_ONLY, BLANK_ONLY]
    assert not any(alarm.update(stats, step) for step, stats in enumerate(sequence))
    assert alarm.fired_step is None


def test_stop_action_raises_with_the_step() -> None:
    alarm = CollapseAlarm(patience=2, action="stop")
    assert alarm.update(BLANK_ONLY, 100) is False
    with pytest.raises(CollapseDetected, match=r"step 200: blank_rate=1\.0000 >= 0\.95"):
        alarm.update(BLANK_ONLY, 200)
    assert alarm.fired_step == 200


def test_length_ratio_condition_can_fire_or_be_disabled() -> None:
    short_labels = {**HEALTHY, "length_ratio": 0.2}
    alarm = CollapseAlarm(patience=1)
    assert alarm.update(short_labels, 5)
    assert alarm.fired_reason == "length_ratio=0.2000 <= 0.3"
    assert not CollapseAlarm(patience=1, min_length_ratio=None).update(short_labels, 5)


def test_length_drop_since_pl_start_fires_on_a_creeping_collapse_not_on_a_weak_stable_teacher() -> None:
    # E11's soft run: the length ratio per 200 updates, from PL start; floor 0.75 x 0.978 = 0.7335.
    creeping = [0.978, 0.906, 0.828, 0.731, 0.640, 0.529]
    alarm = CollapseAlarm(patience=2)
    fired = [alarm.update({**HEALTHY, "length_ratio": ratio}, step) for step, ratio in enumerate(creeping)]
    assert fired == [False, False, False, False, True, True] and alarm.fired_step == 4
    assert alarm.fired_reason == "length_ratio=0.6400 <= 0.7335 (0.75 x 0.9780 at PL start)"
    weak_but_stable = [0.70, 0.76, 0.72, 0.71, 0.75]  # E10: a weak seed's short but steady pseudo-labels
    alarm = CollapseAlarm(patience=1)
    assert not any(alarm.update({**HEALTHY, "length_ratio": ratio}, step) for step, ratio in enumerate(weak_but_stable))
    assert not CollapseAlarm(patience=1, max_length_drop=None).update({**HEALTHY, "length_ratio": 0.5}, 1)
    resumed = CollapseAlarm(patience=1)
    resumed.load_state_dict(CollapseAlarm(patience=1).state_dict() | {"start_length_ratio": 1.0})
    assert resumed.update({**HEALTHY, "length_ratio": 0.7}, 9), "the reference survives a resume"


def test_non_finite_stats_count_as_collapse_and_unknown_stats_are_rejected() -> None:
    assert CollapseAlarm(patience=1).update({**HEALTHY, "mi_proxy": float("nan")}, 1)
    with pytest.raises(KeyError, match="none of the monitored keys"):
        CollapseAlarm().update({"loss": 1.0}, 1)


def test_alarm_state_round_trip_resumes_the_streak() -> None:
    before = CollapseAlarm(patience=3)
    before.update(BLANK_ONLY, 1)
    before.update(BLANK_ONLY, 2)
    resumed = CollapseAlarm(patience=3)
    resumed.load_state_dict(before.state_dict())
    assert resumed.update(BLANK_ONLY, 3)
    assert resumed.fired_step == 3
    again = CollapseAlarm(patience=3)
    again.load_state_dict(resumed.state_dict())
    assert (again.fired_step, again.fired_reason, again.consecutive) == (3, resumed.fired_reason, 3)
    with pytest.raises(KeyError, match="fired_reason"):
        again.load_state_dict({"consecutive": 0, "fired_step": None})


@pytest.mark.parametrize(("kwargs", "match"), [({"patience": 0}, "patience"), ({"action": "crash"}, "action"),
                                               ({"max_length_drop": 1.5}, "max_length_drop")])
def test_alarm_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CollapseAlarm(**kwargs)
