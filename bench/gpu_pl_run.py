"""Benchmark: a real pseudo-labeling run (``softpl.bin.cpl_train``) of a model sized for the GPU.

egs/synth_en's 2.4 M-parameter model leaves an H100/H200 mostly idle whatever the trainer does (bench/RESULTS.md),
so the GPU utilization of the pseudo-labeling phase is measured here on a model that can fill one (default
``bench/conf/transformer_270m.yaml``, slimIPL's size) at a batch that does (``--batch`` utterances of
``--utt_seconds`` s): the whole trainer, DataLoader workers, labeling, cache and diagnostics included, with
slimIPL's schedule (1 labeled : 4 unlabeled updates, p = 0.1) from the first update.

The audio is noise (the content does not change the work of an update): ``--num_files`` distinct WAV files,
referenced by as many utterance ids as the run reads; labeled ids get random character transcripts. The run
goes to ``<output_dir>/train.log``; ``<output_dir>/pl_run.json`` gets the window between its first and last
progress lines (the pseudo-labeling phase, start-up and the epoch end left out: the times that
bench/gpu_summary.py averages ``nvidia-smi``'s utilization over), updates and audio seconds per second in it,
and ``pl_label_share``. The run's checkpoints (gigabytes at 270 M) and audio are deleted when it ends.

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

LETTERS = "ETAOINSHRDLCUMWFGYPBVKJXQZ'"
TOKENS = ["<blank>", "<unk>", *LETTERS, "<sos/eos>"]
FS = 16000
PROGRESS = re.compile(r"^\[\S+\] (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d+) \(trainer:\d+\) INFO: "
                      r"\d+epoch:train:(\d+)-(\d+)batch: (.*)$")


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


def make_data(root: Path, args) -> dict[str, Path]:
    """Labeled, unlabeled and validation sets of noise, as many utterances as the run reads."""
    rng = np.random.default_rng(0)
    samples = int(args.utt_seconds * FS)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(args.num_files):
        path = root / "wav" / f"noise{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(samples)).astype(np.float32), FS, subtype="PCM_16")
        files.append(path)
    labeled_batches = math.ceil(args.updates / (1 + args.unlabeled_per_labeled))
    unlabeled_batches = args.cache_size + math.ceil(args.updates * args.refresh_prob) + 2
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    return {
        "train": write_noise_set(root, "train", args.batch * (labeled_batches + args.prior_batches), files,
                                 args.utt_seconds, rng, labeled=True),
        "unlabeled": write_noise_set(root, "unlabeled", args.batch * unlabeled_batches, files, args.utt_seconds, rng,
                                     labeled=False),
        "valid": write_noise_set(root, "valid", 2, files, args.utt_seconds, rng, labeled=True),
    }


def train_config(model_config: Path, args) -> dict:
    """The model config's architecture with a short slimIPL run around it."""
    config = yaml.safe_load(model_config.read_text())
    keep = ("frontend", "frontend_conf", "specaug", "specaug_conf", "encoder", "encoder_conf", "decoder",
            "decoder_conf", "model_conf")
    config = {key: value for key, value in config.items() if key in keep}
    config.update({
        "model": "cpl", "normalize": "utterance_mvn", "optim": "adam", "optim_conf": {"lr": 1e-4},
        "batch_type": "unsorted", "batch_size": args.batch, "num_workers": args.num_workers, "max_epoch": 1,
        "num_iters_per_epoch": math.ceil(args.updates / (1 + args.unlabeled_per_labeled)),
        "log_interval": args.log_interval, "grad_clip": 5.0, "use_tensorboard": False, "use_matplotlib": False,
        "num_att_plot": 0, "best_model_criterion": [["valid", "loss", "min"]], "keep_nbest_models": 1,
        "pl_start_updates": 0, "pl_unlabeled_per_labeled": args.unlabeled_per_labeled,
        "pl_cache_size": args.cache_size, "pl_refresh_prob": args.refresh_prob,
        "pl_prior_batches": args.prior_batches, "pl_diag_interval": args.diag_interval,
    })
    return config


def progress_window(log_text: str) -> dict | None:
    """The steady pseudo-labeling window of a train.log: from the end of the first progress interval that
    holds a diagnostics report (the first report's interval holds the cache fill, C labelings at once) to the
    last progress line (local time), the updates between them, and the means of the later lines'
    ``pl_label_share`` and ``train_time``."""
    lines = []
    for line in log_text.splitlines():
        match = PROGRESS.match(line)
        if match:
            stamp = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000
            values = dict(re.findall(r"(\w+)=([0-9.e+-]+)", match.group(5)))
            lines.append((stamp, int(match.group(4)), values))
    first_report = next((i for i, (_, _, values) in enumerate(lines) if "pl_label_share" in values), 0)
    lines = lines[first_report:]
    if len(lines) < 2:
        return None
    (start, first_update, _), (end, last_update, _) = lines[0], lines[-1]
    updates = last_update - first_update
    window = {"window_start": start, "window_end": end, "window_seconds": round(end - start, 3),
              "updates_in_window": updates, "seconds_per_update": round((end - start) / updates, 4)}
    for key in ("pl_label_share", "train_time"):
        values = [float(v[key]) for _, _, v in lines[1:] if key in v]
        if values:
            window[key] = round(statistics.fmean(values), 4)
    return window


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parent / "conf/transformer_270m.yaml",
                        help="ESPnet ASR config whose architecture is trained")
    parser.add_argument("--ngpu", type=int, default=1 if torch.cuda.is_available() else 0)
    parser.add_argument("--use_amp", default="true" if torch.cuda.is_available() else "false",
                        help="ESPnet's --use_amp (bf16 where the GPU has it)")
    parser.add_argument("--batch", type=int, default=64, help="utterances per batch, labeled and unlabeled")
    parser.add_argument("--utt_seconds", type=float, default=15.0)
    parser.add_argument("--updates", type=int, default=100, help="updates in all (1 labeled : 4 unlabeled)")
    parser.add_argument("--unlabeled_per_labeled", type=int, default=4)
    parser.add_argument("--cache_size", type=int, default=16, help="C, in batches")
    parser.add_argument("--refresh_prob", type=float, default=0.1, help="p (slimIPL: 0.1)")
    parser.add_argument("--prior_batches", type=int, default=2, help="labeled batches of the reference at PL start")
    parser.add_argument("--log_interval", type=int, default=5, help="updates between progress lines")
    parser.add_argument("--diag_interval", type=int, default=20, help="updates between PL diagnostics reports")
    parser.add_argument("--num_workers", type=int, default=4, help="DataLoader workers")
    parser.add_argument("--num_files", type=int, default=8, help="distinct WAV files behind the utterances")
    parser.add_argument("--time_limit", type=float, default=200, help="seconds before the run is stopped")
    args = parser.parse_args()

    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sets = make_data(out / "data", args)
    (out / "train.yaml").write_text(yaml.safe_dump(train_config(args.config, args), sort_keys=False))
    command = [
        sys.executable, "-m", "softpl.bin.cpl_train", "--config", str(out / "train.yaml"),
        "--output_dir", str(out / "exp"), "--token_type", "char", "--token_list", str(out / "data/tokens.txt"),
        "--train_data_path_and_name_and_type", f"{sets['train'] / 'wav.scp'},speech,sound",
        "--train_data_path_and_name_and_type", f"{sets['train'] / 'text'},text,text",
        "--train_shape_file", str(sets["train"] / "utt2num_samples"),
        "--valid_data_path_and_name_and_type", f"{sets['valid'] / 'wav.scp'},speech,sound",
        "--valid_data_path_and_name_and_type", f"{sets['valid'] / 'text'},text,text",
        "--valid_shape_file", str(sets["valid"] / "utt2num_samples"),
        "--unlabeled_data_path_and_name_and_type", f"{sets['unlabeled'] / 'wav.scp'},speech,sound",
        "--unlabeled_shape_file", str(sets["unlabeled"] / "utt2num_samples"),
        "--ngpu", str(args.ngpu), "--use_amp", args.use_amp,
    ]
    print(f"gpu_pl_run: {args.config.name}, {args.batch} x {args.utt_seconds:g} s, {args.updates} updates "
          f"(log: {out / 'train.log'})", flush=True)
    with open(out / "train.log", "w") as log:
        try:  # a run cut by the limit still leaves a steady window in its log
            returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                        timeout=args.time_limit).returncode
        except subprocess.TimeoutExpired:  # subprocess.run has killed it
            returncode = None
    for bulky in [*(out / "exp").rglob("*.pth"), *(out / "data/wav").glob("*.wav")]:  # GBs for 270 M: not results
        bulky.unlink()
    window = progress_window((out / "train.log").read_text())
    result = {"config": str(args.config), "ngpu": args.ngpu, "use_amp": args.use_amp, "batch": args.batch,
              "utt_seconds": args.utt_seconds, "updates": args.updates, "cache_size": args.cache_size,
              "refresh_prob": args.refresh_prob, "returncode": returncode, "timed_out": returncode is None,
              **(window or {})}
    if window:
        result["audio_seconds_per_second"] = round(args.batch * args.utt_seconds / window["seconds_per_update"], 1)
    (out / "pl_run.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1), flush=True)
    if returncode not in (0, None) or not window:
        sys.exit(f"gpu_pl_run: the run failed or logged too few progress lines (see {out / 'train.log'})")


if __name__ == "__main__":
    main()
