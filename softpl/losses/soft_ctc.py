"""Frame-level losses of a CTC student against teacher posteriors (soft CE / KL, hard per-frame CE).

Shapes and conventions shared by every pseudo-labeling loss in softpl:

- ``log_probs`` (B, T, V): the student's CTC log-posteriors, ``model.ctc.log_softmax(encoder_out)``.
- ``target_probs`` (B, T, V): the teacher's posteriors q; rows sum to 1 on valid frames.
- ``lengths`` (B,) long: valid frames per utterance; frames ``t >= lengths[b]`` are padding and never contribute,
  whatever values they hold.
- ``frame_weights`` (B, T) float in [0, 1]: per-frame weights (masks from :mod:`softpl.losses.regularizers`).

A frame loss is averaged as ``sum_{b,t} w_bt * loss_bt / N`` with N the number of valid frames in the batch, so
dropping frames (w = 0) does not rescale the frames that remain.  Because CTC's alignment distribution factorises
over frames, the per-frame KL summed over frames is the KL between teacher and student alignment distributions
(docs/method.md, 'Soft pseudo-labels').
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from espnet2.legacy.nets.pytorch_backend.nets_utils import make_pad_mask

from softpl.checks import require


def valid_frame_mask(lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B, T) bool mask, True on valid frames; checks that every length lies in [0, num_frames]."""
    if lengths.dim() != 1:
        raise ValueError(f"lengths must have shape (B,), got {tuple(lengths.shape)}")
    def message() -> str:
        bad = ((lengths < 0) | (lengths > num_frames)).nonzero().flatten().tolist()
        return (f"lengths of batch entries {bad} are {lengths[bad].tolist()}, outside [0, {num_frames}] "
                "(the frame axis of the posteriors); pass the encoder output lengths that belong to these posteriors")

    require((lengths >= 0) & (lengths <= num_frames), message, "lengths outside [0, T] of the posteriors")
    return ~make_pad_mask(lengths, maxlen=num_frames)


def average_over_frames(
    frame_losses: torch.Tensor, valid: torch.Tensor, frame_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Scalar ``sum_{b,t} w_bt * loss_bt / N`` over the valid frames of ``valid`` (B, T); N = ``valid.sum()``.

    Padded entries of ``frame_losses`` do not reach the value (they are removed with ``torch.where``); an empty
    batch gives 0.  Zero padded inputs with :func:`zero_padding` before computing frame losses, so that garbage
    there cannot turn the (zero) upstream gradient into NaN either.
    """
    if frame_weights is not None:
        if frame_weights.shape != frame_losses.shape:
            raise ValueError(
                f"frame_weights must have shape (B, T) = {tuple(frame_losses.shape)}, got {tuple(frame_weights.shape)}"
            )
        frame_losses = frame_losses * frame_weights
    total = torch.where(valid, frame_losses, torch.zeros_like(frame_losses)).sum()
    return total / valid.sum().clamp(min=1)


def zero_padding(frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``frames`` (B, T, ...) with every padding frame set to 0; no gradient flows to padding."""
    return frames.masked_fill(~valid.reshape(valid.shape + (1,) * (frames.dim() - 2)), 0)


def checked_valid_mask(posteriors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Valid-frame mask (B, T) on the device of ``posteriors`` (B, T, V), once their shapes agree with ``lengths``."""
    if posteriors.dim() != 3:
        raise ValueError(f"posteriors must have shape (B, T, V), got {tuple(posteriors.shape)}")
    if lengths.shape != (posteriors.size(0),):
        raise ValueError(
            f"lengths must have shape (B,) = ({posteriors.size(0)},) to match the posteriors, "
            f"got {tuple(lengths.shape)}"
        )
    return valid_frame_mask(lengths, posteriors.size(1)).to(posteriors.device)


def soft_cross_entropy(
    log_probs: torch.Tensor,
    target_probs: torch.Tensor,
    lengths: torch.Tensor,
    frame_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frame-averaged soft-target cross-entropy ``-sum_k q log p`` of the student against teacher posteriors q.

    Its gradient with respect to the student's logits is ``(p - q) * w / N``; KL(q || p) differs from it by the
    teacher entropy, a constant, so it would train the same (softpl offers CE alone).
    """
    valid = checked_valid_mask(log_probs, lengths)
    if target_probs.shape != log_probs.shape:
        raise ValueError(
            f"target_probs must have the shape of log_probs {tuple(log_probs.shape)}, got {tuple(target_probs.shape)}"
        )
    log_probs, target_probs = zero_padding(log_probs, valid), zero_padding(target_probs, valid)
    frame_losses = -(target_probs * log_probs).sum(-1)
    return average_over_frames(frame_losses, valid, frame_weights)


def frame_cross_entropy(
    log_probs: torch.Tensor,
    target_ids: torch.Tensor,
    lengths: torch.Tensor,
    frame_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frame-averaged CE against one hard token per frame (the ``frame_hard`` ablation: teacher argmax, no CTC).

    ``target_ids`` (B, T) long; entries on padding frames are ignored and may hold any value (e.g. -1).
    """
    valid = checked_valid_mask(log_probs, lengths)
    if target_ids.shape != log_probs.shape[:2]:
        raise ValueError(
            f"target_ids must have shape (B, T) = {tuple(log_probs.shape[:2])}, got {tuple(target_ids.shape)}"
        )
    vocab_size = log_probs.size(2)
    out_of_range = valid & ((target_ids < 0) | (target_ids >= vocab_size))

    def message() -> str:
        b, t = out_of_range.nonzero()[0].tolist()
        return (f"target_ids[{b}, {t}] = {target_ids[b, t].item()} is not a token id in [0, {vocab_size}); "
                "targets must come from the same token list as the student's output layer")

    require(~out_of_range, message, "frame target ids outside the vocabulary")
    frame_losses = F.nll_loss(
        zero_padding(log_probs, valid).transpose(1, 2), zero_padding(target_ids, valid), reduction="none"
    )
    return average_over_frames(frame_losses, valid, frame_weights)
