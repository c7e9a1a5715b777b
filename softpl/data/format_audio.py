"""Stage 2: a data dir's audio as mono at one sample rate, referenced in place or rewritten (ESPnet's format_wav_scp).

Audio already usable as it is (a WAV or FLAC file, mono, at the target rate) stays where it is: ``<dst>/wav.scp``
names the original file by absolute path, so a corpus such as LibriSpeech (960 h of FLAC) is not copied. Anything
else (other formats, other rates, several channels, ``cmd |`` entries) is decoded, downmixed, resampled and
written as 16-bit PCM WAV to ``<dst>/data/<uttid>.wav``. Text, text.ref and utt2spk
are copied, spk2utt regenerated, and ``utt2dur`` (seconds) and ``utt2num_samples`` (ESPnet's speech shape-file
format) written. The output is built in ``<dst>.tmp``, validated, and renamed at the end, so a partial output is
never mistaken for a finished one.
"""
from __future__ import annotations

import shutil
from contextlib import nullcontext
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

from softpl.data.datadir import (
    AudioError,
    DataDirError,
    Problem,
    audio_header,
    copy_data_dir,
    is_pipe,
    load_audio,
    read_table,
    write_table,
)
from softpl.data.validate import record_skipped, utterances_to_skip, validate_data_dir


@dataclass(frozen=True)
class FormatSummary:
    utterances: int
    seconds: float
    resampled: int
    downmixed: int
    skipped: int
    in_place: int  # utterances referenced where they are (nothing written)


IN_PLACE_FORMATS = ("WAV", "FLAC")  # what soundfile (and so ESPnet's loader) reads directly


@dataclass(frozen=True)
class _Converted:
    num_samples: int
    resampled: bool
    downmixed: bool
    in_place: Path | None = None  # the original file, when it is used as it is


def convert_audio(entry: str, out_path: Path, fs: int) -> _Converted:
    """Reference ``entry`` in place when it is a mono WAV/FLAC file at ``fs``; otherwise decode it (path or
    ``cmd |``), downmix to mono, resample to ``fs`` and write 16-bit PCM WAV to ``out_path``."""
    if not is_pipe(entry):
        header = audio_header(entry)
        if header.format in IN_PLACE_FORMATS and header.samplerate == fs and header.channels == 1 and header.frames:
            return _Converted(header.frames, False, False, Path(entry).absolute())
    samples, rate = load_audio(entry)
    downmixed = samples.shape[1] > 1
    mono = samples.mean(axis=1)
    if rate != fs:
        step = gcd(rate, fs)
        mono = resample_poly(mono, fs // step, rate // step)
    sf.write(out_path, np.clip(mono, -1.0, 1.0), fs, subtype="PCM_16")
    return _Converted(len(mono), rate != fs, downmixed)


def _convert_job(job: tuple[str, str, Path, int]) -> tuple[str, _Converted | tuple[str, str]]:
    """Worker: the utterance id with its result, or with (message, fix) of its AudioError (which does not pickle)."""
    key, entry, out_path, fs = job
    try:
        return key, convert_audio(entry, out_path, fs)
    except AudioError as e:
        return key, (e.message, e.fix)


def _file_name_problem(wav_scp: Path, line: int, key: str) -> Problem | None:
    if "/" in key or key in (".", ".."):
        return Problem(wav_scp, line, key, "utterance id cannot be a file name", "rename the id (no '/')")
    return None


def format_data_dir(src: str | Path, dst: str | Path, *, fs: int = 16000, skip_bad: bool = False,
                    nj: int = 1) -> FormatSummary:
    """Write the formatted copy of data dir ``src`` to ``dst`` (replacing it) and validate it.

    Bad utterances (table defects of ``src``, unreadable audio) raise DataDirError, or with ``skip_bad`` are left out
    and listed in ``<dst>/skipped_utts.txt``. ``nj`` processes convert audio in parallel.
    """
    src, dst = Path(src).absolute(), Path(dst).absolute()
    wav_scp = src / "wav.scp"
    problems = validate_data_dir(src, fs=fs, check_audio=False)
    wav_rows = read_table(wav_scp) if wav_scp.is_file() else []
    total = len({row.key for row in wav_rows})
    problems += [p for row in wav_rows if (p := _file_name_problem(wav_scp, row.line, row.key))]
    table_bad = utterances_to_skip(problems, skip_bad, total)  # raises early: no point converting then

    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    try:
        jobs = [(key, entry, tmp / "data" / f"{key}.wav", fs) for _, key, entry in wav_rows if key not in table_bad]
        converted = _convert_all(jobs, nj, f"formatting {src}")
        line_of = {row.key: row.line for row in wav_rows}
        problems += [Problem(wav_scp, line_of[key], key, *result)
                     for key, result in converted.items() if isinstance(result, tuple)]
        skipped = utterances_to_skip(problems, skip_bad, total)
        kept = {key: result for key, result in converted.items() if key not in skipped}

        copy_data_dir(src, tmp, exclude=skipped)
        write_table(tmp / "utt2num_samples", {key: str(r.num_samples) for key, r in kept.items()})
        write_table(tmp / "utt2dur", {key: f"{r.num_samples / fs:.4f}" for key, r in kept.items()})
        write_table(tmp / "wav.scp", {key: str(r.in_place or tmp / "data" / f"{key}.wav") for key, r in kept.items()})
        if skipped:
            record_skipped(tmp, skipped, total, shown_as=dst)
        output_problems = validate_data_dir(tmp, fs=fs)
        if output_problems:
            raise DataDirError(output_problems, f"formatted copy of {src} failed validation")
        write_table(tmp / "wav.scp", {key: str(r.in_place or dst / "data" / f"{key}.wav") for key, r in kept.items()})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return FormatSummary(
        utterances=len(kept),
        seconds=sum(r.num_samples for r in kept.values()) / fs,
        resampled=sum(r.resampled for r in kept.values()),
        downmixed=sum(r.downmixed for r in kept.values()),
        skipped=len(skipped),
        in_place=sum(r.in_place is not None for r in kept.values()),
    )


def _convert_all(jobs: list[tuple[str, str, Path, int]], nj: int,
                 desc: str) -> dict[str, _Converted | tuple[str, str]]:
    with ProcessPoolExecutor(nj) if nj > 1 else nullcontext() as pool:
        results = pool.map(_convert_job, jobs, chunksize=8) if pool else map(_convert_job, jobs)
        return dict(tqdm(results, total=len(jobs), desc=desc, unit="utt"))
