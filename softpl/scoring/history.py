"""Training curves of an ESPnet experiment: per-epoch statistics and the update count at each epoch's end.

Statistics come from ESPnet's own reporter state in ``<exp>/checkpoint.pth`` (every epoch's train and valid
averages). Update counts come from ``cpl_history.jsonl`` (written by CPLTrainer) or, for stock ESPnet runs,
from ``num_iters_per_epoch`` in the run's ``config.yaml``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from espnet2.torch_utils.safe_torch_load import safe_torch_load
from espnet2.train.reporter import Reporter


def read_history(exp: Path) -> list[dict[str, float]]:
    """One dict per finished epoch: ``epoch``, ``updates``, and ``<phase>.<stat>`` for every reported stat."""
    checkpoint = exp / "checkpoint.pth"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint}: no ESPnet checkpoint; has the training of {exp} run?")
    reporter = Reporter()
    reporter.load_state_dict(safe_torch_load(checkpoint, map_location="cpu")["reporter"])
    updates = _updates_per_epoch(exp)
    history = []
    for epoch in range(1, reporter.get_epoch() + 1):
        row: dict[str, float] = {"epoch": epoch, "updates": updates.get(epoch, np.nan)}
        for phase in ("train", "valid"):
            for key in reporter.get_keys2(phase, epoch):
                row[f"{phase}.{key}"] = float(reporter.stats[epoch][phase][key])
        history.append(row)
    return history


def _updates_per_epoch(exp: Path) -> dict[int, float]:
    cpl = exp / "cpl_history.jsonl"
    if cpl.exists():
        return {row["epoch"]: row["updates"] for row in map(json.loads, cpl.read_text().splitlines())}
    config = yaml.safe_load((exp / "config.yaml").read_text())
    per_epoch = config.get("num_iters_per_epoch")
    if per_epoch is None:
        return {}
    return {epoch: epoch * per_epoch for epoch in range(1, int(config.get("max_epoch", 0)) + 1)}


def final_pl_summary(exp: Path) -> dict[str, object]:
    """Pseudo-labeling health at the end of a run: last epoch's PL statistics and the collapse alarm."""
    history = read_history(exp)
    last = history[-1] if history else {}
    alarm = exp / "collapse_alarm.json"
    fired = json.loads(alarm.read_text()) if alarm.exists() else None
    return {
        "updates": last.get("updates", np.nan),
        "pl_blank_rate": last.get("train.pl_blank_rate", np.nan),
        "pl_frame_entropy": last.get("train.pl_frame_entropy", np.nan),
        "pl_wer_vs_ref": last.get("train.pl_wer_vs_ref", np.nan),
        "alarm_step": None if fired is None else fired["step"],
    }


def plot_curves(histories: dict[str, list[dict[str, float]]], out_dir: Path) -> list[Path]:
    """PNG plots against updates, one line per run: dev WER, PL blank rate, PL frame entropy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("valid.wer_ctc", "dev WER (%) [greedy CTC]", 100.0, "dev_wer.png"),
        ("train.pl_blank_rate", "pseudo-label blank rate (argmax share)", 1.0, "pl_blank_rate.png"),
        ("train.pl_frame_entropy", "pseudo-label frame entropy (nats)", 1.0, "pl_frame_entropy.png"),
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, label, scale, filename in panels:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, history in histories.items():
            points = [(row["updates"], row[key] * scale) for row in history if key in row]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3, label=name)
        ax.set_xlabel("updates")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / filename, dpi=110)
        plt.close(fig)
        written.append(out_dir / filename)
    return written
