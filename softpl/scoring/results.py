"""RESULTS.md writers: one ESPnet-format file per decode folder and one summary table per recipe.

Scores are read from ``exp/<model>/decode_<tag>/<set>/scores.json`` (written by ``softpl.bin.score``).
The per-decode file follows ESPnet's ``scripts/utils/show_asr_result.sh``: ``## exp/<model>`` then
``### WER`` / ``### CER`` tables ``|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|`` with sclite's
percentages. The summary has one row per decode folder; its rows are dicts keyed by column header, so
adding a column means adding a header to the list and a value to each row.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from softpl.scoring.wer import METRICS, ErrorCounts

SCORES_FILE = "scores.json"
ESPNET_COLUMNS = ["dataset", "Snt", "Wrd", "Corr", "Sub", "Del", "Ins", "Err", "S.Err"]
MISSING = "-"


@dataclasses.dataclass
class Decode:
    """One decode folder ``exp/<model>/<tag>/`` and the scores of each set decoded in it."""

    model: str
    tag: str
    path: Path
    scores: dict[str, dict]  # set name -> content of <set>/scores.json

    @property
    def name(self) -> str:
        return f"{self.model}/{self.tag}"

    @property
    def decoding(self) -> str | None:
        """How the hypotheses were made, from the folder's name as run.sh writes it (None when unknown)."""
        for prefix, words in DECODINGS.items():
            if self.tag.startswith(prefix):
                return words
        return None


# How run.sh's decode folders were decoded: what a packed RESULTS.md must say so that a stock-ESPnet user can
# reproduce it (stock ESPnet has no best-path CTC decoder; its prefix search with beam 1 may pick other words).
DECODINGS = {
    "decode_greedy": "softpl's batched greedy CTC decoding (the best path: each frame's argmax, repeats and blanks "
                     "removed; `python -m softpl.bin.decode`). Stock ESPnet has no best-path decoder: its closest "
                     "search, `espnet2.bin.asr_inference --ctc_weight 1.0 --beam_size 1` (a CTC prefix search, no "
                     "LM), can pick other transcripts; `./run.sh --espnet_inference true` scores it as "
                     "`decode_espnet`",
    "decode_espnet": "stock ESPnet, `espnet2.bin.asr_inference --ctc_weight 1.0 --beam_size 1 --batch_size 1` (a CTC "
                     "prefix search with beam 1, no LM), on the same checkpoint",
}


def _read_scores(path: Path) -> dict:
    try:
        scores = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); rerun softpl.bin.score for this set") from None
    absent = [metric for metric in METRICS if metric not in scores]
    if absent:
        raise ValueError(f"{path}: no {', '.join(absent)} scores; rerun softpl.bin.score for this set")
    return scores


def find_decodes(exp_dir: Path) -> list[Decode]:
    """Every ``exp_dir/<model>/decode_*/`` holding at least one ``<set>/scores.json``, sorted by model and tag."""
    decodes = []
    for path in sorted(exp_dir.glob("*/decode_*/")):
        scores = {}
        for set_dir in sorted(p for p in path.iterdir() if p.is_dir()):
            if (set_dir / SCORES_FILE).is_file():
                scores[set_dir.name] = _read_scores(set_dir / SCORES_FILE)
            elif (set_dir / "text").is_file():
                logging.warning("%s: decoded but not scored (no %s); run softpl.bin.score on it", set_dir, SCORES_FILE)
        if scores:
            decodes.append(Decode(model=path.parent.name, tag=path.name, path=path, scores=scores))
    return decodes


def select_models(decodes: Sequence[Decode], models: Sequence[str] | None) -> list[Decode]:
    """The decodes of ``models`` in that order (each model's decodes by tag); all of them when ``models`` is None."""
    if models is None:
        return list(decodes)
    known = {d.model for d in decodes}
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ValueError(f"--models: no scored decode folder for {', '.join(unknown)}; "
                         f"scored models: {', '.join(sorted(known))}")
    return [d for m in models for d in decodes if d.model == m]


def discovered_sets(decodes: Sequence[Decode]) -> list[str]:
    """Set names in order of first appearance over the decodes."""
    return list(dict.fromkeys(s for d in decodes for s in d.scores))


def markdown_table(columns: Sequence[str], rows: Sequence[dict[str, object]]) -> str:
    """A GitHub markdown table in ESPnet's compact style (``|a|b|``); a value a row lacks is shown as ``-``."""
    lines = ["|" + "|".join(columns) + "|", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["|" + "|".join(str(row.get(c, MISSING)) for c in columns) + "|" for row in rows]
    return "\n".join(lines) + "\n"


def espnet_row(dataset: str, counts: ErrorCounts) -> dict[str, object]:
    """One row of an ESPnet RESULTS.md table: counts of sentences and words, the rest in percent (0.1)."""
    row: dict[str, object] = {"dataset": dataset, "Snt": counts.n_sent, "Wrd": counts.n_ref}
    for column, count in (("Corr", counts.corr), ("Sub", counts.sub), ("Del", counts.del_), ("Ins", counts.ins),
                          ("Err", counts.errors)):
        row[column] = f"{counts.percent(count):.1f}"
    row["S.Err"] = f"{counts.sent_error_rate:.1f}"
    return row


# Debian packages whose versions a report records when they are installed: the corpus renderers and scoring.
SYSTEM_PACKAGES = ("espeak-ng", "flite", "fortunes", "sctk", "sox")


def system_package_versions(packages: Sequence[str] = SYSTEM_PACKAGES) -> str:
    """``name version`` of each installed Debian package of ``packages`` (empty where dpkg is absent)."""
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Package} ${Version}\n", *packages],
                              capture_output=True, text=True)
    except OSError:
        return ""
    return ", ".join(line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("installed "))


def environment(command: str, threads: str | None = None) -> dict[str, str]:
    """Date, command, machine (CPU model, cores, training threads, GPU) and software versions (Python packages
    and the system tools that made and scored the data), for the header of a RESULTS.md."""
    import espnet  # here: the scoring processes that import this module (one per decoded set) need neither,
    import torch  # and torch's import is most of their start-up
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    machine = f"{cpu}, {os.cpu_count()} cores"
    if threads:
        machine += f", threads: {threads}"
    if torch.cuda.is_available():
        machine += f", GPU: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    tools = system_package_versions()
    return {
        "date": datetime.now().astimezone().strftime("%a %b %d %H:%M:%S %Z %Y"),
        "command": command,
        "machine": machine,
        "python version": sys.version.replace("\n", " "),
        "espnet version": f"espnet {espnet.__version__}",
        "pytorch version": f"pytorch {torch.__version__}",
        **({"system tools": tools} if tools else {}),
    }


def environment_md(env: dict[str, str]) -> str:
    return "## Environments\n" + "".join(f"- {key}: `{value}`\n" for key, value in env.items())


def decode_results_md(decode: Decode, exp_label: str, env: dict[str, str]) -> str:
    """ESPnet-format RESULTS.md of one decode folder; ``exp_label`` is how the exp dir is named (``exp``)."""
    parts = ["<!-- Generated by softpl.bin.report -->\n# RESULTS\n", environment_md(env),
             f"\n## {exp_label}/{decode.model}\n"]
    if decode.decoding:
        parts.append(f"\nDecoding: {decode.decoding}.\n\n")
    for metric in METRICS:
        rows = [espnet_row(f"{decode.tag}/{name}", ErrorCounts.from_dict(scores[metric]))
                for name, scores in decode.scores.items()]
        parts.append(f"### {metric.upper()}\n\n{markdown_table(ESPNET_COLUMNS, rows)}\n")
    return "".join(parts)


def summary_table(
    decodes: Sequence[Decode], sets: Sequence[str], extra: dict[str, dict[str, object]] | None = None
) -> tuple[list[str], list[dict[str, object]]]:
    """Columns and rows of the recipe summary: one row per decode, WER and CER (percent) per set.

    ``extra`` maps a model to more columns of its rows (e.g. pseudo-labeling health), shown after the scores.
    """
    extra = extra or {}
    extra_columns = list(dict.fromkeys(column for values in extra.values() for column in values))
    columns = ["model"] + [f"{name} {metric.upper()}" for name in sets for metric in METRICS] + extra_columns
    rows = []
    for decode in decodes:
        row: dict[str, object] = {"model": decode.name, **extra.get(decode.model, {})}
        for name in sets:
            for metric in METRICS:
                if name in decode.scores:
                    row[f"{name} {metric.upper()}"] = f"{decode.scores[name][metric]['error_rate']:.2f}"
        rows.append(row)
    return columns, rows


def summary_md(decodes: Sequence[Decode], sets: Sequence[str], title: str, env: dict[str, str],
               extra: dict[str, dict[str, object]] | None = None, notes: str = "") -> str:
    """The recipe's RESULTS.md: title, environment block, the summary table, then ``notes`` (markdown)."""
    unknown = [s for s in sets if not any(s in d.scores for d in decodes)]
    if unknown:
        raise ValueError(f"--sets: no scores for {', '.join(unknown)}; "
                         f"scored sets: {', '.join(discovered_sets(decodes))}")
    columns, rows = summary_table(decodes, sets, extra)
    return (f"<!-- Generated by softpl.bin.report -->\n# {title}\n\n{environment_md(env)}\n"
            f"## WER / CER (%)\n\n{markdown_table(columns, rows)}{notes}")
