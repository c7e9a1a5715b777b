"""Which pseudo-labeled utterances to train on (``--pl_keep_share``, ``--pl_confidence``): the most confident share
of each labeled batch, the rest left out of its unlabeled updates.

slimIPL trains on every pseudo-label; self-training recipes that filter (noisy student, IPL's filtering) train on
the labels the labeler is surest of, which are more often right (egs/synth_en/EXPERIMENTS.md E22 measures it: the
kept labels' WER against the share kept). The share is per batch, so that every unlabeled update still trains on
a batch (at least one utterance) and the unlabeled share of training does not drift with the labeler's calibration.
What is left out is still labeled and counted as covered; ``pl_kept_wer_vs_ref`` tells the kept labels' WER.
"""
from __future__ import annotations

import math

import torch

CONFIDENCES = ("frame_max", "lexicon")


def frame_max_confidence(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[float]:
    """Per utterance, the mean over its frames of the labeler's largest posterior (blank frames included)."""
    best = log_probs.max(dim=-1).values.exp()
    valid = torch.arange(log_probs.shape[1], device=log_probs.device)[None, :] < lengths.to(log_probs.device)[:, None]
    return ((best * valid).sum(dim=1) / lengths.clamp(min=1).to(best)).tolist()


def lexicon_share(texts: list[str], known: frozenset) -> list[float]:
    """Per transcript, the share of its words that the lexicon has (an empty transcript: 0)."""
    return [sum(word in known for word in text.split()) / len(text.split()) if text.split() else 0.0
            for text in texts]


def keep_most_confident(scores: list, share: float) -> list[bool]:
    """The ``share`` of ``scores`` (numbers, or tuples compared in order) that ranks highest, ceil(share x batch) and
    at least one, ties to the earlier utterance (a stable sort)."""
    keep = max(1, math.ceil(share * len(scores) - 1e-9))
    chosen = set(sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:keep])
    return [i in chosen for i in range(len(scores))]


class Selection:
    """The rule of ``--pl_keep_share`` / ``--pl_confidence``: which utterances of a labeled batch are trained on."""

    def __init__(self, keep_share: float, confidence: str, lexicon=None):
        if not 0.0 < keep_share <= 1.0:
            raise ValueError(f"--pl_keep_share {keep_share} must be in (0, 1]")
        if confidence not in CONFIDENCES:
            raise ValueError(f"--pl_confidence {confidence}: choose one of {', '.join(CONFIDENCES)}")
        if confidence == "lexicon" and lexicon is None:
            raise ValueError("--pl_confidence lexicon ranks transcripts by the share of their words in the lexicon: "
                             "give --pl_lexicon labeled (or a text), or use --pl_confidence frame_max")
        self.keep_share, self.confidence, self.lexicon = keep_share, confidence, lexicon

    @property
    def active(self) -> bool:
        return self.keep_share < 1.0

    def keep(self, log_probs: torch.Tensor, lengths: torch.Tensor, texts: list[str] | None) -> list[bool]:
        """Which utterances of a batch to train on; ``texts``: the labeler's transcripts before any snapping (read
        under ``lexicon`` only). There the frame confidence breaks ties (many transcripts are wholly in the
        lexicon)."""
        frame = frame_max_confidence(log_probs, lengths)
        if self.confidence == "frame_max":
            return keep_most_confident(frame, self.keep_share)
        return keep_most_confident(list(zip(lexicon_share(texts, self.lexicon.known), frame)), self.keep_share)


def select_rows(keys: list[str], batch: dict[str, torch.Tensor], labels: list, keep: list[bool] | None):
    """The kept utterances of an unlabeled batch (``keep`` None: all): its keys, its per-utterance tensors (input
    trimmed to the longest kept one) and its pseudo-labels."""
    if keep is None or all(keep):
        return keys, batch, labels
    rows = torch.tensor([i for i, k in enumerate(keep) if k])
    size = len(keep)
    batch = {name: value.index_select(0, rows.to(value.device)) if value.dim() and value.shape[0] == size else value
             for name, value in batch.items()}
    batch["speech"] = batch["speech"][:, : int(batch["speech_lengths"].max())]
    return [key for key, k in zip(keys, keep) if k], batch, [label for label, k in zip(labels, keep) if k]
