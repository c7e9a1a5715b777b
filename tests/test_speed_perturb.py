"""Speed perturbation: tempo and pitch scale by the factor, ids and speakers prefixed as ESPnet names them."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from softpl.data.datadir import DataDir, read_table
from softpl.data.speed_perturb import change_speed, parse_factors, perturb_data_dir

FS = 16000


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / FS)[spectrum.argmax()])


def test_a_faster_utterance_is_shorter_and_higher():
    tone = np.sin(2 * np.pi * 440 * np.arange(FS) / FS)  # 1 s at 440 Hz
    fast, slow = change_speed(tone, 1.1), change_speed(tone, 0.9)
    assert len(fast) == pytest.approx(FS / 1.1, abs=2) and len(slow) == pytest.approx(FS / 0.9, abs=2)
    assert peak_hz(fast) == pytest.approx(440 * 1.1, abs=2) and peak_hz(slow) == pytest.approx(440 * 0.9, abs=2)


def test_the_perturbed_dir_is_the_union_of_every_factor(tmp_path):
    src = tmp_path / "train"
    (src / "wav").mkdir(parents=True)
    rows = {}
    for i, hz in enumerate((300, 500)):
        path = src / "wav" / f"u{i}.wav"
        sf.write(path, 0.5 * np.sin(2 * np.pi * hz * np.arange(8000) / FS), FS, subtype="PCM_16")
        rows[f"u{i}"] = str(path)
    (src / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in rows.items()))
    (src / "text").write_text("u0 HELLO\nu1 WORLD\n")
    (src / "utt2spk").write_text("u0 spk1\nu1 spk2\n")
    (src / "utt2num_samples").write_text("u0 8000\nu1 8000\n")
    assert perturb_data_dir(src, tmp_path / "train_sp", "0.9 1.0 1.1", fs=FS) == 6

    out = DataDir.load(tmp_path / "train_sp")
    assert sorted(out.wav_scp) == ["sp0.9-u0", "sp0.9-u1", "sp1.1-u0", "sp1.1-u1", "u0", "u1"]
    assert out.wav_scp["u0"] == rows["u0"]  # factor 1: the utterance as it is
    assert out.text["sp1.1-u1"] == "WORLD" and out.utt2spk["sp0.9-u0"] == "sp0.9-spk1" and out.utt2spk["u1"] == "spk2"
    audio, rate = sf.read(out.wav_scp["sp1.1-u0"])
    assert rate == FS and len(audio) == out.utt2num_samples["sp1.1-u0"] == pytest.approx(8000 / 1.1, abs=2)
    assert out.utt2dur["sp0.9-u1"] == pytest.approx(8000 / 0.9 / FS, abs=1e-3)
    assert {key for _, key, _ in read_table(tmp_path / "train_sp/spk2utt")} == {
        "spk1", "spk2", "sp0.9-spk1", "sp0.9-spk2", "sp1.1-spk1", "sp1.1-spk2"}


def test_bad_factors_are_refused():
    assert parse_factors("0.9 1.0 1.1") == [0.9, 1.0, 1.1]
    for bad in ("", "0.9 0.9", "0", "3", "-1"):
        with pytest.raises(ValueError, match="distinct factors between 0.5 and 2.0"):
            parse_factors(bad)
