"""Stage 2 formatting (softpl.data.format_audio, softpl.bin.format_data): resampling, downmixing, atomic output."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from softpl.bin import format_data
from softpl.data.datadir import DataDirError, read_table
from softpl.data.format_audio import format_data_dir


def sine(frames, fs, channels=1, hz=440.0):
    """A 440 Hz sine of amplitude 0.5 in channel 0, 0.25 in channel 1: their mean has amplitude 0.375."""
    t = np.arange(frames) / fs
    wave = 0.5 * np.sin(2 * np.pi * hz * t)
    return np.stack([wave / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


def make_src(root, audio: dict[str, tuple[int, int, int]]):
    """A labeled source dir; ``audio`` maps uttid -> (frames, fs, channels) of a 440 Hz sine."""
    root.mkdir(parents=True)
    for utt, (frames, fs, channels) in audio.items():
        sf.write(root / f"{utt}.flac", sine(frames, fs, channels), fs)
    (root / "wav.scp").write_text("".join(f"{u} {root / f'{u}.flac'}\n" for u in audio))
    (root / "text").write_text("".join(f"{u} TEXT OF {u.upper()}\n" for u in audio))
    (root / "text.ref").write_text("".join(f"{u} REF OF {u.upper()}\n" for u in audio))
    (root / "utt2spk").write_text("".join(f"{u} spk\n" for u in audio))
    (root / "spk2utt").write_text("spk " + " ".join(audio) + "\n")
    return root


def test_resamples_8k_stereo_to_16k_mono_with_the_right_duration(tmp_path):
    src = make_src(tmp_path / "src", {"a": (2000, 8000, 2), "b": (4000, 16000, 1)})
    dst = tmp_path / "dump" / "dev"
    summary = format_data_dir(src, dst, fs=16000)
    counts = (summary.utterances, summary.resampled, summary.downmixed, summary.skipped, summary.in_place)
    assert counts == (2, 1, 1, 0, 1)
    assert summary.seconds == pytest.approx(0.5)
    info = sf.info(dst / "data" / "a.wav")
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 4000, "PCM_16")
    samples, _ = sf.read(dst / "data" / "a.wav")
    # Away from the edges: the channel mean (0.75 x channel 0) sampled at 16 kHz, up to PCM_16 and filter error.
    np.testing.assert_allclose(samples[200:-200], 0.75 * sine(4000, 16000)[200:-200, 0], atol=0.01)
    # b is a 16 kHz mono FLAC already: referenced where it is, not rewritten.
    assert read_table(dst / "wav.scp") == [(1, "a", str(dst / "data" / "a.wav")), (2, "b", str(src / "b.flac"))]
    assert sorted(p.name for p in (dst / "data").iterdir()) == ["a.wav"]
    assert (dst / "utt2num_samples").read_text() == "a 4000\nb 4000\n"
    assert (dst / "utt2dur").read_text() == "a 0.2500\nb 0.2500\n"
    for name in ("text", "text.ref", "utt2spk", "spk2utt"):
        assert (dst / name).read_text() == (src / name).read_text(), name


def test_usable_wav_and_flac_stay_in_place_and_the_rest_is_rewritten(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "w.wav", sine(1600, 16000), 16000, subtype="PCM_16")
    sf.write(src / "f.flac", sine(1600, 16000), 16000)
    sf.write(src / "o.ogg", sine(1600, 16000), 16000)  # a format soundfile reads but ESPnet's recipes do not keep
    sf.write(src / "s.flac", sine(1600, 16000, channels=2), 16000)
    sf.write(src / "r.wav", sine(2400, 24000), 24000, subtype="PCM_16")
    utts = ["f", "o", "r", "s", "w"]
    files = {"f": "f.flac", "o": "o.ogg", "r": "r.wav", "s": "s.flac", "w": "w.wav"}
    (src / "wav.scp").write_text("".join(f"{u} {src / files[u]}\n" for u in utts))
    (src / "text").write_text("".join(f"{u} TEXT\n" for u in utts))
    (src / "utt2spk").write_text("".join(f"{u} spk\n" for u in utts))
    (src / "spk2utt").write_text("spk " + " ".join(utts) + "\n")
    dst = tmp_path / "dst"
    summary = format_data_dir(src, dst, fs=16000)
    assert (summary.utterances, summary.in_place, summary.resampled, summary.downmixed) == (5, 2, 1, 1)
    assert dict((key, value) for _, key, value in read_table(dst / "wav.scp")) == {
        "f": str(src / "f.flac"), "w": str(src / "w.wav"),
        "o": str(dst / "data/o.wav"), "r": str(dst / "data/r.wav"), "s": str(dst / "data/s.wav")}
    assert (dst / "utt2num_samples").read_text() == "f 1600\no 1600\nr 1600\ns 1600\nw 1600\n"


def test_a_truncated_wav_is_not_kept_in_place(tmp_path):
    src = make_src(tmp_path / "src", {"a": (4000, 16000, 1)})
    sf.write(src / "t.wav", sine(4000, 16000), 16000, subtype="PCM_16")
    (src / "t.wav").write_bytes((src / "t.wav").read_bytes()[:3000])
    (src / "wav.scp").write_text(f"a {src / 't.wav'}\n")
    with pytest.raises(DataDirError, match="truncated WAV"):
        format_data_dir(src, tmp_path / "dst", fs=16000)


def test_reads_kaldi_pipe_entries_in_parallel_jobs(tmp_path):
    src = make_src(tmp_path / "src", {"a": (1600, 16000, 1), "b": (800, 8000, 1)})
    (src / "wav.scp").write_text(f"a cat {src / 'a.flac'} |\nb {src / 'b.flac'}\n")
    format_data_dir(src, tmp_path / "dst", fs=16000, nj=2)
    assert (tmp_path / "dst" / "utt2num_samples").read_text() == "a 1600\nb 1600\n"


def test_unreadable_audio_fails_and_leaves_no_partial_output(tmp_path):
    src = make_src(tmp_path / "src", {"a": (1600, 16000, 1), "b": (1600, 16000, 1)})
    dst = tmp_path / "dst"
    format_data_dir(src, dst)
    finished = (dst / "wav.scp").read_text()
    (src / "b.flac").write_bytes(b"not audio")
    with pytest.raises(DataDirError, match=rf"{src / 'wav.scp'}:2: b: unreadable audio"):
        format_data_dir(src, dst)
    assert (dst / "wav.scp").read_text() == finished  # the earlier finished output is untouched
    assert not dst.with_name("dst.tmp").exists()


def test_a_stale_tmp_dir_is_replaced_and_removed(tmp_path):
    src = make_src(tmp_path / "src", {"a": (1600, 8000, 1)})  # 8 kHz: rewritten
    dst = tmp_path / "dst"
    (tmp_path / "dst.tmp" / "data").mkdir(parents=True)
    (tmp_path / "dst.tmp" / "data" / "stale.wav").write_text("half written")
    format_data_dir(src, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]
    assert sorted(p.name for p in (dst / "data").iterdir()) == ["a.wav"]


def test_skip_bad_leaves_out_and_lists_bad_utterances(tmp_path, capsys):
    src = make_src(tmp_path / "src", {"a": (1600, 8000, 1), "b": (1600, 8000, 1), "c": (1600, 8000, 1)})
    (src / "a.flac").unlink()
    (src / "text").write_text("a TEXT\nb TEXT\nc\n")
    dst = tmp_path / "dst"
    summary = format_data_dir(src, dst, skip_bad=True)
    assert (summary.utterances, summary.skipped) == (1, 2)
    for name in ("wav.scp", "text", "text.ref", "utt2spk", "utt2dur", "utt2num_samples"):
        assert [row.key for row in read_table(dst / name)] == ["b"], name
    assert (dst / "spk2utt").read_text() == "spk b\n"
    assert (dst / "skipped_utts.txt").read_text() == f"a\taudio file not found: {src / 'a.flac'}\nc\tempty transcript\n"
    assert f"{dst.absolute()}: skipped 2 of 3 utterances" in capsys.readouterr().out
    assert sorted(p.name for p in (dst / "data").iterdir()) == ["b.wav"]


def test_utterance_ids_must_be_usable_as_file_names(tmp_path):
    src = make_src(tmp_path / "src", {"a": (1600, 16000, 1)})
    for name in ("wav.scp", "text", "text.ref", "utt2spk"):
        (src / name).write_text((src / name).read_text().replace("a ", "x/a ", 1))
    (src / "spk2utt").write_text("spk x/a\n")
    with pytest.raises(DataDirError, match=rf"{src / 'wav.scp'}:1: x/a: utterance id cannot be a file name"):
        format_data_dir(src, tmp_path / "dst")


def test_cli_exit_codes(tmp_path, capsys):
    src = make_src(tmp_path / "src", {"a": (1600, 8000, 2)})
    dst = tmp_path / "dst"
    assert format_data.main(["--data_dir", str(src), "--output_dir", str(dst), "--fs", "16000"]) == 0
    assert capsys.readouterr().out.endswith(f"{dst}: 1 utterances, 0.00 hours at 16000 Hz mono; 0 used in place, "
                                            "1 written (resampled 1, downmixed 1)\n")
    (src / "text").write_text("a\n")
    assert format_data.main(["--data_dir", str(src), "--output_dir", str(dst), "--skip_bad", "false"]) == 1
    assert f"{src / 'text'}:1: a: empty transcript" in capsys.readouterr().err
