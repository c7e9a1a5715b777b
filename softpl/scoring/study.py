"""Seed studies: runs repeated with several training seeds (``<variant>_seed<N>``, run.sh --pl_seeds) summarised
as mean +- standard deviation per variant, with collapse counts, alarm updates and wall time.

A run counts as collapsed when its final pseudo-labels are mostly blank (blank rate >= ``COLLAPSE_BLANK_RATE``)
or its WER on the first reported set is at least ``COLLAPSE_WER`` percent (a degenerate model; docs/method.md,
'The collapse').
"""
from __future__ import annotations

import dataclasses
import re
import statistics
from collections.abc import Sequence
from pathlib import Path

from softpl.scoring.results import Decode, markdown_table

SEED_SUFFIX = re.compile(r"^(?P<variant>.+)_seed(?P<seed>\d+)$")
COLLAPSE_BLANK_RATE = 0.9
COLLAPSE_WER = 90.0
WALL_TIME_FILE = "train_seconds"  # written by run.sh stage 8: seconds of the call that finished the run


def variant_of(model: str) -> str:
    """``pl_soft_seed2`` -> ``pl_soft``; a name without a seed suffix is its own variant."""
    match = SEED_SUFFIX.match(model)
    return match["variant"] if match else model


def group_by_variant(models: Sequence[str]) -> dict[str, list[str]]:
    """Variant -> its runs, both in first-appearance order."""
    groups: dict[str, list[str]] = {}
    for model in models:
        groups.setdefault(variant_of(model), []).append(model)
    return groups


def mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``12.34 ± 0.56`` over the values (sample standard deviation); a single value alone; ``-`` for none."""
    values = [v for v in values if v == v]  # drop NaN
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


@dataclasses.dataclass
class RunSummary:
    """What the study table needs of one run: WER per set, final pseudo-label health, wall time."""

    model: str
    wer: dict[str, float]
    pl: dict[str, object] | None  # softpl.scoring.history.final_pl_summary, None for runs without pseudo-labels
    wall_seconds: float | None

    def collapsed(self, first_set: str) -> bool:
        blank = float(self.pl["pl_blank_rate"]) if self.pl else float("nan")
        return blank >= COLLAPSE_BLANK_RATE or self.wer.get(first_set, 0.0) >= COLLAPSE_WER


def summarise_run(decode: Decode, exp_dir: Path, pl: dict[str, object] | None) -> RunSummary:
    wall = exp_dir / decode.model / WALL_TIME_FILE
    return RunSummary(
        model=decode.model,
        wer={name: float(scores["wer"]["error_rate"]) for name, scores in decode.scores.items()},
        pl=pl,
        wall_seconds=float(wall.read_text().split()[0]) if wall.is_file() else None,
    )


def study_md(runs: Sequence[RunSummary], sets: Sequence[str]) -> str:
    """Markdown table, one row per variant: WER mean ± std per set, final PL statistics, collapses, wall time."""
    by_model = {run.model: run for run in runs}
    columns = (["variant", "seeds"] + [f"{name} WER" for name in sets]
               + ["final PL WER", "final PL blank rate", "final PL frame entropy", "collapsed", "alarm at update",
                  "wall time (s)"])
    rows = []
    for variant, models in group_by_variant([run.model for run in runs]).items():
        group = [by_model[m] for m in models]
        pl = [run.pl for run in group if run.pl]
        alarms = [str(p["alarm_step"]) for p in pl if p["alarm_step"] is not None]
        row: dict[str, object] = {"variant": variant, "seeds": len(group)}
        for name in sets:
            row[f"{name} WER"] = mean_std([run.wer[name] for run in group if name in run.wer])
        if pl:
            row["final PL WER"] = mean_std([float(p["pl_wer_vs_ref"]) for p in pl])
            row["final PL blank rate"] = mean_std([float(p["pl_blank_rate"]) for p in pl], 3)
            row["final PL frame entropy"] = mean_std([float(p["pl_frame_entropy"]) for p in pl], 3)
            row["alarm at update"] = ", ".join(alarms) if alarms else "no"
        row["collapsed"] = f"{sum(run.collapsed(sets[0]) for run in group)}/{len(group)}" if sets else "-"
        row["wall time (s)"] = mean_std([run.wall_seconds for run in group if run.wall_seconds is not None], 0)
        rows.append(row)
    return (f"## Seed study: mean ± standard deviation over seeds (WER %, greedy CTC)\n\n"
            f"Collapsed: final pseudo-label blank rate >= {COLLAPSE_BLANK_RATE} or {sets[0] if sets else ''} WER >= "
            f"{COLLAPSE_WER:.0f} %. Wall time: seconds of training per run.\n\n{markdown_table(columns, rows)}")


def mean_history(histories: Sequence[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per-epoch mean of several runs' histories (``softpl.scoring.history.read_history``), over the epochs all
    share."""
    epochs = min(len(h) for h in histories)
    merged = []
    for index in range(epochs):
        rows = [h[index] for h in histories]
        keys = set.intersection(*(set(row) for row in rows))
        merged.append({key: statistics.fmean(row[key] for row in rows) for key in keys})
    return merged
