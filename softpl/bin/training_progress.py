"""One line per finished epoch of an ESPnet training run, read from its log while it trains (run.sh's stages 6, 8).

    python -m softpl.bin.training_progress --log exp/asr_seed/train.log --pid <training process id>

ESPnet writes its epoch summaries (``<N>epoch results: [train] ... [valid] ...``) to ``train.log`` only; a terminal
watching ``./run.sh`` would see nothing for the whole stage. This follower reads the log (it writes nothing to it)
until the process it watches (run.sh's shell) ends or it gets SIGTERM (the training has ended), and prints, per
epoch, prefixed by the run so that runs trained at once stay apart:
``[pl_hard] epoch 16/20, 600 updates, train loss 41.20, dev CER 31.9 %, 4.2 min, about 4.1 min left``.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from pathlib import Path

EPOCH_RESULTS = re.compile(r"(\d+)epoch results: \[train\] (.*?)(?:, \[valid\] (.*))?$")
MAX_EPOCH = re.compile(r"^max_epoch: (\d+)$", re.M)


def stats(section: str | None) -> dict[str, str]:
    """``key=value, ...`` of one section of ESPnet's epoch summary."""
    return dict(item.split("=", 1) for item in (section or "").split(", ") if "=" in item)


def max_epoch(exp_dir: Path) -> int | None:
    """The run's last epoch, from the config ESPnet writes into its folder at start (None before it exists)."""
    config = exp_dir / "config.yaml"
    match = MAX_EPOCH.search(config.read_text()) if config.is_file() else None
    return int(match[1]) if match else None


def progress_line(name: str, line: str, total: int | None, elapsed: float, epochs_done: int) -> str | None:
    """The terminal line of one epoch summary (None for other log lines)."""
    match = EPOCH_RESULTS.search(line.rstrip())
    if not match:
        return None
    epoch = int(match[1])
    train, valid = stats(match[2]), stats(match[3])
    parts = [f"epoch {epoch}/{total or '?'}"]
    if "total_count" in train:
        parts.append(f"{int(float(train['total_count']))} updates")
    if "loss" in train:
        parts.append(f"train loss {float(train['loss']):.2f}")
    for key, label in (("cer_ctc", "dev CER"), ("cer", "dev CER"), ("acc", "dev accuracy")):
        if valid.get(key, "nan") != "nan":
            parts.append(f"{label} {100 * float(valid[key]):.1f} %")
            break
    parts.append(f"{elapsed / 60:.1f} min")
    if total and epochs_done and total > epoch:
        parts.append(f"about {elapsed / epochs_done * (total - epoch) / 60:.1f} min left")
    return f"[{name}] " + ", ".join(parts)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def follow(log: Path, pid: int, name: str, interval: float = 2.0) -> None:
    """Print a line per epoch summary appended to ``log`` until process ``pid`` has ended or SIGTERM came (then a
    last read)."""
    start, position, epochs_done, pending = time.monotonic(), 0, 0, ""
    stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    while True:
        running = alive(pid) and not stop
        if log.is_file():
            with log.open(encoding="utf-8", errors="replace") as f:
                f.seek(position)
                pending += f.read()
                position = f.tell()
            *lines, pending = pending.split("\n")
            for line in filter(lambda line: EPOCH_RESULTS.search(line.rstrip()), lines):  # epoch summaries only
                epochs_done += 1
                print(progress_line(name, line, max_epoch(log.parent), time.monotonic() - start, epochs_done),
                      flush=True)
        if not running:
            return
        time.sleep(interval)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", type=Path, required=True, help="the run's train.log (ESPnet's log)")
    parser.add_argument("--pid", type=int, required=True,
                        help="follow until this process ends (or SIGTERM comes, when the training has ended)")
    parser.add_argument("--name", help="prefix of each line (default: the log's folder, the run's name)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between reads of the log")
    args = parser.parse_args(argv)
    try:
        follow(args.log, args.pid, args.name or args.log.parent.name, args.interval)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
