"""What the pseudo-labeler stores per utterance, and how stored labels become training targets.

A teacher pass over one unlabeled batch yields (B, T, V) CTC log-posteriors. For each utterance we keep
the greedy hard transcript, the per-frame argmax (for frame-level hard CE) and, optionally, the posteriors
themselves in a compact top-k fp16 form (soft targets). Sampled transcripts ("Continuous Pseudo-Labeling
from the Start") are drawn from the tempered posteriors on the whole batch at once.

``SoftTarget`` and ``PseudoLabel`` are registered as safe globals for ``torch.load(weights_only=True)``,
which ESPnet uses when it resumes a checkpoint, so a cache holding them can be restored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from softpl.checks import require
from softpl.decode.greedy import check_lengths, collapse_paths

# Token ids fit int16 below this vocabulary size, otherwise int32.
INT16_VOCAB_LIMIT = 32768


def token_id_dtype(vocab_size: int) -> torch.dtype:
    """Smallest integer dtype used to store token ids of a vocabulary of this size."""
    return torch.int16 if vocab_size < INT16_VOCAB_LIMIT else torch.int32


@dataclass(frozen=True)
class SoftTarget:
    """Compact per-frame teacher posteriors of one utterance.

    Either the top-k probabilities per frame (``values`` (T, k) fp16, ``indices`` (T, k) int16/int32), with the
    leftover mass 1 - sum(top-k) spread uniformly over the V - k tokens not kept; or the full matrix
    (``values`` (T, V) fp32, ``indices`` None). Build it with ``compress_posteriors``.
    """

    values: torch.Tensor
    indices: torch.Tensor | None
    vocab_size: int

    def __post_init__(self) -> None:
        if self.values.dim() != 2:
            raise ValueError(f"SoftTarget.values must be (T, k), got shape {tuple(self.values.shape)}")
        if self.indices is None:
            if self.values.shape[1] != self.vocab_size:
                raise ValueError(
                    f"a full SoftTarget needs values of shape (T, {self.vocab_size}), got {tuple(self.values.shape)}"
                )
        elif self.indices.shape != self.values.shape or self.values.shape[1] >= self.vocab_size:
            raise ValueError(
                f"a top-k SoftTarget needs indices and values of the same shape (T, k) with k < {self.vocab_size}, "
                f"got indices {tuple(self.indices.shape)} and values {tuple(self.values.shape)}"
            )

    @property
    def num_frames(self) -> int:
        return self.values.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes actually stored (values plus indices)."""
        return self.values.nbytes + (0 if self.indices is None else self.indices.nbytes)

    def to(self, device: torch.device | str) -> SoftTarget:
        indices = None if self.indices is None else self.indices.to(device)
        return SoftTarget(self.values.to(device), indices, self.vocab_size)

    def to_dense(self, device: torch.device | str | None = None) -> torch.Tensor:
        """(T, V) fp32 probabilities; the compact form is moved to ``device`` first (cheaper than the dense one)."""
        target = self if device is None else self.to(device)
        return expand_soft_targets(target.values, target.indices, self.vocab_size)


def expand_soft_targets(values: torch.Tensor, indices: torch.Tensor | None, vocab_size: int) -> torch.Tensor:
    """Dense fp32 probabilities (..., V) from stored soft targets, on the device of ``values``.

    ``indices`` None: ``values`` already hold the full (..., V) posteriors. Otherwise ``values``/``indices``
    (..., k) are the top-k per frame and the leftover mass 1 - sum(top-k) is spread uniformly over the V - k
    tokens not kept. Works on one utterance (T, k) or a padded batch (B, T, k), the form models receive.
    """
    values = values.float()
    if indices is None:
        return values
    num_kept = values.shape[-1]
    leftover = (1.0 - values.sum(dim=-1, keepdim=True)).clamp(min=0.0)
    dense = (leftover / (vocab_size - num_kept)).expand(*values.shape[:-1], vocab_size).clone()
    return dense.scatter_(-1, indices.long(), values)


def pack_soft_targets(
    labels: list[PseudoLabel], num_frames: int, *, lengths: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack the stored soft targets of a batch, padded to ``num_frames``: (values, indices), each (B, T, k).

    This compact form (not the dense (B, T, V) one) is what travels with a batch to the model's device;
    :func:`expand_soft_targets` makes the dense targets there. Padding frames hold zeros.
    """
    check_frames(labels, num_frames, lengths)
    missing = [b for b, label in enumerate(labels) if label.soft is None]
    if missing:
        raise ValueError(
            f"utterance {missing[0]} of the batch has no soft target: make the pseudo-labels with keep_soft=True"
        )
    first = labels[0].soft
    width = first.values.shape[1]
    values = torch.zeros(len(labels), num_frames, width, dtype=first.values.dtype)
    indices = None if first.indices is None else torch.zeros(len(labels), num_frames, width, dtype=first.indices.dtype)
    for b, label in enumerate(labels):
        if label.soft.vocab_size != first.vocab_size or label.soft.values.shape[1] != width:
            raise ValueError(
                f"utterance {b} of the batch stores its soft target differently from utterance 0 "
                "(vocabulary or top-k): all pseudo-labels of a batch must come from one labeling pass"
            )
        values[b, : label.num_frames] = label.soft.values
        if indices is not None:
            indices[b, : label.num_frames] = label.soft.indices
    return values, indices


def compress_posteriors(probs: torch.Tensor, topk: int | None) -> SoftTarget:
    """Store (T, V) posteriors as their top-k per frame in fp16, or in full fp32 when topk is None or >= V.

    Per frame, the L1 distance between ``probs`` and ``to_dense()`` is at most twice the leftover mass
    1 - sum(top-k) plus the fp16 rounding of the kept values.
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be (T, V), got shape {tuple(probs.shape)}")
    return SoftTarget(*compact_posteriors(probs, topk), probs.shape[1])


def compact_posteriors(probs: torch.Tensor, topk: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(values, indices) of :class:`SoftTarget`'s storage for posteriors (..., V), on their device: the top-k
    per frame (fp16 values, int16/int32 indices), or the full fp32 posteriors and None (topk None or >= V)."""
    vocab_size = probs.shape[-1]
    if topk is not None and topk < 1:
        raise ValueError(f"topk must be a positive number of tokens per frame or None (full), got {topk}")
    if topk is None or topk >= vocab_size:
        return probs.float(), None
    values, indices = probs.topk(topk, dim=-1)
    return values.half(), indices.to(token_id_dtype(vocab_size))


def temper(scores: torch.Tensor, temperature: float, *, log_domain: bool) -> torch.Tensor:
    """Sharpen (τ < 1) or flatten (τ > 1) distributions over the last axis: q_τ ∝ q^(1/τ), computed in log space.

    Args:
        scores: normalized log-probabilities (``log_domain=True``) or probabilities (``log_domain=False``).
        temperature: τ > 0; τ = 1 returns ``scores`` unchanged, τ -> 0 tends to the one-hot argmax.
        log_domain: whether ``scores`` are log-probabilities; the result is in the same domain.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if temperature == 1.0:
        return scores
    log_q = scores if log_domain else scores.log()
    tempered = torch.log_softmax(log_q / temperature, dim=-1)
    return tempered if log_domain else tempered.exp()


def sample_paths(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    blank_id: int = 0,
) -> list[list[int]]:
    """Sample one CTC path per utterance, each frame independently from q^(1/τ), and collapse it.

    Gumbel-max on the whole batch: argmax_k(log q(k) / τ + G_k) with G_k ~ Gumbel(0, 1) is a draw from the
    tempered distribution. ``generator`` (on the device of ``log_probs``) makes the draw reproducible.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    log_q = temper(log_probs.float(), temperature, log_domain=True)
    uniform = torch.rand(log_q.shape, generator=generator, device=log_q.device)
    paths = (log_q - torch.log(-torch.log(uniform))).argmax(dim=-1)
    return collapse_paths(paths, lengths, blank_id)


@dataclass(frozen=True)
class PseudoLabel:
    """Everything the pseudo-labeler keeps for one unlabeled utterance (on CPU).

    ``tokens``: greedy hard transcript; ``frame_ids``: (T,) per-frame argmax (int16/int32);
    ``soft``: compact posteriors, or None when soft targets are not kept; ``num_frames``: T of this utterance.
    """

    tokens: list[int]
    frame_ids: torch.Tensor
    soft: SoftTarget | None
    num_frames: int

    def __post_init__(self) -> None:
        if self.frame_ids.shape != (self.num_frames,):
            raise ValueError(f"frame_ids has shape {tuple(self.frame_ids.shape)}, expected ({self.num_frames},)")
        if self.soft is not None and self.soft.num_frames != self.num_frames:
            raise ValueError(f"soft target has {self.soft.num_frames} frames, expected {self.num_frames}")

    @property
    def nbytes(self) -> int:
        """Bytes held in tensors (frame ids and soft posteriors); the short token list is not counted."""
        return self.frame_ids.nbytes + (0 if self.soft is None else self.soft.nbytes)


torch.serialization.add_safe_globals([SoftTarget, PseudoLabel])


def make_pseudo_labels(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    *,
    keep_soft: bool,
    topk: int | None = 8,
    blank_id: int = 0,
) -> list[PseudoLabel]:
    """Turn one batch of teacher CTC log-posteriors (B, T, V) into per-utterance pseudo-labels on CPU.

    Args:
        log_probs: (B, T, V) teacher log-posteriors (e.g. ``model.ctc.log_softmax(enc)``, eval mode, clean input).
        lengths: (B,) valid frames per utterance.
        keep_soft: also store the posteriors (top-``topk`` fp16, or full fp32 when ``topk`` is None).
        topk: tokens kept per frame for soft targets.
        blank_id: the CTC blank token id.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    batch_size, num_frames, vocab_size = log_probs.shape
    lengths = lengths.to(log_probs.device)
    check_lengths(lengths, batch_size, num_frames)
    frame_ids = log_probs.argmax(dim=-1)
    tokens = collapse_paths(frame_ids, lengths, blank_id)
    frame_ids = frame_ids.to(token_id_dtype(vocab_size)).cpu()
    if keep_soft:  # the whole batch at once, then one copy to the host
        probs = log_probs.float().exp()
        valid = torch.arange(num_frames, device=probs.device) < lengths.unsqueeze(1)  # (B, T)
        row_sums = probs.sum(dim=-1)
        bad = ((row_sums - 1).abs() > 1e-3) & valid

        def message() -> str:
            b, t = bad.nonzero()[0].tolist()
            return (f"utterance {b} of the batch, frame {t}: exp(log_probs) sums to {float(row_sums[b, t]):.4f}, "
                    "not 1; pass normalized log-posteriors (log_softmax of the CTC logits), not raw logits")

        require(~bad, message, "exp(log_probs) does not sum to 1: pass log_softmax of the CTC logits")
        values, indices = compact_posteriors(probs, topk)
        values, indices = values.cpu(), None if indices is None else indices.cpu()
    labels = []
    for b, length in enumerate(lengths.tolist()):
        soft = None
        if keep_soft:  # clones: a cached label holds its own frames, not a view of the whole batch
            soft = SoftTarget(values[b, :length].clone(), None if indices is None else indices[b, :length].clone(),
                              vocab_size)
        labels.append(PseudoLabel(tokens[b], frame_ids[b, :length].clone(), soft, length))
    return labels


def check_frames(labels: list[PseudoLabel], num_frames: int, lengths: torch.Tensor | None) -> None:
    """Check each label fits the student's T frames, and equals the student's own length when given."""
    if lengths is not None and lengths.shape != (len(labels),):
        raise ValueError(f"lengths must have shape ({len(labels)},), got {tuple(lengths.shape)}")
    if not labels:
        raise ValueError("no pseudo-labels given: a batch needs at least one utterance")
    for b, label in enumerate(labels):
        if label.num_frames > num_frames:
            student = f"only {num_frames} frames in the batch"
        elif lengths is not None and label.num_frames != int(lengths[b]):
            student = f"{int(lengths[b])} frames"
        else:
            continue
        raise ValueError(
            f"utterance {b} of the batch: its pseudo-label has {label.num_frames} frames but the student has "
            f"{student}; teacher and student must see the same input lengths through the same encoder"
        )


def frame_id_batch(
    labels: list[PseudoLabel],
    T: int,
    *,
    lengths: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(B, T) long per-frame argmax targets padded with -1 (the ignore index of frame-level hard CE)."""
    check_frames(labels, T, lengths)
    ids = torch.full((len(labels), T), -1, dtype=torch.long, device=device)
    for b, label in enumerate(labels):
        ids[b, : label.num_frames] = label.frame_ids.to(device)
    return ids
