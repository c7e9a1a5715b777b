"""Validation of Kaldi-style data dirs, and the policy for bad utterances: raise, or skip them and list them.

Every check yields :class:`~softpl.data.datadir.Problem` values naming the file, line and utterance id at fault and
what to do, so one run reports everything that is wrong instead of stopping at the first defect.
"""
from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

from tqdm import tqdm

from softpl.data.datadir import (
    PER_UTT_FILES,
    AudioError,
    DataDirError,
    Problem,
    TableRow,
    byte_order,
    copy_data_dir,
    duplicate_problems,
    load_audio,
    read_table,
    utt2spk_to_spk2utt,
)

# Tokens that never stand for characters of a transcript.
SPECIAL_TOKENS = frozenset({"<blank>", "<unk>", "<sos/eos>"})
ESPNET_SPACE = "<space>"  # the space symbol of ESPnet's char tokenizer
SPM_SPACE = "\u2581"  # sentencepiece's word-boundary marker
SKIPPED_LIST = "skipped_utts.txt"

# Per-utterance tables other than wav.scp, with what to do when wav.scp holds an id they lack.
_MISSING_FROM = {
    "text": "add its transcript to text, or remove the utterance from wav.scp",
    "text.ref": "add its reference transcript to text.ref, or remove the utterance from wav.scp",
    "utt2spk": "add an `uttid speaker` line to utt2spk (use the uttid as speaker if unknown)",
    "utt2dur": "regenerate utt2dur (stage 2, softpl.bin.format_data)",
    "utt2num_samples": "regenerate utt2num_samples (stage 2, softpl.bin.format_data)",
}


def allowed_characters(token_list: Path) -> set[str]:
    """Characters a transcript may use with this token list: those of its tokens plus space.

    ``▁`` (sentencepiece) and ``<space>`` (ESPnet's char tokenizer) stand for the space.
    """
    tokens = token_list.read_text(encoding="utf-8").split()
    chars = {" "}
    for token in tokens:
        if token not in SPECIAL_TOKENS and token != ESPNET_SPACE:
            chars.update(token.replace(SPM_SPACE, " "))
    return chars


def validate_data_dir(
    path: str | Path,
    *,
    fs: int = 16000,
    check_audio: bool = True,
    token_list: str | Path | None = None,
    labeled_dirs: Iterable[str | Path] = (),
    require_text: bool | None = None,
) -> list[Problem]:
    """Every problem of the data dir at ``path``; an empty list means it is fit for use.

    Args:
        fs: sample rate every audio must have (audio must also be mono); checked with ``check_audio``.
        check_audio: decode every audio fully (catches missing, unreadable, truncated, corrupt and empty files).
        token_list: if given, every transcript character must be spelled by its tokens.
        labeled_dirs: labeled sets that must share no utterance id with this (unlabeled) set.
        require_text: True for a labeled set (text required), False for an unlabeled one (text forbidden;
            its truth belongs in text.ref), None to accept either.
    """
    path = Path(path)
    tables, problems = _read_tables(path)
    if "wav.scp" not in tables or problems:
        return problems  # cross-file checks need every table readable
    problems += _required_problems(path)
    wav_rows = tables["wav.scp"]
    if not wav_rows:
        problems.append(Problem(path / "wav.scp", None, None, "no utterances", "fill wav.scp (stage 1)"))
    for name, rows in tables.items():
        problems += _order_problems(path / name, rows)
    problems += _coverage_problems(path, tables)
    problems += _speaker_problems(path, tables)
    problems += _text_problems(path, tables.get("text"), require_text, token_list)
    for labeled in map(Path, labeled_dirs):
        problems += _overlap_problems(path, wav_rows, labeled)
    if check_audio:
        problems += _audio_problems(path / "wav.scp", wav_rows, fs)
    return problems


def _read_tables(path: Path) -> tuple[dict[str, list[TableRow]], list[Problem]]:
    tables, problems = {}, []
    for name in (*PER_UTT_FILES, "spk2utt"):
        if (path / name).exists():
            try:
                tables[name] = read_table(path / name)
            except DataDirError as e:
                problems += e.problems
            except OSError as e:
                problems.append(Problem(path / name, None, None, f"cannot read: {e.strerror}",
                                        "make it a readable file"))
    if not (path / "wav.scp").exists():
        problems.append(Problem(path / "wav.scp", None, None, "missing",
                                "run data preparation (stage 1, local/data.sh) to create it"))
    return tables, problems


def _required_problems(path: Path) -> list[Problem]:
    fixes = {
        "utt2spk": "create it: one `uttid speaker` line per utterance (use the uttid as speaker if unknown)",
        "spk2utt": "derive it from utt2spk (softpl.data.datadir.utt2spk_to_spk2utt, or Kaldi's utt2spk_to_spk2utt.pl)",
    }
    return [Problem(path / name, None, None, "missing", fix)
            for name, fix in fixes.items() if not (path / name).exists()]


def _order_problems(file: Path, rows: list[TableRow]) -> list[Problem]:
    """Duplicate ids, and the first line that breaks C-locale order (a sort fixes all of them at once)."""
    problems = duplicate_problems(file, rows)
    for prev, row in pairwise(rows):
        if byte_order(row.key) < byte_order(prev.key):
            problems.append(Problem(
                file, row.line, None, f"ids not sorted: {row.key!r} comes after {prev.key!r} (line {prev.line})",
                f"sort the file by id in C-locale order: LC_ALL=C sort -o {file} {file}"))
            break
    return problems


def _coverage_problems(path: Path, tables: dict[str, list[TableRow]]) -> list[Problem]:
    """Every per-utterance table must hold exactly the ids of wav.scp."""
    wav_rows = tables["wav.scp"]
    wav_ids = {row.key for row in wav_rows}
    problems = []
    for name, fix in _MISSING_FROM.items():
        if name not in tables:
            continue
        ids = {row.key for row in tables[name]}
        problems += [Problem(path / name, row.line, row.key, "id not in wav.scp",
                             "add its audio to wav.scp, or remove the line")
                     for row in tables[name] if row.key not in wav_ids]
        problems += [Problem(path / "wav.scp", row.line, row.key, f"id missing from {name}", fix)
                     for row in wav_rows if row.key not in ids]
    return problems


def _speaker_problems(path: Path, tables: dict[str, list[TableRow]]) -> list[Problem]:
    """spk2utt must be the inverse of utt2spk."""
    if "utt2spk" not in tables or "spk2utt" not in tables:
        return []
    expected = utt2spk_to_spk2utt({key: spk for _, key, spk in tables["utt2spk"]})
    fix = "regenerate spk2utt from utt2spk (softpl.data.datadir.utt2spk_to_spk2utt)"
    problems = []
    for line, spk, utts in tables["spk2utt"]:
        if set(utts.split()) != set(expected.get(spk, "").split()):
            problems.append(Problem(path / "spk2utt", line, None,
                                    f"speaker {spk!r}: utterances differ from utt2spk", fix))
    listed = {row.key for row in tables["spk2utt"]}
    problems += [Problem(path / "spk2utt", None, None, f"speaker {spk!r} of utt2spk is missing", fix)
                 for spk in expected if spk not in listed]
    return problems


def _text_problems(path: Path, rows: list[TableRow] | None, require_text: bool | None,
                   token_list: str | Path | None) -> list[Problem]:
    text = path / "text"
    if rows is None:
        if require_text:
            return [Problem(text, None, None, "missing: a labeled set needs transcripts",
                            "create text with one `uttid TRANSCRIPT` line per utterance")]
        return []
    if require_text is False:
        return [Problem(text, None, None, "an unlabeled set must not have text",
                        "rename it to text.ref (read by metrics only, never by training)")]
    problems = [Problem(text, line, key, "empty transcript",
                        "supply the transcript, or remove the utterance (an unlabeled set has no text)")
                for line, key, value in rows if not value.strip()]
    if token_list is not None:
        token_list = Path(token_list)
        if not token_list.is_file():
            return [*problems, Problem(token_list, None, None, "token list not found", "build it (stage 4)")]
        allowed = allowed_characters(token_list)
        for line, key, value in rows:
            outside = sorted(set(value) - allowed)
            if outside:
                shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in outside)
                problems.append(Problem(
                    text, line, key, f"characters not in token list {token_list}: {shown}",
                    "normalize the transcript (local/data.sh), or rebuild the token list (stage 4) to include them"))
    return problems


def _overlap_problems(path: Path, wav_rows: list[TableRow], labeled: Path) -> list[Problem]:
    """Ids of this (unlabeled) set that a labeled set also holds."""
    text = labeled / "text"
    if not text.is_file():
        return [Problem(text, None, None, "labeled set has no text", "pass only labeled sets as labeled_dirs")]
    try:
        labeled_line = {row.key: row.line for row in read_table(text)}
    except DataDirError as e:
        return e.problems
    return [Problem(path / "wav.scp", row.line, row.key,
                    f"unlabeled utterance is also labeled ({text}:{labeled_line[row.key]})",
                    "remove it from one of the two sets: pseudo-labeled data must not contain labeled utterances")
            for row in wav_rows if row.key in labeled_line]


def _audio_problems(wav_scp: Path, wav_rows: list[TableRow], fs: int) -> list[Problem]:
    fix = f"format the dir (stage 2: python -m softpl.bin.format_data --fs {fs})"
    problems = []
    for line, key, entry in tqdm(wav_rows, desc=f"checking audio of {wav_scp.parent}", unit="utt"):
        try:
            samples, rate = load_audio(entry)
        except AudioError as e:
            problems.append(Problem(wav_scp, line, key, e.message, e.fix))
            continue
        if rate != fs:
            problems.append(Problem(wav_scp, line, key, f"sample rate {rate} Hz, expected {fs} Hz: {entry}", fix))
        if samples.shape[1] != 1:
            problems.append(Problem(wav_scp, line, key, f"{samples.shape[1]} channels, expected mono: {entry}", fix))
    return problems


def utterances_to_skip(problems: list[Problem], skip_bad: bool, total: int) -> dict[str, str]:
    """The utterances to drop, each with its reasons; raise DataDirError listing every problem where not allowed.

    Raises when there are problems and ``skip_bad`` is false, when a problem is not tied to one utterance (a
    missing or unsorted file), and when every one of the ``total`` utterances would go.
    """
    if not problems:
        return {}
    if not skip_bad:
        raise DataDirError(problems, "fix these problems, or re-run with --skip_bad true to drop the bad utterances")
    fatal = [p for p in problems if not p.skippable]
    if fatal:
        raise DataDirError(fatal, "fix these problems (they are not tied to one utterance, so cannot be skipped)")
    reasons: dict[str, list[str]] = {}
    for p in problems:
        reasons.setdefault(p.utt, []).append(p.message)
    if len(reasons) >= total:
        raise DataDirError(problems, f"every one of the {total} utterances has a problem; nothing left to keep")
    return {utt: "; ".join(messages) for utt, messages in sorted(reasons.items(), key=lambda kv: byte_order(kv[0]))}


def record_skipped(path: Path, skipped: dict[str, str], total: int, shown_as: Path | None = None) -> None:
    """Write ``uttid<TAB>reason`` lines to ``<path>/skipped_utts.txt`` and print the count.

    ``shown_as`` is the dir named in the message when ``path`` is a tmp dir that will be renamed.
    """
    (path / SKIPPED_LIST).write_text("".join(f"{utt}\t{reason}\n" for utt, reason in skipped.items()),
                                     encoding="utf-8")
    shown = shown_as or path
    print(f"{shown}: skipped {len(skipped)} of {total} utterances (listed in {shown / SKIPPED_LIST})")


def raise_or_skip(problems: list[Problem], path: str | Path, skip_bad: bool) -> dict[str, str]:
    """Raise DataDirError for ``problems``, or, with ``skip_bad``, drop their utterances from the dir in place.

    Dropping keeps every table consistent, regenerates spk2utt and lists the dropped ids with their reasons in
    ``<path>/skipped_utts.txt``. Returns the dropped utterances and reasons.
    """
    path = Path(path)
    if not problems:
        return {}
    total = len({row.key for row in read_table(path / "wav.scp")}) if (path / "wav.scp").is_file() else 0
    skipped = utterances_to_skip(problems, skip_bad, total)
    copy_data_dir(path, path, exclude=skipped)
    record_skipped(path, skipped, total)
    return skipped
