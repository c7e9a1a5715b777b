"""Summarize a bench/gpu.sh results folder into ``gpu_results.json`` and ``gpu_results.md``.

Reads what gpu.sh left there: ``versions.txt``, ``throughput.json`` (bench/gpu_throughput.py),
``pl_run/pl_run.json`` and ``pilot_<seed|pl>_<N>gpu/pl_run.json`` (bench/gpu_pl_run.py; the pilot's results are
keyed by N, an int), ``phases.tsv``, ``gpu_util.csv`` (nvidia-smi samples: timestamp, utilization %, memory MiB),
``recipe.log`` (run.sh stages 6-9) and ``train_<exp>.log`` (ESPnet train.log of each experiment). Parts that are
missing (a dry run, a timeout) are reported as missing, not invented.

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
PILOT_DIR = re.compile(r"^pilot_(seed|pl)_(\d+)gpu$")
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


def read_run(path: Path, samples) -> dict | None:
    """A bench/gpu_pl_run.py result, with nvidia-smi's mean utilization and peak memory over its window."""
    if not path.exists():
        return None
    run = json.loads(path.read_text())
    if samples and "window_start" in run:
        run["gpu_util_mean"] = mean_util(samples, run["window_start"], run["window_end"])
        run["gpu_memory_peak_gib"] = peak_memory_gib(samples, run["window_start"], run["window_end"])
    return run


def extrapolate(seed: dict | None, pl: dict | None) -> dict:
    """Hours of the recipe's whole schedule at the pilot's seconds per update: seconds per update x updates / 3600,
    for the seed (its max_epoch x num_iters_per_epoch: slimIPL's M), the pseudo-labeling run (max_epoch x
    num_iters_per_epoch x (1 + unlabeled per labeled)) and both."""
    row: dict = {}
    for name, run in (("seed", seed), ("pl", pl)):
        if run and run.get("seconds_per_update") and run.get("schedule_updates"):
            row[f"{name}_updates"] = run["schedule_updates"]
            row[f"{name}_hours"] = round(run["seconds_per_update"] * run["schedule_updates"] / 3600, 1)
    if "seed_hours" in row and "pl_hours" in row:
        row["full_updates"] = row["seed_updates"] + row["pl_updates"]
        row["full_hours"] = round(row["seed_hours"] + row["pl_hours"], 1)
    return row


def read_pilot(out_dir: Path, samples) -> dict | None:
    """gpu.sh --librispeech_pilot's runs, ``pilot_<seed|pl>_<N>gpu/pl_run.json`` (the recipe's batch per GPU for N
    GPUs), and the hours of the whole schedule on N GPUs (:func:`extrapolate`)."""
    runs: dict[int, dict] = {}
    for path in out_dir.glob("pilot_*gpu/pl_run.json"):
        match = PILOT_DIR.match(path.parent.name)
        if match:
            runs.setdefault(int(match.group(2)), {})[match.group(1)] = read_run(path, samples)
    if not runs:
        return None
    return {"runs": {gpus: runs[gpus] for gpus in sorted(runs)},
            "extrapolation": {gpus: extrapolate(runs[gpus].get("seed"), runs[gpus].get("pl")) for gpus in sorted(runs)}}


def summarize(out_dir: Path) -> dict:
    results: dict = {"versions": (out_dir / "versions.txt").read_text().strip().splitlines()
                     if (out_dir / "versions.txt").exists() else []}
    throughput = out_dir / "throughput.json"
    results["throughput"] = json.loads(throughput.read_text()) if throughput.exists() else None
    phases = read_phases(out_dir / "phases.tsv")
    samples = read_gpu_util(out_dir / "gpu_util.csv")
    results["pl_run"] = read_run(out_dir / "pl_run" / "pl_run.json", samples)
    results["pilot"] = read_pilot(out_dir, samples)
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


def loss_trend(run: dict) -> tuple[str, str]:
    """``first -> last`` of the labeled CTC loss (and the pseudo-label loss) over the run's progress lines, and
    whether the labeled loss fell."""
    curve = run.get("loss_curve") or {}
    keys = [key for key in ("loss_ctc", "loss_pl") if len(curve.get(key, [])) >= 2] or \
        [key for key in ("loss",) if len(curve.get(key, [])) >= 2]
    if not keys:
        return "-", "-"
    text = "; ".join(f"{key} {curve[key][0][1]:.4g} -> {curve[key][-1][1]:.4g}" for key in keys)
    return text, "yes" if curve[keys[0]][-1][1] < curve[keys[0]][0][1] else "no"


def percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def pilot_markdown(pilot: dict) -> list[str]:
    """The tables of gpu.sh --librispeech_pilot: its runs, then the hours of the whole schedule."""
    runs = [(gpus, kind, run) for gpus, pair in pilot["runs"].items() for kind, run in sorted(
        pair.items(), key=lambda item: item[0] != "seed") if run]
    device = next((run.get("device") for _, _, run in runs if run.get("device")), "-")
    peak = next((run.get("peak_bf16_tflops") for _, _, run in runs if run.get("peak_bf16_tflops")), None)
    lines = [f"egs/librispeech_100 pilot (bench/gpu_pl_run.py --recipe_config: the recipe's configs as they are, "
             f"noise audio, utterance_mvn; one GPU at the recipe's batch per GPU of N GPUs; {device}; MFU against "
             f"{f'{peak:g} TFLOPS' if peak else 'no known'} dense bf16 peak, FLOPs by torch's FlopCounterMode):", "",
             "| run | N GPUs | batch per GPU | updates in window | s per update | audio s/s per GPU | peak GPU memory "
             "GiB | loss, first -> last progress line | loss falls | model TFLOP per update | MFU % | "
             "MFU executed % | labeling share |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for gpus, kind, run in runs:
        name = "seed (stage 6)" if kind == "seed" else f"PL (stage 8, `{Path(run['config']).name}`)"
        batch = f"{run['batch']} x {run['utt_seconds']:g} s"
        if "seconds_per_update" not in run:
            lines.append(f"| {name} | {gpus} | {batch} | FAILED (return code {run.get('returncode')}; see "
                         f"pilot_{kind}_{gpus}gpu/train.log) | | | | | | | | | |")
            continue
        memory = run.get("gpu_max_cached_mem_gib") or run.get("gpu_memory_peak_gib") or "-"
        trend, falls = loss_trend(run)
        lines.append(f"| {name} | {gpus} | {batch} | {run['updates_in_window']} | {run['seconds_per_update']} | "
                     f"{run['audio_seconds_per_second']} | {memory} | {trend} | {falls} | "
                     f"{run.get('model_tflop_per_update', '-')} | {percent(run.get('mfu'))} | "
                     f"{percent(run.get('mfu_executed'))} | {run.get('pl_label_share', '-')} |")
    lines += ["", "Hours of the recipe's whole schedule on N GPUs (s per update x updates / 3600; data parallel, the "
              "recipe's batch_bins shared by the N GPUs as ESPnet shares them, one GPU's update measured alone: the "
              "gradient all-reduce, DDP's search for unused parameters, validation and checkpoints are not in it):",
              "", "| N GPUs | seed: M updates | seed h | PL updates | PL h | full run updates | full run h |",
              "|---|---|---|---|---|---|---|"]
    for gpus, row in pilot["extrapolation"].items():
        lines.append(f"| {gpus} | {row.get('seed_updates', '-')} | {row.get('seed_hours', '-')} | "
                     f"{row.get('pl_updates', '-')} | {row.get('pl_hours', '-')} | {row.get('full_updates', '-')} | "
                     f"{row.get('full_hours', '-')} |")
    return lines + [""]


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
    if results.get("pilot"):
        lines += pilot_markdown(results["pilot"])
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
