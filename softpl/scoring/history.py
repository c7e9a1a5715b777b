"""Training curves of an ESPnet experiment: per-epoch statistics and the update count at each epoch's end.

Statistics and update counts come from ESPnet's own reporter state in ``<exp>/checkpoint.pth`` (every epoch's
train and valid averages, and its count of training batches).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from espnet2.torch_utils.safe_torch_load import safe_torch_load
from espnet2.train.reporter import Reporter


def read_history(exp: Path) -> list[dict[str, float]]:
    """One dict per epoch the run trained: ``epoch``, ``updates`` and ``<phase>.<stat>`` for every reported stat.

    ``updates`` is ESPnet's count of training batches at the epoch's end, from the run's start: for a run
    branched from the seed (:mod:`softpl.train.branch`) that is from the branch point, whose epochs are numbered
    on from the seed's. Every update counts, labeled or pseudo-labeled.
    """
    checkpoint = exp / "checkpoint.pth"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint}: no ESPnet checkpoint; has the training of {exp} run?")
    reporter = Reporter()
    reporter.load_state_dict(safe_torch_load(checkpoint, map_location="cpu")["reporter"])
    history = []
    for epoch in sorted(reporter.stats):
        stats = reporter.stats[epoch]
        row: dict[str, float] = {"epoch": epoch, "updates": float(stats.get("train", {}).get("total_count", np.nan))}
        for phase in ("train", "valid"):
            if phase in stats:
                for key in reporter.get_keys2(phase, epoch):
                    row[f"{phase}.{key}"] = float(stats[phase][key])
        history.append(row)
    return history


def final_pl_summary(exp: Path) -> dict[str, object]:
    """Pseudo-labeling health at the end of a run: last epoch's PL statistics, the collapse alarm, and the shares
    of the unlabeled set (utterances, audio) labeled at least once (``cpl_history.jsonl``'s last epoch)."""
    history = read_history(exp)
    last = history[-1] if history else {}
    alarm = exp / "collapse_alarm.json"
    fired = json.loads(alarm.read_text()) if alarm.exists() else None
    epochs = (exp / "cpl_history.jsonl").read_text().splitlines() if (exp / "cpl_history.jsonl").exists() else []
    last_epoch = json.loads(epochs[-1]) if epochs else {}
    return {
        "updates": last.get("updates", np.nan),
        "pl_blank_rate": last.get("train.pl_blank_rate", np.nan),
        "pl_frame_entropy": last.get("train.pl_frame_entropy", np.nan),
        "pl_wer_vs_ref": last.get("train.pl_wer_vs_ref", np.nan),
        "pl_coverage": last_epoch.get("pl_coverage", np.nan),
        "pl_coverage_audio": last_epoch.get("pl_coverage_audio", np.nan),
        "alarm_step": None if fired is None else fired["step"],
    }


# Panels of the curves: (history key, axis label, scale, file name). dev CER comes first: ESPnet's own validation
# reports it for every run (stock ESPnet runs report no WER), so it is the panel where the baselines and every
# pseudo-labeling variant meet.
PANELS = (
    ("valid.cer_ctc", "dev CER (%) [greedy CTC]", 100.0, "dev_cer.png"),
    ("valid.wer_ctc", "dev WER (%) [greedy CTC]", 100.0, "dev_wer.png"),
    ("train.pl_blank_rate", "pseudo-label blank rate (argmax share)", 1.0, "pl_blank_rate.png"),
    ("train.pl_frame_entropy", "pseudo-label frame entropy (nats)", 1.0, "pl_frame_entropy.png"),
)


def plot_curves(histories: dict[str, list[dict[str, float]]], out_dir: Path,
                start: dict[str, float] | None = None) -> list[Path]:
    """PNG plots against updates, one line per run (panels: ``PANELS``; a panel no run reports is not drawn).

    ``start``: the seed's statistics at the branch point (its last epoch), drawn as every line's point at update 0.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = start or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, label, scale, filename in PANELS:
        lines = {name: [(row["updates"], row[key] * scale) for row in history if key in row]
                 for name, history in histories.items()}
        lines = {name: points for name, points in lines.items() if points}
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for name, points in lines.items():
            if key in start:
                points = [(0.0, start[key] * scale), *points]
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
        ax.set_xlabel("updates since the branch point" if start else "updates")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / filename, dpi=110)
        plt.close(fig)
        written.append(out_dir / filename)
    return written
