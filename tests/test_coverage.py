"""Coverage of the unlabeled set (softpl.pl.coverage): shares of utterances and audio labeled, planned labelings."""
from __future__ import annotations

import math

from softpl.pl.coverage import Coverage, planned_labelings


def test_planned_labelings_are_the_first_fill_and_one_per_refresh():
    assert planned_labelings(480, cache_size=50, refresh_prob=0.2) == 50 + 0.2 * 430  # the old default: 136
    assert planned_labelings(480, cache_size=100, refresh_prob=0.25) == 195  # egs/synth_en R1: its 194 batches
    assert planned_labelings(30, cache_size=50, refresh_prob=0.2) == 50  # a run shorter than the first fill


def test_coverage_counts_each_utterance_once_by_number_and_by_audio():
    coverage = Coverage({"a": 100, "b": 300, "c": 600, "d": 0})
    coverage.add(["a", "b"])
    coverage.add(["b", "c"])  # b labeled again: counted once
    assert coverage.shares() == {"pl_coverage": 0.75, "pl_coverage_audio": 1.0}
    restored = Coverage(coverage.lengths)
    restored.load_state_dict(coverage.state_dict())
    assert restored.shares() == coverage.shares() and coverage.state_dict() == ["a", "b", "c"]
    assert math.isnan(Coverage({"x": 0}).shares()["pl_coverage_audio"])  # no lengths known: no audio share
