"""Kaldi-style data directories (as ESPnet uses them): tables with line-level provenance, and their audio.

A data dir holds ``wav.scp`` (``uttid path`` or ``uttid command |``), optional ``text`` (``uttid TRANSCRIPT``),
``text.ref`` (truth of an unlabeled set, read by metrics only), ``utt2spk``, ``spk2utt``, and after stage 2
``utt2dur`` (seconds) and ``utt2num_samples`` (ESPnet's speech shape-file format). Every table is sorted by key in
C-locale byte order. This module is the one place that reads and writes these files; problems in them are reported
as :class:`Problem` values (file, line, utterance id, what is wrong, what to do) and raised as :class:`DataDirError`.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import kaldiio
import numpy as np
import soundfile as sf

# Tables keyed by utterance id; skipping or filtering an utterance must touch all of them.
PER_UTT_FILES = ("wav.scp", "text", "text.ref", "utt2spk", "utt2dur", "utt2num_samples")
MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One defect of a data dir. ``line`` and ``utt`` are None where the defect is not tied to them."""

    file: Path
    line: int | None
    utt: str | None
    message: str
    fix: str

    @property
    def skippable(self) -> bool:
        """Whether dropping the utterance removes the defect (a whole-file defect cannot be skipped)."""
        return self.utt is not None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else f"{self.file}"
        utt = f" {self.utt}:" if self.utt is not None else ""
        return f"{where}:{utt} {self.message} -> {self.fix}"


class DataDirError(Exception):
    """A data dir cannot be used as is; the message lists every problem (capped) and what to do."""

    def __init__(self, problems: list[Problem], header: str = "data dir problems"):
        self.problems = problems
        shown = [f"  {p}" for p in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            shown.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
        super().__init__(f"{header} ({len(problems)}):\n" + "\n".join(shown))


class TableRow(NamedTuple):
    line: int
    key: str
    value: str


def byte_order(key: str) -> bytes:
    """Sort key for C-locale (``LC_ALL=C sort``) order, which Kaldi and ESPnet expect."""
    return key.encode("utf-8")


def read_table(path: str | Path) -> list[TableRow]:
    """Read a Kaldi table (``key value...`` per line) in file order, duplicates kept, with 1-based line numbers.

    The value is the rest of the line after the first run of whitespace, trailing whitespace removed ("" when the
    line holds only a key). Blank lines, lines starting with whitespace and non-UTF-8 bytes raise DataDirError.
    """
    path = Path(path)
    rows, problems = [], []
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip()
            except UnicodeDecodeError as e:
                problems.append(Problem(path, line_no, None, f"not UTF-8 ({e.reason} at byte {e.start})",
                                        "re-encode the file as UTF-8"))
                continue
            if not line or line[0].isspace():
                problems.append(Problem(path, line_no, None, "blank line or line starting with whitespace",
                                        "each line must start with its key; remove the blank line or the indent"))
                continue
            parts = line.split(None, 1)
            rows.append(TableRow(line_no, parts[0], parts[1] if len(parts) > 1 else ""))
    if problems:
        raise DataDirError(problems, f"malformed table {path}")
    return rows


def write_table(path: str | Path, rows: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
    """Write ``key value`` lines sorted by key (C-locale order), atomically: a tmp file renamed into place."""
    path = Path(path)
    items = list(rows.items() if isinstance(rows, Mapping) else rows)
    for key, value in items:
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"{path}: key {key!r} is empty or contains whitespace")
        if "\n" in value or "\r" in value:
            raise ValueError(f"{path}: value of {key!r} contains a line break")
    items.sort(key=lambda item: byte_order(item[0]))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.writelines(f"{key} {value}\n" if value else f"{key}\n" for key, value in items)
    os.replace(tmp, path)


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> dict[str, str]:
    """spk2utt table (speaker -> space-separated utterance ids in C-locale order), derived from utt2spk."""
    spk2utts: dict[str, list[str]] = {}
    for utt in sorted(utt2spk, key=byte_order):
        spk2utts.setdefault(utt2spk[utt], []).append(utt)
    return {spk: " ".join(utts) for spk, utts in spk2utts.items()}


def duplicate_problems(path: Path, rows: list[TableRow]) -> list[Problem]:
    """One Problem per repeated key of a table, at the repeating line."""
    first_line: dict[str, int] = {}
    problems = []
    for line, key, _ in rows:
        if key in first_line:
            problems.append(Problem(path, line, key, f"duplicate id (first at line {first_line[key]})",
                                    "keep one line per id"))
        else:
            first_line[key] = line
    return problems


def _read_unique[T: (str, int, float)](path: Path, kind: type[T] = str) -> dict[str, T] | None:
    """A table as a dict with values converted by ``kind``; None if the file is absent.

    Duplicate ids and values that do not convert raise DataDirError naming the lines.
    """
    if not path.is_file():
        return None
    rows = read_table(path)
    problems = duplicate_problems(path, rows)
    table: dict[str, T] = {}
    for line, key, value in rows:
        try:
            table.setdefault(key, kind(value))
        except ValueError:
            problems.append(Problem(path, line, key, f"value {value!r} is not {kind.__name__}",
                                    f"regenerate {path.name} (stage 2, softpl.bin.format_data)"))
    if problems:
        raise DataDirError(problems, f"bad table {path}")
    return table


@dataclass
class DataDir:
    """The tables of one data dir, keyed by utterance id; None where the file is absent.

    Load it from a validated dir (see ``softpl.data.validate``); spk2utt is always derived from utt2spk.
    """

    wav_scp: dict[str, str]
    text: dict[str, str] | None = None
    text_ref: dict[str, str] | None = None
    utt2spk: dict[str, str] | None = None
    utt2dur: dict[str, float] | None = None
    utt2num_samples: dict[str, int] | None = None

    @classmethod
    def load(cls, path: str | Path) -> DataDir:
        """Read every table present in ``path``; wav.scp is required."""
        path = Path(path)
        if not (path / "wav.scp").is_file():
            raise DataDirError([Problem(path / "wav.scp", None, None, "missing",
                                        "run data preparation (stage 1, local/data.sh) to create it")])
        return cls(
            wav_scp=_read_unique(path / "wav.scp"),
            text=_read_unique(path / "text"),
            text_ref=_read_unique(path / "text.ref"),
            utt2spk=_read_unique(path / "utt2spk"),
            utt2dur=_read_unique(path / "utt2dur", float),
            utt2num_samples=_read_unique(path / "utt2num_samples", int),
        )

    @property
    def spk2utt(self) -> dict[str, str] | None:
        return None if self.utt2spk is None else utt2spk_to_spk2utt(self.utt2spk)

    def total_seconds(self) -> float:
        """Audio duration of the dir: from utt2dur when present, else from the audio headers."""
        if self.utt2dur is not None:
            return sum(self.utt2dur.values())
        return sum(audio_seconds(entry) for entry in self.wav_scp.values())

    def fingerprint(self) -> str:
        """A hash (16 hex digits) over the utterance ids, transcripts (``text``, else ``text.ref``) and the bytes of
        every audio file: two runs whose data dirs have the same fingerprint saw the same data. A Kaldi command
        (``cmd |``) counts as its text, not its output."""
        transcripts = self.text if self.text is not None else (self.text_ref or {})
        digest = hashlib.sha256()
        for utt in sorted(self.wav_scp, key=byte_order):
            entry = self.wav_scp[utt]
            audio = entry.encode() if is_pipe(entry) else hashlib.sha256(Path(entry).read_bytes()).digest()
            digest.update(b"\0".join((utt.encode(), transcripts.get(utt, "").encode(), audio)) + b"\n")
        return digest.hexdigest()[:16]


def write_data_dir(dst: str | Path, data: DataDir) -> None:
    """Write every table of ``data`` present (absent ones are removed from ``dst``) and spk2utt from utt2spk."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    tables: dict[str, Mapping[str, object] | None] = {
        "wav.scp": data.wav_scp, "text": data.text, "text.ref": data.text_ref, "utt2spk": data.utt2spk,
        "utt2dur": data.utt2dur, "utt2num_samples": data.utt2num_samples, "spk2utt": data.spk2utt,
    }
    for name, table in tables.items():
        if table is None:
            (dst / name).unlink(missing_ok=True)
        else:
            write_table(dst / name, {key: str(value) for key, value in table.items()})


def copy_data_dir(src: str | Path, dst: str | Path, exclude: Collection[str] = ()) -> None:
    """Copy the per-utterance tables of ``src`` to ``dst`` without the ids in ``exclude``; regenerate spk2utt.

    ``dst`` may be ``src`` (drops utterances in place). Rows are copied as they are, order aside.
    """
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in PER_UTT_FILES:
        if (src / name).is_file():
            write_table(dst / name, [(key, value) for _, key, value in read_table(src / name) if key not in exclude])
    if (dst / "utt2spk").is_file():
        write_table(dst / "spk2utt", utt2spk_to_spk2utt({key: spk for _, key, spk in read_table(dst / "utt2spk")}))


# ---- audio named by wav.scp entries ------------------------------------------------------------------------------

class AudioError(Exception):
    """An audio entry that cannot be used; ``fix`` says what to do."""

    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.message, self.fix = message, fix


# libsndfile notes a WAV whose header promises more sample bytes than the file holds as "data : N (should be M)".
_WAV_SIZE_MISMATCH = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
# Writers that stream to a pipe (espeak-ng --stdout, sox, ffmpeg) put a placeholder this large in the header.
_STREAMED_WAV_SIZE = 0x7F000000


def is_pipe(entry: str) -> bool:
    """Whether a wav.scp value is a Kaldi command (``cmd |``) rather than a path."""
    return entry.rstrip().endswith("|")


def _open(entry: str) -> sf.SoundFile:
    if is_pipe(entry):
        pipe = kaldiio.open_like_kaldi(entry, "rb")
        try:
            data = pipe.read()
        finally:
            status = pipe.close()  # os.popen style: exit code << 8, None on success
        if status:
            raise AudioError(f"command failed with exit code {status >> 8}: {entry}",
                             "run the command by hand to see its error and fix it")
        try:
            return sf.SoundFile(io.BytesIO(data))
        except sf.LibsndfileError as e:
            raise AudioError(f"command output is not audio ({e.error_string}): {entry}",
                             "make the command write a WAV/FLAC stream to stdout") from None
    path = Path(entry)
    if not path.exists():
        raise AudioError(f"audio file not found: {entry}",
                         "fix the path in wav.scp (relative paths are read from the recipe dir) or re-run stage 1")
    if not path.is_file():
        raise AudioError(f"not a regular file: {entry}", "point wav.scp at an audio file")
    try:
        return sf.SoundFile(path)
    except sf.LibsndfileError as e:
        raise AudioError(f"unreadable audio ({e.error_string}): {entry}",
                         "replace it with a WAV/FLAC file soundfile can read, or drop the utterance") from None


def _check_wav_size(f: sf.SoundFile, entry: str) -> None:
    """Raise AudioError for a WAV file shorter than its header says (libsndfile reads the rest silently)."""
    if f.format != "WAV" or is_pipe(entry):
        return
    mismatch = _WAV_SIZE_MISMATCH.search(f.extra_info)
    if mismatch and int(mismatch[2]) < int(mismatch[1]) < _STREAMED_WAV_SIZE:
        raise AudioError(f"corrupt audio: truncated WAV (header says {mismatch[1]} data bytes, "
                         f"file holds {mismatch[2]}): {entry}", "re-create or re-download the file")


def load_audio(entry: str) -> tuple[np.ndarray, int]:
    """Decode a wav.scp value (a path or ``cmd |``) fully: float32 samples shaped (frames, channels), and fs.

    Raises AudioError for a missing, unreadable, truncated, undecodable or empty (0 samples) audio.
    """
    with _open(entry) as f:
        _check_wav_size(f, entry)
        try:
            samples = f.read(dtype="float32", always_2d=True)
        except sf.LibsndfileError as e:
            raise AudioError(f"corrupt audio: decoding failed ({e.error_string}): {entry}",
                             "re-create or re-download the file") from None
        fs = f.samplerate
    if len(samples) == 0:
        raise AudioError(f"empty audio (0 samples): {entry}", "drop the utterance or supply its audio")
    return samples, fs


@dataclass(frozen=True)
class AudioHeader:
    format: str  # libsndfile's major format: "WAV", "FLAC", ...
    samplerate: int
    channels: int
    frames: int


def audio_header(entry: str) -> AudioHeader:
    """The header of a wav.scp value's audio, without decoding the samples.

    Raises AudioError for a missing or unreadable file, a failing command, or a WAV shorter than its header says.
    """
    with _open(entry) as f:
        _check_wav_size(f, entry)
        return AudioHeader(f.format, f.samplerate, f.channels, f.frames)


def audio_seconds(entry: str) -> float:
    """Duration read from the audio header (a command is run and its output parsed)."""
    with _open(entry) as f:
        return f.frames / f.samplerate
