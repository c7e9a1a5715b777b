"""What the pseudo-labeler stores per utterance, and how stored labels become training targets.

A teacher pass over one unlabeled batch yields (B, T, V) CTC log-posteriors. For each utterance we keep
the greedy hard transcript, the per-frame argmax (for frame-level hard CE) and, optionally, the posteriors
themselves in a compact top-k form (soft targets). Sampled transcripts ("Continuous Pseudo-Labeling
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
# Up to this vocabulary size a kept soft-target token is one 16-bit code: its id in the low bits, its quantized
# probability in the 8 or more bits left (characters, V <= 32: 11 bits, a step of 1/2047).
PACKED_VOCAB_LIMIT = 256


def token_id_dtype(vocab_size: int) -> torch.dtype:
    """Smallest signed integer dtype that holds the token ids of a vocabulary of this size (and -1 padding)."""
    return torch.int16 if vocab_size < INT16_VOCAB_LIMIT else torch.int32


def packed_index_bits(vocab_size: int) -> int:
    """Bits of a packed soft-target code that hold the token id; the other 16 - bits hold the probability."""
    if not 1 <= vocab_size <= PACKED_VOCAB_LIMIT:
        raise ValueError(f"packed soft targets need a vocabulary of 1-{PACKED_VOCAB_LIMIT} tokens, got {vocab_size}")
    return max(1, (vocab_size - 1).bit_length())


def packed_value_step(vocab_size: int) -> float:
    """The quantization step of a packed probability: each kept value is within one step of the teacher's."""
    return 1.0 / ((1 << (16 - packed_index_bits(vocab_size))) - 1)


def pack_entries(values: torch.Tensor, indices: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """int16 codes of kept (probability, token) pairs of any shape: probability rounded to the step of
    :func:`packed_value_step` (at least one step, so a kept token stays kept), the token id in the low bits."""
    bits = packed_index_bits(vocab_size)
    levels = (1 << (16 - bits)) - 1
    quantized = (values.float() * levels).round().clamp(1, levels).to(torch.int32)
    codes = (quantized << bits) | indices.to(torch.int32)
    return torch.where(codes >= 1 << 15, codes - (1 << 16), codes).to(torch.int16)  # two's complement


def unpack_entries(codes: torch.Tensor, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (fp32 probabilities, uint8 token ids) of :func:`pack_entries`' codes."""
    bits = packed_index_bits(vocab_size)
    codes = codes.to(torch.int32) & 0xFFFF
    values = (codes >> bits).float() / ((1 << (16 - bits)) - 1)
    return values, (codes & ((1 << bits) - 1)).to(torch.uint8)


@dataclass(frozen=True)
class SoftTarget:
    """Compact per-frame teacher posteriors of one utterance, in one of three storages (``storage``):

    - ``full``: the whole matrix, ``values`` (T, V) fp32; ``indices`` and ``counts`` None.
    - ``packed`` (V <= 256) and ``fp16`` (larger vocabularies): per frame t only the ``counts[t]`` (T,) uint8
      most probable tokens, most probable first, flattened over the frames (N = sum(counts) entries).
      ``packed``: ``values`` (N,) int16 codes of :func:`pack_entries` (probability and token id in 16 bits),
      ``indices`` None; ``fp16``: ``values`` (N,) fp16 and ``indices`` (N,) int16/int32 (uint8 in caches saved
      before the packed storage). A frame's leftover mass 1 - sum(kept values) is spread uniformly over its
      V - counts[t] other tokens. Variable counts let a confident frame (most CTC frames: blank at p > 0.999)
      cost one entry.

    Build it with ``compress_posteriors`` (or ``make_pseudo_labels`` for a batch).
    """

    values: torch.Tensor
    indices: torch.Tensor | None
    vocab_size: int
    counts: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.counts is None:
            if self.values.dim() != 2 or self.values.shape[1] != self.vocab_size or self.indices is not None:
                raise ValueError(
                    f"a full SoftTarget needs values of shape (T, {self.vocab_size}) and no indices, "
                    f"got values {tuple(self.values.shape)}"
                )
            return
        if self.indices is None and self.values.dtype != torch.int16:
            raise ValueError(f"a packed SoftTarget holds int16 codes, got values of {self.values.dtype}")
        if self.counts.dim() != 1 or self.values.dim() != 1 \
                or (self.indices is not None and self.indices.shape != self.values.shape):
            raise ValueError(
                "a compact SoftTarget needs counts (T,) and flat values (and indices) of one length (N,), got counts "
                f"{tuple(self.counts.shape)}, values {tuple(self.values.shape)}, "
                f"indices {None if self.indices is None else tuple(self.indices.shape)}"
            )
        if self.counts.device.type == "cpu" and int(self.counts.sum()) != self.values.shape[0]:
            raise ValueError(f"counts sum to {int(self.counts.sum())} entries, values hold {self.values.shape[0]}")

    @property
    def storage(self) -> str:
        if self.counts is None:
            return "full"
        return "packed" if self.indices is None else "fp16"

    @property
    def num_frames(self) -> int:
        return self.values.shape[0] if self.counts is None else self.counts.shape[0]

    def entries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The kept (probabilities, token ids), flat (N,) in frame order, of a compact target."""
        if self.storage == "full":
            raise ValueError("a full SoftTarget has no kept entries: use values, the (T, V) posteriors")
        if self.storage == "packed":
            return unpack_entries(self.values, self.vocab_size)
        return self.values, self.indices

    @property
    def nbytes(self) -> int:
        """Bytes actually stored (values, indices and counts)."""
        return sum(t.nbytes for t in (self.values, self.indices, self.counts) if t is not None)

    def to(self, device: torch.device | str) -> SoftTarget:
        moved = [None if t is None else t.to(device) for t in (self.indices, self.counts)]
        return SoftTarget(self.values.to(device), moved[0], self.vocab_size, moved[1])

    def to_dense(self, device: torch.device | str | None = None) -> torch.Tensor:
        """(T, V) fp32 probabilities, made on ``device`` (default: where the target is)."""
        values, indices = stack_soft_targets([self], self.num_frames)
        device = values.device if device is None else device
        return expand_soft_targets(values.to(device), None if indices is None else indices.to(device),
                                   self.vocab_size)[0]


def expand_soft_targets(values: torch.Tensor, indices: torch.Tensor | None, vocab_size: int) -> torch.Tensor:
    """Dense fp32 probabilities (..., V) from packed soft targets, on the device of ``values``.

    ``indices`` None: ``values`` already hold the full (..., V) posteriors. Otherwise ``values``/``indices``
    (..., k) are the kept tokens of each frame, unused slots holding value 0 (and a kept index), as
    :func:`pack_soft_targets` makes them; each frame's leftover mass 1 - sum(values) is spread uniformly over the
    tokens it does not keep. Works on one utterance (T, k) or a padded batch (B, T, k), the form models receive.
    """
    values = values.float()
    if indices is None:
        return values
    indices = indices.long()
    num_kept = (values > 0).sum(dim=-1, keepdim=True)
    leftover = (1.0 - values.sum(dim=-1, keepdim=True)).clamp(min=0.0)
    dense = (leftover / (vocab_size - num_kept).clamp(min=1)).expand(*values.shape[:-1], vocab_size).clone()
    dense.scatter_(-1, indices, 0.0)  # kept tokens get their own value, not a share of the leftover
    return dense.scatter_add_(-1, indices, values)


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


def stack_soft_targets(softs: list[SoftTarget], num_frames: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The padding of :func:`pack_soft_targets`, for soft targets of one storage kind already checked.

    The whole batch in a fixed number of tensor operations, not a few per utterance: this runs on the host at
    every soft unlabeled update, where small operations add up (bench/RESULTS.md, GPU runs 3 and 4).
    """
    first = softs[0]
    frames = torch.tensor([soft.num_frames for soft in softs])
    # Per stored frame, its row in the padded (B * num_frames) frames: one flat index, not (utterance, frame).
    utt = torch.repeat_interleave(torch.arange(len(softs)), frames)
    slot = torch.arange(len(utt)) + utt * num_frames - (frames.cumsum(0) - frames)[utt]
    if first.storage == "full":
        values = torch.zeros(len(softs) * num_frames, first.vocab_size, dtype=first.values.dtype)
        values[slot] = torch.cat([soft.values for soft in softs])
        return values.view(len(softs), num_frames, -1), None
    counts = torch.cat([soft.counts for soft in softs]).long()  # per stored frame: tokens kept (>= 1)
    if first.storage == "packed":  # one unpacking for the batch
        kept_values, kept_indices = unpack_entries(torch.cat([soft.values for soft in softs]), first.vocab_size)
    else:
        kept_values = torch.cat([soft.values for soft in softs])
        kept_indices = torch.cat([soft.indices for soft in softs])
    width = int(counts.max()) if len(counts) else 1
    starts = counts.cumsum(0) - counts
    row = torch.repeat_interleave(torch.arange(len(counts)), counts)  # per kept token: its stored frame
    position = slot[row] * width + torch.arange(len(kept_values)) - starts[row]  # ... and its flat position
    values = torch.zeros(len(softs) * num_frames * width, dtype=kept_values.dtype)
    indices = torch.zeros(len(softs) * num_frames, width, dtype=kept_indices.dtype)
    indices[slot] = kept_indices[starts].unsqueeze(1)  # unused slots repeat the frame's first kept index
    indices = indices.view(-1)
    indices[position] = kept_indices
    values[position] = kept_values
    return values.view(len(softs), num_frames, width), indices.view(len(softs), num_frames, width)


def top_tokens(probs: torch.Tensor, topk: int, mass: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per frame of (..., V) posteriors: the ``topk`` most probable tokens (values, indices, most probable first)
    and which of them to keep (..., k): the fewest that hold ``mass``, at most ``topk``, at least one."""
    if not 0 < mass <= 1:
        raise ValueError(f"the kept mass must be in (0, 1], got {mass}")
    values, indices = probs.topk(topk, dim=-1)
    keep = (values.cumsum(dim=-1) - values) < mass  # the mass before this token does not reach the target yet
    return values, indices, keep


def compress_posteriors(probs: torch.Tensor, topk: int | None, mass: float = 1.0) -> SoftTarget:
    """Store (T, V) posteriors compactly: per frame the fewest most-probable tokens holding ``mass`` (at most
    ``topk``), packed (V <= 256) or in fp16, or the full fp32 matrix when topk is None or >= V.

    Per frame, the L1 distance between ``probs`` and ``to_dense()`` is at most twice the leftover mass
    1 - sum(kept) plus twice the rounding of the kept values (packed: one :func:`packed_value_step` each).
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be (T, V), got shape {tuple(probs.shape)}")
    return soft_target(*kept_tokens(probs, topk, mass), probs.shape[1])


def kept_tokens(
    probs: torch.Tensor, topk: int | None, mass: float
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """What the soft storage keeps of (..., V) posteriors, made where they are and copied to the host once:
    (values, indices, keep) of :func:`top_tokens` in the storage's dtypes (packed codes and no indices for
    V <= 256), or (fp32 posteriors, None, None) for full storage."""
    vocab_size = probs.shape[-1]
    check_topk(topk)
    if topk is None or topk >= vocab_size:
        return probs.float().cpu(), None, None
    values, indices, keep = top_tokens(probs, topk, mass)
    if vocab_size <= PACKED_VOCAB_LIMIT:
        return pack_entries(values, indices, vocab_size).cpu(), None, keep.cpu()
    return values.half().cpu(), indices.to(token_id_dtype(vocab_size)).cpu(), keep.cpu()


def soft_target(values: torch.Tensor, indices: torch.Tensor | None, keep: torch.Tensor | None,
                vocab_size: int) -> SoftTarget:
    """One utterance's SoftTarget from its (T, ...) rows of :func:`kept_tokens`; it holds its own copy of
    the frames, not a view of the batch."""
    if keep is None:
        return SoftTarget(values.clone(), None, vocab_size)
    return SoftTarget(values[keep], None if indices is None else indices[keep], vocab_size,
                      keep.sum(dim=-1).to(torch.uint8))


def check_topk(topk: int | None) -> None:
    if topk is not None and not 1 <= topk <= 255:
        raise ValueError(f"topk must be 1-255 tokens per frame, or None (full posteriors), got {topk}")


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


torch.serialization.add_safe_globals([SoftTarget, PseudoLabel])


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
