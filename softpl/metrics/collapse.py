"""Diagnostics of the soft-label collapse and an alarm that acts on them.

With self-generated frame-level targets a CTC model can drift to input-independent posteriors dominated by one
symbol, usually blank (docs/method.md, 'The collapse'). The statistics here make that drift visible in the training log,
and `CollapseAlarm` turns them into a warning or a stop before compute is wasted on a collapsed run.
"""
from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from espnet2.legacy.nets.pytorch_backend.nets_utils import make_pad_mask

from softpl.checks import require

logger = logging.getLogger(__name__)


@torch.no_grad()
def posterior_stats(log_probs: torch.Tensor, lengths: torch.Tensor, blank_id: int = 0) -> dict[str, torch.Tensor]:
    """Summarise CTC frame posteriors over the valid frames of a batch.

    Args:
        log_probs: (B, T, V) CTC log-posteriors; frames t >= lengths[b] are padding and ignored.
        lengths: (B,) number of valid frames per utterance.
        blank_id: index of the CTC blank.

    Returns 0-dim tensors on the device of ``log_probs`` (no host synchronization: the trainer reads them once
    per labeling, ESPnet's reporter once per step):
        ``blank_rate``: share of frames whose argmax is blank;
        ``blank_prob``: mean p(blank);
        ``frame_entropy``: mean over frames of H(p_t), in nats;
        ``marginal_entropy``: H of the mean of p_t over all valid frames, in nats;
        ``mi_proxy``: marginal_entropy - frame_entropy, a mutual-information proxy that tends to 0 when every frame
        gets the same distribution, whatever the input.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    batch, frames, vocab = log_probs.shape
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must be ({batch},) to match log_probs, got shape {tuple(lengths.shape)}")
    if not 0 <= blank_id < vocab:
        raise ValueError(f"blank_id {blank_id} is outside the vocabulary of size {vocab}")
    require(lengths.max() <= frames, lambda: f"lengths {lengths.tolist()} exceed the {frames} frames of log_probs",
            "lengths exceed the frames of log_probs")
    lengths = lengths.to(log_probs.device)
    require(lengths.max() > 0,
            lambda: f"no valid frame in the batch (lengths={lengths.tolist()}): cannot compute posterior stats",
            "no valid frame in the batch")
    valid = ~make_pad_mask(lengths, maxlen=frames)  # (B, T)
    num_valid = valid.sum()
    # Padding frames set to 0 (not masked out by indexing, which would wait for the GPU); entr(0) = 0.
    probs = torch.where(valid.unsqueeze(-1), log_probs.float().exp(), 0.0)  # (B, T, V)
    frame_entropy = torch.special.entr(probs).sum() / num_valid
    marginal_entropy = torch.special.entr(probs.sum((0, 1)) / num_valid).sum()
    return {
        "blank_rate": ((probs.argmax(-1) == blank_id) & valid).sum() / num_valid,
        "blank_prob": probs[..., blank_id].sum() / num_valid,
        "frame_entropy": frame_entropy,
        "marginal_entropy": marginal_entropy,
        "mi_proxy": marginal_entropy - frame_entropy,
    }


def tokens_per_second(token_seqs: Sequence[Sequence[Any]], durations_s: Sequence[float]) -> float:
    """Total tokens over total audio seconds, the rate compared between pseudo-labels and labeled transcripts.

    Args:
        token_seqs: one token sequence (ids or symbols) per utterance.
        durations_s: the matching utterance durations in seconds.
    """
    if len(token_seqs) != len(durations_s):
        raise ValueError(
            f"token_seqs has {len(token_seqs)} utterances but durations_s has {len(durations_s)}: pass one "
            "duration per token sequence, in the same order"
        )
    for index, duration in enumerate(durations_s):
        if not duration > 0:
            raise ValueError(
                f"utterance #{index} has duration {duration} s; durations must be positive (check utt2dur)"
            )
    if not token_seqs:
        raise ValueError("no utterances given: cannot compute tokens per second")
    return sum(len(seq) for seq in token_seqs) / sum(durations_s)


def length_ratio(pl_rate: float, labeled_rate: float) -> float:
    """Pseudo-label tokens per second relative to labeled data; far below 1 means pseudo-labels are shrinking."""
    if not labeled_rate > 0:
        raise ValueError(f"labeled_rate must be positive tokens per second, got {labeled_rate}")
    return pl_rate / labeled_rate


class CollapseDetected(RuntimeError):
    """Raised by a `CollapseAlarm` with action "stop" when the collapse conditions held for `patience` checks."""


class CollapseAlarm:
    """Fires when the posterior statistics look collapsed for `patience` consecutive checks.

    A check is "collapsed" when any of these hold on the stats given to `update`:

    - ``blank_rate >= max_blank_rate`` (default 0.95): nearly every frame's argmax is blank, so greedy
      pseudo-labels are empty. Healthy letter CTC sits around 0.6-0.7.
    - ``mi_proxy <= min_mi_proxy`` (default 0.05 nats): frames all get about the same distribution, i.e. the
      posteriors no longer depend on the input.
    - ``length_ratio <= min_length_ratio`` (default 0.3): pseudo-labels carry under 30 % of the tokens per second of
      the labeled transcripts.
    - ``length_ratio <= (1 - max_length_drop) x`` the first length ratio the alarm saw (default drop 0.25): the
      pseudo-labels have shrunk by a quarter since pseudo-labeling started. A collapse that creeps towards blank
      (EXPERIMENTS.md E11: 0.98 -> 0.53 in 1,000 updates while dev CER doubles) crosses this long before the absolute
      floors; a weak but stable teacher (a low ratio from the start, 0.70-0.76 in E10) does not.

    A stat missing from the dict (e.g. the length ratio when not computed on that check) is not tested; a threshold
    set to None disables its condition. A non-finite stat (NaN/inf posteriors) counts as collapsed. One healthy check
    resets the count.

    When the alarm fires, ``action="warn"`` logs one warning with the numbers (only at the first firing) and
    ``action="stop"`` raises `CollapseDetected` with the numbers and the step. `fired_step` and `fired_reason` keep
    the first firing; `state_dict` / `load_state_dict` carry the count and that record across a resume.
    """

    def __init__(
        self,
        max_blank_rate: float | None = 0.95,
        min_mi_proxy: float | None = 0.05,
        min_length_ratio: float | None = 0.3,
        max_length_drop: float | None = 0.25,
        patience: int = 3,
        action: Literal["warn", "stop"] = "warn",
    ) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1 consecutive checks, got {patience}")
        if max_length_drop is not None and not 0 < max_length_drop < 1:
            raise ValueError(f"max_length_drop must be a fraction in (0, 1), got {max_length_drop}")
        if action not in ("warn", "stop"):
            raise ValueError(f'action must be "warn" or "stop", got {action!r}')
        self.max_blank_rate = max_blank_rate
        self.min_mi_proxy = min_mi_proxy
        self.min_length_ratio = min_length_ratio
        self.max_length_drop = max_length_drop
        self.start_length_ratio: float | None = None  # the first finite length ratio seen: the drop's reference
        self.patience = patience
        self.action = action
        self.consecutive = 0
        self.fired_step: int | None = None
        self.fired_reason: str | None = None

    def _violations(self, stats: Mapping[str, float]) -> list[str]:
        """Describe each collapse condition that holds for `stats`, e.g. "blank_rate=0.9800 >= 0.95"."""
        checks = (
            ("blank_rate", self.max_blank_rate, ">=", operator.ge),
            ("mi_proxy", self.min_mi_proxy, "<=", operator.le),
            ("length_ratio", self.min_length_ratio, "<=", operator.le),
        )
        if not any(name in stats for name, limit, _, _ in checks if limit is not None):
            raise KeyError(
                f"stats {sorted(stats)} contain none of the monitored keys blank_rate, mi_proxy, length_ratio; "
                "pass the dict from posterior_stats (plus length_ratio if known)"
            )
        violations = []
        for name, limit, sign, holds in checks:
            if limit is None or name not in stats:
                continue
            value = float(stats[name])
            if not math.isfinite(value) or holds(value, limit):
                violations.append(f"{name}={value:.4f} {sign} {limit}")
        if self.max_length_drop is not None and "length_ratio" in stats and self.start_length_ratio is not None:
            value, floor = float(stats["length_ratio"]), (1 - self.max_length_drop) * self.start_length_ratio
            if math.isfinite(value) and value <= floor:
                violations.append(f"length_ratio={value:.4f} <= {floor:.4f} ({1 - self.max_length_drop:g} x "
                                  f"{self.start_length_ratio:.4f} at PL start)")
        return violations

    def update(self, stats: Mapping[str, float], step: int) -> bool:
        """Record one check at training `step`; return True while collapse has held for `patience` checks."""
        violations = self._violations(stats)
        if self.start_length_ratio is None and math.isfinite(float(stats.get("length_ratio", math.nan))):
            self.start_length_ratio = float(stats["length_ratio"])
        self.consecutive = self.consecutive + 1 if violations else 0
        if self.consecutive < self.patience:
            return False
        message = (
            f"pseudo-label collapse at step {step}: {', '.join(violations)} for {self.consecutive} consecutive "
            f"checks (patience {self.patience})"
        )
        if self.fired_step is None:
            self.fired_step = step
            self.fired_reason = ", ".join(violations)
            if self.action == "warn":
                logger.warning("%s; stats: %s", message, dict(stats))
        if self.action == "stop":
            raise CollapseDetected(f"{message}; stats: {dict(stats)}")
        return True

    def state_dict(self) -> dict[str, Any]:
        """Counters needed to resume exactly: the current streak, the first firing, the length-drop reference."""
        return {"consecutive": self.consecutive, "fired_step": self.fired_step, "fired_reason": self.fired_reason,
                "start_length_ratio": self.start_length_ratio}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the counters saved by `state_dict`."""
        missing = {"consecutive", "fired_step", "fired_reason"} - set(state)
        if missing:
            raise KeyError(f"collapse alarm state lacks {sorted(missing)}; was it saved by CollapseAlarm.state_dict?")
        self.consecutive = int(state["consecutive"])
        self.fired_step = state["fired_step"]
        self.fired_reason = state["fired_reason"]
        self.start_length_ratio = state.get("start_length_ratio")  # absent in states saved before the drop test


ALARM_INPUTS = ("pl_blank_rate", "pl_mi_proxy", "pl_length_ratio")


def alarm_inputs(diag: Mapping[str, list[float]], reduce_sum: Callable[[torch.Tensor], None]) -> dict[str, float]:
    """The collapse alarm's inputs for one report: means over the labelings of every rank since the last report.

    Under DDP each rank labels its own shard; with its own statistics one rank could stop while the others
    wait for it in the next all-reduce. Sums and counts are reduced over ranks (``reduce_sum``, a collective
    called by every rank at every report), so every rank feeds its alarm the same numbers and acts alike.
    """
    totals = torch.tensor([[sum(diag.get(key, [])), len(diag.get(key, []))] for key in ALARM_INPUTS],
                          dtype=torch.float64)
    reduce_sum(totals)
    return {key.removeprefix("pl_"): total / count
            for key, (total, count) in zip(ALARM_INPUTS, totals.tolist()) if count > 0}
