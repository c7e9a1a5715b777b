"""Batched greedy CTC decoding: the one home for turning frame paths into token sequences.

Used by the recipe's decoder (greedy transcripts), by the pseudo-labeler (hard PLs) and for paths sampled
from the posteriors (``softpl.pl.targets.sample_paths``). Everything runs on the whole batch at once; only the
final split into per-utterance Python lists loops over utterances.
"""
from __future__ import annotations

import torch
from espnet2.legacy.nets.pytorch_backend.nets_utils import make_pad_mask

from softpl.checks import require


def check_lengths(lengths: torch.Tensor, batch_size: int, num_frames: int) -> None:
    """Raise a ValueError naming the first utterance whose valid-frame count is not in [0, num_frames]."""
    if lengths.dim() != 1 or lengths.shape[0] != batch_size:
        raise ValueError(
            f"lengths must have shape ({batch_size},) to match the batch, got {tuple(lengths.shape)}"
        )
    def message() -> str:
        b = int(((lengths < 0) | (lengths > num_frames)).nonzero()[0, 0])
        return (f"utterance {b} of the batch has lengths[{b}]={int(lengths[b])} valid frames, "
                f"outside [0, {num_frames}] "
                "(the padded number of frames): pass the encoder output lengths that belong to these log-probs")

    require((lengths >= 0) & (lengths <= num_frames), message, "lengths outside [0, T] of the log-probs")


def collapse_paths(paths: torch.Tensor, lengths: torch.Tensor, blank_id: int = 0) -> list[list[int]]:
    """Apply the CTC collapse B(π) to a batch of frame paths: merge repeats, then drop blanks.

    Args:
        paths: (B, T) integer token id per frame.
        lengths: (B,) valid frames per utterance; frames t >= lengths[b] are padding and ignored.
        blank_id: the CTC blank token id.
    Returns:
        one token-id list per utterance.
    """
    if paths.dim() != 2:
        raise ValueError(f"paths must be (B, T), got shape {tuple(paths.shape)}")
    batch_size, num_frames = paths.shape
    lengths = lengths.to(paths.device)
    check_lengths(lengths, batch_size, num_frames)
    previous = torch.cat([torch.full_like(paths[:, :1], -1), paths[:, :-1]], dim=1)
    keep = (paths != previous) & (paths != blank_id) & ~make_pad_mask(lengths, maxlen=num_frames)
    tokens = paths[keep].tolist()  # row-major: utterance 0's tokens first
    counts = keep.sum(dim=1).tolist()
    result, start = [], 0
    for count in counts:
        result.append(tokens[start : start + count])
        start += count
    return result


def collapse_path(path_ids: torch.Tensor, blank_id: int = 0) -> list[int]:
    """Apply the CTC collapse to one (T,) frame path (every frame valid)."""
    if path_ids.dim() != 1:
        raise ValueError(f"path_ids must be (T,), got shape {tuple(path_ids.shape)}")
    lengths = torch.tensor([path_ids.shape[0]], device=path_ids.device)
    return collapse_paths(path_ids[None], lengths, blank_id)[0]


def greedy_ctc_decode(log_probs: torch.Tensor, lengths: torch.Tensor, blank_id: int = 0) -> list[list[int]]:
    """Greedy (best-path) CTC decoding of a batch: per-frame argmax, then the CTC collapse.

    Args:
        log_probs: (B, T, V) CTC log-posteriors (or logits: the argmax is the same).
        lengths: (B,) valid frames per utterance.
        blank_id: the CTC blank token id.
    Returns:
        one token-id list per utterance (no blanks, repeats merged).
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    return collapse_paths(log_probs.argmax(dim=-1), lengths, blank_id)
