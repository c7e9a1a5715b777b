"""What the pseudo-labeler stores per utterance, and how stored labels become training targets.

A teacher pass over one unlabeled batch yields (B, T, V) CTC log-posteriors. For each utterance we keep
the greedy hard transcript, the per-frame argmax (for frame-level hard CE) and, optionally, the posteriors
themselves in a compact top-k form (soft targets, :mod:`softpl.pl.soft_storage`). Sampled transcripts
("Continuous Pseudo-Labeling from the Start") are drawn from the tempered posteriors on the whole batch at once.

``PseudoLabel`` is registered as a safe global for ``torch.load(weights_only=True)``, which ESPnet uses when it
resumes a checkpoint, so a cache holding it can be restored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from softpl.checks import require
from softpl.decode.greedy import check_lengths, collapse_paths
from softpl.pl.soft_storage import SoftTarget, kept_tokens, soft_target, stack_soft_targets, token_id_dtype



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

    ``tokens``: the transcript (greedy CTC, joint beam search, or the truth for the oracle target);
    ``frame_ids``: (T,) per-frame argmax (int16/int32);
    ``soft``: compact posteriors, or None when soft targets are not kept; ``num_frames``: T of this utterance;
    ``sampled``: a path sampled from the tempered posteriors and collapsed, or None when not asked for.
    """

    tokens: list[int]
    frame_ids: torch.Tensor
    soft: SoftTarget | None
    num_frames: int
    sampled: list[int] | None = None

    def __post_init__(self) -> None:
        if self.frame_ids.shape != (self.num_frames,):
            raise ValueError(f"frame_ids has shape {tuple(self.frame_ids.shape)}, expected ({self.num_frames},)")
        if self.soft is not None and self.soft.num_frames != self.num_frames:
            raise ValueError(f"soft target has {self.soft.num_frames} frames, expected {self.num_frames}")

    @property
    def nbytes(self) -> int:
        """Bytes held in tensors (frame ids and soft posteriors); the short token list is not counted."""
        return self.frame_ids.nbytes + (0 if self.soft is None else self.soft.nbytes)


torch.serialization.add_safe_globals([PseudoLabel])


def make_pseudo_labels(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    *,
    keep_soft: bool,
    topk: int | None = 8,
    soft_mass: float = 1.0,
    blank_id: int = 0,
) -> list[PseudoLabel]:
    """Turn one batch of teacher CTC log-posteriors (B, T, V) into per-utterance pseudo-labels on CPU.

    Args:
        log_probs: (B, T, V) teacher log-posteriors (e.g. ``model.ctc.log_softmax(enc)``, eval mode, clean input).
        lengths: (B,) valid frames per utterance.
        keep_soft: also store the posteriors (compact: see :class:`SoftTarget`; full fp32 when ``topk`` is None).
        topk: at most this many tokens kept per frame for soft targets.
        soft_mass: per frame, the fewest most probable tokens that hold this mass are kept (1.0: all ``topk``).
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
        values, indices, keep = kept_tokens(probs, topk, soft_mass)
    labels = []
    for b, length in enumerate(lengths.tolist()):
        soft = None
        if keep_soft:
            soft = soft_target(values[b, :length], None if indices is None else indices[b, :length],
                               None if keep is None else keep[b, :length], vocab_size)
        labels.append(PseudoLabel(tokens[b], frame_ids[b, :length].clone(), soft, length))
    return labels


def pack_soft_targets(
    labels: list[PseudoLabel], num_frames: int, *, lengths: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack the stored soft targets of a batch, padded to ``num_frames``: (values, indices), each (B, T, k).

    k is the largest count of kept tokens of any frame; a frame's unused slots hold value 0 and repeat its first
    kept index. This compact form (not the dense (B, T, V) one) is what travels with a batch to the model's
    device; :func:`expand_soft_targets` makes the dense targets there. Padding frames hold zeros.
    """
    check_frames(labels, num_frames, lengths)
    missing = [b for b, label in enumerate(labels) if label.soft is None]
    if missing:
        raise ValueError(
            f"utterance {missing[0]} of the batch has no soft target: make the pseudo-labels with keep_soft=True"
        )
    first = labels[0].soft
    for b, label in enumerate(labels):
        if label.soft.vocab_size != first.vocab_size or label.soft.storage != first.storage:
            raise ValueError(
                f"utterance {b} of the batch stores its soft target differently from utterance 0 "
                "(vocabulary or storage): all pseudo-labels of a batch must come from one labeling pass"
            )
    return stack_soft_targets([label.soft for label in labels], num_frames)


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
