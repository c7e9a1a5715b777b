"""Benchmark: seconds per training step of seed architectures, to size a model for a compute budget.

For each ESPnet config given, builds the model of its ``frontend``/``specaug``/``encoder`` sections (stock
``ESPnetASRModel``, CTC only) and times forward + backward + an Adam step on a random batch of ``--batch``
utterances of ``--seconds`` seconds (default 10 x 3.7 s: one ``batch_bins: 600000`` batch of egs/synth_en),
median of ``--steps`` steps after 2 untimed ones; also one forward pass in eval mode (the labeling cost).
Overrides (``--set encoder_conf.num_blocks=6``) make variants without writing files.

Usage: ``python bench/arch_time.py egs/synth_en/conf/train_seed.yaml --threads 2 [--set frontend_conf.n_mels=40]``.
Results of the egs/synth_en search: egs/synth_en/EXPERIMENTS.md (E1).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_time import build  # noqa: E402  (the same model builder as the step benchmark)


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """``section.key=value`` (value parsed as YAML) or ``key=value`` over a copy of ``config``."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, _, value = item.partition("=")
        if not _:
            raise SystemExit(f"--set {item!r}: expected key=value")
        section, _, sub = key.partition(".")
        if sub:
            config.setdefault(section, {})[sub] = yaml.safe_load(value)
        else:
            config[key] = yaml.safe_load(value)
    return config


def time_config(config: dict, vocab: int, batch: int, seconds: float, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens.txt"
        tokens.write_text("\n".join(["<blank>", "<unk>", *(f"t{i}" for i in range(vocab - 3)), "<sos/eos>"]) + "\n")
        model = build(config, tokens, "espnet", {}, "cpu")
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    speech = 0.1 * torch.randn(batch, int(16000 * seconds))
    lengths = torch.full((batch,), speech.shape[1])
    text = torch.randint(2, vocab - 1, (batch, 20))
    text_lengths = torch.full((batch,), 20)
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        loss = model(speech, lengths, text, text_lengths)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        encoded, _ = model.encode(speech, lengths)
        forward = time.perf_counter() - start
    return {"params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "step_ms": 1000 * statistics.median(times[2:]),
            "eval_forward_ms": 1000 * forward, "frames": encoded.shape[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", type=Path, help="ESPnet training configs (their model sections)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value override")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--vocab", type=int, default=31, help="token list size (31: egs/synth_en's characters)")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.7)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in args.configs:
        config = apply_overrides(yaml.safe_load(path.read_text()), args.overrides)
        r = time_config(config, args.vocab, args.batch, args.seconds, args.steps)
        print(f"{path} {' '.join(args.overrides)}: {r['params_M']:.2f} M params, {r['step_ms']:.0f} ms/step, "
              f"eval forward {r['eval_forward_ms']:.0f} ms, {r['frames']} encoder frames "
              f"({args.threads} threads, {args.batch} x {args.seconds} s)")


if __name__ == "__main__":
    main()
