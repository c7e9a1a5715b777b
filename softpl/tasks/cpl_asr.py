"""CPLASRTask: ESPnet's ASR task plus an unlabeled data stream, trained by CPLTrainer (slimIPL).

Everything of ``ASRTask`` stays (options, model building, frontend, SpecAugment, normalization, iterators,
DDP sharding, checkpoints, inference compatibility). Added:

- ``--unlabeled_data_path_and_name_and_type`` / ``--unlabeled_shape_file``: the unlabeled set, batched by
  ESPnet's own sampler with the training batch options (``--unlabeled_batch_bins`` / ``--unlabeled_batch_size``
  override the sizes), sharded across ranks like the training set;
- ``--unlabeled_text_ref``: its truth, read for the pseudo-label WER diagnostic and by the oracle target
  (``pl_target: oracle``; default: ``text.ref`` beside the unlabeled ``wav.scp`` when it exists);
- the trainer's ``--pl_*`` options (:mod:`softpl.train.options`);
- a refusal of ``--ngpu`` > 1 in one process (torch.nn.DataParallel): one process per GPU instead.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.tasks.abs_task import IteratorOptions
from espnet2.tasks.asr import ASRTask
from espnet2.train.dataset import ESPnetDataset
from espnet2.train.distributed_utils import DistributedOption
from espnet2.utils.types import int_or_none, str2triple_str, str_or_none

import softpl.models  # noqa: F401  (registers --model cpl)
from softpl.data.datadir import read_table
from softpl.train.cpl_trainer import CPLTrainer


def check_no_data_parallel(args: argparse.Namespace) -> None:
    """Refuse ``--ngpu`` > 1 in one process: ESPnet would wrap the model in torch.nn.DataParallel, which splits
    every input tensor along its first axis, also the batch-less ``pl_token_prior`` and ``pl_aug_seed``."""
    if args.ngpu > 1 and not args.distributed:
        raise ValueError(
            f"--ngpu {args.ngpu} in one process would train through torch.nn.DataParallel, which splits the "
            "pseudo-label tensors without a batch axis (pl_token_prior, pl_aug_seed) across GPUs; use "
            "--multiprocessing_distributed true (one process per GPU, as run.sh does)"
        )


class CPLIterFactory(AbsIterFactory):
    """The labeled training iterator (what ESPnet's epoch loop runs) plus the unlabeled set slimIPL draws from."""

    def __init__(self, labeled: AbsIterFactory, unlabeled: AbsIterFactory, text_ref: dict[str, str],
                 unlabeled_lengths: dict[str, int]):
        self.labeled = labeled
        self.unlabeled = unlabeled
        self.text_ref = text_ref
        self.unlabeled_lengths = unlabeled_lengths

    def build_iter(self, epoch: int, shuffle: bool | None = None):
        return self.labeled.build_iter(epoch, shuffle)


@dataclasses.dataclass
class UnlabeledIteratorOptions(IteratorOptions):
    """Iterator options of the unlabeled set (a type of its own: its dataset has speech only)."""


class CPLASRTask(ASRTask):
    trainer = CPLTrainer

    @classmethod
    def main_worker(cls, args: argparse.Namespace):
        check_no_data_parallel(args)  # args.distributed: set by ESPnet's main before any worker starts
        super().main_worker(args)

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        super().add_task_arguments(parser)
        group = parser.add_argument_group("unlabeled data (continuous pseudo-labeling)")
        group.add_argument("--unlabeled_data_path_and_name_and_type", type=str2triple_str, action="append",
                           default=[], help="e.g. dump/raw/train_unlabeled/wav.scp,speech,sound")
        group.add_argument("--unlabeled_shape_file", type=str, action="append", default=[],
                           help="shape file of the unlabeled speech (e.g. its utt2num_samples)")
        group.add_argument("--unlabeled_batch_bins", type=int_or_none, default=None,
                           help="batch_bins of unlabeled batches (default: --batch_bins)")
        group.add_argument("--unlabeled_batch_size", type=int_or_none, default=None,
                           help="batch_size of unlabeled batches (default: --batch_size)")
        group.add_argument("--unlabeled_text_ref", type=str_or_none, default=None,
                           help="truth of the unlabeled set, for the PL WER diagnostic and the oracle target "
                                "(pl_target oracle) only (default: text.ref beside the unlabeled wav.scp, if any)")

    @classmethod
    def build_iter_options(cls, args: argparse.Namespace, distributed_option: DistributedOption, mode: str):
        if mode != "unlabeled":
            return super().build_iter_options(args, distributed_option, mode)
        if not args.unlabeled_data_path_and_name_and_type or not args.unlabeled_shape_file:
            raise ValueError(
                "continuous pseudo-labeling needs unlabeled data: give --unlabeled_data_path_and_name_and_type "
                "<wav.scp>,speech,sound and --unlabeled_shape_file <its utt2num_samples or speech_shape>"
            )
        names = [name for _, name, _ in args.unlabeled_data_path_and_name_and_type]
        if names != ["speech"]:
            raise ValueError(f"unlabeled data must be one 'speech' entry (audio only), got names {names}")
        train = super().build_iter_options(args, distributed_option, "train")
        return UnlabeledIteratorOptions(**{
            **dataclasses.asdict(train),
            "data_path_and_name_and_type": args.unlabeled_data_path_and_name_and_type,
            "shape_files": args.unlabeled_shape_file,
            "batch_bins": args.unlabeled_batch_bins or args.batch_bins,
            "batch_size": args.unlabeled_batch_size or args.batch_size,
            "num_iters_per_epoch": None,
        })

    @classmethod
    def build_dataset(cls, args, iter_options, keys_to_load=None):
        if not isinstance(iter_options, UnlabeledIteratorOptions):
            return super().build_dataset(args, iter_options, keys_to_load)
        dataset = ESPnetDataset(
            iter_options.data_path_and_name_and_type,
            float_dtype=args.train_dtype,
            preprocess=iter_options.preprocess_fn,
            max_cache_size=iter_options.max_cache_size,
            max_cache_fd=iter_options.max_cache_fd,
            allow_multi_rates=iter_options.allow_multi_rates,
            keys_to_load=keys_to_load,
        )
        # Audio only: the requirements of inference (speech, no text).
        cls.check_task_requirements(dataset, args.allow_variable_data_keys, train=True, inference=True)
        return dataset

    @classmethod
    def build_iter_factory(cls, args, distributed_option, mode, kwargs=None) -> AbsIterFactory:
        factory = super().build_iter_factory(args, distributed_option, mode, kwargs)
        if mode != "train":
            return factory
        unlabeled = super().build_iter_factory(args, distributed_option, "unlabeled")
        return CPLIterFactory(factory, unlabeled, cls.read_text_ref(args), cls.read_unlabeled_lengths(args))

    @staticmethod
    def read_unlabeled_lengths(args) -> dict[str, int]:
        """Length of each unlabeled utterance (the first number of its ``--unlabeled_shape_file`` line: samples,
        or frames), for the share of the unlabeled audio pseudo-labeling has reached."""
        return {key: int(value.split(",")[0]) for _, key, value in read_table(args.unlabeled_shape_file[0])}

    @staticmethod
    def read_text_ref(args) -> dict[str, str]:
        """The unlabeled set's truth for PL WER: ``--unlabeled_text_ref``, else ``text.ref`` beside its wav.scp."""
        path = args.unlabeled_text_ref
        if path is None:
            candidate = Path(args.unlabeled_data_path_and_name_and_type[0][0]).parent / "text.ref"
            path = candidate if candidate.exists() else None
        return {} if path is None else {key: value for _, key, value in read_table(path)}
