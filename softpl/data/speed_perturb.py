"""Speed perturbation of a formatted data dir: ESPnet's ``--speed_perturb_factors`` for the labeled set.

A factor f plays an utterance f times as fast, tempo and pitch together, as sox's ``speed`` effect does in Kaldi's
and ESPnet's ``perturb_data_dir_speed.sh``: the waveform is resampled by 1/f (``scipy.signal.resample_poly``, f taken
as a fraction with a denominator of at most 100) and read at the original rate. The perturbed copies get ids and
speakers prefixed ``sp<f>-`` (``sp0.9-utt1``, speaker ``sp0.9-spk1``) and are written as 16-bit PCM WAV under
``<dst>/data/``; factor 1 stands for the utterances as they are (ids and audio unchanged). The output dir is the
union of every factor's utterances, with text, utt2spk/spk2utt, utt2dur and utt2num_samples, built in ``<dst>.tmp``
and renamed at the end.
"""
from __future__ import annotations

import shutil
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

from softpl.data.datadir import DataDir, load_audio, write_data_dir


def parse_factors(factors: str | list[float]) -> list[float]:
    """Speed factors from ``"0.9 1.0 1.1"`` (or a list): positive, distinct; a clear error otherwise."""
    values = [float(f) for f in factors.split()] if isinstance(factors, str) else [float(f) for f in factors]
    if not values or any(not 0.5 <= f <= 2.0 for f in values) or len(set(values)) != len(values):
        raise ValueError(f"speed perturbation factors {factors!r}: give distinct factors between 0.5 and 2.0, "
                         "e.g. '0.9 1.0 1.1' (1.0: the utterances as they are)")
    return values


def prefix(factor: float) -> str:
    """The id prefix of a factor's copies, as ESPnet writes it: ``sp0.9-``."""
    return f"sp{factor:g}-"


def change_speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """``samples`` (1-D) played ``factor`` times as fast at the same sample rate: about len / factor samples."""
    ratio = Fraction(factor).limit_denominator(100)
    return resample_poly(samples, ratio.denominator, ratio.numerator)


def _perturb_job(job: tuple[str, float, Path]) -> int:
    """Worker: write one perturbed copy; return its number of samples."""
    entry, factor, out_path = job
    samples, rate = load_audio(entry)
    changed = change_speed(samples.mean(axis=1), factor)
    sf.write(out_path, np.clip(changed, -1.0, 1.0), rate, subtype="PCM_16")
    return len(changed)


def perturb_data_dir(src: str | Path, dst: str | Path, factors: str | list[float], *, fs: int,
                     nj: int = 1) -> int:
    """Write the speed-perturbed union of data dir ``src`` (formatted: utt2num_samples present) to ``dst``;
    return its number of utterances."""
    src, dst = Path(src).absolute(), Path(dst).absolute()
    factors = parse_factors(factors)
    data = DataDir.load(src)
    if data.utt2num_samples is None:
        raise ValueError(f"{src}: no utt2num_samples; speed-perturb a formatted data dir (stage 2's output)")
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    out = DataDir(wav_scp={}, text={} if data.text is not None else None,
                  utt2spk={} if data.utt2spk is not None else None, utt2dur={}, utt2num_samples={})
    jobs = []
    for factor in factors:
        for key, entry in data.wav_scp.items():
            new_key = key if factor == 1.0 else prefix(factor) + key
            if data.text is not None:
                out.text[new_key] = data.text[key]
            if data.utt2spk is not None:
                out.utt2spk[new_key] = data.utt2spk[key] if factor == 1.0 else prefix(factor) + data.utt2spk[key]
            if factor == 1.0:
                out.wav_scp[new_key], out.utt2num_samples[new_key] = entry, data.utt2num_samples[key]
            else:
                out.wav_scp[new_key] = str(dst / "data" / f"{new_key}.wav")
                jobs.append((new_key, (entry, factor, tmp / "data" / f"{new_key}.wav")))
    try:
        with ProcessPoolExecutor(nj) if nj > 1 else nullcontext() as pool:
            lengths = (pool.map(_perturb_job, [job for _, job in jobs], chunksize=8) if pool
                       else map(_perturb_job, [job for _, job in jobs]))
            for (key, _), length in zip(jobs, tqdm(lengths, total=len(jobs), desc=f"speed perturbation {src.name}",
                                                   unit="utt")):
                out.utt2num_samples[key] = length
        out.utt2dur = {key: round(n / fs, 4) for key, n in out.utt2num_samples.items()}
        write_data_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return len(out.wav_scp)
