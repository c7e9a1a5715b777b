"""bench/gpu.sh: its dry mode runs on CPU, and its summary reads what a GPU run leaves (recorded samples)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_summary  # noqa: E402

pytestmark = pytest.mark.integration  # subprocess trainings or recipe runs: make integration


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table of ``text``, as rows of {column header: cell}."""
    tables, rows = [], None
    for line in text.splitlines() + [""]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            if rows is not None:
                tables.append([dict(zip(rows[0], row)) for row in rows[2:]])  # rows[1] is the |---| rule
            rows = None
        else:
            rows = (rows or []) + [cells]
    return tables


def table_with(tables: list[list[dict[str, str]]], column: str) -> list[dict[str, str]]:
    return next(table for table in tables if table and column in table[0])


def stamp(seconds: float, fmt: str) -> str:
    return time.strftime(fmt, time.localtime(seconds))


def test_dry_run_measures_a_few_cpu_steps_and_writes_the_tables(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([str(ROOT / "bench/gpu.sh"), "--dry_run", "true", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((out / "gpu_results.json").read_text())
    row = results["throughput"]["train_seed"]
    assert row["parameters"] > 1e6 and row["batch"] == 2 and row["dtype"] == "fp32"
    assert set(row["seconds"]) == set(gpu_summary.STEP_NAMES) and all(v > 0 for v in row["seconds"].values())
    assert row["vs_stock"]["stock_step"] == 1.0
    table = (out / "gpu_results.md").read_text()
    steps = table_with(markdown_tables(table), "vs stock")
    assert [row["what"] for row in steps if row["model"] == "train_seed"] == list(gpu_summary.STEP_NAMES.values())
    assert all(row["batch"] == "2 x 1 s, fp32" and float(row["ms"]) > 0 for row in steps)
    assert "recipe" not in results  # the dry run does not run the recipe
    # ... but a real pseudo-labeling run (softpl.bin.cpl_train), on CPU, with its steady window read back.
    pl_run = results["pl_run"]
    assert pl_run["returncode"] == 0 and pl_run["updates_in_window"] == 12 and pl_run["seconds_per_update"] > 0
    assert 0 <= pl_run["pl_label_share"] < 1 and "gpu_util_mean" not in pl_run  # no nvidia-smi samples
    assert not list((out / "pl_run").rglob("*.pth"))  # checkpoints are not results
    assert "Pseudo-labeling run (bench/gpu_pl_run.py: `conformer_tiny.yaml`, 2 x 1 s" in table


def test_summary_reads_recipe_stages_gpu_samples_and_train_logs(tmp_path):
    t0 = time.time() - 100
    (tmp_path / "phases.tsv").write_text(f"recipe\tstart\t{t0}\nrecipe\tend\t{t0 + 60}\n")
    (tmp_path / "gpu_util.csv").write_text("".join(
        f"{stamp(t0 + s, '%Y/%m/%d %H:%M:%S')}.250, {util}, 1000\n"
        for s, util in [(5, 10), (15, 30), (35, 80), (45, 100), (70, 0)]) + "nvidia-smi: a warning line\n")
    fmt = "%Y-%m-%d %H:%M:%S"
    (tmp_path / "recipe.log").write_text(
        f"{stamp(t0, fmt)} [run.sh] stage 6: seed training\nnoise\n{stamp(t0 + 20, fmt)} [run.sh] stage 8: pl_hard\n"
        f"{stamp(t0 + 30, fmt)} [run.sh] stage 8: asr_supervised_cont\n"
        f"{stamp(t0 + 50, fmt)} [run.sh] done: stages 6-8\n")
    epoch = "[vm] x (trainer:392) INFO: {n}epoch results: [train] iter_time=0.1, train_time={t}{extra}, [valid] loss=1"
    (tmp_path / "train_asr_supervised_cont.log").write_text(
        "\n".join(epoch.format(n=n, t=t, extra="") for n, t in [(1, 0.04), (2, 0.06)]))
    (tmp_path / "train_pl_hard.log").write_text(
        epoch.format(n=1, t=0.05, extra=", pl_label_share=0.1, pl_assemble_share=0.01") + "\n"
        + epoch.format(n=2, t=0.055, extra=", pl_label_share=0.2"))
    (tmp_path / "pl_run").mkdir()
    (tmp_path / "pl_run/pl_run.json").write_text(json.dumps({
        "config": "bench/conf/transformer_270m.yaml", "batch": 64, "utt_seconds": 15.0, "use_amp": "true",
        "cache_size": 16, "refresh_prob": 0.1, "returncode": 0, "window_start": t0 + 30, "window_end": t0 + 50,
        "updates_in_window": 80, "seconds_per_update": 0.25, "audio_seconds_per_second": 3840.0,
        "pl_label_share": 0.04}))
    results = gpu_summary.summarize(tmp_path)
    assert results["pl_run"]["gpu_util_mean"] == 90.0 and results["pl_run"]["gpu_memory_peak_gib"] == 1.0
    stages = results["recipe"]["stages"]
    assert results["recipe"]["finished"] and results["recipe"]["wall_seconds"] == 60.0
    assert stages["stage 6"]["seconds"] == 20.0 and stages["stage 6"]["gpu_util_mean"] == 20.0
    assert stages["stage 8"]["seconds"] == 30.0 and stages["stage 8"]["gpu_util_mean"] == 90.0
    runs = results["runs"]
    assert runs["asr_supervised_cont"] == {"epochs": 2, "seconds_per_update": 0.05, "iter_seconds": 0.1,
                                           "vs_supervised_update": 1.0}
    assert runs["pl_hard"]["label_share"] == pytest.approx(0.15) and runs["pl_hard"]["assemble_share"] == 0.01
    assert runs["pl_hard"]["vs_supervised_update"] == pytest.approx(1.05)
    assert results["throughput"] is None
    tables = markdown_tables(gpu_summary.markdown(results))
    stage_rows = {row["stage"]: row for row in table_with(tables, "stage")}
    assert stage_rows["stage 8"]["seconds"] == "30.0" and stage_rows["stage 8"]["mean GPU utilization %"] == "90.0"
    [pl_row] = table_with(tables, "labeling share")
    assert (pl_row["s per update"], pl_row["mean GPU utilization %"], pl_row["peak GPU memory GiB"]) == \
        ("0.25", "90.0", "1.0")
    runs_table = {row["experiment"]: row for row in table_with(tables, "experiment")}
    assert runs_table["pl_hard"]["vs supervised continuation"] == "1.05"


def test_librispeech_pilot_dry_run_trains_the_seed_config_then_branches_stage_8_from_it(tmp_path):
    """gpu.sh --librispeech_pilot: egs/librispeech_100's seed config, then its PL config continuing the seed's
    training state, at the batch per GPU of N GPUs (dry: a shrunk model, 16 / N utterances of 1 s). One N here (the
    loop runs each of --pilot_gpus alike; the summary of several is tested below)."""
    out = tmp_path / "out"
    proc = subprocess.run([str(ROOT / "bench/gpu.sh"), "--dry_run", "true", "--librispeech_pilot", "true",
                           "--pilot_gpus", "8", "--throughput", "false", "--pl_run", "false", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads((out / "gpu_results.json").read_text())
    assert results["throughput"] is None and results["pl_run"] is None
    pilot = results["pilot"]
    assert set(pilot["runs"]) == {"8"}
    for gpus, batch in (("8", 2),):
        seed, pl = pilot["runs"][gpus]["seed"], pilot["runs"][gpus]["pl"]
        for run in (seed, pl):
            assert run["returncode"] == 0 and run["batch"] == batch and run["recipe_gpus"] == int(gpus)
            assert run["recipe_per_gpu_seconds"] == 51200000 / int(gpus) / 16000  # the recipe's batch_bins / N
            assert run["updates_in_window"] == 5 and run["seconds_per_update"] > 0
            assert run["model_tflop_per_update"] > 0 and "mfu" not in run  # FLOPs counted; no GPU peak on CPU
            assert run["layer_drop_applied"]  # model cpl's encoder drops its layers (softpl.models.layer_drop)
        assert seed["trainer"] == "softpl.bin.asr_train" and seed["schedule_updates"] == 20000  # slimIPL's M
        assert pl["trainer"] == "softpl.bin.cpl_train" and pl["schedule_updates"] == 60 * 1000 * 5
        assert pl["branched_from"] == str(out / f"pilot_seed_{gpus}gpu/exp") and 0 <= pl["pl_label_share"] < 1
        assert len(seed["loss_curve"]["loss_ctc"]) == 2 and {"loss_ctc", "loss_pl"} <= set(pl["loss_curve"])
        assert pl["labelings_per_update"] == pytest.approx(0.1 * 4 / 5)
        row = pilot["extrapolation"][gpus]
        assert row["seed_hours"] == round(seed["seconds_per_update"] * 20000 / 3600, 1)
        assert row["full_updates"] == 320000 and row["full_hours"] == round(row["seed_hours"] + row["pl_hours"], 1)
    # The PL run trains the recipe's merged config as it is: the seed's optimizer and schedule, stage 8's PL options.
    config = yaml.safe_load((out / "pilot_pl_8gpu/train.yaml").read_text())
    assert (config["optim"], config["scheduler"], config["specaug"]) == ("adagrad", "piecewiselinearwarmuplr",
                                                                         "scheduled")
    assert config["model_conf"] == {"ctc_weight": 1.0, "ctc_target_norm": "sqrt", "sym_space": "▁", "pl_target": "hard"}
    assert (config["pl_cache_size"], config["pl_dropout"], config["pl_unlabeled_per_labeled"]) == (100, 0.1, 4)
    assert config["max_epoch"] == 2 and config["encoder_conf"]["num_blocks"] == 2  # after the seed's epoch; shrunk
    assert "continuing the seed's training state after its epoch 1" in (out / "pilot_pl_8gpu/train.log").read_text()
    assert not list(out.rglob("*.pth"))  # the seed's checkpoint went once its branch had trained
    tables = markdown_tables((out / "gpu_results.md").read_text())
    runs = table_with(tables, "MFU %")
    assert [(row["run"], row["N GPUs"], row["batch per GPU"]) for row in runs] == [
        ("seed (stage 6)", "8", "2 x 1 s"), ("PL (stage 8, `hard.yaml`)", "8", "2 x 1 s")]
    hours = {row["N GPUs"]: row for row in table_with(tables, "full run h")}
    assert hours["8"]["full run updates"] == "320000" and float(hours["8"]["full run h"]) >= 0


def test_summary_extrapolates_the_pilot_to_the_whole_schedule(tmp_path):
    """Hours = seconds per update x the schedule's updates / 3600, per GPU count; MFU and memory as recorded."""
    for kind, gpus, seconds, updates in (("seed", 8, 0.18, 20000), ("pl", 8, 0.2, 300000), ("seed", 16, 0.1, 20000)):
        (tmp_path / f"pilot_{kind}_{gpus}gpu").mkdir()
        (tmp_path / f"pilot_{kind}_{gpus}gpu/pl_run.json").write_text(json.dumps({
            "config": "conf/pl/hard.yaml" if kind == "pl" else "conf/train_seed.yaml",
            "device": "NVIDIA H100 80GB HBM3",
            "batch": 32 * 8 // gpus, "utt_seconds": 12.5, "returncode": 0, "updates_in_window": 275,
            "seconds_per_update": seconds, "audio_seconds_per_second": 400 / seconds, "schedule_updates": updates,
            "gpu_max_cached_mem_gib": 21.5, "model_tflop_per_update": 30.0, "mfu": 0.151, "mfu_executed": 0.151,
            "peak_bf16_tflops": 989.0, "loss_curve": {"loss_ctc": [[25, 90.0], [300, 70.0]]}}))
    (tmp_path / "pilot_pl_16gpu").mkdir()  # a PL run that failed before its first progress line
    (tmp_path / "pilot_pl_16gpu/pl_run.json").write_text(json.dumps(
        {"config": "conf/pl/hard.yaml", "batch": 16, "utt_seconds": 12.5, "returncode": 1}))
    results = gpu_summary.summarize(tmp_path)
    assert results["pilot"]["extrapolation"] == {
        8: {"seed_updates": 20000, "seed_hours": 1.0, "pl_updates": 300000, "pl_hours": 16.7,
            "full_updates": 320000, "full_hours": 17.7},
        16: {"seed_updates": 20000, "seed_hours": 0.6}}
    tables = markdown_tables(gpu_summary.markdown(results))
    runs = table_with(tables, "MFU %")
    assert (runs[0]["run"], runs[0]["MFU %"], runs[0]["peak GPU memory GiB"], runs[0]["loss falls"]) == \
        ("seed (stage 6)", "15.1", "21.5", "yes")
    assert runs[0]["loss, first -> last progress line"] == "loss_ctc 90 -> 70"
    assert runs[3]["updates in window"].startswith("FAILED (return code 1")
    hours = {row["N GPUs"]: row for row in table_with(tables, "full run h")}
    assert (hours["8"]["PL h"], hours["8"]["full run h"], hours["16"]["full run h"]) == ("16.7", "17.7", "-")
    assert "989 TFLOPS" in gpu_summary.markdown(results)
