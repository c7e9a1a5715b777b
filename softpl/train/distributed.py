"""Collectives of a DDP run that softpl's trainer needs beyond ESPnet's own."""
from __future__ import annotations

import torch


def all_reduce_sum(tensor: torch.Tensor) -> None:
    """Sum ``tensor`` over the ranks of a DDP run, in place (nothing to do in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
        summed = tensor.to(device)
        torch.distributed.all_reduce(summed)
        tensor.copy_(summed.cpu())
