"""slimIPL's loop and state, one training process (rank) at a time: the cache, the unlabeled stream, labeling,
diagnostics and the collapse alarm, and everything a resume needs to continue exactly.

:class:`SlimIPL` wraps the labeled iterator of an ESPnet epoch: after PL start it yields each labeled batch with
``pl_unlabeled_per_labeled`` unlabeled ones in a random order (slimIPL's cycles), cached batches carrying the
``pl_*`` tensors the model's ``target_needs`` asks for; the model computes the loss the config chose.

Per unlabeled step (docs/method.md, 'slimIPL'): take the next slot of the cache (C entries, read in reshuffled
passes); with probability p first label the next batch of the shuffled stream over the unlabeled set with the
current model (or EMA teacher) and put it in that slot; train on the entry taken. While the cache fills, batches
are labeled without updates.

What ESPnet's checkpoint does not hold (cache, teacher, counters, generators, alarm, coverage) is saved at every
epoch end to ``<output_dir>/cpl_state/epoch<N>.rank<R>.pth``, so a killed run continues exactly.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from softpl.losses.regularizers import token_prior
from softpl.metrics.collapse import CollapseAlarm, alarm_inputs, posterior_stats
from softpl.pl.cache import PLCache, dynamic_refresh_prob, stored_nbytes
from softpl.pl.cache_input import CacheInput
from softpl.pl.coverage import Coverage, log_planned_coverage
from softpl.pl.dropout import lower_dropout
from softpl.pl.labeler import (joint_beam_search, label_batch, labeling_autocast, pseudo_label_batch,
                               reference_batches, reference_tokenizer, teacher_log_probs, text_tokenizer)
from softpl.pl.lexicon import LexiconTranscripts
from softpl.pl.selection import Selection, select_rows
from softpl.pl.stream import UnlabeledStream, load_batch
from softpl.pl.teacher import EMATeacher
from softpl.scoring.wer import align


class SlimIPL:
    """Pseudo-labeling state and loop of one training process (one rank: its own cache over its own shard).

    Args:
        options: CPLTrainerOptions (:mod:`softpl.train.options`).
        labeled, unlabeled: ESPnet SequenceIterFactory objects (their dataset, collate_fn and batches are used).
        model: the model being trained (unwrapped).
        text_ref: truth of the unlabeled utterances, read for the pseudo-label WER and by the oracle target
            (may be empty otherwise).
        unlabeled_lengths: length (samples or frames) of each unlabeled utterance, for the share of audio labeled.
        rank: distributed rank (0 without DDP).
        reduce_sum: sums a tensor over the ranks in place (a collective every rank calls at every report); the
            default does nothing, as in a single process.
    """

    def __init__(self, options, labeled, unlabeled, model, text_ref: dict[str, str],
                 unlabeled_lengths: dict[str, int], rank: int = 0,
                 reduce_sum: Callable[[torch.Tensor], None] = lambda tensor: None):
        self.opt = options
        self.labeled = labeled
        self.unlabeled = unlabeled
        self.rank = rank
        self.reduce_sum = reduce_sum
        self.state_dir = Path(options.output_dir) / "cpl_state"
        self.stream = UnlabeledStream(unlabeled, options.seed, rank, options.num_workers)
        self.text_ref = text_ref
        self.needs = model.target_needs
        shard = [key for batch in self.stream.batches for key in batch]
        if self.needs.reference:
            self.reference_tokens = reference_tokenizer(unlabeled, text_ref, shard)
            if options.pl_refresh == "dynamic":
                raise ValueError("--pl_refresh dynamic follows the churn of pseudo-labels; the oracle target's "
                                 "labels are the truth and never change: use --pl_refresh fixed")
        self.coverage = Coverage({key: unlabeled_lengths.get(key, 0) for key in shard})
        self.lexicon: LexiconTranscripts | None = None
        if options.pl_lexicon != "none":  # CPLTrainer.build_options resolves "labeled"
            self.lexicon = LexiconTranscripts(options, text_tokenizer(unlabeled, "--pl_lexicon"), model.token_list,
                                              model.blank_id)
            logging.info("pseudo-transcripts made of the %d words of %s (--pl_lexicon, --pl_transcript %s)",
                         len(self.lexicon.lexicon.words), options.pl_lexicon, options.pl_transcript)
        self.selection = Selection(options.pl_keep_share, options.pl_confidence,
                                   self.lexicon.lexicon if self.lexicon else None)
        if options.pl_transcript == "beam" and not model.hybrid:
            raise ValueError("--pl_transcript beam needs a hybrid CTC/attention model (a decoder and ctc_weight < 1); "
                             "this model has only its CTC branch: use --pl_transcript greedy")
        highest = options.pl_refresh_prob_max if options.pl_refresh == "dynamic" else 1.0  # p's largest value
        if not 0.0 <= options.pl_refresh_prob <= highest <= 1.0:
            raise ValueError(f"--pl_refresh_prob {options.pl_refresh_prob} must be in [0, {highest}] (<= 1)")
        self.cache = PLCache(options.pl_cache_size, seed=options.seed * 1000 + rank)
        self.input = CacheInput(options, unlabeled, self.stream.batches, unlabeled_lengths)
        self.alarm = CollapseAlarm(
            max_blank_rate=options.pl_collapse_max_blank_rate,
            min_mi_proxy=options.pl_collapse_min_mi,
            min_length_ratio=options.pl_collapse_min_length_ratio,
            max_length_drop=options.pl_collapse_max_length_drop,
            patience=options.pl_collapse_patience,
            action=options.pl_collapse_action,
        )
        self.generator = torch.Generator().manual_seed(options.seed * 1000 + 500 + rank)
        self.teacher: EMATeacher | None = None
        self.started = False
        self.updates = 0  # batches trained on (labeled + unlabeled)
        self.unlabeled_updates = 0
        self.token_prior: torch.Tensor | None = None
        self.labeled_tokens_per_frame = math.nan
        self.refresh_prob = options.pl_refresh_prob
        self.next_churn_update = 0  # fixed refresh: churn is measured at the first refresh from this unlabeled update
        self.diag = defaultdict(list)  # per-labeling diagnostics since the last report
        self.label_seconds = 0.0  # wall time spent labeling (and measuring churn) since the last report
        self.assemble_seconds = 0.0  # ... and assembling unlabeled batches' pseudo-label tensors
        self.window_start = time.perf_counter()

    # ---- labeling ----------------------------------------------------------------------------------
    def _labeler(self, model):
        return self.teacher.module if self.teacher is not None else model

    def _teacher_pass(self, model, batch: dict, device: str, *, beam: bool = True, **mode):
        """The labeler's log-posteriors and lengths at the labeling precision, and with ``beam`` (under
        ``--pl_transcript beam``) its joint beam-search transcripts; ``batch`` holds audio or (``pl_features``)
        features."""
        labeler = self._labeler(model)
        search = None
        if beam and self.opt.pl_transcript == "beam":
            search = joint_beam_search(labeler, self.opt.pl_beam_size, self.opt.pl_beam_ctc_weight)
        with labeling_autocast(self.opt.pl_label_dtype, self.opt.use_amp, device):
            return teacher_log_probs(labeler, batch["speech"].to(device), batch["speech_lengths"].to(device),
                                     beam_search=search, features="pl_features" in batch, **mode)

    def _transcribe(self, model, log_probs, lengths, transcripts, **labeling) -> tuple[list, list[str] | None]:
        """Pseudo-labels of a teacher pass (:func:`label_batch`), their transcripts made of the lexicon's words
        under ``--pl_lexicon``; and (with a lexicon only) the labeler's own transcripts' text."""
        labels = label_batch(log_probs, lengths, blank_id=model.blank_id, transcripts=transcripts, **labeling)
        if self.lexicon is None:
            return labels, None
        texts = [model.ids_to_text(label.tokens) for label in labels]
        return [dataclasses.replace(label, tokens=tokens)
                for label, tokens in zip(labels, self.lexicon(texts, log_probs, lengths))], texts

    def _label(self, model, device: str) -> dict:
        """Label the next batch of the unlabeled stream; return a cache entry (keys + pseudo-labels)."""
        keys, batch = self.stream.next()
        batch = self.input.labeling_input(self._labeler(model), batch, device)
        aug_seed = int(torch.randint(2**31 - 1, (), generator=self.generator)) if self.opt.pl_consistent_aug else None
        log_probs, lengths, transcripts = self._teacher_pass(
            model, batch, device, dropout=self.opt.pl_teacher_dropout, aug_seed=aug_seed)
        labels, texts = self._transcribe(
            model, log_probs, lengths, transcripts, keep_soft=self.needs.soft, topk=self.opt.pl_soft_topk or None,
            soft_mass=self.opt.pl_soft_mass,
            sample_temperature=self.opt.pl_sample_temperature if self.needs.sampled_path else None,
            generator=self.generator if log_probs.device.type == "cpu" else None,
        )
        # --pl_keep_share: the utterances its unlabeled updates train on (kept in the entry, as its labels are).
        kept = {"keep": self.selection.keep(log_probs, lengths, texts)} if self.selection.active else {}
        # The diagnostics measure the labeler's own transcripts (snapped under --pl_lexicon), also under the oracle.
        self._record_diagnostics(model, keys, log_probs, lengths, [label.tokens for label in labels], kept.get("keep"))
        self.coverage.add(keys)
        if self.needs.reference:
            labels = [dataclasses.replace(label, tokens=self.reference_tokens(key)) for key, label in zip(keys, labels)]
        return self.input.keep({"keys": keys, "labels": labels, "aug_seed": aug_seed, **kept}, batch)

    def _record_diagnostics(self, model, keys, log_probs, lengths, transcripts, keep=None) -> None:
        stats = posterior_stats(log_probs, lengths, model.blank_id)
        for name, value in zip(stats, torch.stack(list(stats.values())).tolist()):  # one copy to the host
            self.diag[f"pl_{name}"].append(value)
        tokens_per_frame = sum(map(len, transcripts)) / max(int(lengths.sum()), 1)
        self.diag["pl_length_ratio"].append(tokens_per_frame / self.labeled_tokens_per_frame)
        if keep is not None:
            self.diag["pl_kept_share"].append(sum(keep) / len(keep))
        counts = {key: align(self.text_ref[key].split(), model.ids_to_text(ids).split())
                  for key, ids in zip(keys, transcripts) if key in self.text_ref}
        kept = [key for key, k in zip(keys, keep or ()) if k]
        for name, chosen in (("pl_wer_vs_ref", keys), ("pl_kept_wer_vs_ref", kept)):
            scored = [counts[key] for key in chosen if key in counts]
            if scored:
                self.diag[name].append(100.0 * sum(c.errors for c in scored) / max(sum(c.n_ref for c in scored), 1))

    def _churn_due(self) -> bool:
        """Measure churn at this refresh? It costs one more teacher pass (a quarter of a training step for
        egs/synth_en's model on CPU): dynamic refresh needs it at every refresh (it sets p); otherwise it is a
        diagnostic, measured at the first refresh, then at the first one ``--pl_churn_interval`` or more unlabeled
        updates after the last measurement."""
        if self.needs.reference:  # the cached labels are the truth: they have no churn
            return False
        return self.opt.pl_refresh == "dynamic" or self.unlabeled_updates >= self.next_churn_update

    def _churn(self, model, entry: dict, device: str) -> float:
        """Token edit rate between an entry's cached pseudo-transcripts and the labeler's transcripts now."""
        batch = self.input.train_input(self._labeler(model), entry, device)
        log_probs, lengths, transcripts = self._teacher_pass(model, batch, device)
        now, _ = self._transcribe(model, log_probs, lengths, transcripts, keep_soft=False, topk=None)
        counts = [align(list(map(str, old.tokens)), list(map(str, new.tokens)))
                  for old, new in zip(entry["labels"], now)]
        return sum(c.errors for c in counts) / max(sum(c.n_ref for c in counts), 1)

    # ---- the loop ----------------------------------------------------------------------------------
    def _lower_dropout(self, model) -> None:
        """``--pl_dropout``: dropout and layer drop lowered together (:func:`softpl.pl.dropout.lower_dropout`)."""
        if self.opt.pl_dropout is not None:
            counts = lower_dropout(model, self.opt.pl_dropout)
            logging.info("dropout %.3g from now on: %d dropout modules, %d layer-drop stacks", self.opt.pl_dropout,
                         counts["dropout"], counts["layer_drop"])

    def start(self, model, device: str, epoch: int) -> None:
        """PL start: lower dropout, make the EMA teacher, measure the labeled reference (prior, length), say how
        much of the unlabeled set the run will reach."""
        self._lower_dropout(model)
        if self.opt.pl_teacher == "ema" and self.teacher is None:
            self.teacher = EMATeacher(model, self.opt.pl_ema_decay)
        counts, blank_frames, frames, ref_tokens = defaultdict(int), 0, 0, 0
        seed = self.opt.seed * 1000 + 900 + self.rank  # not self.generator: that would shift every later PL draw
        for keys in reference_batches(self.labeled.sampler.generate(0), self.opt.pl_prior_batches, seed):
            batch = load_batch(self.labeled, list(keys))
            log_probs, lengths, _ = self._teacher_pass(model, batch, device, beam=False)
            labels = label_batch(log_probs, lengths, keep_soft=False, topk=None, blank_id=model.blank_id)
            for label in labels:
                for i in label.tokens:
                    counts[i] += 1
            blank_frames += sum(int((label.frame_ids == model.blank_id).sum()) for label in labels)
            frames += int(lengths.sum())
            ref_tokens += int(batch["text_lengths"].sum())
        self.labeled_tokens_per_frame = ref_tokens / max(frames, 1)
        if self.needs.prior:
            self.token_prior = token_prior(dict(counts), len(model.token_list),
                                           blank_share=blank_frames / max(frames, 1), blank_id=model.blank_id)
        self.started = True
        logging.info(
            "pseudo-labeling starts at update %d: %d unlabeled per labeled update, cache %d batches, p=%.3g, "
            "target %s, teacher %s; labeled reference %.3f tokens/frame, greedy blank share %.3f",
            self.updates, self.opt.pl_unlabeled_per_labeled, self.opt.pl_cache_size, self.opt.pl_refresh_prob,
            model.pl_target, self.opt.pl_teacher, self.labeled_tokens_per_frame, blank_frames / max(frames, 1),
        )
        self._log_planned_coverage(epoch)

    def _log_planned_coverage(self, epoch: int) -> None:
        per_epoch = self.opt.num_iters_per_epoch or len(self.labeled.sampler.generate(epoch))
        unlabeled_updates = (self.opt.max_epoch - epoch + 1) * per_epoch * self.opt.pl_unlabeled_per_labeled
        log_planned_coverage(unlabeled_updates, self.opt.pl_cache_size, self.opt.pl_refresh_prob,
                             len(self.stream.batches))

    def interleave(self, model, labeled_iter, reporter, epoch: int, device: str) -> Iterator:
        """Yield ESPnet (keys, batch) pairs: labeled batches, and after PL start unlabeled ones in between."""
        unwrapped = getattr(model, "module", model)
        schedule = np.random.RandomState(self.opt.seed * 31 + epoch)
        for keys, batch in labeled_iter:
            if not self.started and self.updates >= self.opt.pl_start_updates:
                self.start(unwrapped, device, epoch)
            kinds = ["labeled"]
            if self.started:
                kinds += ["unlabeled"] * self.opt.pl_unlabeled_per_labeled
                schedule.shuffle(kinds)
            for kind in kinds:
                if kind == "labeled":
                    yield keys, batch
                else:
                    yield self._unlabeled_step(unwrapped, reporter, device)
                self.updates += 1
                if self.teacher is not None:
                    self.teacher.update(unwrapped)

    def _unlabeled_step(self, model, reporter, device: str):
        """One slimIPL unlabeled step: fill the cache if needed, take a slot, maybe refresh it, return the batch."""
        start = time.perf_counter()
        self.input.choose(self._labeler(model), model.fixed_frontend, device)
        while not self.cache.is_full:
            self.cache.append(self._label(model, device), self.updates)
            if self.cache.is_full:
                logging.info("PL cache filled: %d batches, %.1f MB of pseudo-labels, %.1f MB of input (%s)",
                             len(self.cache), *self._cache_mbytes(), self.input.mode)
        slot = self.cache.next_slot()
        entry = self.cache.get(slot)
        self.input.read(entry, lambda: [self.cache.get(s)["keys"] for s in self.cache.rest_of_pass()])
        if self.cache.should_refresh(self.refresh_prob):
            if self._churn_due():
                self.diag["pl_churn"].append(self._churn(model, entry, device))
                self.next_churn_update = self.unlabeled_updates + self.opt.pl_churn_interval
            self.cache.replace(slot, self._label(model, device), self.updates)
        self.label_seconds += time.perf_counter() - start  # labeling ends in a host copy: no extra sync needed
        self.unlabeled_updates += 1
        if self.unlabeled_updates % self.opt.pl_diag_interval == 0:
            self._report(reporter)
        batch = dict(self.input.train_input(self._labeler(model), entry, device))
        keys, batch, labels = select_rows(entry["keys"], batch, entry["labels"], entry.get("keep"))
        start = time.perf_counter()
        batch.update(pseudo_label_batch(labels, self.needs, token_prior=self.token_prior, aug_seed=entry["aug_seed"]))
        self.assemble_seconds += time.perf_counter() - start  # host-side work only: no sync needed
        return keys, batch

    def _report(self, reporter) -> None:
        """Average the diagnostics since the last report, register them, feed the collapse alarm."""
        stats = {key: float(np.mean(values)) for key, values in self.diag.items() if values}
        alarm_stats = alarm_inputs(self.diag, self.reduce_sum)
        self.diag.clear()
        if "pl_churn" in stats and self.opt.pl_refresh == "dynamic":
            self.refresh_prob = dynamic_refresh_prob(stats["pl_churn"], self.opt.pl_refresh_prob,
                                                     self.opt.pl_refresh_prob_max, self.opt.pl_churn_scale)
        stats["pl_refresh_prob"] = self.refresh_prob
        now = time.perf_counter()
        stats["pl_label_share"] = self.label_seconds / max(now - self.window_start, 1e-9)
        stats["pl_assemble_share"] = self.assemble_seconds / max(now - self.window_start, 1e-9)
        self.label_seconds, self.assemble_seconds, self.window_start = 0.0, 0.0, now
        stats.update(self.cache.stats(self.updates))
        stats.update(self.coverage.shares())
        stats["pl_cache_mbytes"], stats["pl_cache_input_mbytes"] = self._cache_mbytes()
        if alarm_stats:
            try:
                stats["pl_collapse_alarm"] = float(self.alarm.update(alarm_stats, self.updates))
            finally:  # also when the alarm stops training
                self._write_alarm()
        reporter.register(stats)

    def _cache_mbytes(self) -> tuple[float, float]:
        """MB of pseudo-labels and MB of input (features or audio) held by the cache."""
        entries = self.cache.entries
        return (stored_nbytes([e["labels"] for e in entries]) / 2**20,
                stored_nbytes([e.get("input") for e in entries]) / 2**20)

    def _write_alarm(self) -> None:
        """``<output_dir>/collapse_alarm.json``: the update and reason of the alarm's first firing (rank 0)."""
        path = Path(self.opt.output_dir) / "collapse_alarm.json"
        if self.alarm.fired_step is not None and self.rank == 0 and not path.exists():
            path.write_text(json.dumps({"step": self.alarm.fired_step, "reason": self.alarm.fired_reason}) + "\n")

    # ---- exact resume --------------------------------------------------------------------------------
    def _state_fields(self) -> dict[str, tuple[Callable[[], object], Callable[[object], None]]]:
        """Every piece of state a resume needs, as name -> (get, set): the one list that saving and loading
        both read. The EMA teacher is restored apart (:meth:`load_state_dict`): it is rebuilt from the model."""
        def attribute(name: str):
            return (lambda: getattr(self, name)), (lambda value: setattr(self, name, value))

        return {
            "cache": (self._cache_state, self.cache.load_state_dict),
            "alarm": (self.alarm.state_dict, self.alarm.load_state_dict),
            "generator": (self.generator.get_state, self.generator.set_state),
            "stream": (lambda: self.stream.position, self.stream.seek),
            "diag": (lambda: {key: list(values) for key, values in self.diag.items()},
                     lambda diag: setattr(self, "diag", defaultdict(list, diag))),
            "coverage": (self.coverage.state_dict, self.coverage.load_state_dict),
            **{name: attribute(name) for name in ("started", "updates", "unlabeled_updates", "token_prior",
                                                  "labeled_tokens_per_frame", "refresh_prob",
                                                  "next_churn_update")},
        }

    def _cache_state(self) -> dict:
        """The cache's state without the batches' input (remade at first use after a resume)."""
        return {**self.cache.state_dict(),
                "entries": [{k: v for k, v in e.items() if k != "input"} for e in self.cache.entries]}

    def state_dict(self) -> dict:
        state = {name: get() for name, (get, _) in self._state_fields().items()}
        state["teacher"] = None if self.teacher is None else self.teacher.state_dict()
        return state

    def load_state_dict(self, state: dict, model) -> None:
        if self.opt.pl_refresh == "fixed" and state["refresh_prob"] != self.opt.pl_refresh_prob:
            raise ValueError(f"the saved run refreshed with p = {state['refresh_prob']}, this run asks for "
                             f"--pl_refresh_prob {self.opt.pl_refresh_prob}: resume with the same PL config")
        for name, (_, set_value) in self._state_fields().items():
            set_value(state[name])
        if self.started:
            self._lower_dropout(model)
        if state["teacher"] is not None:
            self.teacher = EMATeacher(model, self.opt.pl_ema_decay)
            self.teacher.load_state_dict(state["teacher"])

    def record_history(self, epoch: int) -> None:
        """Append ``{"epoch", "updates", "pl_started", "pl_coverage", "pl_coverage_audio"}`` to
        ``<output_dir>/cpl_history.jsonl`` (rank 0) and log the coverage; a replayed epoch (after a resume)
        replaces its earlier line. The report plots curves against these update counts and shows the coverage."""
        if self.rank != 0:
            return
        coverage = self.coverage.shares()
        if self.started:
            logging.info("pseudo-labeling coverage after epoch %d: %d of %d unlabeled utterances (%.1f %%), "
                         "%.1f %% of their audio", epoch, len(self.coverage.labeled), len(self.coverage.lengths),
                         100 * coverage["pl_coverage"], 100 * coverage["pl_coverage_audio"])
        path = Path(self.opt.output_dir) / "cpl_history.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        lines = [line for line in lines if json.loads(line)["epoch"] < epoch]
        lines.append(json.dumps({"epoch": epoch, "updates": self.updates, "pl_started": self.started, **coverage}))
        path.write_text("\n".join(lines) + "\n")

    def state_path(self, epoch: int) -> Path:
        return self.state_dir / f"epoch{epoch}.rank{self.rank}.pth"

    def save(self, epoch: int) -> None:
        """Write this epoch's state atomically; keep the previous epoch's (the checkpoint may still be older)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path(epoch).with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, self.state_path(epoch))
        stale = self.state_path(epoch - 2)
        if stale.exists():
            stale.unlink()
