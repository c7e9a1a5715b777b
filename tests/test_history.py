"""Training curves: per-epoch statistics from ESPnet's reporter, update counts from the branch point, plots."""
from __future__ import annotations

import pytest
import torch
from espnet2.train.reporter import Reporter

from softpl.scoring.history import plot_curves, read_history


def write_run(exp, epochs: dict[int, dict], start_epoch: int = 0):
    """An ESPnet checkpoint.pth whose reporter holds ``epochs`` ({epoch: {"batches", "cer", ...}})."""
    reporter = Reporter(epoch=start_epoch)
    for epoch, stats in epochs.items():
        reporter.set_epoch(epoch)  # as ESPnet's Trainer.run does before observing the epoch's phases
        with reporter.observe("train") as sub:
            for _ in range(stats["batches"]):
                sub.register({"loss": 1.0, **stats.get("train", {})})
                sub.next()
        with reporter.observe("valid") as sub:
            sub.register({"loss": 2.0, "cer_ctc": stats["cer"]})
            sub.next()
    exp.mkdir(parents=True)
    torch.save({"reporter": reporter.state_dict()}, exp / "checkpoint.pth")


def test_a_branched_run_counts_updates_from_the_branch_point(tmp_path):
    with pytest.warns(UserWarning, match="previous epoch"):  # ESPnet's warning for an epoch without a predecessor
        write_run(tmp_path / "branch", {13: {"batches": 5, "cer": 0.3, "train": {"pl_blank_rate": 0.6}},
                                        14: {"batches": 5, "cer": 0.25, "train": {"pl_blank_rate": 0.7}}},
                  start_epoch=12)
    history = read_history(tmp_path / "branch")
    assert [(row["epoch"], row["updates"]) for row in history] == [(13, 5), (14, 10)]
    assert history[1]["valid.cer_ctc"] == pytest.approx(0.25) and history[1]["train.pl_blank_rate"] == 0.7


def test_a_run_from_scratch_counts_every_batch(tmp_path):
    write_run(tmp_path / "seed", {1: {"batches": 3, "cer": 0.9}, 2: {"batches": 3, "cer": 0.5}})
    assert [row["updates"] for row in read_history(tmp_path / "seed")] == [3, 6]
    with pytest.raises(FileNotFoundError, match="no ESPnet checkpoint"):
        read_history(tmp_path / "missing")


@pytest.mark.filterwarnings("ignore:No artists with labels found:UserWarning")  # plot() is replaced below
def test_plots_start_every_line_at_the_branch_point_and_skip_empty_panels(tmp_path, monkeypatch):
    drawn = {}

    import matplotlib.axes

    def record(self, xs, ys, **kwargs):
        drawn.setdefault(self.get_ylabel() or "pending", []).append((kwargs["label"], list(xs), list(ys)))

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    histories = {
        "supervised": [{"updates": 10, "valid.cer_ctc": 0.30}],
        "hard": [{"updates": 10, "valid.cer_ctc": 0.20, "valid.wer_ctc": 0.5, "train.pl_blank_rate": 0.6}],
    }
    written = plot_curves(histories, tmp_path / "plots", start={"valid.cer_ctc": 0.4})
    assert sorted(p.name for p in written) == ["dev_cer.png", "dev_wer.png", "pl_blank_rate.png"]
    lines = [line for calls in drawn.values() for line in calls]
    assert ("supervised", [0.0, 10], [40.0, 30.0]) in lines  # the seed's CER at update 0, then the run's
    assert ("hard", [10], [50.0]) in lines  # no starting value for WER: the line starts at its first epoch
