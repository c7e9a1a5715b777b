"""Benchmark: time per update of stock ESPnet vs the softpl plugin, pseudo-labeling cost, soft-cache bytes.

Measures, on the same batches of real audio from a formatted data dir (default: egs/synth_en's
dump/raw/train_unlabeled) with the same model architecture (default: egs/synth_en/conf/train_seed.yaml):

1. a stock ESPnet supervised step (``ESPnetASRModel``: forward, backward, Adam step);
2. a plugin labeled step (``CPLASRModel`` on a labeled batch);
3. plugin unlabeled steps with hard and soft targets;
4. making pseudo-labels for one batch (teacher forward in eval mode + per-utterance labels), and the
   unlabeled step with labeling amortized at refresh probability p;
5. soft-target bytes per utterance: full fp32 posteriors against the compact top-k storage.

Usage: ``python bench/step_time.py [--data_dir D] [--config C] [--device cpu|cuda] [--steps N]``.
Results and the command that produced them go to bench/RESULTS.md (written by hand from the output).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

from softpl.pl.labeler import TargetNeeds, label_batch, pseudo_label_batch, teacher_log_probs
from softpl.pl.soft_storage import compress_posteriors
from softpl.tasks.cpl_asr import CPLASRTask

REPO = Path(__file__).resolve().parents[1]


def build(config: dict, token_list: Path, model: str, model_conf: dict, device: str):
    """A freshly initialized model of the config's architecture (same seed, so stock and plugin match)."""
    argv = ["--token_list", str(token_list), "--model", model, "--output_dir", "/tmp/softpl_bench",
            "--token_type", "char"]
    for key in ("frontend", "specaug", "encoder"):
        if key in config:
            argv += [f"--{key}", str(config[key])]
    args = CPLASRTask.get_parser().parse_args(argv)
    for key in ("frontend_conf", "specaug_conf", "encoder_conf"):
        setattr(args, key, config.get(key, {}))
    args.model_conf = {**config.get("model_conf", {}), **model_conf}
    torch.manual_seed(0)
    return CPLASRTask.build_model(args).to(device)


def load_batches(data_dir: Path, num: int, batch_seconds: float, device: str):
    """``num`` batches of consecutive utterances of about ``batch_seconds`` of audio each."""
    entries = [line.split(maxsplit=1) for line in (data_dir / "wav.scp").read_text().splitlines()]
    batches, index = [], 0
    for _ in range(num):
        waves, total = [], 0.0
        while total < batch_seconds:
            audio, fs = sf.read(entries[index % len(entries)][1], dtype="float32")
            waves.append(torch.from_numpy(audio))
            total += len(audio) / fs
            index += 1
        lengths = torch.tensor([len(w) for w in waves])
        speech = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        batches.append((speech.to(device), lengths.to(device)))
    return batches


def timed(fn, batches, device: str, warmup: int = 2) -> float:
    """Median seconds of ``fn(batch)`` over the batches, after ``warmup`` untimed calls."""
    for batch in batches[:warmup]:
        fn(batch)
    times = []
    for batch in batches:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(batch)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(model, optimizer, **batch):
    model.train()
    loss, _, _ = model(**batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=REPO / "egs/synth_en/dump/raw/train_unlabeled")
    parser.add_argument("--config", type=Path, default=REPO / "egs/synth_en/conf/train_seed.yaml")
    parser.add_argument("--token_list", type=Path, default=REPO / "egs/synth_en/data/token_list/char/tokens.txt")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch_seconds", type=float, default=37.0)
    parser.add_argument("--refresh_prob", type=float, default=0.1)
    parser.add_argument("--topk", type=int, nargs="+", default=[1, 2, 8])
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    device = args.device
    vocab = len(args.token_list.read_text().split())
    batches = load_batches(args.data_dir, args.steps + 2, args.batch_seconds, device)
    texts = [torch.randint(3, vocab - 1, (int(len_) // 16000 * 12,)) for _, lens in batches for len_ in lens]

    def labeled(speech, lengths):
        n = len(lengths)
        text = torch.nn.utils.rnn.pad_sequence(texts[:n], batch_first=True, padding_value=-1).to(device)
        return {"speech": speech, "speech_lengths": lengths, "text": text,
                "text_lengths": torch.tensor([len(t) for t in texts[:n]], device=device)}

    results = {}
    stock = build(config, args.token_list, "espnet", {}, device)
    opt = torch.optim.Adam(stock.parameters(), lr=1e-4)
    results["stock ESPnet supervised step"] = timed(lambda b: train_step(stock, opt, **labeled(*b)), batches, device)

    plugin = build(config, args.token_list, "cpl", {}, device)
    opt = torch.optim.Adam(plugin.parameters(), lr=1e-4)
    results["plugin labeled step"] = timed(lambda b: train_step(plugin, opt, **labeled(*b)), batches, device)

    def make_labels(batch, keep_soft, topk=8):
        log_probs, lengths, _ = teacher_log_probs(plugin, *batch)
        return label_batch(log_probs, lengths, keep_soft=keep_soft, topk=topk, blank_id=0)

    results["making pseudo-labels (hard), one batch"] = timed(lambda b: make_labels(b, False), batches, device)
    results["making pseudo-labels (soft top-8), one batch"] = timed(lambda b: make_labels(b, True), batches, device)
    hard = [pseudo_label_batch(make_labels(b, False), TargetNeeds(transcript=True)) for b in batches]
    soft = [pseudo_label_batch(make_labels(b, True), TargetNeeds(soft=True)) for b in batches]

    def unlabeled_step(model, targets):
        def step(i):
            speech, lengths = batches[i]
            pl = {k: v.to(device) for k, v in targets[i].items()}
            train_step(model, opt_u, speech=speech, speech_lengths=lengths, **pl)
        return step

    for name, targets, conf in (("hard", hard, {"pl_target": "hard"}), ("soft", soft, {"pl_target": "soft"})):
        model = build(config, args.token_list, "cpl", conf, device)
        opt_u = torch.optim.Adam(model.parameters(), lr=1e-4)
        results[f"plugin unlabeled step ({name})"] = timed(unlabeled_step(model, targets),
                                                           list(range(len(batches))), device)

    p = args.refresh_prob
    for name in ("hard", "soft"):
        label_key = "making pseudo-labels (hard), one batch" if name == "hard" else \
            "making pseudo-labels (soft top-8), one batch"
        results[f"unlabeled step ({name}) + labeling amortized at p={p}"] = (
            results[f"plugin unlabeled step ({name})"] + p * results[label_key])

    device_name = torch.cuda.get_device_name(0) if device == 'cuda' else f'{torch.get_num_threads()} threads'
    print(f"device: {device} ({device_name}), "
          f"{len(batches)} batches of ~{args.batch_seconds:.0f} s audio, config {args.config}")
    base = results["stock ESPnet supervised step"]
    labeled_step = results["plugin labeled step"]
    for name, seconds in results.items():
        print(f"{name:55s} {seconds * 1000:8.1f} ms   x{seconds / base:.3f} of stock   "
              f"x{seconds / labeled_step:.3f} of labeled")

    # Soft-cache bytes per utterance, on the posteriors of the (untrained) model for real audio.
    log_probs, lengths, _ = teacher_log_probs(plugin, *batches[0])
    probs = log_probs.exp().cpu()
    full = np.mean([compress_posteriors(probs[b, : lengths[b]], None).nbytes for b in range(len(lengths))])
    print(f"soft cache, full fp32: {full:.0f} bytes per utterance (V={probs.shape[-1]})")
    for k in args.topk:
        size = np.mean([compress_posteriors(probs[b, : lengths[b]], k).nbytes for b in range(len(lengths))])
        print(f"soft cache, top-{k}: {size:.0f} bytes per utterance (1/{full / size:.1f} of full fp32)")


if __name__ == "__main__":
    main()
