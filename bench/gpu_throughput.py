"""Benchmark: training throughput (audio seconds per second) of stock ESPnet vs the softpl plugin.

For each model config, on the same random batch shape (``--batch`` utterances of ``--utt_seconds`` s of noise;
the content does not change the work of a step), measures the median time of:

- a stock ESPnet supervised step (``ESPnetASRModel``: forward, backward, Adam step);
- a plugin labeled step (``CPLASRModel`` on a labeled batch);
- making pseudo-labels for one batch (teacher forward in eval mode + labels), hard and soft top-8;
- plugin unlabeled steps with hard and soft pseudo-labels (made once, as the cache holds them);

and reports audio seconds per second, the plugin/stock ratio, and the peak GPU memory. ``--dtype bf16`` runs
forward passes under ``torch.autocast`` in bfloat16, as ESPnet's ``--use_amp true`` does on GPUs that support it.
On a GPU, ``--batch`` is the first size tried: a batch that runs out of memory is halved until one fits.

Usage: ``python bench/gpu_throughput.py --config egs/synth_en/conf/train_seed.yaml bench/conf/transformer_270m.yaml
--out throughput.json`` (bench/gpu.sh runs it; ``--device cpu --steps 2 --batch 2`` is the quick CPU check).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_time import build, timed, train_step  # noqa: E402  (one model builder and timer for every benchmark)

from softpl.pl.labeler import TargetNeeds, label_batch, pseudo_label_batch, teacher_log_probs  # noqa: E402

CHARS = ["<blank>", "<unk>", *"ETAOINSHRDLCUMWFGYPBVKJXQZ'", "▁", "<sos/eos>"]  # egs/synth_en's 31 tokens


def random_batch(batch: int, seconds: float, vocab: int, device: str, generator: torch.Generator) -> dict:
    """``batch`` utterances of noise with random transcripts of 12 tokens per second (ESPnet's batch keys)."""
    samples, tokens = int(seconds * 16000), int(seconds * 12)
    speech = 0.1 * torch.randn(batch, samples, generator=generator)
    text = torch.randint(2, vocab - 1, (batch, tokens), generator=generator)
    return {"speech": speech.to(device), "speech_lengths": torch.full((batch,), samples, device=device),
            "text": text.to(device), "text_lengths": torch.full((batch,), tokens, device=device)}


def measure(config_path: Path, token_list: Path, args, out: dict) -> None:
    """All step timings of one config; fills ``out[config name]``."""
    config = yaml.safe_load(config_path.read_text())
    device, cuda = args.device, args.device == "cuda"
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and args.dtype == "bf16" else contextlib.nullcontext()
    gen = torch.Generator().manual_seed(0)
    batch_size = args.batch
    while True:
        try:
            stock = build(config, token_list, "espnet", {}, device)
            opt = torch.optim.Adam(stock.parameters(), lr=1e-4)
            batches = [random_batch(batch_size, args.utt_seconds, len(CHARS), device, gen) for _ in range(args.steps)]
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with amp:
                stock_s = timed(lambda b: train_step(stock, opt, **b), batches, device)
            break
        except torch.OutOfMemoryError:
            stock = opt = batches = None  # not del: after an OOM inside build() they may be unbound
            torch.cuda.empty_cache()
            if batch_size == 1:
                raise
            print(f"{config_path.name}: batch {batch_size} runs out of memory; trying {batch_size // 2}", flush=True)
            batch_size //= 2
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
    params = sum(p.numel() for p in stock.parameters())
    stock = opt = None  # frees the memory (not del: the lambdas above read these names; pyflakes F821)
    if cuda:
        torch.cuda.empty_cache()

    plugin = build(config, token_list, "cpl", {}, device)
    opt = torch.optim.Adam(plugin.parameters(), lr=1e-4)
    with amp:
        labeled_s = timed(lambda b: train_step(plugin, opt, **b), batches, device)

        def make_labels(b, keep_soft):
            log_probs, lengths, _ = teacher_log_probs(plugin, b["speech"], b["speech_lengths"])
            return label_batch(log_probs, lengths, keep_soft=keep_soft, topk=8, blank_id=0)

        label_hard_s = timed(lambda b: make_labels(b, False), batches, device)
        label_soft_s = timed(lambda b: make_labels(b, True), batches, device)
        targets = {
            "hard": [pseudo_label_batch(make_labels(b, False), TargetNeeds(transcript=True)) for b in batches],
            "soft": [pseudo_label_batch(make_labels(b, True), TargetNeeds(soft=True)) for b in batches],
        }
    plugin = opt = None
    unlabeled_s = {}
    for target, pls in targets.items():
        model = build(config, token_list, "cpl", {"pl_target": target}, device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step(i):
            b = batches[i]
            pl = {key: value.to(device, non_blocking=True) for key, value in pls[i].items()}
            train_step(model, opt, speech=b["speech"], speech_lengths=b["speech_lengths"], **pl)

        with amp:
            unlabeled_s[target] = timed(step, list(range(len(batches))), device)
        model = opt = None
    if cuda:
        torch.cuda.empty_cache()

    audio = batch_size * args.utt_seconds
    row = {
        "config": str(config_path), "parameters": params, "batch": batch_size, "utt_seconds": args.utt_seconds,
        "batch_audio_seconds": audio, "dtype": args.dtype if cuda else "fp32", "peak_memory_gib": peak,
        "seconds": {"stock_step": stock_s, "plugin_labeled_step": labeled_s, "label_hard": label_hard_s,
                    "label_soft_top8": label_soft_s, "plugin_unlabeled_hard": unlabeled_s["hard"],
                    "plugin_unlabeled_soft": unlabeled_s["soft"]},
    }
    row["audio_seconds_per_second"] = {name: audio / value for name, value in row["seconds"].items()}
    row["vs_stock"] = {name: stock_s / value for name, value in row["seconds"].items()}
    out[config_path.stem] = row
    print(json.dumps({config_path.stem: row}, indent=1), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, nargs="+", required=True, help="ESPnet ASR training configs")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16", help="forward precision on CUDA")
    parser.add_argument("--batch", type=int, default=64, help="utterances per batch (first size tried on GPU)")
    parser.add_argument("--utt_seconds", type=float, default=15.0)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement (after 2 untimed)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    args = parser.parse_args()
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cpu = f"cpu ({torch.get_num_threads()} threads)"
    out = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else cpu,
           "torch": torch.__version__, "measured": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    with tempfile.TemporaryDirectory() as tmp:
        token_list = Path(tmp) / "tokens.txt"
        token_list.write_text("\n".join(CHARS) + "\n")
        for config in args.config:
            measure(config, token_list, args, out)
            args.out.write_text(json.dumps(out, indent=1) + "\n")  # what is measured so far survives a timeout


if __name__ == "__main__":
    main()
