"""Terms and frame masks against the soft-label collapse (docs/method.md, regularizers); the model composes them.

Same conventions as :mod:`softpl.losses.soft_ctc`: ``log_probs`` / ``target_probs`` (B, T, V), ``lengths`` (B,),
frame weights (B, T) in [0, 1] with 0 on padding, and frame terms averaged over the N valid frames of the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from softpl.checks import require
from softpl.losses.soft_ctc import average_over_frames, checked_valid_mask, zero_padding


def frame_entropy(log_probs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames of the student's frame entropy ``H(p_t) = -sum_k p_t(k) log p_t(k)``.

    The model adds ``beta * frame_entropy`` to its loss: ``beta > 0`` penalises entropy and sharpens the student
    (against a collapse to flat distributions); ``beta < 0`` rewards entropy and smooths it (against a collapse to
    one token, e.g. blank everywhere).
    """
    valid = checked_valid_mask(log_probs, lengths)
    log_probs = zero_padding(log_probs, valid)
    return average_over_frames(-(log_probs.exp() * log_probs).sum(-1), valid)


def _check_targets(target_probs: torch.Tensor, log_probs: torch.Tensor) -> None:
    """Raise unless the teacher posteriors have the student's shape."""
    if target_probs.shape != log_probs.shape:
        raise ValueError(
            f"target_probs must have the shape of log_probs {tuple(log_probs.shape)}, got {tuple(target_probs.shape)}"
        )


def _check_blank_id(blank_id: int, vocab_size: int) -> None:
    """Raise unless ``blank_id`` indexes the vocabulary."""
    if not 0 <= blank_id < vocab_size:
        raise ValueError(f"blank_id {blank_id} is outside the vocabulary [0, {vocab_size}); use the token list's blank")


def blank_frame_weights(
    target_probs: torch.Tensor, lengths: torch.Tensor, blank_id: int = 0, blank_weight: float = 0.0
) -> torch.Tensor:
    """(B, T) weights: 1 on valid frames whose teacher argmax is a token, ``blank_weight`` where it is blank.

    ``blank_weight=0`` drops blank-dominated frames from the soft loss; values in (0, 1) down-weight them.  Padding
    gets 0.  Ties go to the lowest token id (``torch.argmax``).
    """
    if not 0.0 <= blank_weight <= 1.0:
        raise ValueError(f"blank_weight must lie in [0, 1], got {blank_weight}")
    valid = checked_valid_mask(target_probs, lengths)
    _check_blank_id(blank_id, target_probs.size(-1))
    blank_dominated = target_probs.argmax(-1) == blank_id
    weights = torch.where(blank_dominated, blank_weight, 1.0).to(target_probs.dtype)
    return weights * valid


def confidence_weights(target_probs: torch.Tensor, lengths: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, T) mask as floats: 1 on valid frames where the teacher is confident, ``max_k q_t(k) > threshold``."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must lie in [0, 1) (1 or more would drop every frame), got {threshold}")
    valid = checked_valid_mask(target_probs, lengths)
    return ((target_probs.amax(-1) > threshold) & valid).to(target_probs.dtype)


def factorized_blank_loss(
    log_probs: torch.Tensor,
    target_probs: torch.Tensor,
    lengths: torch.Tensor,
    blank_id: int = 0,
    frame_weights: torch.Tensor | None = None,
    weight_by_nonblank_mass: bool = True,
) -> torch.Tensor:
    """Soft loss split into "blank or token?" and "which token?", frame-averaged.

    Per frame, with q_b / p_b the teacher / student blank probability and q~ / p~ the distributions renormalised over
    the non-blank tokens::

        BCE(q_b, p_b) + c * CE(q~, p~),   c = 1 - q_b  (weight_by_nonblank_mass=True)  or  c = 1  (False)

    With ``c = 1 - q_b`` the sum equals the plain soft CE ``-sum_k q log p`` (chain rule of cross-entropy), in value
    and gradient; the split only changes training with ``c = 1`` (docs/method.md, regularizers, remedy 4 iii), where
    the token identity is learned with full weight even on blank-dominated frames.  Computed in log space:
    ``log(1 - p_b)`` is the logsumexp of the non-blank log-probabilities.
    """
    valid = checked_valid_mask(log_probs, lengths)
    _check_targets(target_probs, log_probs)
    _check_blank_id(blank_id, log_probs.size(-1))
    if log_probs.size(-1) < 2:
        raise ValueError("factorized_blank_loss needs a vocabulary with at least one token besides blank")
    log_probs, target_probs = zero_padding(log_probs, valid), zero_padding(target_probs, valid)
    is_blank = torch.zeros(log_probs.size(-1), dtype=torch.bool, device=log_probs.device)
    is_blank[blank_id] = True

    log_token_mass = torch.logsumexp(log_probs.masked_fill(is_blank, float("-inf")), -1)  # log(1 - p_b)
    token_targets = target_probs.masked_fill(is_blank, 0.0)
    teacher_token_mass = token_targets.sum(-1)  # 1 - q_b
    blank_bce = -(target_probs[..., blank_id] * log_probs[..., blank_id] + teacher_token_mass * log_token_mass)
    # (1 - q_b) * CE(q~, p~) = -sum_{k != blank} q_k log p~_k, which needs no division by 1 - q_b.
    token_ce = -(token_targets * (log_probs - log_token_mass.unsqueeze(-1))).sum(-1)
    if not weight_by_nonblank_mass:
        token_ce = token_ce / teacher_token_mass.clamp(min=torch.finfo(token_ce.dtype).tiny)
    return average_over_frames(blank_bce + token_ce, valid, frame_weights)


def marginal_prior_kl(log_probs: torch.Tensor, lengths: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``KL(pbar || prior)``, pbar (V,) the student's posterior averaged over all valid frames of the batch.

    Penalises a batch whose frames all take the same distribution (docs/method.md, regularizers, remedy 8).  ``prior``
    (V,) is a probability vector, e.g. from :func:`token_prior`; both sides are clamped away from 0 inside the log.
    """
    valid = checked_valid_mask(log_probs, lengths)
    vocab_size = log_probs.size(-1)
    if prior.shape != (vocab_size,):
        raise ValueError(f"prior must have shape (V,) = ({vocab_size},), got {tuple(prior.shape)}")
    require((prior >= 0).all() & ((prior.sum() - 1.0).abs() <= 1e-3),
            lambda: f"prior must be a probability vector (>= 0, sum 1), got sum {prior.sum().item():.6f}",
            "prior is not a probability vector")
    probs = zero_padding(log_probs, valid).exp() * valid.unsqueeze(-1)
    mean_probs = probs.sum((0, 1)) / valid.sum().clamp(min=1)
    tiny = torch.finfo(mean_probs.dtype).tiny
    prior = prior.to(mean_probs)
    return (mean_probs * (mean_probs.clamp(min=tiny).log() - prior.clamp(min=tiny).log())).sum()


def token_prior(
    token_ids_or_counts: Mapping[int, float] | Iterable[Sequence[int] | torch.Tensor],
    vocab_size: int,
    *,
    blank_share: float,
    blank_id: int = 0,
    smoothing: float = 1.0,
) -> torch.Tensor:
    """(V,) prior over frame labels for :func:`marginal_prior_kl`, from greedy outputs on labeled data.

    ``token_ids_or_counts`` is either a mapping token id -> count, or an iterable of token-id sequences (one per
    utterance: greedy CTC outputs, blanks removed).  Blank gets ``blank_share`` (e.g. the share of labeled frames
    whose argmax is blank); the non-blank tokens share ``1 - blank_share`` in proportion to ``count + smoothing``,
    so tokens never seen keep a non-zero prior.
    """
    _check_blank_id(blank_id, vocab_size)
    if not 0.0 <= blank_share < 1.0:
        raise ValueError(f"blank_share must lie in [0, 1), got {blank_share}")
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    if isinstance(token_ids_or_counts, Mapping):
        for token_id, count in token_ids_or_counts.items():
            _check_counted_token(int(token_id), vocab_size, blank_id, f"count key {token_id}")
            if count < 0:
                raise ValueError(f"count of token {token_id} is negative ({count}); counts must be >= 0")
            counts[int(token_id)] += count
    else:
        for index, ids in enumerate(token_ids_or_counts):
            ids = torch.as_tensor(ids, dtype=torch.long).flatten()
            bad = ids[(ids < 0) | (ids >= vocab_size) | (ids == blank_id)]
            if bad.numel():
                _check_counted_token(int(bad[0]), vocab_size, blank_id, f"sequence {index}")
            counts += torch.bincount(ids, minlength=vocab_size).to(counts.dtype)
    is_token = torch.arange(vocab_size) != blank_id
    token_counts = (counts + smoothing) * is_token
    if token_counts.sum() <= 0:
        raise ValueError("no tokens were counted and smoothing is 0: pass greedy outputs or use smoothing > 0")
    prior = (1.0 - blank_share) * token_counts / token_counts.sum()
    prior[blank_id] = blank_share
    return prior.to(torch.float32)


def _check_counted_token(token_id: int, vocab_size: int, blank_id: int, where: str) -> None:
    """Raise if a counted token is out of range or blank (greedy outputs must have blanks removed)."""
    if not 0 <= token_id < vocab_size:
        raise ValueError(f"{where}: token id {token_id} is outside the vocabulary [0, {vocab_size})")
    if token_id == blank_id:
        raise ValueError(
            f"{where}: holds the blank id {blank_id}; count collapsed greedy outputs (blanks removed) and give "
            f"the blank's share with blank_share"
        )
