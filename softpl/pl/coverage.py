"""Coverage of the unlabeled set: which of a rank's unlabeled utterances pseudo-labeling has labeled at least once.

A cache too small, a refresh too rare or a continuation too short for its unlabeled set leaves most of the set
unused; this is where that shows (``pl_coverage``, ``pl_coverage_audio``). :func:`planned_labelings` says
beforehand how many batches a run will label.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable


def planned_labelings(unlabeled_updates: int, cache_size: int, refresh_prob: float) -> float:
    """Batches a run labels in ``unlabeled_updates`` (fixed refresh, in expectation): the C of the first fill, then
    one per refresh, which each later update draws with probability p."""
    return cache_size + refresh_prob * max(unlabeled_updates - cache_size, 0)


def log_planned_coverage(unlabeled_updates: int, cache_size: int, refresh_prob: float, batches: int) -> None:
    """Say how many of a rank's ``batches`` unlabeled batches the rest of the run will label; a warning when it is
    fewer than all of them (a cache too small, a refresh too rare or a run too short for the unlabeled set)."""
    labelings = planned_labelings(unlabeled_updates, cache_size, refresh_prob)
    log = logging.info if labelings >= batches else logging.warning
    log("this run's %d unlabeled updates will label about %.0f batches of the %d unlabeled ones (%.0f %% of the "
        "set)%s", unlabeled_updates, labelings, batches, 100 * min(labelings / batches, 1.0),
        "" if labelings >= batches else ": raise pl_cache_size or pl_refresh_prob, or train longer, to reach all")


class Coverage:
    """The utterances of a shard labeled at least once, and their share of the shard's utterances and audio.

    Args:
        lengths: every utterance of the shard with its length (samples or frames; 0 where unknown).
    """

    def __init__(self, lengths: dict[str, int]) -> None:
        self.lengths = lengths
        self.total_length = sum(lengths.values())
        self.labeled: set[str] = set()
        self.labeled_length = 0

    def add(self, keys: Iterable[str]) -> None:
        """Count the utterances of a freshly labeled batch."""
        new = [key for key in keys if key not in self.labeled]
        self.labeled.update(new)
        self.labeled_length += sum(self.lengths.get(key, 0) for key in new)

    def shares(self) -> dict[str, float]:
        """Shares of the shard's utterances, and of their audio, labeled so far."""
        return {"pl_coverage": len(self.labeled) / max(len(self.lengths), 1),
                "pl_coverage_audio": self.labeled_length / self.total_length if self.total_length else math.nan}

    def state_dict(self) -> list[str]:
        return sorted(self.labeled)

    def load_state_dict(self, keys: list[str]) -> None:
        self.labeled, self.labeled_length = set(), 0
        self.add(keys)
