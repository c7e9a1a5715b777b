"""What a cached batch keeps to train on (``--pl_cache_input``), and the host memory that costs.

A cached batch keeps its ``features`` (the frontend's output, when the frontend is a fixed function of mono audio:
training skips the frontend), its ``audio``, or only its utterance ``keys`` (with its pseudo-labels, as every
entry): its input is then loaded again through the unlabeled set's ESPnet dataset and collate function each time it
is trained on, as slimIPL keeps indices and reloads audio. ``auto`` keeps features (else audio) while the estimated
input of the whole cache fits ``--pl_cache_memory_gib``, and keys beyond it. The estimate
(:func:`estimate_cache_bytes`) is C x the mean padded size of the rank's unlabeled batches (utterances x the longest
one's length in the shape file) x the bytes the kept form takes per unit of that length, measured on one batch.

Keys-only batches are read in a known order: within a pass over the cache each slot is read once, and a refresh
replaces only the slot just read, so the rest of a pass is fixed when it starts. A DataLoader over it, with
``--num_workers`` worker processes (none: loaded in the training process), loads them ahead of use.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import torch

from softpl.pl.labeler import frontend_features, on_host
from softpl.pl.stream import load_batch


def estimate_cache_bytes(batches: list, lengths: dict[str, int], bytes_per_unit: float, capacity: int) -> float:
    """Bytes of input a cache of ``capacity`` batches keeps: ``capacity`` x the mean padded size of ``batches``
    (tuples of keys: utterances x the longest one's ``lengths``, samples or frames as in the shape file) x
    ``bytes_per_unit`` (what the kept form takes per unit of length: 4 for fp32 audio)."""
    padded = [len(keys) * max(lengths[key] for key in keys) for keys in batches]
    return capacity * bytes_per_unit * sum(padded) / len(padded)


class _Batches(torch.utils.data.Dataset):
    """The i-th batch of a list of keys, loaded by :func:`load_batch` (in a DataLoader worker)."""

    def __init__(self, factory, batches: list) -> None:
        self.factory, self.batches = factory, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> tuple[tuple[str, ...], dict[str, torch.Tensor]]:
        return tuple(self.batches[i]), load_batch(self.factory, self.batches[i])


class CacheInput:
    """The input of the cached batches: chosen once per run (:meth:`choose`), given to labeling
    (:meth:`labeling_input`), kept with an entry (:meth:`keep`) and given back to train on (:meth:`train_input`).

    Args:
        options: CPLTrainerOptions (pl_cache_input, pl_cache_memory_gib, pl_cache_size, num_workers, seed).
        factory: the unlabeled set's ESPnet SequenceIterFactory.
        batches: this rank's unlabeled batches (tuples of keys); lengths: each utterance's length (shape file).
    """

    def __init__(self, options, factory, batches: list, lengths: dict[str, int]) -> None:
        self.opt, self.factory, self.batches, self.lengths = options, factory, batches, lengths
        self.mode: str | None = None  # features, audio or keys, once chosen
        self.pending: deque[tuple[str, ...]] = deque()  # keys-only batches the loader will give, in order
        self.loader = None
        self.current: tuple[dict, dict] | None = None  # (entry, its reloaded input) of the read in progress

    def choose(self, labeler, fixed_frontend: bool, device: str) -> None:
        """Choose what cached batches keep (first call only) and log why: at PL start, and after a resume."""
        if self.mode is not None:
            return
        batch = load_batch(self.factory, self.batches[0])
        features = self.opt.pl_cache_input != "audio" and fixed_frontend and batch["speech"].dim() == 2
        kept = frontend_features(labeler, batch["speech"].to(device), batch["speech_lengths"].to(device)) \
            if features else batch
        bytes_per_unit = kept["speech"].nbytes / batch["speech"].shape[:2].numel()
        estimate = estimate_cache_bytes(self.batches, self.lengths, bytes_per_unit, self.opt.pl_cache_size)
        form, over = "features" if features else "audio", estimate > self.opt.pl_cache_memory_gib * 2**30
        self.mode = "keys" if self.opt.pl_cache_input == "keys" or (over and self.opt.pl_cache_input == "auto") \
            else form
        reloaded = f"keys (batches loaded again when trained on; loader workers: {self.opt.num_workers})"
        warn = over and self.mode != "keys"
        (logging.warning if warn else logging.info)(
            "PL cache input: %s; keeping the %s of %d batches would take an estimated %.3g GiB (%.3g MB per batch),"
            " %s --pl_cache_memory_gib %g (--pl_cache_input %s)%s", reloaded if self.mode == "keys" else self.mode,
            form, self.opt.pl_cache_size, estimate / 2**30, estimate / self.opt.pl_cache_size / 2**20,
            "over" if over else "within", self.opt.pl_cache_memory_gib, self.opt.pl_cache_input,
            ": if host memory runs short, --pl_cache_input auto keeps keys only" if warn else "")

    def labeling_input(self, labeler, batch: dict, device: str) -> dict[str, torch.Tensor]:
        """A loaded batch as labeling reads it: its features (left on ``device``) when cached batches keep
        features, else as loaded."""
        if self.mode != "features":
            return batch
        return frontend_features(labeler, batch["speech"].to(device), batch["speech_lengths"].to(device))

    def keep(self, entry: dict, batch: dict) -> dict:
        """``entry`` with its input on the host, unless cached batches keep keys only."""
        return entry if self.mode == "keys" else {**entry, "input": on_host(batch)}

    def read(self, entry: dict, rest_of_pass: Callable[[], list]) -> None:
        """``entry`` is read now; ``rest_of_pass()`` gives the keys of the entries this pass reads after it. Keys
        only: take its input from the loader, started over the rest of the pass when it does not hold it."""
        if self.mode != "keys":
            return
        keys = tuple(entry["keys"])
        if not self.pending or self.pending[0] != keys:  # a new pass (or a resume): load it ahead
            batches = [keys, *map(tuple, rest_of_pass())]
            self.pending = deque(batches)
            workers = self.opt.num_workers
            self.loader = iter(torch.utils.data.DataLoader(
                _Batches(self.factory, batches), batch_size=None, num_workers=workers,
                prefetch_factor=2 if workers > 0 else None,
                generator=torch.Generator().manual_seed(self.opt.seed)))  # the global RNG is left alone
        loaded, batch = next(self.loader)
        if tuple(loaded) != self.pending.popleft():
            raise RuntimeError(f"PL cache reload out of step: expected batch {list(keys)}, got {list(loaded)}")
        self.current = (entry, batch)

    def train_input(self, labeler, entry: dict, device: str) -> dict[str, torch.Tensor]:
        """The input of ``entry`` to train on (or to measure churn on): kept, or reloaded by :meth:`read`; after a
        resume (checkpoints hold no input) a kept input is made again once, as labeling made it."""
        if self.current is not None and self.current[0] is entry:
            return self.current[1]
        if "input" not in entry:
            batch = load_batch(self.factory, entry["keys"])
            if self.mode == "keys":
                return batch
            entry["input"] = on_host(self.labeling_input(labeler, batch, device))
        return entry["input"]
