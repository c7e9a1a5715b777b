"""slimIPL's dynamic PL cache: filling, reshuffled passes, refresh rate, bookkeeping and exact resume."""
from __future__ import annotations

import math

import pytest
import torch

from softpl.pl.cache import PLCache
from softpl.pl.targets import make_pseudo_labels


def filled(capacity: int, seed: int = 0) -> PLCache:
    cache = PLCache(capacity, seed)
    for slot in range(capacity):
        cache.append(f"batch{slot}", step=0)
    return cache


def unlabeled_step(cache: PLCache, step: int, refresh_prob: float) -> tuple[int, bool, object]:
    """One steady-state update of slimIPL: read a slot, maybe relabel it first, return what was trained on."""
    slot = cache.next_slot()
    entry = cache.get(slot)
    refresh = cache.should_refresh(refresh_prob)
    if refresh:
        cache.replace(slot, f"batch@{step}", step)
    return slot, refresh, entry


def test_filling_phase():
    cache = PLCache(capacity=3, seed=0)
    cache.append("a", step=0)
    assert not cache.is_full and len(cache) == 1
    assert cache.stats(step=0)["pl_cache_fill"] == pytest.approx(1 / 3)
    with pytest.raises(RuntimeError, match=r"still filling \(1/3\)"):
        cache.next_slot()
    cache.append("b", step=1)
    cache.append("c", step=2)
    assert cache.is_full and [cache.get(slot) for slot in range(3)] == ["a", "b", "c"]
    with pytest.raises(RuntimeError, match="full"):
        cache.append("d", step=3)


def test_every_slot_is_read_once_per_pass_in_a_new_order():
    capacity, passes = 7, 6
    cache = filled(capacity)
    reads = [cache.next_slot() for _ in range(capacity * passes)]
    orders = [reads[i : i + capacity] for i in range(0, len(reads), capacity)]
    assert all(sorted(order) == list(range(capacity)) for order in orders)
    assert len({tuple(order) for order in orders}) > 1  # reshuffled between passes
    assert cache.uses == [passes] * capacity


def test_refresh_frequency_matches_p():
    cache = filled(4, seed=5)
    draws = [cache.should_refresh(0.3) for _ in range(20000)]
    assert abs(sum(draws) / len(draws) - 0.3) < 0.01
    moved = [cache.should_refresh(0.6) for _ in range(20000)]  # dynamic refresh moves p from draw to draw
    assert abs(sum(moved) / len(moved) - 0.6) < 0.01


def test_refresh_prob_bounds_are_deterministic():
    cache = filled(2)
    assert not any(cache.should_refresh(0.0) for _ in range(200))
    assert all(cache.should_refresh(1.0) for _ in range(200))
    with pytest.raises(ValueError, match="refresh probability must be in"):
        cache.should_refresh(1.5)


def test_bookkeeping_ages_uses_and_refreshes():
    cache = PLCache(capacity=2, seed=0)
    cache.append("a", step=0)
    cache.append("b", step=3)
    stats = cache.stats(step=10)
    assert stats["pl_cache_mean_age"] == 8.5 and stats["pl_cache_max_age"] == 10.0
    assert stats["pl_cache_mean_uses"] == 0.0 and stats["pl_cache_refreshes"] == 0.0
    assert math.isnan(stats["pl_cache_uses_per_evicted"])
    slot, refresh, entry = unlabeled_step(cache, step=10, refresh_prob=1.0)
    assert refresh and entry in ("a", "b") and cache.get(slot) == "batch@10"
    stats = cache.stats(step=12)
    assert stats["pl_cache_refreshes"] == 1.0 and stats["pl_cache_uses_per_evicted"] == 1.0
    assert stats["pl_cache_mean_uses"] == 0.0  # the fresh entry has not been read yet
    assert sorted(cache.labeled_step) == ([3, 10] if entry == "a" else [0, 10])


def test_each_entry_is_used_about_one_over_p_times():
    cache = filled(5, seed=1)
    for step in range(20000):
        unlabeled_step(cache, step, refresh_prob=0.25)
    stats = cache.stats(step=20000)
    assert stats["pl_cache_refreshes"] == pytest.approx(0.25 * 20000, rel=0.05)
    assert stats["pl_cache_uses_per_evicted"] == pytest.approx(4.0, abs=0.2)  # Geometric(p) mean 1/p


def test_state_dict_round_trip_continues_exactly(tmp_path):
    log_probs = torch.randn(3, 6, 5, generator=torch.Generator().manual_seed(0)).log_softmax(dim=-1)
    labels = make_pseudo_labels(log_probs, torch.tensor([6, 4, 2]), keep_soft=True, topk=2)
    cache = PLCache(capacity=4, seed=11)
    for slot in range(4):
        cache.append({"speech": torch.full((2, 8), float(slot)), "labels": labels}, step=slot)
    for step in range(4, 14):  # stop in the middle of a pass
        unlabeled_step(cache, step, refresh_prob=0.3)
    assert 0 < cache.position < 4
    path = tmp_path / "cache.pth"
    torch.save({"pl_cache": cache.state_dict()}, path)

    resumed = PLCache(capacity=4, seed=999)  # a different seed must not matter
    resumed.load_state_dict(torch.load(path, weights_only=True)["pl_cache"])  # ESPnet resumes weights-only
    assert resumed.stats(step=14) == cache.stats(step=14)
    batches = [slot for slot in range(4) if isinstance(cache.get(slot), dict)]
    assert batches and len(batches) < 4  # both original batches and refreshed entries are restored
    for slot in range(4):
        if slot in batches:
            assert torch.equal(resumed.get(slot)["speech"], cache.get(slot)["speech"])
            assert [label.tokens for label in resumed.get(slot)["labels"]] == [label.tokens for label in labels]
        else:
            assert resumed.get(slot) == cache.get(slot)
    original_run = [unlabeled_step(cache, step, 0.3)[:2] for step in range(14, 60)]
    resumed_run = [unlabeled_step(resumed, step, 0.3)[:2] for step in range(14, 60)]
    assert original_run == resumed_run
    assert any(refresh for _, refresh in original_run) and not all(refresh for _, refresh in original_run)
    assert resumed.stats(step=60) == cache.stats(step=60)


def test_load_state_dict_rejects_a_different_config():
    state = filled(3).state_dict()
    with pytest.raises(ValueError, match="capacity 3, this run asks for 4: resume with the same PL config"):
        PLCache(4, seed=0).load_state_dict(state)


def test_nbytes_counts_tensors_and_labels():
    log_probs = torch.randn(1, 5, 32).log_softmax(dim=-1)
    labels = make_pseudo_labels(log_probs, torch.tensor([5]), keep_soft=True, topk=8)
    cache = PLCache(capacity=2, seed=0)
    cache.append({"speech": torch.zeros(10), "labels": labels, "utt_ids": ["u1"]}, step=0)
    # speech 10 * fp32 + frame ids 5 * int16 + top-8 soft 5 * 8 * a 16-bit code + a uint8 count per frame
    assert cache.nbytes() == 40 + 10 + 80 + 5
