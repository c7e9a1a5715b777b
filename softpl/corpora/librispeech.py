"""LibriSpeech and Libri-light corpus layouts -> Kaldi data dirs (stage 1 of egs/librispeech_100, egs/librilight_10h).

Both corpora store a *part* (LibriSpeech's ``train-clean-100``, ``dev-other``, ...; Libri-light's
``librispeech_finetuning/1h/0/clean``, ``9h/other``, ...) the same way::

    <part>/<speaker>/<chapter>/<speaker>-<chapter>-<NNNN>.flac
    <part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt     one "<uttid> TRANSCRIPT" line per FLAC

Transcripts are upper-case A-Z and apostrophes with single spaces. A set is one or more parts. Labeled sets get
``text``; unlabeled sets get their truth in ``text.ref`` (metrics only) and never hold an utterance of a labeled
set. The speaker of an utterance is its LibriSpeech speaker id. Audio stays where it is: wav.scp holds absolute
FLAC paths (soundfile reads FLAC; stage 2 formats them).

    python -m softpl.corpora.librispeech --data_dir data --nj 4 \\
        --labeled train_clean_100 LibriSpeech/train-clean-100 \\
        --unlabeled train_860 LibriSpeech/train-clean-360 LibriSpeech/train-other-500 \\
        --labeled dev_clean LibriSpeech/dev-clean --disjoint_speakers train_clean_100 train_860 dev_clean
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

from softpl.data.datadir import AudioError, DataDir, DataDirError, Problem, audio_seconds, write_data_dir

UTT_ID = re.compile(r"(\d+)-(\d+)-(\d+)")
TRANSCRIPT = re.compile(r"[A-Z']+(?: [A-Z']+)*")
TRANS_SUFFIX = ".trans.txt"
REEXTRACT = "re-extract the part from its archive (or delete the part and fetch it: local/data.sh --download true)"


class TransLine(NamedTuple):
    """One line of a ``*.trans.txt`` file: 1-based line number, utterance id, transcript."""

    line: int
    utt_id: str
    text: str


class Utterance(NamedTuple):
    """One utterance of a part: id, LibriSpeech speaker id, FLAC path, transcript."""

    utt_id: str
    speaker: str
    flac: Path
    text: str


@dataclass(frozen=True)
class SetSpec:
    """A data dir to write: its name, the parts it joins, and whether its transcripts may be trained on."""

    name: str
    parts: tuple[Path, ...]
    labeled: bool


def read_trans_txt(path: str | Path) -> list[TransLine]:
    """Read ``<speaker>-<chapter>.trans.txt``; every id must be ``<speaker>-<chapter>-<digits>`` of this file.

    Raises DataDirError naming each bad line (blank, no transcript, foreign or repeated id, a transcript that is
    not upper-case A-Z/apostrophe with single spaces, bytes that are not UTF-8).
    """
    path = Path(path)
    chapter = path.name.removesuffix(TRANS_SUFFIX)
    lines, problems, first_line = [], [], {}
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip()
            except UnicodeDecodeError as e:
                problems.append(Problem(path, line_no, None, f"not UTF-8 ({e.reason} at byte {e.start})", REEXTRACT))
                continue
            utt_id, _, text = line.partition(" ")
            if not line.strip():
                problems.append(Problem(path, line_no, None, "blank line", "remove the blank line"))
            elif not (match := UTT_ID.fullmatch(utt_id)) or f"{match[1]}-{match[2]}" != chapter:
                problems.append(Problem(path, line_no, None, f"utterance id {utt_id!r} does not belong to this file",
                                        f"each line must start with {chapter}-<NNNN> and one space; {REEXTRACT}"))
            elif not text:
                problems.append(Problem(path, line_no, utt_id, "no transcript after the utterance id",
                                        f"add the transcript or {REEXTRACT}"))
            elif not TRANSCRIPT.fullmatch(text):
                problems.append(Problem(path, line_no, utt_id, f"transcript {text!r} is not upper-case A-Z and "
                                        "apostrophes with single spaces", f"normalize it as LibriSpeech does, or "
                                        f"{REEXTRACT}"))
            elif utt_id in first_line:
                problems.append(Problem(path, line_no, utt_id, f"duplicate id (first at line {first_line[utt_id]})",
                                        "keep one line per utterance"))
            else:
                first_line[utt_id] = line_no
                lines.append(TransLine(line_no, utt_id, text))
    if problems:
        raise DataDirError(problems, f"malformed transcript file {path}")
    return lines


def scan_part(part: str | Path) -> list[Utterance]:
    """Every utterance of a part in ``<speaker>/<chapter>/`` layout, sorted by id.

    Raises DataDirError listing every defect: a missing part, a chapter without its trans.txt, a transcript line
    whose FLAC is missing, a FLAC without a transcript line, and the malformed lines of :func:`read_trans_txt`.
    """
    part = Path(part)
    if not part.is_dir():
        raise DataDirError([Problem(part, None, None, "corpus part not found",
                                    "point db.sh at the folder holding it, or download it: ./run.sh "
                                    "--local_data_opts '--download true'")])
    utterances, problems = [], []
    for chapter_dir in sorted(part.glob("*/*/")):
        speaker, chapter = chapter_dir.parent.name, chapter_dir.name
        trans = chapter_dir / f"{speaker}-{chapter}{TRANS_SUFFIX}"
        flacs = {flac.stem: flac for flac in chapter_dir.glob("*.flac")}
        if not trans.is_file():
            problems.append(Problem(trans, None, None, f"missing (the folder holds {len(flacs)} FLAC files)",
                                    REEXTRACT))
            continue
        try:
            lines = read_trans_txt(trans)
        except DataDirError as e:
            problems += e.problems
            continue
        for line in lines:
            flac = flacs.pop(line.utt_id, None)
            if flac is None:
                problems.append(Problem(trans, line.line, line.utt_id,
                                        f"FLAC file missing: {chapter_dir / line.utt_id}.flac", REEXTRACT))
            else:
                utterances.append(Utterance(line.utt_id, speaker, flac, line.text))
        problems += [Problem(flac, None, utt_id, f"no transcript line in {trans}", REEXTRACT)
                     for utt_id, flac in sorted(flacs.items())]
    if not utterances and not problems:
        problems.append(Problem(part, None, None, "no utterances: expected <speaker>/<chapter>/*.flac with "
                                f"<speaker>-<chapter>{TRANS_SUFFIX}", "point db.sh at the right folder"))
    if problems:
        raise DataDirError(problems, f"bad corpus part {part}")
    return sorted(utterances)


def _audio_seconds_or_error(flac: Path) -> float | tuple[str, str]:
    try:
        return round(audio_seconds(str(flac)), 3)
    except AudioError as e:  # returned, not raised: the other files are still read, and every bad one is listed
        return e.message, e.fix


def durations(flacs: Sequence[Path], nj: int) -> list[float | tuple[str, str]]:
    """Seconds of each FLAC from its header (``nj`` processes); (what is wrong, what to do) where it is unreadable."""
    progress = dict(total=len(flacs), desc="reading FLAC headers", unit="file", file=sys.stderr, dynamic_ncols=True)
    if nj == 1:
        return list(tqdm(map(_audio_seconds_or_error, flacs), **progress))
    with multiprocessing.Pool(nj) as pool:
        return list(tqdm(pool.imap(_audio_seconds_or_error, flacs, chunksize=64), **progress))


def speaker_overlaps(speakers: dict[str, set[str]], disjoint: Sequence[str]) -> list[str]:
    """One message per pair of sets sharing speakers where one of the two is in ``disjoint`` (empty: none)."""
    clashes = []
    for i, name in enumerate(disjoint):
        for other in speakers:
            if other == name or other in disjoint[:i]:  # a pair of two disjoint sets was seen from the first
                continue
            shared = sorted(speakers[name] & speakers[other], key=int)
            if shared:
                clashes.append(f"{name} and {other} share {len(shared)} speakers ({', '.join(shared[:5])}"
                               f"{', ...' if len(shared) > 5 else ''})")
    return clashes


def prepare(sets: Sequence[SetSpec], data_dir: str | Path, nj: int = 1,
            disjoint_speakers: Sequence[str] = ()) -> dict[str, tuple[int, float, int]]:
    """Write ``<data_dir>/<set>`` (wav.scp, text or text.ref, utt2spk, spk2utt, utt2dur) for every set.

    Unlabeled sets leave out the utterances of every labeled set. Sets named in ``disjoint_speakers`` must share no
    speaker with any other set. Nothing is written unless every part reads cleanly. Returns, per set, the number
    of utterances, hours and speakers.
    """
    names = [spec.name for spec in sets]
    unknown = sorted(set(disjoint_speakers) - set(names))
    if len(set(names)) != len(names) or unknown:
        raise ValueError(f"set names must be unique and --disjoint_speakers must name sets; got {names}, {unknown}")
    problems, per_set = [], {}
    for spec in sets:
        utts, seen = [], {}
        for part in spec.parts:
            try:
                for utt in scan_part(part):
                    if utt.utt_id in seen:
                        problems.append(Problem(utt.flac, None, utt.utt_id, f"also in {seen[utt.utt_id]} "
                                                f"(set {spec.name} joins both)", "give each utterance one part"))
                    else:
                        seen[utt.utt_id] = part
                        utts.append(utt)
            except DataDirError as e:
                problems += e.problems
        per_set[spec.name] = utts
    if problems:
        raise DataDirError(problems, "the corpus cannot be prepared")

    labeled_ids = {u.utt_id for spec in sets if spec.labeled for u in per_set[spec.name]}
    for spec in sets:
        if not spec.labeled:
            kept = [u for u in per_set[spec.name] if u.utt_id not in labeled_ids]
            print(f"{spec.name}: left out {len(per_set[spec.name]) - len(kept)} utterances that labeled sets hold",
                  file=sys.stderr)
            per_set[spec.name] = kept
    clashes = speaker_overlaps({name: {u.speaker for u in utts} for name, utts in per_set.items()},
                               list(disjoint_speakers))
    if clashes:
        raise ValueError("sets that must not share speakers do: " + "; ".join(clashes)
                         + " -> check which corpus parts db.sh and local/data.sh give each set")

    every_utt = [u for utts in per_set.values() for u in utts]
    seconds = dict(zip((u.utt_id for u in every_utt), durations([u.flac for u in every_utt], nj)))
    unreadable = [Problem(u.flac, None, u.utt_id, seconds[u.utt_id][0],
                          f"{seconds[u.utt_id][1]} (or remove the utterance's line from its trans.txt)")
                  for u in every_utt if isinstance(seconds[u.utt_id], tuple)]
    if unreadable:
        raise DataDirError(unreadable, "unreadable audio")

    summary = {}
    for spec in sets:
        utts = per_set[spec.name]
        texts = {u.utt_id: u.text for u in utts}
        data = DataDir(wav_scp={u.utt_id: os.path.abspath(u.flac) for u in utts},
                       text=texts if spec.labeled else None, text_ref=None if spec.labeled else texts,
                       utt2spk={u.utt_id: u.speaker for u in utts}, utt2dur={u.utt_id: seconds[u.utt_id] for u in utts})
        dst = Path(data_dir) / spec.name
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_data_dir(tmp, data)
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp, dst)
        summary[spec.name] = (len(utts), sum(data.utt2dur.values()) / 3600, len(set(data.utt2spk.values())))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, default=Path("data"), help="where the data dirs go")
    parser.add_argument("--nj", type=int, default=1, help="processes reading FLAC headers")
    parser.add_argument("--labeled", nargs="+", action="append", default=[], metavar=("NAME", "PART"),
                        help="a labeled set: its name, then the part folders it joins (repeatable)")
    parser.add_argument("--unlabeled", nargs="+", action="append", default=[], metavar=("NAME", "PART"),
                        help="an unlabeled set (truth in text.ref, labeled utterances left out) (repeatable)")
    parser.add_argument("--disjoint_speakers", nargs="*", default=[], metavar="NAME",
                        help="sets that must share no speaker with any other set")
    args = parser.parse_args(argv)
    specs = []
    for labeled, groups in ((True, args.labeled), (False, args.unlabeled)):
        for name, *parts in groups:
            if not parts:
                parser.error(f"set {name} names no part folder")
            specs.append(SetSpec(name, tuple(map(Path, parts)), labeled))
    if args.nj < 1:
        parser.error(f"--nj must be at least 1, got {args.nj}")
    try:
        summary = prepare(specs, args.data_dir, args.nj, args.disjoint_speakers)
    except (DataDirError, ValueError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    for name, (utts, hours, speakers) in summary.items():
        print(f"{args.data_dir / name}: {utts} utterances, {hours:.2f} hours, {speakers} speakers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
