"""slimIPL's dynamic pseudo-label cache ("fixed-pre-cache"; docs/method.md, "slimIPL").

The cache holds up to C entries (typically an unlabeled batch of CPU tensors with its pseudo-labels; the
cache does not look inside). Protocol of one unlabeled update, as in slimIPL:

    filling phase (not ``is_full``):  label a fresh batch, ``append(entry, step)``, no parameter update
    steady state:  slot = next_slot(); entry = get(slot)
                   if should_refresh(p): replace(slot, <freshly labeled batch>, step)  # before the update
                   train on ``entry``

Slots are read in a random order reshuffled at the start of every pass over the C slots, so each entry is
used once per pass; an entry survives a Geometric(p) number of uses (1/p on average). All randomness comes
from the cache's own generator, and ``state_dict`` holds everything, so a resumed run continues exactly.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def stored_nbytes(obj: Any) -> int:
    """Bytes held by tensors or objects exposing ``nbytes``, found through nested mappings, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.nbytes
    if isinstance(obj, Mapping):
        return sum(stored_nbytes(value) for value in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(stored_nbytes(item) for item in obj)
    nbytes = getattr(obj, "nbytes", 0)
    return nbytes if isinstance(nbytes, int) else 0


def dynamic_refresh_prob(churn: float, p_min: float, p_max: float, churn_scale: float) -> float:
    """Refresh probability of dynamic refresh: p_min when cached pseudo-labels still hold (churn 0), rising
    linearly to p_max when ``churn`` (token edit rate between a cached PL and a fresh one) reaches churn_scale."""
    return p_min + min(1.0, churn / churn_scale) * (p_max - p_min)


class PLCache:
    """Fixed-size cache of pseudo-labeled entries read in reshuffled passes, refreshed with probability p.

    Args:
        capacity: C, the number of entries (slimIPL: 100 batches for 100 h, 1000 for 10 h).
        seed: seeds the cache's generator (slot order and refresh decisions).

    The refresh probability p is the caller's (fixed, or moved by dynamic refresh): each draw is given it.
    """

    def __init__(self, capacity: int, seed: int) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be >= 1 entry, got {capacity}")
        self.capacity = capacity
        self.generator = torch.Generator().manual_seed(seed)
        self.entries: list[Any] = []
        self.labeled_step: list[int] = []  # update step at which each slot's entry was labeled
        self.uses: list[int] = []  # reads of each slot's entry since it was labeled
        self.order: list[int] = []  # slot order of the current pass
        self.position = 0  # reads done in the current pass
        self.num_refreshes = 0
        self.evicted_uses = 0  # total uses of all evicted entries

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def is_full(self) -> bool:
        return len(self.entries) == self.capacity

    def append(self, entry: Any, step: int) -> None:
        """Add an entry labeled at update ``step`` during the filling phase."""
        if self.is_full:
            raise RuntimeError(f"the PL cache is full ({self.capacity} entries): use replace() in the steady state")
        self.entries.append(entry)
        self.labeled_step.append(step)
        self.uses.append(0)

    def next_slot(self) -> int:
        """The slot to train on now; counts one use of its entry. A new random order starts every C reads."""
        if not self.is_full:
            raise RuntimeError(
                f"the PL cache is still filling ({len(self.entries)}/{self.capacity}): append() until is_full"
            )
        if self.position == len(self.order):
            self.order = torch.randperm(self.capacity, generator=self.generator).tolist()
            self.position = 0
        slot = self.order[self.position]
        self.position += 1
        self.uses[slot] += 1
        return slot

    def rest_of_pass(self) -> list[int]:
        """The slots the current pass reads after the last one read (the next pass's order is not drawn yet)."""
        return self.order[self.position:]

    def get(self, slot: int) -> Any:
        return self.entries[slot]

    def should_refresh(self, prob: float) -> bool:
        """Bernoulli draw: relabel the slot just read, with probability ``prob`` (p, slimIPL: 0.1)?"""
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"the refresh probability must be in [0, 1], got {prob}")
        return bool(torch.rand((), generator=self.generator) < prob)

    def replace(self, slot: int, entry: Any, step: int) -> None:
        """Evict the entry in ``slot`` and store a freshly labeled one (labeled at update ``step``)."""
        if not 0 <= slot < len(self.entries):
            raise IndexError(f"slot {slot} is not in the PL cache (it holds {len(self.entries)} entries)")
        self.evicted_uses += self.uses[slot]
        self.num_refreshes += 1
        self.entries[slot] = entry
        self.labeled_step[slot] = step
        self.uses[slot] = 0

    def stats(self, step: int) -> dict[str, float]:
        """Cache health at update ``step``: PL age in updates, uses per entry, refreshes, fill level.

        Values that need entries (or evictions) are NaN until there are some.
        """
        ages = [step - labeled for labeled in self.labeled_step]
        return {
            "pl_cache_fill": len(self.entries) / self.capacity,
            "pl_cache_mean_age": sum(ages) / len(ages) if ages else math.nan,
            "pl_cache_max_age": float(max(ages)) if ages else math.nan,
            "pl_cache_mean_uses": sum(self.uses) / len(self.uses) if self.uses else math.nan,
            "pl_cache_uses_per_evicted": self.evicted_uses / self.num_refreshes if self.num_refreshes else math.nan,
            "pl_cache_refreshes": float(self.num_refreshes),
        }

    def nbytes(self) -> int:
        """Bytes held by the stored entries (tensors and objects exposing ``nbytes``)."""
        return stored_nbytes(self.entries)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: entries, bookkeeping, pass order and position, generator state."""
        return {
            "capacity": self.capacity,
            "generator": self.generator.get_state(),
            "entries": list(self.entries),
            "labeled_step": list(self.labeled_step),
            "uses": list(self.uses),
            "order": list(self.order),
            "position": self.position,
            "num_refreshes": self.num_refreshes,
            "evicted_uses": self.evicted_uses,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"the saved PL cache has capacity {state['capacity']}, this run asks for "
                             f"{self.capacity}: resume with the same PL config")
        self.generator.set_state(state["generator"])
        self.entries = list(state["entries"])
        self.labeled_step = list(state["labeled_step"])
        self.uses = list(state["uses"])
        self.order = list(state["order"])
        self.position = state["position"]
        self.num_refreshes = state["num_refreshes"]
        self.evicted_uses = state["evicted_uses"]
