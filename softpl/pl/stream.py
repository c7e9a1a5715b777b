"""The unlabeled stream slimIPL labels from: ESPnet batches of the unlabeled set in reshuffled passes.

Batches come in a fixed order per pass (a permutation seeded by seed, rank and pass number), so the stream is a
pure function of its position, which is what exact resume saves. They are loaded ahead of use by DataLoader
workers (``num_workers``, as ESPnet loads the labeled batches), through the unlabeled set's own ESPnet dataset
and collate function (:func:`load_batch`), so reading audio does not stall training.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def load_batch(factory, keys) -> dict[str, torch.Tensor]:
    """One batch of ``keys`` through an ESPnet SequenceIterFactory's own dataset and collate function."""
    return factory.collate_fn([factory.dataset[key] for key in keys])[1]


def stream_order(seed: int, rank: int, stream_pass: int, num_batches: int) -> list[int]:
    """Batch order of one pass over the unlabeled batches: a permutation reshuffled every pass."""
    rng = np.random.RandomState(seed * 7919 + stream_pass + 104729 * rank)
    return rng.permutation(num_batches).tolist()


class _StreamFrom(torch.utils.data.IterableDataset):
    """``((pass, index), keys, batch)`` of every stream batch from a position on, for ever; a DataLoader worker
    loads every n-th of them (n workers), which is the DataLoader's round-robin order over its workers."""

    def __init__(self, factory, batches: list, seed: int, rank: int, position: tuple[int, int]):
        self.factory, self.batches, self.seed, self.rank, self.position = factory, batches, seed, rank, position

    def __iter__(self) -> Iterator:
        worker = torch.utils.data.get_worker_info()
        turn, workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        stream_pass, index = self.position
        count = 0
        while True:
            order = stream_order(self.seed, self.rank, stream_pass, len(self.batches))
            for i in range(index, len(order)):
                if count % workers == turn:
                    keys = list(self.batches[order[i]])
                    yield (stream_pass, i), keys, load_batch(self.factory, keys)
                count += 1
            stream_pass, index = stream_pass + 1, 0


class UnlabeledStream:
    """Next unlabeled batch (keys, ESPnet batch of CPU tensors), loaded ahead by ``num_workers`` workers.

    Args:
        factory: the unlabeled set's ESPnet SequenceIterFactory (its dataset, collate_fn and batches are used).
        seed, rank: seed the pass orders (each rank streams its own shard in its own order).
        num_workers: ESPnet's --num_workers: the worker processes that load the stream, each two batches ahead
            (0: load in the training process); filling the cache at PL start labels C batches in a row, after
            which labeling needs a new batch only every 1/p unlabeled updates.
    """

    def __init__(self, factory, seed: int, rank: int, num_workers: int) -> None:
        self.factory = factory
        self.batches = factory.sampler.generate(0)
        if not self.batches:
            raise ValueError("the unlabeled set gave no batches: check --unlabeled_data_path_and_name_and_type")
        self.seed, self.rank, self.num_workers = seed, rank, num_workers
        self.position = (0, 0)  # (pass, index in the pass) of the next batch
        self._loader: Iterator | None = None

    def seek(self, position: tuple[int, int]) -> None:
        """Continue from ``position`` (a resumed run); batches loaded ahead for another position are dropped."""
        self.position = self._normalized(*position)
        self._loader = None

    def _normalized(self, stream_pass: int, index: int) -> tuple[int, int]:
        return (stream_pass + 1, 0) if index >= len(self.batches) else (stream_pass, index)

    def next(self) -> tuple[list[str], dict[str, torch.Tensor]]:
        if self._loader is None:
            source = _StreamFrom(self.factory, self.batches, self.seed, self.rank, self.position)
            # Its own generator: a DataLoader iterator draws its workers' base seed from it, and a draw from
            # the global RNG would shift every dropout mask after a resume (which starts a new iterator).
            self._loader = iter(torch.utils.data.DataLoader(
                source, batch_size=None, num_workers=self.num_workers,
                prefetch_factor=2 if self.num_workers > 0 else None,
                generator=torch.Generator().manual_seed(self.seed * 1009 + self.rank)))
        position, keys, batch = next(self._loader)
        if tuple(position) != self.position:
            raise RuntimeError(f"unlabeled stream out of step: expected batch {self.position}, got {position}")
        self.position = self._normalized(position[0], position[1] + 1)
        return keys, batch
