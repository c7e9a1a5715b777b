"""Input checks on tensor values that cost no host-device synchronization on a GPU.

A check such as ``if (lengths > T).any(): raise`` makes the host wait for the GPU at every training step. On
CUDA tensors :func:`require` queues an asynchronous device-side assertion instead (the step fails later with
``message``'s summary); on CPU tensors, where the check is free, it raises ``ValueError`` with the full message.
"""
from __future__ import annotations

from collections.abc import Callable

import torch


def require(ok: torch.Tensor, message: Callable[[], str], summary: str) -> None:
    """Raise ``ValueError(message())`` unless every element of the bool tensor ``ok`` is True.

    ``message`` is called only on failure (it may read tensor values); ``summary`` is the fixed text of the
    device-side assertion used for CUDA tensors.
    """
    if ok.device.type == "cpu":
        if not bool(ok.all()):
            raise ValueError(message())
    else:
        torch._assert_async(ok.all(), summary)
