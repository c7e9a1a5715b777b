"""The compact storage of soft pseudo-labels: per-frame teacher posteriors kept as the few most probable tokens.

A (T, V) posterior matrix costs T x V fp32 numbers; most CTC frames are blank at p > 0.999, so per frame only the
fewest most probable tokens that hold a given mass are kept (:func:`compress_posteriors`), as 16-bit codes that
pack the token id with its quantized probability (V <= 256) or as fp16 values with their ids. A batch's targets
travel to the model in that compact form and are made dense there (:func:`expand_soft_targets`).

``SoftTarget`` is registered as a safe global for ``torch.load(weights_only=True)``, which ESPnet uses when it
resumes a checkpoint, so a cache holding it can be restored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

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

    Build it with ``compress_posteriors`` (or ``softpl.pl.targets.make_pseudo_labels`` for a batch).
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


def stack_soft_targets(softs: list[SoftTarget], num_frames: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The padding of ``softpl.pl.targets.pack_soft_targets``, for soft targets of one storage kind already checked.

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


torch.serialization.add_safe_globals([SoftTarget])
