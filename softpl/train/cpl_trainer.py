"""CPLTrainer: ESPnet's Trainer with slimIPL's continuous pseudo-labeling interleaved into each epoch.

ESPnet's ``Trainer.train_one_epoch`` does every optimizer step (AMP, gradient accumulation and clipping,
DDP, reporter, schedulers). CPLTrainer only changes *which batches* it sees: the epoch's labeled iterator goes
through :meth:`softpl.pl.slimipl.SlimIPL.interleave`, which adds the pseudo-labeled batches. This module is the
adapter between the two: the options (:mod:`softpl.train.options`), the SlimIPL state of the one training run
of this process, its resume, and its saving at every epoch end.

A checkpoint branched from the seed (:mod:`softpl.train.branch`) has no pseudo-labeling state: pseudo-labeling
starts afresh from it.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from espnet2.train.trainer import Trainer
from espnet2.utils.build_dataclass import build_dataclass

from softpl.pl.lexicon import labeled_text
from softpl.pl.slimipl import SlimIPL
from softpl.train.branch import branch_epoch
from softpl.train.distributed import all_reduce_sum
from softpl.train.options import CPLTrainerOptions, add_pl_arguments


class CPLTrainer(Trainer):
    """ESPnet Trainer whose epochs interleave slimIPL's unlabeled updates (see module docstring).

    ESPnet trainers are classes of class methods; the pseudo-labeling state of the one training run of this
    process lives in ``CPLTrainer.slimipl``, created in :meth:`run`.
    """

    slimipl: SlimIPL | None = None

    @classmethod
    def build_options(cls, args: argparse.Namespace) -> CPLTrainerOptions:
        options = build_dataclass(CPLTrainerOptions, args)
        if options.pl_transcript == "lexicon_beam" and options.pl_lexicon == "none":
            raise ValueError("--pl_transcript lexicon_beam searches over the words of --pl_lexicon: give "
                             "--pl_lexicon labeled (the labeled set's words) or a Kaldi text file")
        if options.pl_lexicon == "labeled":  # the labeled set's text, as ESPnet reads it for training
            options.pl_lexicon = labeled_text(args.train_data_path_and_name_and_type)
        return options

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser):
        add_pl_arguments(parser)

    @classmethod
    def run(cls, model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
            plot_attention_iter_factory, trainer_options, distributed_option) -> None:
        if trainer_options.accum_grad != 1:
            raise ValueError(
                f"--accum_grad {trainer_options.accum_grad}: gradient accumulation would mix labeled and unlabeled "
                "batches in one update; use larger batches (--batch_bins) instead"
            )
        rank = distributed_option.dist_rank if distributed_option.distributed else 0
        cls.slimipl = SlimIPL(trainer_options, train_iter_factory.labeled, train_iter_factory.unlabeled, model,
                              train_iter_factory.text_ref, train_iter_factory.unlabeled_lengths, rank, all_reduce_sum)
        super().run(model=model, optimizers=optimizers, schedulers=schedulers, train_iter_factory=train_iter_factory,
                    valid_iter_factory=valid_iter_factory, plot_attention_iter_factory=plot_attention_iter_factory,
                    trainer_options=trainer_options, distributed_option=distributed_option)

    @classmethod
    def resume(cls, checkpoint, model, reporter, optimizers, schedulers, scaler, ngpu: int = 0, strict: bool = True):
        super().resume(checkpoint=checkpoint, model=model, reporter=reporter, optimizers=optimizers,
                       schedulers=schedulers, scaler=scaler, ngpu=ngpu, strict=strict)
        epoch = reporter.get_epoch()
        path = cls.slimipl.state_path(epoch)
        if not path.exists() and branch_epoch(Path(checkpoint)) == epoch:
            logging.info("continuing the seed's training state after its epoch %d (%s): pseudo-labeling starts "
                         "afresh", epoch, checkpoint)
            return
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint is from epoch {epoch} but softpl's pseudo-labeling state of that "
                "epoch was not found, so the run cannot continue exactly; start a new --output_dir "
                "(with --init_param <this run's model>) instead of --resume"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        cls.slimipl.load_state_dict(state, model)
        logging.info("pseudo-labeling state restored from %s (update %d)", path, cls.slimipl.updates)

    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter, summary_writer,
                        options, distributed_option) -> bool:
        device = "cuda" if options.ngpu > 0 else "cpu"
        epoch = reporter.get_epoch()
        batches = cls.slimipl.interleave(model, iterator, reporter, epoch, device)
        all_steps_are_invalid = super().train_one_epoch(
            model=model, iterator=batches, optimizers=optimizers, schedulers=schedulers, scaler=scaler,
            reporter=reporter, summary_writer=summary_writer, options=options, distributed_option=distributed_option)
        cls.slimipl.save(epoch)
        cls.slimipl.record_history(epoch)
        return all_steps_are_invalid
