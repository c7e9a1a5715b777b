"""CPLASRModel: ESPnet's ASR model that also trains on pseudo-labeled (unlabeled) batches.

A labeled batch (``text`` present) is ESPnet's own step (``ESPnetASRModel.forward``: CTC, or hybrid
CTC/attention when ``ctc_weight`` < 1 and the model has a decoder); in validation the model also reports
greedy-CTC CER/WER and its posterior statistics. Frame-level pseudo-labels come from the CTC branch, so
``ctc_weight`` must be > 0. An unlabeled batch carries the pseudo-label tensors the trainer made
(:mod:`softpl.pl.slimipl`):
the CTC branch's loss is chosen by ``pl_target`` plus optional regularizers (below); a hybrid model's attention
branch trains on the pseudo-transcript (greedy CTC, or the trainer's joint beam search), and the two are weighted
by ``ctc_weight`` as ESPnet weighs them
(for ``hard`` targets that is ESPnet's own hybrid loss on the pseudo-transcript). ``model_conf`` keys:

==================  =====================================================================================
key                 meaning
==================  =====================================================================================
pl_target           ``hard``: CTC on the pseudo-transcript (slimIPL) · ``soft``: frame-level CE against
                    the cached posteriors · ``frame_hard``: frame-level CE against the per-frame argmax (no
                    CTC) · ``sampled``: CTC on a path sampled from the tempered posteriors, collapsed ·
                    ``oracle``: CTC on the cached utterances' true transcripts (``text.ref``), through the same
                    cache, refresh and schedule as ``hard``: the ceiling of pseudo-labeling in a regime
soft_temperature    τ applied to the cached posteriors: q ∝ q^(1/τ); τ < 1 sharpens
soft_reduction      ``utterance``: sum over frames, mean over utterances, as ESPnet's CTC loss (scale 1
                    puts soft and CTC losses on one scale) · ``frame``: mean over frames (the flashlight
                    prototype's, with soft_scale 20). It applies to every frame term: the soft or frame CE,
                    the entropy term and the prior KL
soft_scale          multiplier of the soft (or frame_hard) loss
mix_ctc_weight      λ: adds λ · CTC(pseudo-transcript) to the frame-level loss (soft + hard mixture)
entropy_weight      β: adds β · frame entropy of the student, reduced as the soft loss (β > 0 sharpens,
                    β < 0 smooths); β = -0.1 weighs a frame's entropy a tenth of its soft CE
blank_handling      ``none`` · ``drop``/``downweight``: frame weight ``blank_weight`` on blank-dominated
                    teacher frames · ``factorized``: blank-vs-token BCE plus CE over non-blank tokens
blank_weight        the weight of blank-dominated frames for ``downweight`` (``drop`` uses 0)
confidence_threshold θ: only frames whose teacher max probability exceeds θ count (0: all frames)
prior_weight        μ: adds μ · KL(mean student posterior ‖ token prior of greedy outputs on labeled data),
                    counted once per frame as the soft loss is
ctc_target_norm     ``none``: ESPnet's CTC (summed over utterances / batch size) · ``sqrt``: each utterance's
                    CTC loss divided by √(its target length) first, slimIPL's (flashlight ``--onorm=target
                    --sqnorm=true``); on every CTC term: labeled, pseudo-transcript, intermediate, validation
==================  =====================================================================================
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.asr.frontend.default import DefaultFrontend
from espnet2.torch_utils.device_funcs import force_gatherable

from softpl.decode.greedy import greedy_ctc_decode
from softpl.losses import regularizers as reg
from softpl.losses.soft_ctc import frame_cross_entropy, soft_cross_entropy
from softpl.metrics.collapse import posterior_stats
from softpl.models.layer_drop import enable_layer_drop
from softpl.pl.labeler import TargetNeeds
from softpl.pl.soft_storage import expand_soft_targets
from softpl.pl.targets import temper
from softpl.scoring.wer import align

PL_TARGETS = ("hard", "soft", "frame_hard", "sampled", "oracle")
CTC_TARGETS = ("hard", "sampled", "oracle")  # CTC on a transcript in pl_text
BLANK_HANDLING = ("none", "drop", "downweight", "factorized")
CTC_TARGET_NORMS = ("none", "sqrt")


class CPLASRModel(ESPnetASRModel):
    """ESPnet ASR model (CTC or hybrid CTC/attention) with pseudo-label losses; ESPnet's ``--model cpl``."""

    def __init__(
        self,
        *args,
        pl_target: str = "hard",
        soft_temperature: float = 1.0,
        soft_reduction: str = "utterance",
        soft_scale: float = 1.0,
        mix_ctc_weight: float = 0.0,
        entropy_weight: float = 0.0,
        blank_handling: str = "none",
        blank_weight: float = 0.0,
        confidence_threshold: float = 0.0,
        prior_weight: float = 0.0,
        ctc_target_norm: str = "none",
        sym_space: str = "<space>",
        **kwargs,
    ):
        super().__init__(*args, sym_space=sym_space, **kwargs)
        enable_layer_drop(self.encoder)  # ESPnet's transformer and conformer encoders would skip layer_drop_rate
        self.sym_space = sym_space
        if self.ctc_weight <= 0.0:
            raise ValueError(
                f"model cpl labels with its CTC branch: model_conf.ctc_weight must be > 0 (got {self.ctc_weight})"
            )
        self.hybrid = self.decoder is not None and self.ctc_weight < 1.0
        choices = {"pl_target": (pl_target, PL_TARGETS), "soft_reduction": (soft_reduction, ("utterance", "frame")),
                   "blank_handling": (blank_handling, BLANK_HANDLING),
                   "ctc_target_norm": (ctc_target_norm, CTC_TARGET_NORMS)}
        for key, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"model_conf.{key} must be one of {allowed}, got {value!r}")
        if soft_temperature <= 0:
            raise ValueError(f"model_conf.soft_temperature must be > 0, got {soft_temperature}")
        if not 0.0 <= confidence_threshold < 1.0:
            raise ValueError(f"model_conf.confidence_threshold must be in [0, 1), got {confidence_threshold}")
        self.pl_target = pl_target
        self.soft_temperature = soft_temperature
        self.soft_reduction = soft_reduction
        self.soft_scale = soft_scale
        self.mix_ctc_weight = mix_ctc_weight
        self.entropy_weight = entropy_weight
        self.blank_handling = blank_handling
        self.blank_weight = 0.0 if blank_handling == "drop" else blank_weight
        self.confidence_threshold = confidence_threshold
        self.prior_weight = prior_weight
        self.ctc_target_norm = ctc_target_norm
        if ctc_target_norm == "sqrt":
            if self.ctc.ctc_type != "builtin":
                raise ValueError(f"model_conf.ctc_target_norm sqrt scales torch's per-utterance CTC losses: it needs "
                                 f"ctc_conf.ctc_type builtin, got {self.ctc.ctc_type!r}")
            self.ctc.reduce = False  # ESPnet's CTC then returns each utterance's loss / batch size
        self.blank_id = self.token_list.index("<blank>") if "<blank>" in self.token_list else 0
        needs = self.target_needs
        if (needs.soft or needs.frame_ids) and getattr(self.specaug, "apply_time_warp", False):
            raise ValueError(
                f"pl_target {pl_target} (with blank_handling {blank_handling}, confidence_threshold "
                f"{confidence_threshold}) trains frame by frame on targets the teacher made from unwarped input, "
                "but SpecAugment's time warp shifts the student's frames against them: set "
                "specaug_conf.apply_time_warp false, or use a target on transcripts (hard, sampled, oracle)")
        self._given_features = False  # set within encode(features=True): the input holds the frontend's output

    # ---- what the pseudo-labeler must store ------------------------------------------------------
    @property
    def target_needs(self) -> TargetNeeds:
        """What the unlabeled loss reads (the PL batch contract): the labeler keeps it, the batch carries it.

        A transcript for CTC on it (hard, sampled, oracle, ``mix_ctc_weight``) and for the attention branch; the
        posteriors for the soft loss and for the frame weights of blank handling and the confidence mask."""
        sampled = self.pl_target == "sampled"
        return TargetNeeds(
            transcript=self.pl_target in CTC_TARGETS or self.mix_ctc_weight > 0 or self.hybrid,
            reference=self.pl_target == "oracle",
            sampled_path=sampled,
            attention_text=sampled and self.hybrid,  # the attention branch learns the transcript, not the path
            soft=self.pl_target == "soft" or self.blank_handling != "none" or self.confidence_threshold > 0,
            frame_ids=self.pl_target == "frame_hard",
            prior=self.prior_weight > 0,
        )

    @property
    def fixed_frontend(self) -> bool:
        """Whether the frontend is a fixed function of mono audio, the same in training and eval mode: none, or
        ESPnet's default STFT + log-mel without an enhancement front-end or trainable parameters, run in fp32
        (``autocast_frontend`` false, ESPnet's default). Then a pseudo-labeled batch can keep the features its
        labeling made instead of its audio."""
        frontend = self.frontend
        if frontend is None:
            return True
        if type(frontend) is not DefaultFrontend or self.autocast_frontend:
            return False
        enhancement = frontend.frontend
        if enhancement is not None and (enhancement.use_wpe or enhancement.use_beamformer):
            return False
        return not any(p.requires_grad for p in frontend.parameters())

    # ---- forward -------------------------------------------------------------------------------------
    def forward(self, speech, speech_lengths, text=None, text_lengths=None, **kwargs):
        """Labeled batch (``text`` given): ESPnet's CTC step. Unlabeled batch: the pseudo-label loss."""
        pl_inputs = {k: kwargs.pop(k) for k in list(kwargs) if k.startswith("pl_")}
        if text is not None:
            if self.training:
                return super().forward(speech, speech_lengths, text, text_lengths, **kwargs)
            return self._validation_forward(speech, speech_lengths, text, text_lengths)
        if not pl_inputs:
            raise ValueError("a batch without 'text' must carry pseudo-label tensors (pl_*); see CPLTrainer")
        return self._unlabeled_forward(speech, speech_lengths, **pl_inputs)

    def encode(self, speech, speech_lengths, aug_seed: int | None = None, features: bool = False):
        """ESPnet's encoder pass; with ``aug_seed`` SpecAugment draws its masks from that seed (consistent aug).
        ``features``: ``speech`` (B, T, D) already holds the frontend's output (:meth:`collect_feats`), which
        ESPnet's SpecAugment, normalization and encoder then take as they would the frontend's."""
        previous, self._given_features = self._given_features, features
        try:
            with self._seeded_specaug(aug_seed):
                return super().encode(speech, speech_lengths)
        finally:
            self._given_features = previous

    def _extract_feats(self, speech, speech_lengths):
        if self._given_features:  # the frontend's output for this very batch, so already cut to its longest
            # utterance (no slicing by a length read from the device); a copy, as ESPnet's normalization works
            # in place and the cache keeps the input
            return speech.clone(), speech_lengths
        return super()._extract_feats(speech, speech_lengths)

    @contextlib.contextmanager
    def _seeded_specaug(self, seed: int | None) -> Iterator[None]:
        """Within the block, SpecAugment's random draws come from ``seed`` and leave the global RNG untouched."""
        if seed is None or self.specaug is None:
            yield
            return
        specaug_forward = self.specaug.forward

        def seeded_forward(*args, **kwargs):
            device = args[0].device
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(seed)
                return specaug_forward(*args, **kwargs)

        self.specaug.forward = seeded_forward
        try:
            yield
        finally:
            del self.specaug.forward

    def _ctc_loss(self, enc, enc_lens, text, text_lengths):
        """ESPnet's CTC loss of a batch, each utterance divided by √(target length) under ``ctc_target_norm``
        sqrt (an empty pseudo-transcript counts as length 1)."""
        loss = self.ctc(enc, enc_lens, text, text_lengths)
        return self._norm_ctc(loss, text_lengths)

    def _norm_ctc(self, loss, text_lengths):
        if self.ctc_target_norm == "none":
            return loss
        return (loss / text_lengths.clamp(min=1).to(loss.dtype).sqrt()).sum()

    def _calc_ctc_loss(self, encoder_out, encoder_out_lens, ys_pad, ys_pad_lens):
        """ESPnet's CTC loss (and CER) of labeled batches and intermediate CTC, normalized as configured."""
        loss, cer = super()._calc_ctc_loss(encoder_out, encoder_out_lens, ys_pad, ys_pad_lens)
        return self._norm_ctc(loss, ys_pad_lens), cer

    def _validation_forward(self, speech, speech_lengths, text, text_lengths):
        enc, enc_lens = self.encode(speech, speech_lengths)
        loss_ctc = self._ctc_loss(enc, enc_lens, text, text_lengths)
        loss, hybrid_stats = loss_ctc, {}
        if self.hybrid:  # ESPnet's validation loss and attention accuracy (what hybrid recipes select by)
            text = text[:, : text_lengths.max()]
            loss_att, acc_att, _, _ = self._calc_att_loss(enc, enc_lens, text, text_lengths)
            loss = self.ctc_weight * loss_ctc + (1.0 - self.ctc_weight) * loss_att
            hybrid_stats = {"loss_att": loss_att.detach(), "acc": acc_att}
        log_probs = self.ctc.log_softmax(enc)
        counts = {"char": None, "word": None}
        for hyp_ids, ref_ids in zip(greedy_ctc_decode(log_probs, enc_lens, self.blank_id),
                                    [t[t >= 0].tolist() for t in text]):
            hyp, ref = self.ids_to_text(hyp_ids), self.ids_to_text(ref_ids)
            for unit, (r, h) in {"char": (list(ref.replace(" ", "")), list(hyp.replace(" ", ""))),
                                 "word": (ref.split(), hyp.split())}.items():
                c = align(r, h)
                counts[unit] = c if counts[unit] is None else counts[unit] + c
        stats = {
            "loss": loss.detach(),
            "loss_ctc": loss_ctc.detach(),
            **hybrid_stats,
            "cer_ctc": counts["char"].error_rate / 100,
            "wer_ctc": counts["word"].error_rate / 100,
            **posterior_stats(log_probs, enc_lens, self.blank_id),
        }
        return force_gatherable((loss, stats, speech.shape[0]), loss.device)

    def ids_to_text(self, ids: list[int]) -> str:
        """Token ids to text: pieces joined, the word-boundary symbol (``▁`` or ``<space>``) turned into spaces."""
        pieces = "".join(self.token_list[i] for i in ids)
        return " ".join(pieces.replace(self.sym_space, " ").split())

    def _unlabeled_forward(
        self,
        speech,
        speech_lengths,
        pl_text=None,
        pl_text_lengths=None,
        pl_soft_values=None,
        pl_soft_indices=None,
        pl_frame_ids=None,
        pl_token_prior=None,
        pl_aug_seed=None,
        pl_att_text=None,
        pl_att_text_lengths=None,
        pl_features=None,
    ):
        aug_seed = None if pl_aug_seed is None else int(pl_aug_seed.reshape(-1)[0])
        enc, enc_lens = self.encode(speech, speech_lengths, aug_seed=aug_seed, features=pl_features is not None)
        log_probs = self.ctc.log_softmax(enc)
        batch_size = speech.shape[0]
        # Frame terms (soft/frame CE, entropy, prior KL) are means over valid frames; "utterance" rescales every
        # one of them to ESPnet's CTC normalization (sum over frames, mean over utterances), so that their weights
        # (soft_scale, entropy_weight, prior_weight) mean the same under either reduction.
        reduction_scale = enc_lens.sum() / batch_size if self.soft_reduction == "utterance" else 1.0
        frame_scale = self.soft_scale * reduction_scale

        target_probs = None
        if pl_soft_values is not None:
            target_probs = expand_soft_targets(pl_soft_values, pl_soft_indices, log_probs.shape[-1])
            target_probs = temper(target_probs, self.soft_temperature, log_domain=False)
        weights = self._frame_weights(target_probs, enc_lens)

        stats = {}
        if self.pl_target in CTC_TARGETS:
            loss_main = self._ctc_loss(enc, enc_lens, pl_text, pl_text_lengths)
            stats["loss_pl_ctc"] = loss_main.detach()
        elif self.pl_target == "soft":
            if target_probs is None:
                raise ValueError("pl_target 'soft' needs pl_soft_values: the trainer must keep soft targets")
            if self.blank_handling == "factorized":
                loss_main = reg.factorized_blank_loss(log_probs, target_probs, enc_lens, self.blank_id, weights,
                                                      weight_by_nonblank_mass=False)
            else:
                loss_main = soft_cross_entropy(log_probs, target_probs, enc_lens, weights)
            loss_main = frame_scale * loss_main
            stats["loss_pl_soft"] = loss_main.detach()
        else:  # frame_hard
            loss_main = frame_scale * frame_cross_entropy(log_probs, pl_frame_ids.long(), enc_lens, weights)
            stats["loss_pl_frame"] = loss_main.detach()
        loss = loss_main
        if self.mix_ctc_weight > 0:
            loss_mix = self._ctc_loss(enc, enc_lens, pl_text, pl_text_lengths)
            loss = loss + self.mix_ctc_weight * loss_mix
            stats["loss_pl_mix_ctc"] = loss_mix.detach()
        if self.entropy_weight != 0:
            entropy = reg.frame_entropy(log_probs, enc_lens)
            loss = loss + self.entropy_weight * reduction_scale * entropy
            stats["pl_entropy_term"] = (self.entropy_weight * reduction_scale * entropy).detach()
        if self.prior_weight > 0:
            if pl_token_prior is None:
                raise ValueError("prior_weight > 0 needs pl_token_prior: the trainer estimates it at PL start")
            prior_kl = reg.marginal_prior_kl(log_probs, enc_lens, pl_token_prior.reshape(-1))
            loss = loss + self.prior_weight * reduction_scale * prior_kl
            stats["pl_prior_kl"] = prior_kl.detach()
        if self.hybrid:  # the attention branch on the greedy transcript (pl_att_text when pl_text was sampled)
            att_text = pl_text if pl_att_text is None else pl_att_text
            att_lengths = pl_text_lengths if pl_att_text is None else pl_att_text_lengths
            loss_att, acc_att, _, _ = self._calc_att_loss(enc, enc_lens, att_text, att_lengths)
            loss = self.ctc_weight * loss + (1.0 - self.ctc_weight) * loss_att
            stats["loss_pl_att"], stats["pl_acc_att"] = loss_att.detach(), acc_att
        student = posterior_stats(log_probs, enc_lens, self.blank_id)
        stats.update({f"pl_student_{k}": v for k, v in student.items()})
        stats["loss_pl"] = loss.detach()
        stats["loss"] = loss.detach()
        if weights is not None:
            stats["pl_frames_used"] = (weights.sum() / enc_lens.sum()).detach()
        return force_gatherable((loss, stats, batch_size), loss.device)

    def _frame_weights(self, target_probs, lengths):
        """Per-frame weights from blank handling and the confidence mask (None: every valid frame counts).

        Both read the teacher posteriors, which the trainer keeps whenever ``target_needs.soft`` says so.
        """
        weights = None
        if self.blank_handling in ("drop", "downweight"):
            weights = reg.blank_frame_weights(target_probs, lengths, self.blank_id, self.blank_weight)
        if self.confidence_threshold > 0:
            conf = reg.confidence_weights(target_probs, lengths, self.confidence_threshold)
            weights = conf if weights is None else weights * conf
        return weights
