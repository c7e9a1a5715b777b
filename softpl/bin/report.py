"""Write RESULTS.md files from scored decodings.

Usage::

    python -m softpl.bin.report --exp_dir exp --out RESULTS.md [--title "synth_en"] \\
        [--sets dev test_clean test_other] [--models seed pl_soft] [--command "./run.sh --stage 10"]

For every ``EXP_DIR/<model>/decode_<tag>/`` with scored sets (``<set>/scores.json``) it writes
``EXP_DIR/<model>/decode_<tag>/RESULTS.md`` in ESPnet's format, then ``OUT``: one row per decode folder
(models in ``--models`` order, only those, else all sorted), one WER and one CER column per set (in
``--sets`` order, else as discovered), under a header with the date, the command and the machine.
When runs were repeated with several seeds (``<variant>_seed<N>``, run.sh --pl_seeds) it adds a table of
mean +- standard deviation per variant (softpl.scoring.study), and the curves show each variant's mean.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
from pathlib import Path

from softpl.data.datadir import DataDir
from softpl.scoring.history import final_pl_summary, plot_curves, read_history
from softpl.scoring.results import (decode_results_md, discovered_sets, environment, find_decodes,
                                    select_models, summary_md)
from softpl.scoring.study import SEED_SUFFIX, group_by_variant, mean_history, study_md, summarise_run

STUDY_TAG = "decode_greedy"  # the decodings the seed study summarises: decode_greedy_<model file stem>


def pl_columns(final: dict[str, object]) -> dict[str, object]:
    """Summary columns of a pseudo-labeling run, from its ``final_pl_summary``."""
    return {
        "updates": f"{final['updates']:.0f}",
        "final PL blank rate": f"{final['pl_blank_rate']:.3f}",
        "final PL frame entropy": f"{final['pl_frame_entropy']:.3f}",
        "final PL WER": f"{final['pl_wer_vs_ref']:.2f}",
        "unlabeled set labeled (utts / audio)": "-" if math.isnan(final["pl_coverage"]) else
        f"{final['pl_coverage']:.0%} / {final['pl_coverage_audio']:.0%}",
        "collapse alarm": "no" if final["alarm_step"] is None else f"update {final['alarm_step']}",
    }


def curves(exp_dir: Path, pl_runs: list[str], baseline_runs: list[str], plots: Path, out: Path,
           plot_variants: list[str] | None, branch_from: str | None) -> str:
    """Plot the continuation runs (each variant's mean over its seeds) under ``plots``; markdown linking the PNGs.

    ``baseline_runs`` (the supervised continuation) are always drawn; of the PL runs, the ``plot_variants``.
    ``branch_from``: the seed, whose last epoch is every line's starting point.
    """
    groups = group_by_variant(pl_runs)
    if plot_variants is not None:
        unknown = [v for v in plot_variants if v not in groups]
        if unknown:
            raise ValueError(f"--plot_variants: no pseudo-labeling run for {', '.join(unknown)}; "
                             f"variants: {', '.join(groups)}")
        groups = {v: groups[v] for v in plot_variants}
    groups = {**group_by_variant(baseline_runs), **groups}
    histories = {}
    for variant, runs in groups.items():
        label = variant if len(runs) == 1 else f"{variant} (mean of {len(runs)} seeds)"
        histories[label] = mean_history([read_history(exp_dir / run) for run in runs])
    start = None
    if branch_from is not None:
        seed_history = read_history(exp_dir / branch_from)
        start = {key: value for key, value in seed_history[-1].items() if key.startswith("valid.")}
    paths = plot_curves(histories, plots, start)
    rel = [Path(os.path.relpath(path, out.parent)) for path in paths]
    return "\n## Curves (against updates)\n\n" + "".join(f"![{p.stem}]({p})\n" for p in rel)


def data_fingerprints(data_dirs: list[Path]) -> dict[str, str]:
    """Header lines of the data the rows were trained and scored on: per data dir its size and fingerprint (ids,
    transcripts, audio bytes), so that runs on two machines can tell whether they saw the same data."""
    fingerprints = {}
    for path in data_dirs:
        data = DataDir.load(path)
        fingerprints[f"data {path}"] = f"{len(data.wav_scp)} utterances, fingerprint {data.fingerprint()}"
    return fingerprints


def report(exp_dir: Path, out: Path, title: str, command: str, sets: list[str] | None = None,
           models: list[str] | None = None, plots: Path | None = None,
           plot_variants: list[str] | None = None, branch_from: str | None = None,
           data_dirs: list[Path] | None = None, threads: str | None = None) -> None:
    """Write every decode folder's RESULTS.md and the summary ``out`` (and curves under ``plots``)."""
    decodes = find_decodes(exp_dir)
    if not decodes:
        raise FileNotFoundError(f"{exp_dir}: no <model>/decode_*/<set>/scores.json; decode and score first "
                                "(stages 7 and 9, softpl.bin.score)")
    env = {**environment(command, threads), **data_fingerprints(data_dirs or [])}
    chosen = select_models(decodes, models)
    sets = sets or discovered_sets(chosen)
    pl_runs = [name for name in dict.fromkeys(d.model for d in chosen)
               if (exp_dir / name / "cpl_history.jsonl").exists()]
    pl_final = {name: final_pl_summary(exp_dir / name) for name in pl_runs}
    extra = {name: pl_columns(pl_final[name]) for name in pl_runs}
    notes = ""
    if any(SEED_SUFFIX.match(d.model) for d in chosen):
        runs = [summarise_run(d, exp_dir, pl_final.get(d.model)) for d in chosen if d.tag.startswith(STUDY_TAG)]
        notes += "\n" + study_md(runs, sets)
    if plots is not None and pl_runs:
        baselines = [name for name in dict.fromkeys(d.model for d in chosen)
                     if name not in pl_runs and name != branch_from and (exp_dir / name / "checkpoint.pth").exists()]
        notes += curves(exp_dir, pl_runs, baselines, plots, out, plot_variants, branch_from)
    summary = summary_md(chosen, sets, title, env, extra, notes)
    for decode in decodes:
        (decode.path / "RESULTS.md").write_text(decode_results_md(decode, exp_dir.name, env), encoding="utf-8")
    out.write_text(summary, encoding="utf-8")
    logging.info("wrote %s (%d decodes) and %d per-decode RESULTS.md", out, len(chosen), len(decodes))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", type=Path, required=True, help="experiment folder holding <model>/decode_*/")
    parser.add_argument("--out", type=Path, required=True, help="summary RESULTS.md to write")
    parser.add_argument("--title", default="RESULTS", help="first heading of the summary")
    parser.add_argument("--sets", nargs="+", help="evaluation sets, in column order (default: all, as discovered)")
    parser.add_argument("--models", nargs="+", help="model folders to list, in row order (default: all, sorted)")
    parser.add_argument("--command", help="the command that produced the results (default: this command line)")
    parser.add_argument("--plots", type=lambda folder: Path(folder) if folder else None,
                        help="folder for PNG curves of the pseudo-labeling runs (linked); absent or '': no curves")
    parser.add_argument("--plot_variants", nargs="+",
                        help="pseudo-labeling variants drawn in the curves, e.g. pl_hard pl_soft (default: all)")
    parser.add_argument("--data_dirs", type=Path, nargs="+", action="extend", default=[],
                        help="data dirs the runs were trained and scored on: their fingerprints are recorded")
    parser.add_argument("--threads", help="the CPU threads training used, as recorded in the machine line")
    parser.add_argument("--branch_from", help="the seed model the continuation runs branched from: its last epoch "
                                              "starts every curve, and it is not drawn as a run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    command = args.command or "python -m softpl.bin.report " + shlex.join(sys.argv[1:] if argv is None else argv)
    report(args.exp_dir, args.out, args.title, command, args.sets, args.models, args.plots, args.plot_variants,
           args.branch_from, args.data_dirs, args.threads)


if __name__ == "__main__":
    main()
