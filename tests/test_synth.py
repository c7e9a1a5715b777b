"""Synthetic corpus: render plans, sentence split, noise, and a tiny real render with espeak-ng and flite."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import REPO, run_env
from softpl.bin.make_synth_corpus import main as make_synth_corpus
from softpl.corpora import synth
from softpl.corpora.synth import (CorpusError, Domains, add_noise, check_engines, coloured_noise, draw_plan,
                                  split_sentences)

needs_tts = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None,
                               reason="needs espeak-ng and flite (apt-get install espeak-ng flite)")

TINY = {"train_labeled": 2, "train_unlabeled": 3, "dev": 2, "test_clean": 2, "test_other": 2}
TINY_ARGS = [arg for name, n in TINY.items() for arg in (f"--num_{name}", str(n))]
SET_FILES = {"wav.scp", "utt2spk", "spk2utt", "utt2dur"}


def test_draw_plan_is_a_function_of_seed_set_and_index():
    assert draw_plan(1, "dev", 7) == draw_plan(1, "dev", 7)
    assert draw_plan(1, "dev", 7) != draw_plan(2, "dev", 7)
    assert draw_plan(1, "dev", 7) != draw_plan(1, "test_clean", 7)


def test_draw_plan_engines_per_set():
    def engines(set_name):
        return [draw_plan(3, set_name, i).engine for i in range(300)]

    assert set(engines("test_clean")) == {"espeak-ng"}
    assert set(engines("test_other")) == {"flite"}
    assert 0.05 < engines("train_labeled").count("flite") / 300 < 0.15  # FLITE_SHARE is 0.1
    assert 0.4 < engines("train_unlabeled").count("flite") / 300 < 0.6  # FLITE_SHARE is 0.5
    assert 0.4 < engines("dev").count("flite") / 300 < 0.6  # FLITE_SHARE is 0.5


def test_draw_plan_default_domains_draw_the_earlier_corpus():
    """Without held-out accents the draws are those of the commits before the domain options (E1-E14's corpus)."""
    for set_name in ("train_labeled", "dev", "test_other"):
        for i in range(50):
            rng = np.random.default_rng([4, synth.SETS.index(set_name), i])
            flite = rng.random() < synth.OTHER_SHARE[set_name]
            voice = str(rng.choice(synth.FLITE_VOICES)) if flite else str(rng.choice(synth.ESPEAK_VOICES))
            variant = "" if flite else str(rng.choice(synth.ESPEAK_VARIANTS))
            rate = int(rng.integers(130, 201))
            plan = draw_plan(4, set_name, i)
            assert (plan.voice, plan.variant, plan.rate_wpm) == (voice, variant, rate)


def test_draw_plan_held_out_voices_speak_only_the_other_domain():
    held_out = ("en-gb-scotland", "en-029")
    domains = Domains(held_out_voices=held_out, other_flite_share=0.25).with_shares({"train_labeled": 0.0})
    labeled = [draw_plan(2, "train_labeled", i, domains=domains) for i in range(300)]
    assert {p.engine for p in labeled} == {"espeak-ng"} and not {p.voice for p in labeled} & set(held_out)
    assert {domains.domain_of(p) for p in labeled} == {"clean"}
    other = [draw_plan(2, "test_other", i, domains=domains) for i in range(400)]
    assert {domains.domain_of(p) for p in other} == {"other"}
    assert {p.voice for p in other if p.engine == "espeak-ng"} == set(held_out)
    assert 0.18 < sum(p.engine == "flite" for p in other) / 400 < 0.32
    dev = [domains.domain_of(draw_plan(2, "dev", i, domains=domains)) for i in range(400)]
    assert 0.4 < dev.count("other") / 400 < 0.6


def test_domains_refuse_what_cannot_be_drawn():
    with pytest.raises(ValueError, match="not espeak-ng voices"):
        Domains(held_out_voices=("en-xx",))
    with pytest.raises(ValueError, match="leave no espeak-ng accent"):
        Domains(held_out_voices=synth.ESPEAK_VOICES)
    with pytest.raises(ValueError, match="flite alone"):
        Domains(other_flite_share=0.5)
    with pytest.raises(ValueError, match=r"share in \[0, 1\]"):
        Domains().with_shares({"dev": 1.5})


def test_draw_plan_ranges_and_speaker_ids():
    plans = [draw_plan(5, "train_unlabeled", i, snr_db=(10.0, 12.0)) for i in range(200)]
    assert all(130 <= p.rate_wpm <= 200 and 10.0 <= p.snr_db <= 12.0 for p in plans)
    espeak = next(p for p in plans if p.engine == "espeak-ng")
    flite = next(p for p in plans if p.engine == "flite")
    assert 30 <= espeak.pitch <= 70 and flite.pitch == 0
    assert espeak.speaker_id == f"espeak_{espeak.voice}_{espeak.variant}" and flite.speaker_id == f"flite_{flite.voice}"


def test_tts_commands():
    espeak = synth.RenderPlan("espeak-ng", "en-gb-scotland", "m3", 140, 42, 10.0, 1.0, 0)
    assert espeak.tts_command("hi there", Path("o.wav")) == [
        "espeak-ng", "-v", "en-gb-scotland+m3", "-s", "140", "-p", "42", "-w", "o.wav", "hi there"]
    flite = synth.RenderPlan("flite", "slt", "", 140, 0, 10.0, 1.0, 0)
    assert flite.tts_command("hi", Path("o.wav")) == [
        "flite", "-voice", "slt", "--setf", "duration_stretch=1.2500", "-t", "hi", "-o", "o.wav"]


SENTENCES = [f"SENTENCE NUMBER {word}" for word in "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN".split()]


def test_split_sentences_disjoint_and_sized():
    split = split_sentences(SENTENCES, {"dev": 2, "train_labeled": 3, "train_unlabeled": 4}, seed=1)
    assert {name: len(s) for name, s in split.items()} == {"dev": 2, "train_labeled": 3, "train_unlabeled": 4}
    every = [s for sentences in split.values() for s in sentences]
    assert len(set(every)) == 9 and set(every) <= set(SENTENCES)
    assert split == split_sentences(SENTENCES, {"dev": 2, "train_labeled": 3, "train_unlabeled": 4}, seed=1)
    assert split != split_sentences(SENTENCES, {"dev": 2, "train_labeled": 3, "train_unlabeled": 4}, seed=2)


def test_split_sentences_keeps_eval_sets_when_training_sets_grow():
    small = split_sentences(SENTENCES, {"dev": 2, "test_other": 2, "train_unlabeled": 1}, seed=4)
    large = split_sentences(SENTENCES, {"dev": 2, "test_other": 2, "train_unlabeled": 6}, seed=4)
    assert small["dev"] == large["dev"] and small["test_other"] == large["test_other"]


def test_split_sentences_too_few():
    with pytest.raises(CorpusError, match=r"ask for 11 sentences \(dev=5, train_labeled=6\) but only 10"):
        split_sentences(SENTENCES, {"dev": 5, "train_labeled": 6}, seed=1)
    with pytest.raises(ValueError, match="deduplicated"):
        split_sentences(SENTENCES + SENTENCES[:1], {"dev": 1}, seed=1)


def test_add_noise_hits_the_snr():
    t = np.arange(16000) / 16000
    speech = 0.5 * np.sin(2 * np.pi * 440 * t)  # power 0.125
    noisy = add_noise(speech, snr_db=10.0, exponent=1.0, rng=np.random.default_rng(0))
    noise_power = np.mean((noisy - speech) ** 2)
    assert noise_power == pytest.approx(0.0125, rel=1e-9)  # 0.125 / 10**(10/10)


def test_add_noise_scales_down_instead_of_clipping():
    speech = np.full(1000, 0.98)
    noisy = add_noise(speech, snr_db=0.0, exponent=0.0, rng=np.random.default_rng(0))
    assert np.max(np.abs(noisy)) == pytest.approx(0.99)


def test_coloured_noise_power_and_slope():
    rng = np.random.default_rng(0)
    white, brown = coloured_noise(32000, 0.0, rng), coloured_noise(32000, 2.0, rng)
    assert np.mean(white**2) == pytest.approx(1.0) and np.mean(brown**2) == pytest.approx(1.0)

    def low_share(x):  # share of the power below 500 Hz
        power = np.abs(np.fft.rfft(x)) ** 2
        return power[np.fft.rfftfreq(len(x), 1 / 16000) < 500].sum() / power.sum()

    assert low_share(white) == pytest.approx(500 / 8000, abs=0.01) and low_share(brown) > 0.9


def test_check_engines_names_the_apt_package(monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda program: None if program == "flite" else "/usr/bin/x")
    with pytest.raises(CorpusError, match=r"flite is not on PATH; install it with `sudo apt-get install flite`"):
        check_engines({"espeak-ng", "flite"})


@needs_tts
def test_check_engines_finds_the_voices():
    check_engines({"espeak-ng", "flite"})


# --- a tiny real render ---------------------------------------------------------------------------------------

def write_fortunes(root: Path) -> Path:
    """A fortune folder with 20 distinct sentences of 5 words, more than TINY asks for."""
    root.mkdir()
    animals, colours = ("cat", "dog", "fox", "owl"), ("red", "green", "blue", "grey", "white")
    (root / "zoo").write_text("%\n".join(f"The {c} {a} sleeps today.\n" for a in animals for c in colours))
    return root


def render(tmp: Path, fortunes: Path, *args: str) -> Path:
    make_synth_corpus(["--data_dir", str(tmp / "data"), "--audio_dir", str(tmp / "corpus"),
                       "--fortune_dir", str(fortunes), *TINY_ARGS, *args])
    return tmp


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root by relative path, with the root taken out of wav.scp paths."""
    return {str(p.relative_to(root)): p.read_bytes().replace(str(root).encode(), b"ROOT")
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """The same tiny corpus rendered with nj=1 and nj=2, and once more with another seed."""
    base = tmp_path_factory.mktemp("synth")
    fortunes = write_fortunes(base / "fortunes")
    return {name: render(base / name, fortunes, *args) for name, args in
            {"nj1": ("--seed", "1", "--nj", "1"), "nj2": ("--seed", "1", "--nj", "2"),
             "seed2": ("--seed", "2", "--nj", "2")}.items()}


def read_table(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines()]


@needs_tts
def test_render_data_dirs(corpora):
    data = corpora["nj2"] / "data"
    assert sorted(p.name for p in data.iterdir()) == sorted(TINY)  # no *.tmp left behind
    for set_name, size in TINY.items():
        files = {p.name for p in (data / set_name).iterdir()}
        assert files == SET_FILES | ({"text.ref"} if set_name == "train_unlabeled" else {"text"})
        utt2spk = read_table(data / set_name / "utt2spk")
        ids = [utt for utt, _ in utt2spk]
        assert len(ids) == size and ids == sorted(ids)
        # Kaldi's rule: sorting by speaker gives the same order as sorting by utterance.
        assert sorted(utt2spk, key=lambda pair: (pair[1], pair[0])) == utt2spk
        assert all(utt.startswith(f"{spk}-{set_name}-") for utt, spk in utt2spk)
        spk2utt = read_table(data / set_name / "spk2utt")
        assert [spk for spk, _ in spk2utt] == sorted({spk for _, spk in utt2spk})
        assert sorted(u for _, utts in spk2utt for u in utts.split()) == ids
        for name in ("wav.scp", "utt2dur", "text.ref" if set_name == "train_unlabeled" else "text"):
            assert [utt for utt, _ in read_table(data / set_name / name)] == ids


@needs_tts
def test_render_audio(corpora):
    data = corpora["nj2"] / "data"
    for set_name in TINY:
        durations = dict(read_table(data / set_name / "utt2dur"))
        for utt, path in read_table(data / set_name / "wav.scp"):
            assert Path(path).is_absolute() and Path(path) == corpora["nj2"] / "corpus" / set_name / f"{utt}.wav"
            info = soundfile.info(path)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert durations[utt] == f"{info.frames / 16000:.3f}" and info.frames > 16000 * 0.5
    engines = {set_name: {utt.split("_", 1)[0] for utt, _ in read_table(data / set_name / "utt2spk")}
               for set_name in TINY}
    assert engines["test_other"] == {"flite"}
    assert engines["test_clean"] == {"espeak"}


@needs_tts
def test_render_splits_share_no_sentence(corpora):
    data = corpora["nj2"] / "data"
    texts = {s: [t for _, t in read_table(data / s / ("text.ref" if s == "train_unlabeled" else "text"))]
             for s in TINY}
    every = [t for sentences in texts.values() for t in sentences]
    assert len(every) == len(set(every)) == sum(TINY.values())
    assert all(t.startswith("THE ") and t.endswith(" SLEEPS TODAY") for t in every)


@needs_tts
def test_render_is_deterministic_and_independent_of_nj(corpora):
    one, two, other_seed = (snapshot(corpora[name]) for name in ("nj1", "nj2", "seed2"))
    assert one == two
    assert one.keys() != other_seed.keys()  # another seed draws other voices, hence other ids


@needs_tts
def test_cli_fails_clearly_when_sentences_are_too_few(tmp_path, capsys):
    fortunes = write_fortunes(tmp_path / "fortunes")
    with pytest.raises(SystemExit, match=r"but only 20 usable sentences exist; lower the --num_\* options"):
        render(tmp_path, fortunes, "--num_train_unlabeled", "100")


@needs_tts
def test_data_sh_forwards_arguments_and_defaults(tmp_path):
    fortunes = write_fortunes(tmp_path / "fortunes")
    data_sh = REPO / "egs" / "synth_en" / "local" / "data.sh"
    assert os.access(data_sh, os.X_OK)
    done = subprocess.run([str(data_sh), "--fortune_dir", str(fortunes), *TINY_ARGS, "--nj", "1"], cwd=tmp_path,
                          env=run_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "train_unlabeled" / "text.ref").is_file()
    assert len(list((tmp_path / "corpus" / "dev").glob("*.wav"))) == TINY["dev"]
    assert "train_unlabeled" in done.stdout and "speakers" in done.stdout
