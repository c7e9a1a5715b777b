"""Making pseudo-labels with a model, and turning cached pseudo-labels into a training batch.

The teacher (the live model or its EMA copy) labels unlabeled audio in eval mode on clean input, as slimIPL
does; options turn dropout on, or apply SpecAugment with a fixed seed (consistent augmentation: the student
later sees the same masks). A labeled batch becomes per-utterance :class:`~softpl.pl.targets.PseudoLabel`
records (CPU, compact); :func:`pseudo_label_batch` turns them back into the tensors ``CPLASRModel`` reads, as the
model's :class:`TargetNeeds` asks: the one place where the ``pl_*`` batch keys are written.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Iterator

import numpy as np
import torch
from espnet2.train.trainer import autocast_args

from softpl.pl.targets import frame_id_batch, make_pseudo_labels, pack_soft_targets, sample_paths, PseudoLabel


@contextlib.contextmanager
def teacher_mode(model: torch.nn.Module, *, dropout: bool = False, augment: bool = False) -> Iterator[None]:
    """Run ``model`` as a labeler: no gradients, every module in eval mode except as asked.

    ``dropout`` switches only the Dropout modules to training mode: BatchNorm and the like stay in eval, so they
    label with their running statistics and leave them untouched. ``augment`` sets the top-level module's
    training flag, which is what makes ESPnet's ASR model apply SpecAugment (SpecAugment's own layers do not
    read their mode). The modules' previous modes are restored afterwards.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    if dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.dropout._DropoutNd):
                module.training = True
    model.training = augment
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def joint_beam_search(model, beam_size: int, ctc_weight: float):
    """ESPnet's batched joint CTC/attention beam search over ``model``'s decoder and CTC (no LM, no length
    bonus), as ``espnet2.bin.asr_inference`` builds it: the pseudo-transcripts of ``--pl_transcript beam``.

    The search logs several INFO lines per utterance; in a training process they would bury ESPnet's training
    log, so its loggers are set to WARNING here.
    """
    from espnet2.legacy.nets import batch_beam_search, beam_search
    from espnet2.legacy.nets.batch_beam_search import BatchBeamSearch
    from espnet2.legacy.nets.scorers.ctc import CTCPrefixScorer

    for module in (batch_beam_search, beam_search):
        logging.getLogger(module.__name__).setLevel(logging.WARNING)
    return BatchBeamSearch(
        beam_size=beam_size,
        weights={"decoder": 1.0 - ctc_weight, "ctc": ctc_weight},
        scorers={"decoder": model.decoder, "ctc": CTCPrefixScorer(ctc=model.ctc, eos=model.eos)},
        sos=model.sos, eos=model.eos, vocab_size=len(model.token_list), token_list=model.token_list,
        pre_beam_score_key=None if ctc_weight == 1.0 else "full",
    )


def teacher_log_probs(
    model, speech: torch.Tensor, speech_lengths: torch.Tensor, *, dropout: bool = False,
    aug_seed: int | None = None, beam_search=None, features: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[list[int]] | None]:
    """(B, T, V) fp32 CTC log-posteriors and (B,) encoder lengths of the teacher on one batch, and with
    ``beam_search`` (:func:`joint_beam_search` of the same model) the best transcript of each utterance from the
    same encoder output (token ids without sos/eos and blank; None without it). ``features``: ``speech`` holds
    the frontend's output (:func:`frontend_features`), not audio."""
    with teacher_mode(model, dropout=dropout, augment=aug_seed is not None):
        enc, enc_lens = model.encode(speech, speech_lengths, aug_seed=aug_seed, features=features)
        transcripts = None
        if beam_search is not None:
            special = {model.sos, model.eos, model.blank_id}
            transcripts = [[t for t in nbest[0].yseq.tolist() if t not in special]
                           for nbest in beam_search(x=enc, x_lengths=enc_lens)]
        return model.ctc.log_softmax(enc).float(), enc_lens, transcripts


def frontend_features(model, speech: torch.Tensor, speech_lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """One audio batch as its frontend's features, the input a cached batch keeps (``--pl_cache_input
    features``): ``speech`` (B, T, D) fp32 features and ``speech_lengths`` as training computes them (ESPnet's
    ``collect_feats``: before SpecAugment and normalization), with no gradient and outside any autocast, so that
    a batch trained on its kept features sees what it would have seen from its audio; ``pl_features`` marks that
    ``speech`` holds features (``CPLASRModel`` then skips its frontend)."""
    with teacher_mode(model), torch.autocast(speech.device.type, enabled=False):
        feats = model.collect_feats(speech, speech_lengths, None, None)
    return {"speech": feats["feats"], "speech_lengths": feats["feats_lengths"],
            "pl_features": torch.ones(1, dtype=torch.bool)}


def labeling_autocast(label_dtype: str, use_amp: bool, device: str):
    """The precision of every teacher pass (``--pl_label_dtype``). Labeling runs in the trainer's batch iterator,
    outside the autocast of ESPnet's training forward, so ``auto`` enters that autocast itself (``--use_amp`` on
    a GPU: bf16 where the GPU has it, else fp16; fp32 otherwise, as ESPnet trains on CPU); a dtype names the
    precision outright (an autocast on the labeling device; the posteriors are returned in fp32 either way)."""
    if label_dtype == "auto":
        return torch.autocast("cuda", enabled=use_amp and device == "cuda", **autocast_args)
    if label_dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=getattr(torch, label_dtype))


def on_host(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A batch's tensors on the host, where the cache keeps them (tensors already there are not copied)."""
    return {key: value.cpu() for key, value in batch.items()}


def reference_batches(batches: list, num: int, seed: int) -> list:
    """``num`` distinct batches drawn at random by ``seed`` (all of them when there are fewer): the labeled
    reference at PL start. Not the first ones: ESPnet's samplers sort batches by length, longest first."""
    order = np.random.RandomState(seed).permutation(len(batches))
    return [batches[i] for i in order[:num]]


def text_tokenizer(unlabeled, user: str) -> Callable[[str], list[int]]:
    """Token ids of a text, tokenized by the unlabeled set's own ESPnet preprocessor (the labeled text's tokenizer
    and token list). ``user`` names what needs it, for the error."""
    preprocess = unlabeled.dataset.preprocess
    if preprocess is None:
        raise ValueError(f"{user} needs the task's text preprocessor (token_type and token_list) to tokenize text")

    def tokens(text: str) -> list[int]:
        return preprocess("text", {"text": text})["text"].tolist()

    return tokens


def reference_tokenizer(unlabeled, text_ref: dict[str, str], keys: list[str]) -> Callable[[str], list[int]]:
    """Token ids of an unlabeled utterance's truth (``text.ref``), tokenized as the labeled text: the transcripts
    of the oracle target. Every utterance of ``keys`` must have its truth."""
    missing = [key for key in keys if key not in text_ref]
    if missing:
        raise ValueError(
            f"pl_target oracle trains on the truth of the unlabeled set, but {len(missing)} of its {len(keys)} "
            f"utterances have none (first: {', '.join(missing[:3])}); give --unlabeled_text_ref <file> holding "
            "every utterance, or choose another pl_target")
    tokenize = text_tokenizer(unlabeled, "pl_target oracle")

    def tokens(key: str) -> list[int]:
        return tokenize(text_ref[key])

    return tokens


def label_batch(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    *,
    keep_soft: bool,
    topk: int | None,
    soft_mass: float = 1.0,
    sample_temperature: float | None = None,
    generator: torch.Generator | None = None,
    blank_id: int = 0,
    transcripts: list[list[int]] | None = None,
) -> list[PseudoLabel]:
    """Pseudo-labels of one batch. Each label's ``tokens`` is the greedy CTC transcript, or the one given in
    ``transcripts`` (joint beam search); with ``sample_temperature`` its ``sampled`` is a path sampled from the
    tempered posteriors and collapsed (the ``sampled`` target)."""
    labels = make_pseudo_labels(log_probs, lengths, keep_soft=keep_soft, topk=topk, soft_mass=soft_mass,
                                blank_id=blank_id)
    if transcripts is not None:
        labels = [dataclasses.replace(label, tokens=tokens) for label, tokens in zip(labels, transcripts)]
    if sample_temperature is not None:
        sampled = sample_paths(log_probs, lengths, sample_temperature, generator=generator, blank_id=blank_id)
        labels = [dataclasses.replace(label, sampled=path) for label, path in zip(labels, sampled)]
    return labels


def pad_transcripts(transcripts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) long token ids padded with -1 (ESPnet's ignore id) and their (B,) lengths, on CPU."""
    lengths = torch.tensor([len(tokens) for tokens in transcripts], dtype=torch.long)
    text = torch.full((len(transcripts), max(max(lengths.tolist(), default=0), 1)), -1, dtype=torch.long)
    for b, tokens in enumerate(transcripts):
        text[b, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return text, lengths


@dataclasses.dataclass(frozen=True)
class TargetNeeds:
    """What a model's unlabeled loss reads: what the labeler keeps in the cache and which ``pl_*`` tensors
    :func:`pseudo_label_batch` builds. A model declares it (``CPLASRModel.target_needs``); nothing else decides.

    ``transcript``: ``pl_text``, the transcript (CTC on it, the attention branch); ``reference``: that transcript
    is the utterance's truth (``text.ref``), not the labeler's (the oracle target); ``sampled_path``: ``pl_text``
    is a sampled path instead; ``attention_text``: ``pl_att_text``, the transcript for the attention branch when
    ``pl_text`` is a sampled path; ``soft``: ``pl_soft_values`` / ``pl_soft_indices``, the posteriors;
    ``frame_ids``: ``pl_frame_ids``, the per-frame argmax; ``prior``: ``pl_token_prior``, the token prior of
    greedy outputs on labeled data.
    """

    transcript: bool = False
    reference: bool = False
    sampled_path: bool = False
    attention_text: bool = False
    soft: bool = False
    frame_ids: bool = False
    prior: bool = False


def pseudo_label_batch(
    labels: list[PseudoLabel], needs: TargetNeeds, *, token_prior: torch.Tensor | None = None,
    aug_seed: int | None = None,
) -> dict[str, torch.Tensor]:
    """Every ``pl_*`` tensor of one unlabeled batch (CPU) that ``needs`` asks for, as ``CPLASRModel`` reads them.

    ``pl_text`` (B, L) padded with -1 and ``pl_text_lengths`` (the sampled paths under ``sampled_path``);
    ``pl_att_text`` / ``pl_att_text_lengths``; ``pl_soft_values`` / ``pl_soft_indices`` (B, T, k) compact soft
    targets (expanded on the model's device); ``pl_frame_ids`` (B, T) padded with -1; ``pl_token_prior`` (V,);
    ``pl_aug_seed`` (1,), the SpecAugment seed of consistent augmentation, when ``aug_seed`` is given.
    """
    num_frames = max(label.num_frames for label in labels)
    batch: dict[str, torch.Tensor] = {}
    if needs.transcript:
        if needs.sampled_path and any(label.sampled is None for label in labels):
            raise ValueError("the target trains on sampled paths, but the labels hold none: label with "
                             "sample_temperature")
        paths = [label.sampled if needs.sampled_path else label.tokens for label in labels]
        batch["pl_text"], batch["pl_text_lengths"] = pad_transcripts(paths)
    if needs.attention_text:
        batch["pl_att_text"], batch["pl_att_text_lengths"] = pad_transcripts([label.tokens for label in labels])
    if needs.soft:
        values, indices = pack_soft_targets(labels, num_frames)
        batch["pl_soft_values"] = values
        if indices is not None:
            batch["pl_soft_indices"] = indices
    if needs.frame_ids:
        batch["pl_frame_ids"] = frame_id_batch(labels, num_frames)
    if needs.prior:
        if token_prior is None:
            raise ValueError("the target needs the token prior, which the trainer estimates at PL start")
        batch["pl_token_prior"] = token_prior
    if aug_seed is not None:
        batch["pl_aug_seed"] = torch.tensor([aug_seed])
    return batch
