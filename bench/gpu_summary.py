"""Summarize a bench/gpu.sh results folder into ``gpu_results.json`` and ``gpu_results.md``.

Reads what gpu.sh left there: ``versions.txt``, ``throughput.json`` (bench/gpu_throughput.py),
``pl_run/pl_run.json`` (bench/gpu_pl_run.py), ``phases.tsv``, ``gpu_util.csv`` (nvidia-smi samples: timestamp,
utilization %, memory MiB), ``recipe.log`` (run.sh stages 6-9) and ``train_<exp>.log`` (ESPnet train.log of each
experiment). Parts that are missing (a dry run, a timeout)
are reported as missing, not invented.

Usage: ``python bench/gpu_summary.py --output_dir DIR``.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

STEP_NAMES = {
    "stock_step": "stock ESPnet supervised step",
    "plugin_labeled_step": "plugin labeled step",
    "plugin_unlabeled_hard": "plugin unlabeled step, hard",
    "plugin_unlabeled_soft": "plugin unlabeled step, soft",
    "label_hard": "labeling one batch, hard",
    "label_soft_top8": "labeling one batch, soft top-8",
}
RUN_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \[run\.sh\] (?:stage (\d+)|done: stages)")


def local_seconds(text: str, fmt: str) -> float:
    """Seconds since the epoch of a local-time stamp (run.sh and nvidia-smi both write local time)."""
    whole, _, frac = text.partition(".")
    return time.mktime(time.strptime(whole, fmt)) + (float("0." + frac) if frac else 0.0)


def read_phases(path: Path) -> dict[str, tuple[float, float]]:
    """``{phase: (start, end)}`` from gpu.sh's ``phases.tsv`` lines ``name<TAB>start|end<TAB>epoch``."""
    marks: dict[str, dict[str, float]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, kind, stamp = line.split("\t")
            marks.setdefault(name, {})[kind] = float(stamp)
    return {name: (m["start"], m["end"]) for name, m in marks.items() if "start" in m and "end" in m}


def read_gpu_util(path: Path) -> list[tuple[float, float, float]]:
    """``(time, utilization %, memory MiB)`` samples of ``nvidia-smi --query-gpu=timestamp,utilization.gpu,
    memory.used --format=csv,noheader,nounits``; lines that are not samples (a warning) are skipped."""
    samples = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = [p.strip() for p in line.split(",")]
            try:
                samples.append((local_seconds(parts[0], "%Y/%m/%d %H:%M:%S"), float(parts[1]), float(parts[2])))
            except (ValueError, IndexError):
                continue
    return samples


def mean_util(samples, start: float, end: float) -> float | None:
    values = [util for stamp, util, _ in samples if start <= stamp <= end]
    return round(statistics.fmean(values), 1) if values else None


def peak_memory_gib(samples, start: float, end: float) -> float | None:
    values = [memory for stamp, _, memory in samples if start <= stamp <= end]
    return round(max(values) / 1024, 1) if values else None


def recipe_stages(log_text: str, end: float | None) -> dict[str, tuple[float, float]]:
    """``{"stage N": (start, end)}`` from run.sh's log: a stage runs from its first line to the next stage's
    first line (or run.sh's ``done:`` line, else ``end``)."""
    firsts: list[tuple[str, float]] = []
    for line in log_text.splitlines():
        match = RUN_LINE.match(line)
        if not match:
            continue
        stamp = local_seconds(match.group(1), "%Y-%m-%d %H:%M:%S")
        name = f"stage {match.group(2)}" if match.group(2) else "done"
        if not firsts or firsts[-1][0] != name:
            firsts.append((name, stamp))
    stages = {}
    for i, (name, start) in enumerate(firsts):
        if name == "done":
            break
        stop = firsts[i + 1][1] if i + 1 < len(firsts) else end
        if stop is not None:
            stages[name] = (start, stop)
    return stages


def train_log_stats(text: str) -> dict:
    """Means over the epochs of ESPnet's ``Nepoch results: [train] ...`` lines: seconds per update
    (``train_time``) and, for PL runs, the shares of wall time spent labeling (``pl_label_share``) and
    assembling unlabeled batches (``pl_assemble_share``)."""
    train_parts = [line.split("[train]", 1)[1].split("[valid]", 1)[0]
                   for line in text.splitlines() if "epoch results: [train]" in line]
    out = {"epochs": len(train_parts)}
    for key, name in (("train_time", "seconds_per_update"), ("iter_time", "iter_seconds"),
                      ("pl_label_share", "label_share"), ("pl_assemble_share", "assemble_share")):
        values = [float(m.group(1)) for part in train_parts for m in [re.search(rf"\b{key}=([0-9.e+-]+)", part)] if m]
        if values:
            out[name] = round(statistics.fmean(values), 4)
    return out


def summarize(out_dir: Path) -> dict:
    results: dict = {"versions": (out_dir / "versions.txt").read_text().strip().splitlines()
                     if (out_dir / "versions.txt").exists() else []}
    throughput = out_dir / "throughput.json"
    results["throughput"] = json.loads(throughput.read_text()) if throughput.exists() else None
    phases = read_phases(out_dir / "phases.tsv")
    samples = read_gpu_util(out_dir / "gpu_util.csv")
    pl_run = out_dir / "pl_run" / "pl_run.json"
    results["pl_run"] = json.loads(pl_run.read_text()) if pl_run.exists() else None
    if results["pl_run"] and samples and "window_start" in results["pl_run"]:
        window = results["pl_run"]["window_start"], results["pl_run"]["window_end"]
        results["pl_run"]["gpu_util_mean"] = mean_util(samples, *window)
        results["pl_run"]["gpu_memory_peak_gib"] = peak_memory_gib(samples, *window)
    results["phases_seconds"] = {name: round(end - start, 1) for name, (start, end) in phases.items()}
    results["gpu_util_mean"] = {name: mean_util(samples, *span) for name, span in phases.items()} if samples else None
    recipe_log = out_dir / "recipe.log"
    if recipe_log.exists():
        text = recipe_log.read_text()
        stages = recipe_stages(text, phases.get("recipe", (None, None))[1])
        results["recipe"] = {
            "finished": "done: stages" in text,
            "wall_seconds": results["phases_seconds"].get("recipe"),
            "stages": {name: {"seconds": round(end - start, 1),
                              "gpu_util_mean": mean_util(samples, start, end) if samples else None}
                       for name, (start, end) in stages.items()},
        }
    runs = {}
    for log in sorted(out_dir.glob("train_*.log")):
        runs[log.stem.removeprefix("train_")] = train_log_stats(log.read_text())
    results["runs"] = runs
    supervised = runs.get("asr_supervised_cont", {}).get("seconds_per_update")
    if supervised:
        for stats in runs.values():
            if "seconds_per_update" in stats:
                stats["vs_supervised_update"] = round(stats["seconds_per_update"] / supervised, 3)
    return results


def markdown(results: dict) -> str:
    lines = ["# bench/gpu.sh results", "", *(f"- {v}" for v in results["versions"]), ""]
    throughput = results["throughput"]
    if throughput:
        lines += [f"Throughput, audio seconds per second ({throughput['device']}, torch {throughput['torch']}, "
                  f"{throughput['measured']}):", "",
                  "| model | params | batch | what | ms | audio s/s | vs stock |", "|---|---|---|---|---|---|---|"]
        for name, row in throughput.items():
            if not isinstance(row, dict):
                continue
            batch = f"{row['batch']} x {row['utt_seconds']:g} s, {row['dtype']}"
            if row.get("peak_memory_gib") is not None:
                batch += f", {row['peak_memory_gib']} GiB"
            for key, label in STEP_NAMES.items():
                lines.append(f"| {name} | {row['parameters'] / 1e6:.1f} M | {batch} | {label} | "
                             f"{row['seconds'][key] * 1000:.1f} | {row['audio_seconds_per_second'][key]:.0f} | "
                             f"{row['vs_stock'][key]:.3f} |")
        lines.append("")
    else:
        lines += ["Throughput: not measured (no throughput.json).", ""]
    pl_run = results.get("pl_run")
    if pl_run and "seconds_per_update" in pl_run:
        lines += [f"Pseudo-labeling run (bench/gpu_pl_run.py: `{Path(pl_run['config']).name}`, "
                  f"{pl_run['batch']} x {pl_run['utt_seconds']:g} s, use_amp {pl_run['use_amp']}, C "
                  f"{pl_run['cache_size']}, p {pl_run['refresh_prob']}), steady window of "
                  f"{pl_run['updates_in_window']} updates"
                  f"{' (the run was cut by its time limit)' if pl_run.get('timed_out') else ''}:", "",
                  "| s per update | audio s/s | labeling share | mean GPU utilization % | peak GPU memory GiB |",
                  "|---|---|---|---|---|",
                  f"| {pl_run['seconds_per_update']} | {pl_run['audio_seconds_per_second']} | "
                  f"{pl_run.get('pl_label_share', '-')} | {pl_run.get('gpu_util_mean', '-')} | "
                  f"{pl_run.get('gpu_memory_peak_gib', '-')} |", ""]
    elif pl_run:
        lines += [f"Pseudo-labeling run: FAILED (return code {pl_run['returncode']}; see pl_run/train.log).", ""]
    recipe = results.get("recipe")
    if recipe:
        state = "finished" if recipe["finished"] else "DID NOT FINISH within the limit"
        lines += [f"egs/synth_en `./run.sh --stage 6 --stop_stage 9 --ngpu 1`: {recipe['wall_seconds']} s wall, "
                  f"{state}.",
                  "", "| stage | seconds | mean GPU utilization % |", "|---|---|---|"]
        for name, stage in recipe["stages"].items():
            lines.append(f"| {name} | {stage['seconds']} | {stage['gpu_util_mean']} |")
        lines.append("")
    if results["runs"]:
        lines += ["Training runs (train.log means over epochs):", "",
                  "| experiment | epochs | s per update | vs supervised continuation | s waiting for the batch "
                  "| labeling share | batch assembly share |", "|---|---|---|---|---|---|---|"]
        for name, stats in results["runs"].items():
            lines.append(f"| {name} | {stats['epochs']} | {stats.get('seconds_per_update', '-')} | "
                         f"{stats.get('vs_supervised_update', '-')} | {stats.get('iter_seconds', '-')} | "
                         f"{stats.get('label_share', '-')} | {stats.get('assemble_share', '-')} |")
        lines.append("")
    if results["gpu_util_mean"]:
        lines += ["Mean GPU utilization by phase (%): " + ", ".join(
            f"{name} {value}" for name, value in results["gpu_util_mean"].items()), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    args = parser.parse_args()
    results = summarize(args.output_dir)
    (args.output_dir / "gpu_results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    (args.output_dir / "gpu_results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
