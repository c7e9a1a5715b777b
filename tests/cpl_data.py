"""A tiny labeled + unlabeled corpus of synthetic waveforms for CPL task/trainer tests (no TTS, no stages)."""
from __future__ import annotations

import os

from pathlib import Path

import numpy as np
import soundfile as sf

TOKENS = ["<blank>", "<unk>", "▁", "A", "B", "C", "D", "E", "<sos/eos>"]
WORDS = ["ABC", "BAD", "CAB", "DEAD", "BEE", "ACE"]


def write_set(root: Path, name: str, n: int, seed: int, labeled: bool) -> Path:
    """``root/name`` with wav.scp, utt2num_samples (the shape file) and text (or text.ref when unlabeled)."""
    rng = np.random.default_rng(seed)
    d = root / name
    (d / "wav").mkdir(parents=True)
    wav, shape, text = [], [], []
    for i in range(n):
        utt = f"{name}-{i:03d}"
        samples = int(rng.integers(4000, 9000))
        t = np.arange(samples) / 16000
        audio = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(samples)
        sf.write(d / "wav" / f"{utt}.wav", audio.astype(np.float32), 16000, subtype="PCM_16")
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 3))))
        wav.append(f"{utt} {d / 'wav' / (utt + '.wav')}")
        shape.append(f"{utt} {samples}")
        text.append(f"{utt} {words}")
    (d / "wav.scp").write_text("\n".join(wav) + "\n")
    (d / "utt2num_samples").write_text("\n".join(shape) + "\n")
    (d / ("text" if labeled else "text.ref")).write_text("\n".join(text) + "\n")
    return d


def make_corpus(root: Path) -> dict[str, Path]:
    """Labeled train (8), unlabeled (12), dev (4), a char sentencepiece-style token list."""
    sets = {
        "train": write_set(root, "train", 8, 1, labeled=True),
        "unlabeled": write_set(root, "unlabeled", 12, 2, labeled=False),
        "dev": write_set(root, "dev", 4, 3, labeled=True),
    }
    (root / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    return sets


def cpl_train_args(root: Path, sets: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    """Command line of softpl.bin.cpl_train on the tiny corpus: a 1-block transformer, deterministic; on CPU, or
    on a GPU with SOFTPL_TEST_NGPU=1 (the same tests as a check of the plugin on a GPU machine)."""
    return [
        "--output_dir", str(output_dir), "--token_list", str(root / "tokens.txt"), "--token_type", "char",
        "--model", "cpl", "--model_conf", "ctc_weight=1.0", "--model_conf", "sym_space=▁",
        "--encoder", "transformer", "--encoder_conf", "output_size=16", "--encoder_conf", "attention_heads=2",
        "--encoder_conf", "linear_units=16", "--encoder_conf", "num_blocks=1",
        "--encoder_conf", "dropout_rate=0.0", "--encoder_conf", "attention_dropout_rate=0.0",
        "--encoder_conf", "positional_dropout_rate=0.0",
        "--frontend_conf", "n_fft=256", "--frontend_conf", "hop_length=128", "--frontend_conf", "n_mels=16",
        "--train_data_path_and_name_and_type", f"{sets['train'] / 'wav.scp'},speech,sound",
        "--train_data_path_and_name_and_type", f"{sets['train'] / 'text'},text,text",
        "--valid_data_path_and_name_and_type", f"{sets['dev'] / 'wav.scp'},speech,sound",
        "--valid_data_path_and_name_and_type", f"{sets['dev'] / 'text'},text,text",
        "--train_shape_file", str(sets["train"] / "utt2num_samples"),
        "--valid_shape_file", str(sets["dev"] / "utt2num_samples"),
        "--unlabeled_data_path_and_name_and_type", f"{sets['unlabeled'] / 'wav.scp'},speech,sound",
        "--unlabeled_shape_file", str(sets["unlabeled"] / "utt2num_samples"),
        "--batch_type", "unsorted", "--batch_size", "2", "--num_workers", "0",
        "--optim", "adam", "--optim_conf", "lr=0.01", "--ngpu", os.environ.get("SOFTPL_TEST_NGPU", "0"), "--seed", "3",
        "--use_tensorboard", "false", "--use_matplotlib", "false", "--num_att_plot", "0", "--log_interval", "1",
        "--pl_cache_size", "2", "--pl_refresh_prob", "0.5", "--pl_unlabeled_per_labeled", "2",
        "--pl_diag_interval", "2", "--pl_prior_batches", "2",
        *extra,
    ]
