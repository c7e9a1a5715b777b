"""Benchmark: a real training run of softpl's trainer on noise audio, measured over its steady window.

Two kinds of run, one machinery (data, command, window, FLOPs):

* ``--config C`` (default ``bench/conf/transformer_270m.yaml``, slimIPL's size): a pseudo-labeling run
  (``softpl.bin.cpl_train``) of C's architecture with a short slimIPL schedule around it (1 labeled : 4 unlabeled
  updates, p = 0.1, from the first update), at a batch that fills the GPU (``--batch`` utterances of
  ``--utt_seconds`` s). egs/synth_en's 2.4 M-parameter model leaves an H100/H200 mostly idle whatever the trainer
  does (bench/RESULTS.md), so the GPU utilization of the pseudo-labeling phase is measured on a model that can
  fill one: the whole trainer, DataLoader workers, labeling, cache and diagnostics included.
* ``--recipe_config C [C ...]`` (bench/gpu.sh ``--librispeech_pilot true``): a recipe's own training config, its
  files merged as run.sh merges them (later ones override, ``*_conf`` key by key: ``train_seed.yaml`` for stage 6,
  ``train_seed.yaml train_pl.yaml <softpl>/conf/pl/hard.yaml`` for stage 8), trained as it is: optimizer,
  learning-rate schedule, loss scaling, layer drop, SpecAugment, dropout at PL start, cache and refresh. Only the
  data (noise, ``utterance_mvn`` for the recipe's global statistics), the run's length, its logging, validation
  criterion and checkpoint keeping change, and the batch: the recipe's batch per GPU, ``batch_bins`` /
  ``--recipe_gpus`` (ESPnet's ``batch_bins`` are the whole update's: every GPU gets every N-th utterance of each
  batch), in utterances of ``--utt_seconds``. A config with ``pl_unlabeled_per_labeled`` is a pseudo-labeling run
  (``softpl.bin.cpl_train``), any other a supervised one (``softpl.bin.asr_train``, as stage 6).
  ``--branch_from SEED_EXP`` continues a seed run's training state (model, optimizer, scheduler step) as stage 8
  does (:mod:`softpl.train.branch`), so the pseudo-labeling run goes on with the seed's Adagrad state.

The audio is noise (the content does not change the work of an update): ``--num_files`` distinct WAV files,
referenced by as many utterance ids as the run reads; labeled ids get random character transcripts. The run
goes to ``<output_dir>/train.log``; ``<output_dir>/pl_run.json`` gets the window between its first and last
progress lines (for a pseudo-labeling run, from the first line with a diagnostics report: the interval before it
holds the cache fill; start-up and the epoch end are left out: the times that bench/gpu_summary.py averages
``nvidia-smi``'s utilization over), updates and audio seconds per second in it, ``pl_label_share``, the loss of
every progress line, the peak GPU memory ESPnet reports for the epoch (``gpu_max_cached_mem_GB``: this process's,
so per GPU), and the model FLOPs utilization (:func:`count_flops`, :data:`PEAK_BF16_FLOPS`). The run's
checkpoints (gigabytes at 270 M; ``--keep_checkpoint true`` keeps ``exp/checkpoint.pth`` for a branch) and audio
are deleted when it ends.

Usage: ``python bench/gpu_pl_run.py --output_dir DIR [--config C] [--batch 64] [--updates 100]``
(bench/gpu.sh runs it; ``--config bench/conf/conformer_tiny.yaml --batch 2 --utt_seconds 1 --updates 10`` is a
CPU check in seconds).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_time import build  # noqa: E402  (one model builder for every benchmark)

from softpl.bin.merge_configs import deep_merge, load_yaml  # noqa: E402  (run.sh's merge of configs)
from softpl.pl.labeler import teacher_log_probs  # noqa: E402
from softpl.train.branch import branch_checkpoint, check_same_schedule  # noqa: E402
from softpl.train.options import add_pl_arguments  # noqa: E402

LETTERS = "ETAOINSHRDLCUMWFGYPBVKJXQZ'"
TOKENS = ["<blank>", "<unk>", *LETTERS, "<sos/eos>"]
FS = 16000
PROGRESS = re.compile(r"^\[\S+\] (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d+) \(trainer:\d+\) INFO: "
                      r"\d+epoch:train:(\d+)-(\d+)batch: (.*)$")
# Dense (no 2:4 sparsity) bf16 tensor-core peak per GPU, by the name torch reports (the first key it contains).
# NVIDIA's datasheets give twice these, "with sparsity": H100 SXM and H200 SXM 1,979 TFLOPS, H100 NVL and H200 NVL
# 1,671, H100 PCIe 1,513; A100 312 dense. The H200 has the H100 SXM's compute (more and faster memory).
PEAK_BF16_FLOPS = (("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H200 NVL", 835e12), ("H100", 989e12),
                   ("H200", 989e12), ("A100", 312e12))


def peak_bf16_flops(device_name: str) -> float | None:
    """The dense bf16 peak of the GPU named ``device_name`` (None: not in :data:`PEAK_BF16_FLOPS`)."""
    return next((peak for key, peak in PEAK_BF16_FLOPS if key in device_name), None)


def write_noise_set(root: Path, name: str, num_utts: int, files: list[Path], utt_seconds: float,
                    rng: np.random.Generator, labeled: bool) -> Path:
    """``root/name``: wav.scp over ``files`` in turn, utt2num_samples and (labeled) a random text."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    samples = int(utt_seconds * FS)
    ids = [f"{name}-{i:06d}" for i in range(num_utts)]
    (folder / "wav.scp").write_text("".join(f"{utt} {files[i % len(files)]}\n" for i, utt in enumerate(ids)))
    (folder / "utt2num_samples").write_text("".join(f"{utt} {samples}\n" for utt in ids))
    if labeled:  # 12 characters per second, as read speech has
        letters = rng.integers(0, len(LETTERS), size=(num_utts, max(1, int(utt_seconds * 12))))
        (folder / "text").write_text("".join(f"{utt} {''.join(LETTERS[j] for j in row)}\n"
                                             for utt, row in zip(ids, letters)))
    return folder


def pl_options(config: dict) -> dict | None:
    """The pseudo-labeling options of a training config, softpl's defaults filled in; None for a supervised one."""
    if "pl_unlabeled_per_labeled" not in config:
        return None
    parser = argparse.ArgumentParser()
    add_pl_arguments(parser)
    defaults = {key: value for key, value in vars(parser.parse_known_args([])[0]).items() if key.startswith("pl_")}
    return {**defaults, **{key: value for key, value in config.items() if key.startswith("pl_")}}


def make_data(root: Path, config: dict, utt_seconds: float, num_files: int) -> dict[str, Path]:
    """Labeled, validation and (pseudo-labeling runs) unlabeled sets of noise, as many utterances as the run of
    ``config`` (batch_size utterances a batch, num_iters_per_epoch labeled batches) reads."""
    rng = np.random.default_rng(0)
    samples = int(utt_seconds * FS)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(num_files):
        path = root / "wav" / f"noise{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(samples)).astype(np.float32), FS, subtype="PCM_16")
        files.append(path)
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    batch, labeled_batches, pl = config["batch_size"], config["num_iters_per_epoch"], pl_options(config)
    if pl:
        labeled_batches += pl["pl_prior_batches"]
    sets = {"train": write_noise_set(root, "train", batch * labeled_batches, files, utt_seconds, rng, labeled=True)}
    if pl:
        updates = config["num_iters_per_epoch"] * (1 + pl["pl_unlabeled_per_labeled"])
        unlabeled_batches = pl["pl_cache_size"] + math.ceil(updates * pl["pl_refresh_prob"]) + 2
        sets["unlabeled"] = write_noise_set(root, "unlabeled", batch * unlabeled_batches, files, utt_seconds, rng,
                                            labeled=False)
    sets["valid"] = write_noise_set(root, "valid", 2, files, utt_seconds, rng, labeled=True)
    return sets


def run_options(config: dict, args, batch: int, period: int) -> dict:
    """What every run sets, whatever its config: batches, length, logging, no plots, one kept model."""
    config = {key: value for key, value in config.items() if key not in ("batch_bins", "valid_batch_bins")}
    config.update({
        "normalize": "utterance_mvn", "batch_type": "unsorted", "batch_size": batch,
        "num_workers": args.num_workers, "max_epoch": 1, "num_iters_per_epoch": math.ceil(args.updates / period),
        "log_interval": args.log_interval, "use_tensorboard": False, "use_matplotlib": False, "num_att_plot": 0,
        "best_model_criterion": [["valid", "loss", "min"]], "keep_nbest_models": 1,
    })
    if "pl_unlabeled_per_labeled" in config:
        config["pl_diag_interval"] = args.diag_interval
    return config


def train_config(model_config: Path, args) -> dict:
    """The model config's architecture with a short slimIPL run around it."""
    config = yaml.safe_load(model_config.read_text())
    keep = ("frontend", "frontend_conf", "specaug", "specaug_conf", "encoder", "encoder_conf", "decoder",
            "decoder_conf", "model_conf")
    config = {key: value for key, value in config.items() if key in keep}
    config.update({
        "model": "cpl", "optim": "adam", "optim_conf": {"lr": 1e-4}, "grad_clip": 5.0,
        "pl_start_updates": 0, "pl_unlabeled_per_labeled": args.unlabeled_per_labeled,
        "pl_cache_size": args.cache_size, "pl_refresh_prob": args.refresh_prob,
        "pl_prior_batches": args.prior_batches,
    })
    return run_options(config, args, args.batch or 64, 1 + args.unlabeled_per_labeled)


def recipe_train_config(paths: list[Path], args) -> tuple[dict, dict]:
    """The recipe's config (``paths`` merged, then ``--override``) with the pilot's run options, and what the pilot
    keeps of the recipe's run: its updates in all, its batch and the batch per GPU."""
    config: dict = {}
    for path in paths:
        config = deep_merge(config, load_yaml(path))
    if args.override:
        config = deep_merge(config, yaml.safe_load(args.override))
    pl = pl_options(config)
    period = 1 + pl["pl_unlabeled_per_labeled"] if pl else 1
    if config.get("batch_type") != "numel" and args.batch is None:
        sys.exit(f"gpu_pl_run: {paths[0]} has batch_type {config.get('batch_type')}: give --batch")
    # numel bins of raw audio count its samples (the text shape adds about 2 % more; left out)
    per_gpu_seconds = config["batch_bins"] / args.recipe_gpus / FS if config.get("batch_type") == "numel" else None
    batch = args.batch or max(1, round(per_gpu_seconds / args.utt_seconds))
    recipe = {"recipe_configs": [str(path) for path in paths], "recipe_gpus": args.recipe_gpus,
              "recipe_batch_bins": config.get("batch_bins"), "recipe_per_gpu_seconds": per_gpu_seconds,
              "schedule_updates": config["max_epoch"] * config["num_iters_per_epoch"] * period,
              "override": args.override}
    return run_options(config, args, batch, period), recipe


def progress_lines(log_text: str) -> list[tuple[float, int, dict[str, str]]]:
    """``(time, last update, {key: value})`` of each progress line of a train.log (local time)."""
    lines = []
    for line in log_text.splitlines():
        match = PROGRESS.match(line)
        if match:
            stamp = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000
            lines.append((stamp, int(match.group(4)), dict(re.findall(r"(\w+)=([0-9.e+-]+)", match.group(5)))))
    return lines


def progress_window(log_text: str) -> dict | None:
    """The steady window of a train.log: from the end of the first progress interval that holds a pseudo-labeling
    diagnostics report (the first report's interval holds the cache fill, C labelings at once), or of the first
    interval in a run without any, to the last progress line, the updates between them, and the means of the
    later lines' ``pl_label_share`` and ``train_time``. Updates are counted per epoch: the window ends in the epoch
    where it starts."""
    lines = progress_lines(log_text)
    first_report = next((i for i, (_, _, values) in enumerate(lines) if "pl_label_share" in values), 0)
    lines = lines[first_report:]
    if len(lines) < 2:
        return None
    (start, first_update, _), (end, last_update, _) = lines[0], lines[-1]
    updates = last_update - first_update
    if updates <= 0:
        return None
    window = {"window_start": start, "window_end": end, "window_seconds": round(end - start, 3),
              "updates_in_window": updates, "seconds_per_update": round((end - start) / updates, 4)}
    for key in ("pl_label_share", "train_time"):
        values = [float(v[key]) for _, _, v in lines[1:] if key in v]
        if values:
            window[key] = round(statistics.fmean(values), 4)
    return window


def loss_curve(log_text: str) -> dict[str, list[list[float]]]:
    """``{key: [[last update of the interval, mean], ...]}`` over every progress line, for the labeled CTC loss
    (``loss_ctc``), the pseudo-label loss (``loss_pl``) and their mean (``loss``)."""
    curve: dict[str, list[list[float]]] = {}
    for _, update, values in progress_lines(log_text):
        for key in ("loss", "loss_ctc", "loss_pl"):
            if key in values:
                curve.setdefault(key, []).append([update, float(values[key])])
    return curve


def peak_memory_gib(log_text: str) -> float | None:
    """ESPnet's ``gpu_max_cached_mem_GB`` (torch.cuda.max_memory_reserved of this process, GiB) of the last
    epoch's training results; None on CPU."""
    found = re.findall(r"epoch results: \[train\].*?\bgpu_max_cached_mem_GB=([0-9.e+-]+)", log_text)
    return round(float(found[-1]), 2) if found else None


def count_flops(config: dict, token_list: Path, batch: int, utt_seconds: float, device: str) -> dict:
    """Model FLOPs of the config's model on ``batch`` utterances of ``utt_seconds`` s, counted by torch's
    ``FlopCounterMode`` (matrix products, convolutions and attention, forward and backward; the STFT, the CTC
    recursion and element-wise operations are not counted) on one utterance and multiplied by ``batch`` (every
    utterance has the same length, so the count is linear in the batch):

    * ``train_step``: forward + backward of a training update with every encoder layer (the model's FLOPs, what
      MFU counts);
    * ``train_step_no_layers``: the same with the encoder's layer drop rate set to 1 (front end and CTC only,
      where the encoder honours it: model cpl's does, :mod:`softpl.models.layer_drop`), so that the FLOPs
      executed on average under layer drop rate r are
      ``no_layers + (1 - r) (train_step - no_layers)``;
    * ``label_forward``: the teacher's forward of a labeling (eval mode, no gradient)."""
    model = build(config, token_list, config.get("model", "cpl"), {}, device)
    layers = getattr(getattr(model.encoder, "encoders", None), "layer_drop_rate", None)
    speech = 0.1 * torch.randn(1, int(utt_seconds * FS), device=device)
    lengths = torch.tensor([speech.shape[1]], device=device)
    text = torch.randint(2, len(TOKENS) - 1, (1, max(1, int(utt_seconds * 12))), device=device)
    counts = {}
    for name, drop in (("train_step", 0.0), ("train_step_no_layers", 1.0)):
        if layers is None and drop:
            continue
        if layers is not None:
            model.encoder.encoders.layer_drop_rate = drop  # uniform draws in [0, 1): 1.0 drops every layer
        model.train()
        with FlopCounterMode(display=False) as counter:
            loss, _, _ = model(speech=speech, speech_lengths=lengths, text=text,
                               text_lengths=torch.tensor([text.shape[1]], device=device))
            loss.backward()
        counts[name] = counter.get_total_flops() * batch
        model.zero_grad(set_to_none=True)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        teacher_log_probs(model, speech, lengths)
    counts["label_forward"] = counter.get_total_flops() * batch
    return counts


def utilization(config: dict, flops: dict, seconds_per_update: float, peak: float | None) -> dict:
    """Model FLOPs per update and their share of the GPU's peak (MFU); for a pseudo-labeling run an update
    also carries, on average, p x (unlabeled share of updates) labelings. ``executed``: the FLOPs a step
    runs on average under the config's layer drop (the rate from PL start, ``pl_dropout``, in a PL run)."""
    pl = pl_options(config)
    rate = config.get("encoder_conf", {}).get("layer_drop_rate", 0.0)
    labelings = 0.0
    if pl:
        share = pl["pl_unlabeled_per_labeled"] / (1 + pl["pl_unlabeled_per_labeled"])
        labelings = pl["pl_refresh_prob"] * share
        if rate and pl["pl_dropout"] is not None:
            rate = pl["pl_dropout"]
    model = flops["train_step"] + labelings * flops["label_forward"]
    no_layers = flops.get("train_step_no_layers", flops["train_step"])
    executed = no_layers + (1 - rate) * (flops["train_step"] - no_layers) + labelings * flops["label_forward"]
    # Whether the encoder drops layers at all: ESPnet 202611's transformer and conformer encoders loop over their
    # layer stack themselves, past MultiSequential's layer drop; model cpl's stack drops them
    # (softpl.models.layer_drop), while a stock model counts the same FLOPs with every layer dropped.
    applied = no_layers < flops["train_step"]
    out = {"flops": flops, "layer_drop_rate": rate, "layer_drop_applied": applied,
           "labelings_per_update": round(labelings, 4),
           "model_tflop_per_update": round(model / 1e12, 4), "executed_tflop_per_update": round(executed / 1e12, 4),
           "peak_bf16_tflops": peak / 1e12 if peak else None}
    if peak:
        out["mfu"] = round(model / seconds_per_update / peak, 4)
        out["mfu_executed"] = round(executed / seconds_per_update / peak, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parent / "conf/transformer_270m.yaml",
                        help="ESPnet ASR config whose architecture is trained with a short slimIPL schedule")
    parser.add_argument("--recipe_config", type=Path, nargs="+",
                        help="instead of --config: a recipe's training config files, merged in order and trained "
                             "as they are (see above)")
    parser.add_argument("--recipe_gpus", type=int, default=8,
                        help="--recipe_config: GPUs the recipe's batch_bins are shared by; the batch is one GPU's "
                             "share (8: the recipe's --ngpu 8)")
    parser.add_argument("--branch_from", type=Path,
                        help="--recipe_config: a finished seed run's experiment folder (its checkpoint.pth) that "
                             "this run continues, as stage 8 does")
    parser.add_argument("--override", default="",
                        help="--recipe_config: YAML mapping merged on top, e.g. a shrunk model for a CPU check: "
                             "'{encoder_conf: {num_blocks: 2, output_size: 64}}'")
    parser.add_argument("--keep_checkpoint", default="false", choices=("true", "false"),
                        help="true: keep exp/checkpoint.pth (the training state a --branch_from run continues)")
    parser.add_argument("--ngpu", type=int, default=1 if torch.cuda.is_available() else 0)
    parser.add_argument("--use_amp", default="true" if torch.cuda.is_available() else "false",
                        help="ESPnet's --use_amp (bf16 where the GPU has it)")
    parser.add_argument("--batch", type=int, default=None,
                        help="utterances per batch, labeled and unlabeled (default: 64; --recipe_config: the "
                             "recipe's batch per GPU)")
    parser.add_argument("--utt_seconds", type=float, default=15.0)
    parser.add_argument("--updates", type=int, default=100,
                        help="updates in all (a multiple of 1 + unlabeled per labeled: labeled batches x that)")
    parser.add_argument("--unlabeled_per_labeled", type=int, default=4)
    parser.add_argument("--cache_size", type=int, default=16, help="C, in batches")
    parser.add_argument("--refresh_prob", type=float, default=0.1, help="p (slimIPL: 0.1)")
    parser.add_argument("--prior_batches", type=int, default=2, help="labeled batches of the reference at PL start")
    parser.add_argument("--log_interval", type=int, default=5,
                        help="updates between progress lines (a multiple of 1 + unlabeled per labeled, so that "
                             "every line averages the same mix of updates)")
    parser.add_argument("--diag_interval", type=int, default=20,
                        help="unlabeled updates between PL diagnostics reports (the window starts at the first)")
    parser.add_argument("--num_workers", type=int, default=4, help="DataLoader workers")
    parser.add_argument("--num_files", type=int, default=8, help="distinct WAV files behind the utterances")
    parser.add_argument("--time_limit", type=float, default=200, help="seconds before the run is stopped")
    args = parser.parse_args()
    if args.branch_from and not args.recipe_config:
        parser.error("--branch_from continues a recipe's seed: it needs --recipe_config")

    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.recipe_config:
        config, recipe = recipe_train_config(args.recipe_config, args)
        name = " + ".join(path.name for path in args.recipe_config)
    else:
        config, recipe = train_config(args.config, args), {}
        name = args.config.name
    pl = pl_options(config)
    period = 1 + pl["pl_unlabeled_per_labeled"] if pl else 1
    sets = make_data(out / "data", config, args.utt_seconds, args.num_files)
    (out / "train.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    resume = []
    if args.branch_from:  # stage 8's branch: the seed's training state, the same optimizer and schedule
        check_same_schedule(args.branch_from / "config.yaml", out / "train.yaml")
        epoch = branch_checkpoint(args.branch_from / "checkpoint.pth", out / "exp")
        config["max_epoch"] = epoch + 1  # the branch's epochs are numbered on from the seed's
        (out / "train.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        resume = ["--resume", "true"]
    command = [
        sys.executable, "-m", "softpl.bin.cpl_train" if pl else "softpl.bin.asr_train",
        "--config", str(out / "train.yaml"),
        "--output_dir", str(out / "exp"), "--token_type", "char", "--token_list", str(out / "data/tokens.txt"),
        "--train_data_path_and_name_and_type", f"{sets['train'] / 'wav.scp'},speech,sound",
        "--train_data_path_and_name_and_type", f"{sets['train'] / 'text'},text,text",
        "--train_shape_file", str(sets["train"] / "utt2num_samples"),
        "--valid_data_path_and_name_and_type", f"{sets['valid'] / 'wav.scp'},speech,sound",
        "--valid_data_path_and_name_and_type", f"{sets['valid'] / 'text'},text,text",
        "--valid_shape_file", str(sets["valid"] / "utt2num_samples"),
        "--ngpu", str(args.ngpu), "--use_amp", args.use_amp, *resume,
    ]
    if pl:
        command += ["--unlabeled_data_path_and_name_and_type", f"{sets['unlabeled'] / 'wav.scp'},speech,sound",
                    "--unlabeled_shape_file", str(sets["unlabeled"] / "utt2num_samples")]
    batch, updates = config["batch_size"], config["num_iters_per_epoch"] * period
    print(f"gpu_pl_run: {name}, {batch} x {args.utt_seconds:g} s, {updates} updates "
          f"(log: {out / 'train.log'})", flush=True)
    with open(out / "train.log", "w") as log:
        try:  # a run cut by the limit still leaves a steady window in its log
            returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                        timeout=args.time_limit).returncode
        except subprocess.TimeoutExpired:  # subprocess.run has killed it
            returncode = None
    keep = out / "exp/checkpoint.pth" if args.keep_checkpoint == "true" else None
    for bulky in [*(out / "exp").rglob("*.pth"), *(out / "data/wav").glob("*.wav")]:  # GBs for 270 M: not results
        if bulky != keep:
            bulky.unlink()
    log_text = (out / "train.log").read_text()
    window = progress_window(log_text)
    device = "cuda" if args.ngpu > 0 else "cpu"
    result = {"config": str(args.recipe_config[-1] if args.recipe_config else args.config), **recipe,
              "trainer": command[2], "branched_from": str(args.branch_from) if args.branch_from else None,
              "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "ngpu": args.ngpu,
              "use_amp": args.use_amp, "batch": batch, "utt_seconds": args.utt_seconds, "updates": updates,
              "cache_size": pl["pl_cache_size"] if pl else None, "refresh_prob": pl["pl_refresh_prob"] if pl else None,
              "returncode": returncode, "timed_out": returncode is None, **(window or {}),
              "gpu_max_cached_mem_gib": peak_memory_gib(log_text), "loss_curve": loss_curve(log_text)}
    if window:
        result["audio_seconds_per_second"] = round(batch * args.utt_seconds / window["seconds_per_update"], 1)
        flops = count_flops(config, out / "data/tokens.txt", batch, args.utt_seconds, device)
        peak = peak_bf16_flops(result["device"]) if device == "cuda" else None
        result.update(utilization(config, flops, window["seconds_per_update"], peak))
    (out / "pl_run.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1), flush=True)
    if returncode not in (0, None) or not window:
        sys.exit(f"gpu_pl_run: the run failed or logged too few progress lines (see {out / 'train.log'})")


if __name__ == "__main__":
    main()
