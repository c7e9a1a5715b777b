"""Render the synthetic English corpus of `egs/synth_en`: sentences -> TTS audio with noise -> Kaldi data dirs.

Each set mixes two domains (:class:`Domains`). The clean domain is espeak-ng (several English accents and voice
variants); the other domain, a share of each set, is by default flite, a second engine with a clearly different
sound (a tenth of `train_labeled`, half of `dev` and `train_unlabeled`, all of `test_other`), so that the unlabeled
data covers a domain the labeled data barely does (the case pseudo-labeling is for). The other domain can instead
be, wholly or in part, espeak-ng accents held out of the clean domain: a shift the seed can still hear. Every
random choice of an utterance (domain, voice, speaking rate, pitch, noise) comes from an RNG seeded by (seed, set,
index), so the corpus depends on `seed` only, never on the number of workers.
"""
from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly
from tqdm import tqdm

from softpl.data.datadir import DataDir, write_data_dir as write_tables

SAMPLE_RATE = 16000

# Evaluation sets come first when sentences are handed out, so that resizing the training sets keeps them fixed.
SETS = ("dev", "test_clean", "test_other", "train_labeled", "train_unlabeled")
UNLABELED_SETS = frozenset({"train_unlabeled"})
# Share of each set in the other domain (by default flite); the rest is the clean domain (espeak-ng). dev holds
# both domains (as ESPnet's LibriSpeech recipe validates on dev-clean + dev-other), so that choices made on dev see
# the other domain too.
OTHER_SHARE = {"train_labeled": 0.1, "train_unlabeled": 0.5, "dev": 0.5, "test_clean": 0.0, "test_other": 1.0}

ESPEAK_VOICES = ("en-us", "en-us-nyc", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
                 "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
# Speaking rate in words per minute; espeak-ng's default is 175, and flite's voices speak at about that rate.
RATE_WPM = (130, 200)
DEFAULT_RATE_WPM = 175
ESPEAK_PITCH = (30, 70)  # espeak-ng's 0-99 pitch scale, default 50
# Noise spectrum slope: power ~ 1/f**exponent, from white (0) over pink (1) to brown (2).
NOISE_EXPONENT = (0.0, 2.0)

# Programs the engines need, with the Debian package that provides each.
APT_PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite"}


class CorpusError(Exception):
    """The corpus cannot be made as asked: a program or voice is missing, or there are too few sentences."""


@dataclass(frozen=True)
class RenderPlan:
    """How one utterance is spoken and corrupted; drawn by `draw_plan`, executed by `render_utterance`."""

    engine: str  # "espeak-ng" or "flite"
    voice: str
    variant: str  # espeak-ng voice variant (m1..m7, f1..f5); "" for flite
    rate_wpm: int
    pitch: int  # espeak-ng pitch 0-99; flite keeps its voice's own pitch (0 here)
    snr_db: float
    noise_exponent: float
    noise_seed: int

    @property
    def speaker_id(self) -> str:
        """Engine + voice (+ variant): `espeak_en-gb-scotland_m3`, `flite_slt`."""
        if self.engine == "flite":
            return f"flite_{self.voice}"
        return f"espeak_{self.voice}_{self.variant}"

    def tts_command(self, text: str, wav_path: Path) -> list[str]:
        """The command line that speaks `text` into `wav_path`."""
        if self.engine == "flite":
            stretch = DEFAULT_RATE_WPM / self.rate_wpm
            return ["flite", "-voice", self.voice, "--setf", f"duration_stretch={stretch:.4f}", "-t", text,
                    "-o", str(wav_path)]
        return ["espeak-ng", "-v", f"{self.voice}+{self.variant}", "-s", str(self.rate_wpm), "-p", str(self.pitch),
                "-w", str(wav_path), text]


@dataclass(frozen=True)
class Utterance:
    """One utterance to render: its id, transcript, plan and where its audio goes."""

    utt_id: str
    text: str
    plan: RenderPlan
    wav_path: Path


@dataclass(frozen=True)
class Domains:
    """Who speaks the clean and the other domain of each set.

    Args:
        other_share: per set, the probability that an utterance is in the other domain (:data:`OTHER_SHARE`).
        held_out_voices: espeak-ng accents (of :data:`ESPEAK_VOICES`) that speak only in the other domain; the
            clean domain has the remaining accents. Empty (the default): the other domain is flite alone.
        other_flite_share: with held-out accents, the share of the other domain spoken by flite (the rest by the
            held-out accents). Must be 1 without held-out accents.

    The defaults draw exactly the corpus of the commits before this option existed (no extra random draw).
    """

    other_share: tuple[tuple[str, float], ...] = tuple(OTHER_SHARE.items())
    held_out_voices: tuple[str, ...] = ()
    other_flite_share: float = 1.0

    def __post_init__(self) -> None:
        shares = dict(self.other_share)
        bad = {name: share for name, share in shares.items() if name not in SETS or not 0.0 <= share <= 1.0}
        if bad:
            raise ValueError(f"other-domain shares need a set of {list(SETS)} and a share in [0, 1], got {bad}")
        unknown = sorted(set(self.held_out_voices) - set(ESPEAK_VOICES))
        if unknown:
            raise ValueError(f"held-out voices {unknown} are not espeak-ng voices of the corpus {list(ESPEAK_VOICES)}")
        if len(set(self.held_out_voices)) >= len(ESPEAK_VOICES):
            raise ValueError("held-out voices leave no espeak-ng accent for the clean domain")
        if not 0.0 <= self.other_flite_share <= 1.0:
            raise ValueError(f"the other domain's flite share must be in [0, 1], got {self.other_flite_share}")
        if not self.held_out_voices and self.other_flite_share != 1.0:
            raise ValueError("without held-out espeak-ng voices the other domain is flite alone: its flite share "
                             f"must be 1, got {self.other_flite_share}")

    @property
    def clean_voices(self) -> tuple[str, ...]:
        return tuple(v for v in ESPEAK_VOICES if v not in self.held_out_voices)

    def share(self, set_name: str) -> float:
        return dict(self.other_share).get(set_name, 0.0)

    def with_shares(self, shares: dict[str, float]) -> Domains:
        """These domains with the other-domain share of some sets replaced."""
        return dataclasses.replace(self, other_share=tuple({**dict(self.other_share), **shares}.items()))

    def domain_of(self, plan: RenderPlan) -> str:
        """``clean`` or ``other``: the domain an utterance's voice belongs to."""
        return "other" if plan.engine == "flite" or plan.voice in self.held_out_voices else "clean"


DEFAULT_DOMAINS = Domains()


def draw_plan(seed: int, set_name: str, index: int, snr_db: tuple[float, float] = (15.0, 35.0),
              domains: Domains = DEFAULT_DOMAINS) -> RenderPlan:
    """Draw domain, engine, voice, rate, pitch and noise of utterance `index` of `set_name` from an RNG seeded by
    all three."""
    rng = np.random.default_rng([seed, SETS.index(set_name), index])
    other = rng.random() < domains.share(set_name)
    # Without held-out accents the other domain is flite with no further draw (the corpus of earlier commits).
    if other and (not domains.held_out_voices or rng.random() < domains.other_flite_share):
        engine, voice, variant = "flite", str(rng.choice(FLITE_VOICES)), ""
    else:
        voices = domains.held_out_voices if other else domains.clean_voices
        engine, voice, variant = "espeak-ng", str(rng.choice(voices)), str(rng.choice(ESPEAK_VARIANTS))
    return RenderPlan(
        engine=engine, voice=voice, variant=variant,
        rate_wpm=int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1)),
        pitch=int(rng.integers(ESPEAK_PITCH[0], ESPEAK_PITCH[1] + 1)) if engine == "espeak-ng" else 0,
        snr_db=round(float(rng.uniform(*snr_db)), 2),
        noise_exponent=round(float(rng.uniform(*NOISE_EXPONENT)), 3),
        noise_seed=int(rng.integers(2**32)),
    )


def split_sentences(sentences: Sequence[str], sizes: dict[str, int], seed: int) -> dict[str, list[str]]:
    """Shuffle the (deduplicated) sentences with `seed` and hand each set its own slice, so no two sets share one."""
    unknown = set(sizes) - set(SETS)
    if unknown:
        raise ValueError(f"unknown set names {sorted(unknown)}; the sets are {list(SETS)}")
    if len(set(sentences)) != len(sentences):
        raise ValueError("split_sentences needs deduplicated sentences; a repeated one could land in two sets")
    wanted = sum(sizes.values())
    if wanted > len(sentences):
        asked = ", ".join(f"{name}={sizes[name]}" for name in SETS if name in sizes)
        raise CorpusError(f"the sets ask for {wanted} sentences ({asked}) but only {len(sentences)} usable "
                          "sentences exist; lower the --num_* options")
    order = np.random.default_rng(seed).permutation(len(sentences))
    split, start = {}, 0
    for name in SETS:
        if name in sizes:
            split[name] = [sentences[i] for i in order[start:start + sizes[name]]]
            start += sizes[name]
    return split


def _program_output(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def check_engines(engines: Iterable[str]) -> None:
    """Fail clearly when a TTS program or one of its voices is missing (both engines fall back silently)."""
    engines = set(engines)
    for engine in sorted(engines):
        if shutil.which(engine) is None:
            raise CorpusError(f"{engine} is not on PATH; install it with `sudo apt-get install {APT_PACKAGES[engine]}`")
    if "espeak-ng" in engines:
        languages = {line.split()[1] for line in _program_output(["espeak-ng", "--voices=en"]).splitlines()[1:]}
        variants = {line.split()[4].removeprefix("!v/")
                    for line in _program_output(["espeak-ng", "--voices=variant"]).splitlines()[1:]}
        missing = sorted(set(ESPEAK_VOICES) - languages) + sorted(set(ESPEAK_VARIANTS) - variants)
        if missing:
            raise CorpusError(f"espeak-ng lacks the voices {missing}; install the full espeak-ng-data package "
                              "(`sudo apt-get install espeak-ng-data`)")
    if "flite" in engines:
        # `flite -lv` prints "Voices available: kal awb_time kal16 awb rms slt".
        available = set(_program_output(["flite", "-lv"]).split(":", 1)[-1].split())
        missing = sorted(set(FLITE_VOICES) - available)
        if missing:
            raise CorpusError(f"flite lacks the voices {missing} (it has {sorted(available)}); "
                              "install Debian's `flite` package, which builds them in")


def coloured_noise(num_samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise whose power spectrum falls as 1/f**exponent (flat below 20 Hz, so it has no DC drift)."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.fft.rfftfreq(num_samples, d=1.0 / SAMPLE_RATE)
    spectrum *= np.maximum(frequencies, 20.0) ** (-exponent / 2)
    noise = np.fft.irfft(spectrum, n=num_samples)
    return noise / np.sqrt(np.mean(noise**2))


def add_noise(speech: np.ndarray, snr_db: float, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Mix coloured noise into `speech` at `snr_db` (over the whole utterance), scaled down only to avoid clipping."""
    speech_power = float(np.mean(speech**2))
    noise = coloured_noise(len(speech), exponent, rng) * math.sqrt(speech_power / 10 ** (snr_db / 10))
    noisy = speech + noise
    peak = float(np.max(np.abs(noisy)))
    return noisy * (0.99 / peak) if peak > 0.99 else noisy


def synthesize(plan: RenderPlan, text: str, utt_id: str) -> np.ndarray:
    """Speak `text` as 16 kHz mono float audio; lower-cased, since espeak-ng spells out capitals like "US", "IT"."""
    with tempfile.TemporaryDirectory(prefix="softpl_tts_") as tmp:
        tts_wav = Path(tmp) / "tts.wav"
        command = plan.tts_command(text.lower(), tts_wav)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not tts_wav.is_file():
            raise CorpusError(f"{utt_id}: `{' '.join(command)}` failed (exit {done.returncode}): "
                              f"{done.stderr.strip() or 'no output file'}")
        audio, rate = soundfile.read(tts_wav, dtype="float64", always_2d=True)
    if audio.shape[0] == 0:
        raise CorpusError(f"{utt_id}: {plan.engine} made no audio for {text!r}")
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        common = math.gcd(rate, SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // common, rate // common)
    return audio


def render_utterance(utt: Utterance) -> tuple[str, int]:
    """Speak, add noise and write one utterance as 16-bit PCM; returns (utt_id, number of samples)."""
    speech = synthesize(utt.plan, utt.text, utt.utt_id)
    noisy = add_noise(speech, utt.plan.snr_db, utt.plan.noise_exponent, np.random.default_rng(utt.plan.noise_seed))
    soundfile.write(utt.wav_path, noisy, SAMPLE_RATE, subtype="PCM_16")
    return utt.utt_id, len(noisy)


def plan_set(set_name: str, sentences: Sequence[str], audio_dir: Path, seed: int,
             snr_db: tuple[float, float], domains: Domains = DEFAULT_DOMAINS) -> list[Utterance]:
    """The utterances of one set; ids `<speaker>-<set>-<index:06d>` start with the speaker, as Kaldi wants."""
    utterances = []
    for index, text in enumerate(sentences):
        plan = draw_plan(seed, set_name, index, snr_db, domains)
        utt_id = f"{plan.speaker_id}-{set_name}-{index:06d}"
        utterances.append(Utterance(utt_id, text, plan, audio_dir / set_name / f"{utt_id}.wav"))
    return utterances


def write_data_dir(set_dir: Path, utterances: Sequence[Utterance], num_samples: dict[str, int],
                   labeled: bool) -> None:
    """Write a Kaldi data dir (wav.scp, text or text.ref, utt2spk, spk2utt, utt2dur), sorted by id in C order.

    The files go into `<set_dir>.tmp` first, which is then renamed, so a half-written dir never looks finished.
    Unlabeled sets get `text.ref` instead of `text`: the truth, for pseudo-label quality metrics only.
    """
    transcripts = {u.utt_id: u.text for u in utterances}
    data = DataDir(
        wav_scp={u.utt_id: str(u.wav_path.resolve()) for u in utterances},
        text=transcripts if labeled else None,
        text_ref=None if labeled else transcripts,
        utt2spk={u.utt_id: u.plan.speaker_id for u in utterances},
        utt2dur={u.utt_id: f"{num_samples[u.utt_id] / SAMPLE_RATE:.3f}" for u in utterances},
    )
    tmp_dir = set_dir.with_name(set_dir.name + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    write_tables(tmp_dir, data)
    shutil.rmtree(set_dir, ignore_errors=True)
    os.replace(tmp_dir, set_dir)


def _render_all(utterances: Sequence[Utterance], nj: int) -> Iterator[tuple[str, int]]:
    """Render in this process (nj=1) or in `nj` worker processes, yielding (utt_id, samples) as they finish."""
    if nj == 1:
        yield from map(render_utterance, utterances)
        return
    with multiprocessing.Pool(nj) as pool:
        yield from pool.imap_unordered(render_utterance, utterances, chunksize=8)


@dataclass(frozen=True)
class SetSummary:
    """Size of one rendered set."""

    name: str
    utterances: int
    hours: float
    speakers: int
    other: int  # utterances in the other domain


def make_corpus(sentences_by_set: dict[str, list[str]], data_dir: str | Path, audio_dir: str | Path, seed: int,
                nj: int = 1, snr_db: tuple[float, float] = (15.0, 35.0),
                domains: Domains = DEFAULT_DOMAINS) -> list[SetSummary]:
    """Render every set with `nj` worker processes, then write its data dir under `data_dir`.

    Audio goes to `<audio_dir>/<set>/<utt_id>.wav`. Data dirs are written only after all audio is done.
    """
    data_dir, audio_dir = Path(data_dir), Path(audio_dir)
    if nj < 1:
        raise ValueError(f"nj must be at least 1, got {nj}")
    plans = {name: plan_set(name, sentences, audio_dir, seed, snr_db, domains)
             for name, sentences in sentences_by_set.items()}
    every_utt = [utt for utts in plans.values() for utt in utts]
    check_engines({utt.plan.engine for utt in every_utt})
    for name in plans:
        # An old data dir would point at audio about to be replaced: remove it until its set is rendered anew.
        shutil.rmtree(data_dir / name, ignore_errors=True)
        shutil.rmtree(audio_dir / name, ignore_errors=True)
        (audio_dir / name).mkdir(parents=True)
    progress = tqdm(_render_all(every_utt, nj), total=len(every_utt), desc="rendering", unit="utt",
                    file=sys.stderr, dynamic_ncols=True)
    num_samples = dict(progress)
    summaries = []
    for name, utts in plans.items():
        write_data_dir(data_dir / name, utts, num_samples, labeled=name not in UNLABELED_SETS)
        seconds = sum(num_samples[u.utt_id] for u in utts) / SAMPLE_RATE
        summaries.append(SetSummary(name, len(utts), seconds / 3600, len({u.plan.speaker_id for u in utts}),
                                    sum(domains.domain_of(u.plan) == "other" for u in utts)))
    return summaries
