"""Score a decoding against its reference: WER and CER, in Python and with sclite, in ESPnet's layout.

Usage::

    python -m softpl.bin.score --ref data/test/text --hyp exp/m/decode_x/test/text \\
        --output_dir exp/m/decode_x/test [--utt2spk data/test/utt2spk] [--sclite true]

Writes ``OUTPUT_DIR/score_wer/{ref.trn,hyp.trn,result.txt}`` and ``OUTPUT_DIR/score_cer/...`` (as ESPnet's
``asr.sh`` stage 13 does) and ``OUTPUT_DIR/scores.json``. The Python counts (:func:`softpl.scoring.wer.align`)
must equal sclite's, or scoring stops with both. A reference utterance without hypothesis is scored as an
empty hypothesis (all deletions) and reported; a hypothesis without reference is an error.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from espnet2.utils.types import str2bool

from softpl.data.datadir import read_table
from softpl.scoring.results import SCORES_FILE
from softpl.scoring.sclite import check_trn_entry, run_sclite, write_trn
from softpl.scoring.wer import METRICS, ErrorCounts, align, tokenize

SHOWN_IDS = 5


def read_transcripts(path: Path) -> dict[str, tuple[int, str]]:
    """Kaldi ``uttid text`` file as ``{uttid: (line number, text)}``; a repeated id is an error naming both lines."""
    table: dict[str, tuple[int, str]] = {}
    for line, key, value in read_table(path):
        if key in table:
            raise ValueError(f"{path}:{line}: utterance {key} appears again (first at line {table[key][0]}); "
                             "keep one line per utterance")
        table[key] = (line, value)
    return table


def _first(ids: list[str]) -> str:
    return ", ".join(ids[:SHOWN_IDS]) + (", ..." if len(ids) > SHOWN_IDS else "")


def score(ref_text: Path, hyp_text: Path, out_dir: Path, utt2spk: Path | None = None,
          use_sclite: bool = True, model_file: str | None = None) -> dict:
    """Score ``hyp_text`` against ``ref_text``, write the score folders and ``scores.json``; return its content.
    ``model_file``: the checkpoint that was decoded, recorded in ``scores.json`` as ``asr_model_file``."""
    scores_file = out_dir / SCORES_FILE
    scores_file.unlink(missing_ok=True)  # a failed rescoring must not leave the old scores looking current
    refs, hyps = read_transcripts(ref_text), read_transcripts(hyp_text)
    if not refs:
        raise ValueError(f"{ref_text}: no utterances to score; pass the text of a non-empty data dir")
    extra = [utt for utt in hyps if utt not in refs]
    if extra:
        raise ValueError(
            f"{hyp_text}:{hyps[extra[0]][0]}: utterance {extra[0]} has no reference in {ref_text} "
            f"({len(extra)} such: {_first(extra)}); score the decoding against the data dir it was decoded from"
        )
    missing = [utt for utt in refs if utt not in hyps]
    if missing:
        logging.warning("%s: %d of %d reference utterances have no hypothesis and are scored as empty: %s",
                        hyp_text, len(missing), len(refs), _first(missing))
    speakers = {utt: utt for utt in refs}
    if utt2spk is not None:
        spk_table = {key: value for _, key, value in read_table(utt2spk)}
        no_spk = [utt for utt in refs if utt not in spk_table]
        if no_spk:
            raise ValueError(f"{utt2spk}: no speaker for utterance {no_spk[0]} of {ref_text}:{refs[no_spk[0]][0]} "
                             f"({len(no_spk)} such: {_first(no_spk)}); pass the data dir's own utt2spk")
        speakers = {utt: spk_table[utt] for utt in refs}

    scores: dict = {}
    for metric, token_type in METRICS.items():
        entries = {}
        for name, path, table in (("ref", ref_text, refs), ("hyp", hyp_text, hyps)):
            entries[name] = []
            for utt in refs:
                line, text = table.get(utt, (None, ""))
                tokens = tokenize(text, token_type)
                try:
                    check_trn_entry(utt, speakers[utt], tokens)
                except ValueError as e:
                    raise ValueError(f"{path}:{line}: {e}") from None
                entries[name].append((utt, speakers[utt], tokens))
        counts = sum((align(r[2], h[2]) for r, h in zip(entries["ref"], entries["hyp"])), ErrorCounts())
        score_dir = out_dir / f"score_{metric}"
        write_trn(score_dir / "ref.trn", entries["ref"])
        write_trn(score_dir / "hyp.trn", entries["hyp"])
        if use_sclite:
            sclite_counts = run_sclite(score_dir / "ref.trn", score_dir / "hyp.trn", score_dir / "result.txt")
            if sclite_counts != counts:
                raise RuntimeError(
                    f"{metric.upper()}: Python counts {counts} differ from sclite's {sclite_counts} "
                    f"({score_dir / 'result.txt'}); keep {score_dir} and report it as a softpl.scoring bug"
                )
        scores[metric] = counts.to_dict()
    scores.update(n_utts=len(refs), n_missing_hyp=len(missing), sclite_checked=use_sclite)
    if model_file is not None:
        scores["asr_model_file"] = model_file
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = scores_file.with_name(scores_file.name + ".tmp")
    tmp.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, scores_file)  # written last and atomically: its presence means scoring finished
    return scores


def summary_line(out_dir: Path, scores: dict) -> str:
    """One line for the log: WER and CER with their error breakdown."""
    parts = []
    for metric in METRICS:
        c = scores[metric]
        parts.append(f"{metric.upper()} {c['error_rate']:.2f}% (S {c['sub']} D {c['del']} I {c['ins']} / {c['n_ref']})")
    check = "sclite agrees" if scores["sclite_checked"] else "sclite not run"
    return f"{out_dir}: {', '.join(parts)} over {scores['n_utts']} utterances; {check}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", type=Path, required=True, help="reference text (Kaldi style: uttid transcript)")
    parser.add_argument("--hyp", type=Path, required=True, help="hypothesis text (Kaldi style)")
    parser.add_argument("--output_dir", type=Path, required=True, help="gets score_wer/, score_cer/ and scores.json")
    parser.add_argument("--utt2spk", type=Path, help="speaker of each utterance, for sclite's per-speaker tables")
    parser.add_argument("--asr_model_file", help="the checkpoint that was decoded: recorded in scores.json")
    parser.add_argument("--sclite", type=str2bool, default=True,
                        help="cross-check the Python counts with sclite; false scores in Python only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    scores = score(args.ref, args.hyp, args.output_dir, args.utt2spk, use_sclite=args.sclite,
                   model_file=args.asr_model_file)
    print(summary_line(args.output_dir, scores))


if __name__ == "__main__":
    main()
