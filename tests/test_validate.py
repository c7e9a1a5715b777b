"""validate_data_dir: one test per bad-input case, each on an otherwise clean dir; raise_or_skip; the CLI."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from softpl.bin import validate_data
from softpl.data.datadir import DataDirError, read_table
from softpl.data.validate import allowed_characters, raise_or_skip, validate_data_dir


def write_wav(path, frames=3200, fs=16000, channels=1, fmt=None):
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, (frames, channels)).astype(np.float32)
    sf.write(path, noise, fs, format=fmt)
    return path


def make_dir(root, utts=("u1", "u2", "u3"), text=True):
    """A clean labeled dir: 0.2 s of 16 kHz mono noise per utterance, speaker = utterance id."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "wav.scp").write_text("".join(f"{u} {write_wav(root / f'{u}.wav')}\n" for u in utts))
    if text:
        (root / "text").write_text("".join(f"{u} HELLO WORLD\n" for u in utts))
    (root / "utt2spk").write_text("".join(f"{u} {u}\n" for u in utts))
    (root / "spk2utt").write_text("".join(f"{u} {u}\n" for u in utts))
    return root


def set_line(path, line_no, new_line):
    lines = path.read_text().splitlines()
    lines[line_no - 1] = new_line
    path.write_text("".join(f"{line}\n" for line in lines))


def only_problem(problems, file, line, utt, *words):
    """The single problem found, checked to name ``file:line: utt:`` (no utt when None) and the given words."""
    assert len(problems) == 1, [str(p) for p in problems]
    text = str(problems[0])
    assert text.startswith(f"{file}:{line}: " + (f"{utt}: " if utt else "")), text
    for word in words:
        assert word in text
    return problems[0]


def test_clean_dir_has_no_problems(tmp_path):
    assert validate_data_dir(make_dir(tmp_path / "d"), require_text=True) == []


def test_missing_audio_file(tmp_path):
    d = make_dir(tmp_path / "d")
    (d / "u2.wav").unlink()
    only_problem(validate_data_dir(d), d / "wav.scp", 2, "u2", "audio file not found", str(d / "u2.wav"))


@pytest.mark.parametrize("kind", ["directory", "text file"])
def test_unreadable_audio(tmp_path, kind):
    d = make_dir(tmp_path / "d")
    (d / "u1.wav").unlink()
    if kind == "directory":
        (d / "u1.wav").mkdir()
        expected = "not a regular file"
    else:
        (d / "u1.wav").write_text("this is not audio\n")
        expected = "unreadable audio"
    only_problem(validate_data_dir(d), d / "wav.scp", 1, "u1", expected)


@pytest.mark.parametrize("kind", ["truncated wav", "garbled flac"])
def test_corrupt_audio(tmp_path, kind):
    d = make_dir(tmp_path / "d")
    if kind == "truncated wav":
        data = (d / "u3.wav").read_bytes()
        (d / "u3.wav").write_bytes(data[: len(data) // 3])
        expected = "truncated WAV"
    else:  # a valid header, then garbage in the middle of the stream: only decoding finds it
        data = bytearray(write_wav(d / "u3.wav", fmt="FLAC").read_bytes())
        data[len(data) // 2: len(data) // 2 + 500] = b"\x55" * 500
        (d / "u3.wav").write_bytes(bytes(data))
        expected = "decoding failed"
    only_problem(validate_data_dir(d), d / "wav.scp", 3, "u3", "corrupt audio", expected)


def test_empty_audio(tmp_path):
    d = make_dir(tmp_path / "d")
    write_wav(d / "u2.wav", frames=0)
    only_problem(validate_data_dir(d), d / "wav.scp", 2, "u2", "empty audio (0 samples)")


def test_wrong_sample_rate(tmp_path):
    d = make_dir(tmp_path / "d")
    write_wav(d / "u1.wav", fs=8000)
    only_problem(validate_data_dir(d, fs=16000), d / "wav.scp", 1, "u1", "sample rate 8000 Hz, expected 16000 Hz")


def test_wrong_channel_count(tmp_path):
    d = make_dir(tmp_path / "d")
    write_wav(d / "u3.wav", channels=2)
    only_problem(validate_data_dir(d), d / "wav.scp", 3, "u3", "2 channels, expected mono")


def test_duplicate_ids(tmp_path):
    d = make_dir(tmp_path / "d")
    set_line(d / "text", 3, "u2 AGAIN")  # u1 u2 u2: sorted, but u2 twice and u3 missing
    problems = validate_data_dir(d, check_audio=False)
    assert str(problems[0]).startswith(f"{d / 'text'}:3: u2: duplicate id (first at line 2)")
    assert [str(p).split(" ->")[0] for p in problems[1:]] == [f"{d / 'wav.scp'}:3: u3: id missing from text"]


def test_unsorted_ids(tmp_path):
    d = make_dir(tmp_path / "d")
    (d / "utt2spk").write_text("u1 u1\nu3 u3\nu2 u2\n")
    problem = only_problem(validate_data_dir(d, check_audio=False), d / "utt2spk", 3, None,
                           "ids not sorted: 'u2' comes after 'u3' (line 2)", "LC_ALL=C sort")
    assert not problem.skippable


def test_id_in_text_not_in_wav_scp(tmp_path):
    d = make_dir(tmp_path / "d")
    (d / "text").write_text("u1 A\nu2 B\nu3 C\nu4 D\n")
    only_problem(validate_data_dir(d, check_audio=False), d / "text", 4, "u4", "id not in wav.scp")


def test_id_in_wav_scp_not_in_text(tmp_path):
    d = make_dir(tmp_path / "d")
    (d / "text").write_text("u1 A\nu3 C\n")
    only_problem(validate_data_dir(d, check_audio=False), d / "wav.scp", 2, "u2", "id missing from text")


def test_id_in_wav_scp_not_in_utt2spk(tmp_path):
    d = make_dir(tmp_path / "d")
    (d / "utt2spk").write_text("u1 u1\nu2 u2\n")
    (d / "spk2utt").write_text("u1 u1\nu2 u2\n")
    only_problem(validate_data_dir(d, check_audio=False), d / "wav.scp", 3, "u3", "id missing from utt2spk")


def test_spk2utt_disagreeing_with_utt2spk(tmp_path):
    d = make_dir(tmp_path / "d")
    set_line(d / "spk2utt", 2, "u2 u2 u3")
    only_problem(validate_data_dir(d, check_audio=False), d / "spk2utt", 2, None,
                 "speaker 'u2': utterances differ from utt2spk")


def test_empty_transcript(tmp_path):
    d = make_dir(tmp_path / "d")
    set_line(d / "text", 2, "u2   ")
    only_problem(validate_data_dir(d, check_audio=False), d / "text", 2, "u2", "empty transcript")


def test_character_outside_the_token_set(tmp_path):
    d = make_dir(tmp_path / "d")
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blank>\n<unk>\n\u2581HE\nLLO\n\u2581WOR\nLD\n<sos/eos>\n")
    set_line(d / "text", 3, "u3 HELLO WÖRLD<")
    only_problem(validate_data_dir(d, check_audio=False, token_list=tokens), d / "text", 3, "u3",
                 "characters not in token list", "'<' (U+003C), 'Ö' (U+00D6)")


def test_allowed_characters_read_the_space_marker_and_ignore_special_tokens(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blank>\n<unk>\n\u2581a\nbc\n<sos/eos>\n")
    assert allowed_characters(tokens) == {" ", "a", "b", "c"}


def test_unlabeled_id_also_labeled(tmp_path):
    labeled = make_dir(tmp_path / "train", utts=("l1", "u2"))
    d = make_dir(tmp_path / "unlab", text=False)
    only_problem(validate_data_dir(d, check_audio=False, labeled_dirs=[labeled]), d / "wav.scp", 2, "u2",
                 f"also labeled ({labeled / 'text'}:2)")


def test_labeled_dirs_must_be_labeled(tmp_path):
    not_labeled = make_dir(tmp_path / "other", text=False)
    d = make_dir(tmp_path / "unlab", text=False)
    problems = validate_data_dir(d, check_audio=False, labeled_dirs=[not_labeled])
    assert [str(p).split(" ->")[0] for p in problems] == [f"{not_labeled / 'text'}: labeled set has no text"]


def test_require_text(tmp_path):
    labeled, unlabeled = make_dir(tmp_path / "l"), make_dir(tmp_path / "u", text=False)
    assert "an unlabeled set must not have text" in str(validate_data_dir(labeled, require_text=False)[0])
    assert "a labeled set needs transcripts" in str(validate_data_dir(unlabeled, require_text=True)[0])


def test_missing_utt2spk_and_wav_scp(tmp_path):
    d = make_dir(tmp_path / "d")
    (d / "utt2spk").unlink()
    assert [str(p).split(" ->")[0] for p in validate_data_dir(d, check_audio=False)] == [f"{d / 'utt2spk'}: missing"]
    (d / "wav.scp").unlink()
    assert [str(p).split(" ->")[0] for p in validate_data_dir(d)] == [f"{d / 'wav.scp'}: missing"]


def make_dir_with_two_bad(root):
    d = make_dir(root, utts=("u1", "u2", "u3", "u4"))
    (d / "u2.wav").unlink()
    set_line(d / "text", 4, "u4")
    return d


def test_skip_bad_drops_exactly_the_bad_utterances(tmp_path, capsys):
    d = make_dir_with_two_bad(tmp_path / "d")
    skipped = raise_or_skip(validate_data_dir(d), d, skip_bad=True)
    assert list(skipped) == ["u2", "u4"]
    for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
        assert [row.key for row in read_table(d / name)] == ["u1", "u3"], name
    assert (d / "skipped_utts.txt").read_text() == (
        f"u2\taudio file not found: {d / 'u2.wav'}\nu4\tempty transcript\n")
    assert f"skipped 2 of 4 utterances (listed in {d / 'skipped_utts.txt'})" in capsys.readouterr().out
    assert validate_data_dir(d) == []


def test_without_skip_bad_every_problem_is_raised_and_nothing_changes(tmp_path):
    d = make_dir_with_two_bad(tmp_path / "d")
    before = (d / "text").read_text()
    with pytest.raises(DataDirError) as err:
        raise_or_skip(validate_data_dir(d), d, skip_bad=False)
    assert f"{d / 'wav.scp'}:2: u2: audio file not found" in str(err.value)
    assert f"{d / 'text'}:4: u4: empty transcript" in str(err.value)
    assert "--skip_bad true" in str(err.value)
    assert (d / "text").read_text() == before and not (d / "skipped_utts.txt").exists()


def test_problems_not_tied_to_an_utterance_cannot_be_skipped(tmp_path):
    d = make_dir_with_two_bad(tmp_path / "d")
    (d / "utt2spk").write_text("u1 u1\nu3 u3\nu2 u2\nu4 u4\n")
    with pytest.raises(DataDirError, match="cannot be skipped") as err:
        raise_or_skip(validate_data_dir(d), d, skip_bad=True)
    assert f"{d / 'utt2spk'}:3: ids not sorted" in str(err.value)
    assert (d / "wav.scp").read_text().count("\n") == 4


def test_cli_ok_and_exit_codes(tmp_path, capsys):
    d = make_dir(tmp_path / "d")
    assert validate_data.main(["--data_dir", str(d)]) == 0
    assert capsys.readouterr().out == f"OK: {d} (3 utterances, 0.00 hours)\n"
    (d / "u1.wav").unlink()
    assert validate_data.main(["--data_dir", str(d)]) == 1
    err = capsys.readouterr().err
    assert f"{d / 'wav.scp'}:1: u1: audio file not found" in err
    assert validate_data.main(["--data_dir", str(d), "--audio_check", "false"]) == 0
    assert capsys.readouterr().out == f"OK: {d} (3 utterances, duration unknown: no utt2dur)\n"
    assert validate_data.main(["--data_dir", str(d), "--skip_bad", "true"]) == 0
    assert "OK: " in capsys.readouterr().out and "u1" not in (d / "wav.scp").read_text()


def test_cli_process_exits_1_without_a_traceback(tmp_path):
    d = make_dir(tmp_path / "d")
    (d / "text").write_text("u1 A\nu2 B\nu3\n")
    run = subprocess.run([sys.executable, "-m", "softpl.bin.validate_data", "--data_dir", str(d)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert run.returncode == 1
    assert f"{d / 'text'}:3: u3: empty transcript" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""
