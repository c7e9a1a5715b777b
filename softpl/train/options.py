"""The options of continuous pseudo-labeling (``--pl_*``): CPLTrainer's options dataclass and their arguments.

The defaults are slimIPL's 100 h setup (docs/method.md, 'slimIPL hyper-parameters'); docs/plugin.md lists them all.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Optional

from espnet2.train.trainer import TrainerOptions
from espnet2.utils.types import str2bool


LABEL_DTYPES = ("auto", "float32", "bfloat16", "float16")  # --pl_label_dtype


@dataclasses.dataclass
class CPLTrainerOptions(TrainerOptions):
    pl_start_updates: int
    pl_unlabeled_per_labeled: int
    pl_cache_size: int
    pl_refresh_prob: float
    pl_refresh: str
    pl_refresh_prob_max: float
    pl_churn_scale: float
    pl_churn_interval: int
    pl_label_dtype: str
    pl_cache_input: str
    pl_cache_memory_gib: float
    pl_teacher: str
    pl_ema_decay: float
    pl_teacher_dropout: bool
    pl_dropout: Optional[float]
    pl_soft_topk: int
    pl_soft_mass: float
    pl_sample_temperature: float
    pl_transcript: str
    pl_beam_size: int
    pl_beam_ctc_weight: float
    pl_lexicon: str
    pl_lm: str
    pl_lm_weight: float
    pl_word_score: float
    pl_lm_beam_size: int
    pl_keep_share: float
    pl_confidence: str
    pl_consistent_aug: bool
    pl_diag_interval: int
    pl_prior_batches: int
    pl_collapse_action: str
    pl_collapse_max_blank_rate: float
    pl_collapse_min_mi: float
    pl_collapse_min_length_ratio: float
    pl_collapse_max_length_drop: float
    pl_collapse_patience: int
    num_workers: int  # ESPnet's option: also the workers that load the unlabeled stream ahead
    num_iters_per_epoch: Optional[int]  # ESPnet's option: labeled batches per epoch (None: the whole set)


def add_pl_arguments(parser: argparse.ArgumentParser) -> None:
    """slimIPL options (defaults: slimIPL's 100 h setup, docs/method.md, 'slimIPL hyper-parameters')."""
    group = parser.add_argument_group("continuous pseudo-labeling (slimIPL)")
    group.add_argument("--pl_start_updates", type=int, default=0,
                       help="M: supervised updates before pseudo-labeling starts (0: at once, e.g. from a seed)")
    group.add_argument("--pl_unlabeled_per_labeled", type=int, default=4,
                       help="unlabeled updates per labeled update (slimIPL: 4 for 100 h, 10 for 10 h)")
    group.add_argument("--pl_cache_size", type=int, default=100, help="C: cached unlabeled batches")
    group.add_argument("--pl_refresh_prob", type=float, default=0.1, help="p: chance a read slot is relabeled")
    group.add_argument("--pl_refresh", choices=("fixed", "dynamic"), default="fixed",
                       help="dynamic: p grows towards --pl_refresh_prob_max as pseudo-labels change (churn)")
    group.add_argument("--pl_refresh_prob_max", type=float, default=0.5, help="largest p of dynamic refresh")
    group.add_argument("--pl_churn_scale", type=float, default=0.2,
                       help="dynamic refresh: churn (token edit rate between a cached PL and a fresh one) "
                            "at which p reaches its maximum")
    group.add_argument("--pl_churn_interval", type=int, default=100, choices=range(1, 10**6), metavar="N>=1",
                       help="fixed refresh: churn, a diagnostic that costs one more teacher pass, is measured at "
                            "the first refresh, then at the first one N or more unlabeled updates after the last "
                            "measurement (dynamic refresh: at every refresh)")
    group.add_argument("--pl_teacher", choices=("live", "ema"), default="live",
                       help="labeling model: the model being trained, or its EMA (fp32 shadow weights)")
    group.add_argument("--pl_ema_decay", type=float, default=0.999)
    group.add_argument("--pl_teacher_dropout", type=str2bool, default=False, help="label with dropout on")
    group.add_argument("--pl_label_dtype", choices=LABEL_DTYPES, default="auto",
                       help="precision of the teacher passes: auto = the training forward's (--use_amp's autocast "
                            "on a GPU, else fp32); bfloat16: teacher passes about 1.7x faster on CPUs with AVX512-BF16 "
                            "or AMX")
    group.add_argument("--pl_cache_input", choices=("auto", "audio", "keys"), default="auto",
                       help="what a cached batch keeps to train on: auto = the features its labeling computed "
                            "when the frontend is fixed (ESPnet's default STFT + log-mel, mono audio; training "
                            "then skips the frontend, and 40 log-mels take 1/4 of fp32 audio's memory), else its "
                            "audio, or keys when that cache would pass --pl_cache_memory_gib; audio = always the "
                            "audio (the frontend runs at every update); keys = only the utterance keys, the audio "
                            "loaded again (by --num_workers loader workers) each time the batch is trained on")
    group.add_argument("--pl_cache_memory_gib", type=float, default=8.0,
                       help="host memory (GiB per training process) the cached batches' input may take under "
                            "--pl_cache_input auto; above it they keep keys only. 8: an eighth of the host memory "
                            "per GPU of an 8-GPU node with 512 GiB (slimIPL 10 h's 1000 batches of 400 s of 80 "
                            "log-mels take about 12 GiB, 100 h's 100 batches of 400 s about 1.2 GiB)")
    group.add_argument("--pl_dropout", type=float, default=None,
                       help="rate of every dropout module (torch Dropout family) and of every layer drop that is "
                            "on (ESPnet's layer_drop_rate) from PL start (slimIPL: 0.1 for both); default: unchanged")
    group.add_argument("--pl_soft_topk", type=int, default=8, choices=range(0, 256), metavar="0-255",
                       help="at most this many soft-target tokens kept per frame, 2 bytes each for vocabularies up "
                            "to 256 (3-5 above) (0: full posteriors in fp32)")
    group.add_argument("--pl_soft_mass", type=float, default=0.999,
                       help="per frame, keep the fewest most probable tokens that hold this share of the "
                            "probability (at most --pl_soft_topk); 1: always pl_soft_topk tokens")
    group.add_argument("--pl_sample_temperature", type=float, default=1.0,
                       help="temperature of the posteriors paths are sampled from (pl_target sampled)")
    group.add_argument("--pl_transcript", choices=("greedy", "beam", "lexicon_beam"), default="greedy",
                       help="pseudo-transcript: greedy CTC; beam, (hybrid CTC/attention models) ESPnet's joint "
                            "CTC/attention beam search; lexicon_beam, a CTC beam search over --pl_lexicon's words "
                            "with the word LM --pl_lm (softpl.decode.lexicon_beam). Read by the hard target, by "
                            "mix_ctc_weight and by the attention branch")
    group.add_argument("--pl_beam_size", type=int, default=4, choices=range(1, 1001), metavar="1-1000",
                       help="beam size of --pl_transcript beam")
    group.add_argument("--pl_beam_ctc_weight", type=float, default=0.3,
                       help="CTC weight of --pl_transcript beam's joint scores (the decoder has 1 - this)")
    group.add_argument("--pl_lexicon", default="none",
                       help="none; labeled (the words of the labeled set's text); or a Kaldi text file: each word "
                            "of a pseudo-transcript that this lexicon lacks becomes its closest word (character "
                            "edit distance, ties to the more frequent word). For closed-vocabulary speech "
                            "(softpl.pl.lexicon)")
    group.add_argument("--pl_lm", default="lexicon",
                       help="word LM of --pl_transcript lexicon_beam: lexicon, a bigram of --pl_lexicon's text "
                            "(written to <output_dir>/pl_lm_bigram.arpa); or an ARPA file or KenLM binary")
    group.add_argument("--pl_lm_weight", type=float, default=2.3,
                       help="weight of the LM's log10 scores in --pl_transcript lexicon_beam (2.3: as 1 x "
                            "natural-log scores)")
    group.add_argument("--pl_word_score", type=float, default=0.0,
                       help="score added per word in --pl_transcript lexicon_beam")
    group.add_argument("--pl_lm_beam_size", type=int, default=50, choices=range(1, 10001), metavar="1-10000",
                       help="beam size of --pl_transcript lexicon_beam")
    group.add_argument("--pl_keep_share", type=float, default=1.0,
                       help="train on the most confident share of each pseudo-labeled batch (at least one "
                            "utterance); 1: all of it, as slimIPL (softpl.pl.selection)")
    group.add_argument("--pl_confidence", choices=("frame_max", "lexicon"), default="frame_max",
                       help="what ranks the utterances for --pl_keep_share: frame_max, the mean of the labeler's "
                            "largest posterior over the frames; lexicon, the share of the transcript's words (before "
                            "snapping) in --pl_lexicon's lexicon")
    group.add_argument("--pl_consistent_aug", type=str2bool, default=False,
                       help="the teacher labels with the SpecAugment masks the student will see")
    group.add_argument("--pl_diag_interval", type=int, default=20,
                       help="pseudo-label diagnostics (and the collapse alarm) every N unlabeled updates")
    group.add_argument("--pl_prior_batches", type=int, default=10, choices=range(1, 10**6), metavar="N>=1",
                       help="labeled batches, drawn at random (seeded by --seed), decoded at PL start for the "
                            "token prior and the length reference")
    group.add_argument("--pl_collapse_action", choices=("warn", "stop"), default="warn")
    group.add_argument("--pl_collapse_max_blank_rate", type=float, default=0.95,
                       help="alarm when the share of blank-argmax frames of new pseudo-labels is at least this")
    group.add_argument("--pl_collapse_min_mi", type=float, default=0.05,
                       help="alarm when H(mean posterior) - mean H(posterior) (nats) is at most this")
    group.add_argument("--pl_collapse_min_length_ratio", type=float, default=0.3,
                       help="alarm when PL tokens per frame / labeled tokens per frame is at most this")
    group.add_argument("--pl_collapse_max_length_drop", type=float, default=0.25,
                       help="alarm when the length ratio has fallen by this fraction of its value at PL start")
    group.add_argument("--pl_collapse_patience", type=int, default=3, help="consecutive diagnostics to alarm")
