"""Kaldi table I/O, DataDir round trips and wav.scp audio loading (softpl.data.datadir)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from softpl.data.datadir import (
    AudioError,
    DataDir,
    DataDirError,
    Problem,
    copy_data_dir,
    load_audio,
    read_table,
    utt2spk_to_spk2utt,
    write_data_dir,
    write_table,
)


def write_wav(path, frames=3200, fs=16000, channels=1, subtype="PCM_16"):
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, (frames, channels)).astype(np.float32)
    sf.write(path, noise, fs, subtype=subtype)
    return path


def test_read_table_keeps_line_numbers_duplicates_and_empty_values(tmp_path):
    path = tmp_path / "text"
    path.write_text("a1 HELLO  WORLD \nb2\tTAB SEP\nc3\na1 AGAIN\n", encoding="utf-8")
    assert read_table(path) == [(1, "a1", "HELLO  WORLD"), (2, "b2", "TAB SEP"), (3, "c3", ""), (4, "a1", "AGAIN")]


def test_read_table_names_file_and_line_of_blank_and_non_utf8_lines(tmp_path):
    path = tmp_path / "wav.scp"
    path.write_bytes(b"a x.wav\n\nb \xff.wav\n  c y.wav\n")
    with pytest.raises(DataDirError) as err:
        read_table(path)
    assert [p.line for p in err.value.problems] == [2, 3, 4]
    assert f"{path}:2: blank line" in str(err.value)
    assert f"{path}:3: not UTF-8" in str(err.value)


def test_write_table_sorts_in_c_locale_order_atomically(tmp_path):
    path = tmp_path / "text"
    path.write_text("old content\n")
    write_table(path, {"b": "x", "a_1": "y", "B": "z", "a": ""})
    # C locale: upper case before lower case, "a" before "a_1"; an empty value leaves the key alone.
    assert path.read_text() == "B z\na\na_1 y\nb x\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text"]


def test_write_table_rejects_keys_with_whitespace(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        write_table(tmp_path / "text", [("a b", "x")])


def test_utt2spk_to_spk2utt_groups_sorted_utterances():
    utt2spk = {"s2-u2": "s2", "s1-u1": "s1", "s2-u1": "s2"}
    assert utt2spk_to_spk2utt(utt2spk) == {"s1": "s1-u1", "s2": "s2-u1 s2-u2"}


def test_write_data_dir_and_load_round_trip(tmp_path):
    data = DataDir(wav_scp={"u2": "/w/u2.wav", "u1": "/w/u1.wav"}, text={"u1": "A B", "u2": "C"},
                   utt2spk={"u1": "s1", "u2": "s1"}, utt2dur={"u1": 1.5, "u2": 0.25},
                   utt2num_samples={"u1": 24000, "u2": 4000})
    write_data_dir(tmp_path, data)
    assert (tmp_path / "spk2utt").read_text() == "s1 u1 u2\n"
    assert (tmp_path / "wav.scp").read_text() == "u1 /w/u1.wav\nu2 /w/u2.wav\n"
    loaded = DataDir.load(tmp_path)
    assert loaded == data
    assert loaded.total_seconds() == 1.75


def test_data_dir_load_names_duplicate_and_non_numeric_lines(tmp_path):
    (tmp_path / "wav.scp").write_text("u1 a.wav\nu2 b.wav\nu1 c.wav\n")
    with pytest.raises(DataDirError, match=rf"{tmp_path / 'wav.scp'}:3: u1: duplicate id \(first at line 1\)"):
        DataDir.load(tmp_path)
    (tmp_path / "wav.scp").write_text("u1 a.wav\n")
    (tmp_path / "utt2dur").write_text("u1 1,5\n")
    with pytest.raises(DataDirError, match=rf"{tmp_path / 'utt2dur'}:1: u1: value '1,5' is not float"):
        DataDir.load(tmp_path)


def test_copy_data_dir_excludes_ids_from_every_table(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "wav.scp").write_text("u1 a.wav\nu2 b.wav\nu3 c.wav\n")
    (src / "text").write_text("u1 A\nu2 B\nu3 C\n")
    (src / "utt2spk").write_text("u1 s1\nu2 s2\nu3 s1\n")
    copy_data_dir(src, dst, exclude={"u2"})
    assert (dst / "wav.scp").read_text() == "u1 a.wav\nu3 c.wav\n"
    assert (dst / "text").read_text() == "u1 A\nu3 C\n"
    assert (dst / "spk2utt").read_text() == "s1 u1 u3\n"
    assert not (dst / "text.ref").exists()


def test_problem_str_names_file_line_utt_and_fix(tmp_path):
    problem = Problem(tmp_path / "text", 7, "u9", "empty transcript", "supply it")
    assert str(problem) == f"{tmp_path / 'text'}:7: u9: empty transcript -> supply it"
    assert str(Problem(tmp_path / "utt2spk", None, None, "missing", "create it")) == \
        f"{tmp_path / 'utt2spk'}: missing -> create it"


def test_data_dir_error_caps_the_listing():
    problems = [Problem("text", i, f"u{i}", "empty transcript", "fix") for i in range(1, 26)]
    message = str(DataDirError(problems))
    assert "text:20: u20:" in message and "text:21:" not in message
    assert message.endswith("... and 5 more")


def test_load_audio_reads_a_path_and_a_pipe_entry(tmp_path):
    wav = write_wav(tmp_path / "a.wav", frames=1000, channels=2)
    samples, fs = load_audio(str(wav))
    assert samples.shape == (1000, 2) and fs == 16000
    piped, _ = load_audio(f"cat {wav} |")
    np.testing.assert_array_equal(piped, samples)


def test_load_audio_reports_a_failing_command(tmp_path):
    with pytest.raises(AudioError, match="exit code 3"):
        load_audio("exit 3 |")


def test_load_audio_catches_a_truncated_wav(tmp_path):
    wav = write_wav(tmp_path / "a.wav")
    wav.write_bytes(wav.read_bytes()[:2000])  # libsndfile alone would return the 978 frames left, silently
    with pytest.raises(AudioError, match="truncated WAV"):
        load_audio(str(wav))


def test_load_audio_accepts_a_streamed_wav_header(tmp_path):
    """espeak-ng --stdout, sox and ffmpeg write a placeholder size when they cannot seek back; that is not damage."""
    wav = write_wav(tmp_path / "a.wav", frames=500)
    data = bytearray(wav.read_bytes())
    data[4:8] = data[40:44] = (0x7FFFF000).to_bytes(4, "little")
    wav.write_bytes(bytes(data))
    samples, _ = load_audio(str(wav))
    assert len(samples) == 500


def test_fingerprint_covers_ids_transcripts_and_audio_bytes_not_paths(tmp_path):
    def data_dir(name, transcript="HELLO", frames=3200, utt="u1"):
        d = tmp_path / name
        d.mkdir()
        wav = write_wav(d / "a.wav", frames=frames)
        write_data_dir(d, DataDir(wav_scp={utt: str(wav)}, text={utt: transcript}, utt2spk={utt: "s"}))
        return DataDir.load(d).fingerprint()

    reference = data_dir("ref")
    assert len(reference) == 16 and data_dir("elsewhere") == reference  # the same data at another path
    assert data_dir("text", transcript="HELLO THERE") != reference
    assert data_dir("audio", frames=3201) != reference
    assert data_dir("ids", utt="u2") != reference
