"""Import a corpus given as a TSV manifest, a folder of audio or a list of audio files into a Kaldi data dir.

Inputs:

* a **manifest** (labeled sets): one utterance per line, ``audio_path<TAB>transcript[<TAB>speaker]``;
* an **audio folder** (unlabeled sets): every file under it, recursively, with an extension soundfile reads
  (.wav .flac .ogg .opus .mp3 .aiff .au .caf .w64 .rf64 .sph: ``AUDIO_EXTENSIONS``);
* an **audio list** (unlabeled sets): one audio path per line.

Relative paths are read from the manifest's or list's folder; ``wav.scp`` gets absolute paths. Blank lines are
ignored. ``utt2dur`` comes from the audio headers.

Utterance ids (Kaldi convention: the speaker id is a prefix of the utterance id, so both sort alike):

* speaker = the manifest's third column; else the name of the audio's parent folder, unless that folder is the
  import's root (the manifest's or list's folder, or the audio folder), which says nothing about the speaker;
  then the file stem (one speaker per utterance, as Kaldi does when speakers are unknown);
* utterance id = ``<speaker>-<stem>``, or the stem alone when it already is the speaker or starts with
  ``<speaker>-``; white space in either becomes ``_``;
* an id already taken (two files of one speaker with one stem, in different folders) gets ``-2``, ``-3``, ... in input
  order (manifest line order; path order for a folder). Ids are assigned before bad lines are dropped, so they do not
  depend on ``skip_bad``.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from softpl.data.datadir import AudioError, DataDir, DataDirError, Problem, audio_seconds, write_data_dir
from softpl.data.text import normalize_transcript, unwritable_word
from softpl.data.validate import record_skipped

# File extensions imported from audio folders, each with the libsndfile format that reads it; only formats the
# installed libsndfile supports are kept (MP3 needs libsndfile >= 1.1).
_FORMAT_OF_EXTENSION = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG",
                        ".mp3": "MP3", ".aiff": "AIFF", ".aif": "AIFF", ".au": "AU", ".caf": "CAF",
                        ".w64": "W64", ".rf64": "RF64", ".sph": "NIST"}
AUDIO_EXTENSIONS = frozenset(ext for ext, fmt in _FORMAT_OF_EXTENSION.items() if fmt in sf.available_formats())

_MANIFEST_COLUMNS = "audio_path<TAB>transcript[<TAB>speaker]"


@dataclass(frozen=True)
class Entry:
    """One utterance to import: where it was listed (``line`` is None for a folder), its audio, text, speaker."""

    source: Path
    line: int | None
    audio: Path
    text: str | None
    speaker: str


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote (utterances, seconds of audio, speakers) and left out (skipped lines)."""

    utterances: int
    seconds: float
    speakers: int
    skipped: int


def _kaldi_token(name: str) -> str:
    """``name`` with each run of white space made ``_``: Kaldi ids and speakers hold none."""
    return "_".join(name.split())


def speaker_of(audio: Path, root: Path, given: str | None = None) -> str:
    """The speaker id of ``audio``: ``given``, else its parent folder's name unless that is ``root``, else its stem."""
    if given:
        return _kaldi_token(given)
    parent = audio.parent
    return _kaldi_token(audio.stem if parent == root else parent.name)


def utterance_id(speaker: str, audio: Path) -> str:
    """``<speaker>-<stem>``, or the stem where it already carries the speaker prefix (see the module docstring)."""
    stem = _kaldi_token(audio.stem)
    return stem if stem == speaker or stem.startswith(f"{speaker}-") else f"{speaker}-{stem}"


def assign_ids(entries: Iterable[Entry]) -> dict[str, Entry]:
    """Unique utterance ids for ``entries`` in input order: a taken id gets ``-2``, ``-3``, ..."""
    by_id: dict[str, Entry] = {}
    for entry in entries:
        base = utterance_id(entry.speaker, entry.audio)
        uid, n = base, 1
        while uid in by_id:
            n += 1
            uid = f"{base}-{n}"
        by_id[uid] = entry
    return by_id


def _read_lines(path: Path) -> tuple[list[tuple[int, str]], list[Problem]]:
    """Non-blank lines of a UTF-8 text file with their 1-based numbers; undecodable lines become problems."""
    if not path.is_file():
        raise DataDirError([Problem(path, None, None, "file not found", "give the path of an existing file")])
    lines, problems = [], []
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8").removeprefix("\ufeff" if number == 1 else "").rstrip("\r\n")
            except UnicodeDecodeError as e:
                problems.append(Problem(path, number, None, f"not UTF-8 ({e.reason} at byte {e.start})",
                                        "re-encode the file as UTF-8 (e.g. with iconv)"))
                continue
            if text.strip():
                lines.append((number, text))
    if not lines and not problems:
        raise DataDirError([Problem(path, None, None, "lists no utterance", "give a file with one line per utterance")])
    return lines, problems


def _resolve(path: str, root: Path) -> Path:
    return Path(os.path.abspath(root / Path(path).expanduser()))


def read_manifest(path: str | Path) -> tuple[list[Entry], list[Problem]]:
    """Entries of a TSV manifest (``audio_path<TAB>transcript[<TAB>speaker]``) and the problems of malformed lines."""
    path = Path(path)
    root = Path(os.path.abspath(path.parent))
    lines, problems = _read_lines(path)
    entries = []
    for number, text in lines:
        columns = text.split("\t")
        if len(columns) not in (2, 3):
            problems.append(Problem(path, number, None,
                                    f"{len(columns)} tab-separated column(s), expected {_MANIFEST_COLUMNS}",
                                    "separate the columns by one tab each; a transcript may not hold a tab"))
            continue
        audio, transcript, *speaker = (column.strip() for column in columns)
        if not audio:
            problems.append(Problem(path, number, None, "the audio path (first column) is empty",
                                    "put the audio file's path in the first column"))
            continue
        if speaker and not speaker[0]:
            problems.append(Problem(path, number, None, "the speaker (third column) is empty",
                                    "give the speaker id, or drop the third column"))
            continue
        audio_path = _resolve(audio, root)
        entries.append(Entry(path, number, audio_path, transcript, speaker_of(audio_path, root, *speaker)))
    return entries, problems


def read_audio_list(path: str | Path) -> tuple[list[Entry], list[Problem]]:
    """Entries (no text) of a file listing one audio path per line, and the problems of undecodable lines."""
    path = Path(path)
    root = Path(os.path.abspath(path.parent))
    lines, problems = _read_lines(path)
    entries = []
    for number, text in lines:
        audio_path = _resolve(text.strip(), root)
        entries.append(Entry(path, number, audio_path, None, speaker_of(audio_path, root)))
    return entries, problems


def find_audio(folder: str | Path) -> list[Entry]:
    """Entries (no text) for every audio file under ``folder`` (symlinks followed), in path order."""
    root = Path(os.path.abspath(folder))
    if not root.is_dir():
        raise DataDirError([Problem(root, None, None, "not a folder", "give the folder that holds the audio")])
    found = [Path(top) / name for top, _, names in os.walk(root, followlinks=True) for name in names
             if Path(name).suffix.lower() in AUDIO_EXTENSIONS]
    if not found:
        raise DataDirError([Problem(root, None, None, f"no audio files ({' '.join(sorted(AUDIO_EXTENSIONS))})",
                                    "check the folder, or list the files in an audio list (--audio_list)")])
    return [Entry(root, None, audio, None, speaker_of(audio, root)) for audio in sorted(found)]


def _duration_or_problem(uid: str, entry: Entry) -> float | Problem:
    """Duration from the audio header, or the Problem that stops the utterance (missing, unreadable, empty)."""
    where = entry.source if entry.line is not None else entry.audio
    if not entry.audio.is_file():
        return Problem(where, entry.line, uid, f"audio file not found: {entry.audio}",
                       f"fix the path (relative paths are read from {entry.source.parent}) or drop the line")
    try:
        seconds = audio_seconds(str(entry.audio))
    except AudioError as e:
        return Problem(where, entry.line, uid, e.message, e.fix)
    if seconds <= 0:
        return Problem(where, entry.line, uid, f"empty audio (0 samples): {entry.audio}",
                       "drop the utterance or supply its audio")
    return seconds


def _text_problem(uid: str, entry: Entry, text: str, normalized: bool) -> Problem | None:
    if text:
        return None
    if not entry.text:
        return Problem(entry.source, entry.line, uid, "the transcript (second column) is empty",
                       "write the transcript, or move the audio to an unlabeled set")
    word = unwritable_word(entry.text) if normalized else None
    if word is not None:
        return Problem(entry.source, entry.line, uid,
                       f"transcript {entry.text!r} cannot be normalized: {word!r} holds digits or symbols "
                       "(& % / ...), which English normalization does not write out as words",
                       f"write {word!r} out in words (e.g. 1984 -> NINETEEN EIGHTY FOUR), or import with "
                       "--normalize false")
    return Problem(entry.source, entry.line, uid, f"transcript {entry.text!r} is empty after normalization",
                   "write the words out, or import with --normalize false (normalization is for English)")


def _duplicate_audio_problems(by_id: dict[str, Entry]) -> list[Problem]:
    first: dict[Path, Entry] = {}
    problems = []
    for uid, entry in by_id.items():
        if entry.audio in first:
            problems.append(Problem(entry.source, entry.line, uid,
                                    f"audio {entry.audio} already listed (line {first[entry.audio].line})",
                                    "list each audio file once"))
        else:
            first[entry.audio] = entry
    return problems


def import_data_dir(entries: list[Entry], problems: list[Problem], out: str | Path, *, labeled: bool,
                    normalize: bool = True, skip_bad: bool = False, nj: int = 1) -> ImportSummary:
    """Check ``entries`` and write them as the Kaldi data dir ``out`` (replaced): wav.scp, text, utt2spk, spk2utt,
    utt2dur, sorted by id.

    ``problems`` are those found while reading (malformed lines). Bad utterances (missing, unreadable or empty
    audio; empty transcript; audio listed twice) are added to them. Any problem raises DataDirError listing all of
    them, unless ``skip_bad``: then the bad lines are left out and listed in ``out/skipped_utts.txt``. ``nj``
    threads read the audio headers. The dir is built in ``<out>.tmp`` and renamed at the end.
    """
    out = Path(out)
    by_id = assign_ids(entries)
    problems = problems + _duplicate_audio_problems(by_id)
    clean: Callable[[str], str] = normalize_transcript if normalize else lambda text: " ".join(text.split())
    texts = {uid: clean(entry.text or "") for uid, entry in by_id.items()} if labeled else {}
    for uid, text in texts.items():
        if (problem := _text_problem(uid, by_id[uid], text, normalize)) is not None:
            problems.append(problem)
    with ThreadPoolExecutor(max(nj, 1)) as pool:
        checked = list(tqdm(pool.map(lambda item: _duration_or_problem(*item), by_id.items()), total=len(by_id),
                            desc=f"reading audio headers for {out}", unit="utt", leave=False))
    durations = {}
    for uid, result in zip(by_id, checked):
        if isinstance(result, Problem):
            problems.append(result)
        else:
            durations[uid] = round(result, 3)
    problems.sort(key=lambda p: (str(p.file), p.line or 0))
    if problems and not skip_bad:
        raise DataDirError(problems, "fix these lines, or re-run with --skip_bad true to leave them out")
    bad_ids = {p.utt for p in problems}
    keep = [uid for uid in by_id if uid not in bad_ids]
    if not keep:
        raise DataDirError(problems, f"every utterance is bad: nothing left to import into {out}")
    data = DataDir(wav_scp={uid: str(by_id[uid].audio) for uid in keep},
                   text={uid: texts[uid] for uid in keep} if labeled else None,
                   utt2spk={uid: by_id[uid].speaker for uid in keep},
                   utt2dur={uid: durations[uid] for uid in keep})
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_data_dir(tmp, data)
    malformed_lines = sum(p.utt is None for p in problems)
    if problems:
        reasons: dict[str, str] = {}
        for p in problems:
            key = p.utt or f"{p.file}:{p.line}"
            reasons[key] = f"{reasons[key]}; {p}" if key in reasons else str(p)
        record_skipped(tmp, reasons, len(by_id) + malformed_lines, shown_as=out)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return ImportSummary(len(keep), sum(data.utt2dur.values()), len(set(data.utt2spk.values())),
                         len(by_id) - len(keep) + malformed_lines)

