"""The generic importer (softpl.data.manifest, softpl.bin.import_manifest): ids, speakers, text, errors, skipping."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from softpl.bin import import_manifest
from softpl.data.datadir import DataDirError
from softpl.data.manifest import Entry, assign_ids, find_audio, import_data_dir, read_audio_list, read_manifest


def tone(path: Path, frames: int = 1600, fs: int = 16000) -> Path:
    """Write ``frames`` samples of a quiet 440 Hz tone at ``fs`` (duration frames / fs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * np.arange(frames) / fs).astype(np.float32), fs)
    return path


def table(out: Path, name: str) -> list[str]:
    return (out / name).read_text().splitlines()


def import_manifest_file(manifest: Path, out: Path, **options) -> object:
    entries, problems = read_manifest(manifest)
    return import_data_dir(entries, problems, out, labeled=True, **options)


def test_manifest_gives_sorted_kaldi_dir_with_speaker_prefixed_ids_and_normalized_text(tmp_path):
    corpus = tmp_path / "corpus"
    tone(corpus / "spk2" / "b.wav", 1600)                 # speaker: parent folder
    tone(corpus / "spk1" / "a.flac", 8000, fs=8000)       # speaker: third column (white space -> _)
    tone(corpus / "c.wav", 4000)                          # next to the manifest: speaker = stem
    tone(tmp_path / "elsewhere" / "spk1" / "spk1-d.wav", 3200)  # absolute path; stem already carries the speaker
    (corpus / "train.tsv").write_text(
        "spk2/b.wav\tHello, World!\n"
        "spk1/a.flac\t'Tis the dogs' bone\tAnn Lee\n"
        "\n"
        f"c.wav\tlong-forgotten  résumé\n"
        f"{tmp_path / 'elsewhere/spk1/spk1-d.wav'}\tok\n")
    out = tmp_path / "data" / "train"
    summary = import_manifest_file(corpus / "train.tsv", out)

    assert table(out, "wav.scp") == [
        f"Ann_Lee-a {corpus / 'spk1/a.flac'}", f"c {corpus / 'c.wav'}",
        f"spk1-d {tmp_path / 'elsewhere/spk1/spk1-d.wav'}", f"spk2-b {corpus / 'spk2/b.wav'}"]
    assert table(out, "text") == [
        "Ann_Lee-a TIS THE DOGS BONE", "c LONG FORGOTTEN RESUME", "spk1-d OK", "spk2-b HELLO WORLD"]
    assert table(out, "utt2spk") == ["Ann_Lee-a Ann_Lee", "c c", "spk1-d spk1", "spk2-b spk2"]
    assert table(out, "spk2utt") == ["Ann_Lee Ann_Lee-a", "c c", "spk1 spk1-d", "spk2 spk2-b"]
    assert table(out, "utt2dur") == ["Ann_Lee-a 1.0", "c 0.25", "spk1-d 0.2", "spk2-b 0.1"]
    assert (summary.utterances, summary.speakers, summary.skipped) == (4, 4, 0)
    assert summary.seconds == pytest.approx(1.55)
    assert not (out / "skipped_utts.txt").exists() and not out.with_name("train.tmp").exists()


def test_without_normalization_text_is_kept_with_white_space_collapsed(tmp_path):
    tone(tmp_path / "a.wav")
    (tmp_path / "m.tsv").write_text("a.wav\t  Grüße,  die Welt!  \n")
    import_manifest_file(tmp_path / "m.tsv", tmp_path / "out", normalize=False)
    assert table(tmp_path / "out", "text") == ["a Grüße, die Welt!"]


def test_taken_ids_get_a_counter_in_input_order():
    def entry(folder: str) -> Entry:
        return Entry(Path("m.tsv"), 1, Path(f"/c/{folder}/u.wav"), "A", "x")

    assert list(assign_ids([entry("one"), entry("two"), entry("three")])) == ["x-u", "x-u-2", "x-u-3"]


BAD_LINES = {
    "one column": ("a.wav\n", "1 tab-separated column(s)", None),
    "four columns": ("a.wav\tA\tspk\textra\n", "4 tab-separated column(s)", None),
    "empty path": ("\tHELLO\n", "audio path (first column) is empty", None),
    "empty speaker": ("a.wav\tHELLO\t \n", "speaker (third column) is empty", None),
    "missing audio": ("nowhere.wav\tHELLO\n", "audio file not found", "nowhere"),
    "unreadable audio": ("fake.wav\tHELLO\n", "unreadable audio", "fake"),
    "empty transcript": ("b.wav\t \n", "transcript (second column) is empty", "b"),
    "digits": ("b.wav\t1984 IS A NUMBER\n", "'1984' holds digits or symbols", "b"),
    "empty after normalization": ("b.wav\t... !\n", "empty after normalization", "b"),
    "listed twice": ("a.wav\tHELLO\n", "already listed (line 1)", "a-2"),
}


@pytest.mark.parametrize("case", BAD_LINES)
def test_each_bad_line_fails_naming_file_line_and_utterance_and_leaves_out_untouched(tmp_path, case):
    line, message, utt = BAD_LINES[case]
    tone(tmp_path / "a.wav")
    tone(tmp_path / "b.wav")
    (tmp_path / "fake.wav").write_text("not audio")
    manifest = tmp_path / "m.tsv"
    manifest.write_text("a.wav\tGOOD\n" + line)
    out = tmp_path / "out"
    out.mkdir()
    (out / "wav.scp").write_text("old 1\n")
    with pytest.raises(DataDirError) as raised:
        import_manifest_file(manifest, out)
    assert len(raised.value.problems) == 1
    assert f"{manifest}:2:{f' {utt}:' if utt else ''} " in str(raised.value) and message in str(raised.value)
    assert "--skip_bad true" in str(raised.value)
    assert (out / "wav.scp").read_text() == "old 1\n" and sorted(p.name for p in out.iterdir()) == ["wav.scp"]


def test_non_utf8_line_is_named(tmp_path):
    tone(tmp_path / "a.wav")
    (tmp_path / "m.tsv").write_bytes(b"a.wav\tGOOD\na.wav\tCAF\xe9\n")
    with pytest.raises(DataDirError, match=r"m\.tsv:2: not UTF-8"):
        import_manifest_file(tmp_path / "m.tsv", tmp_path / "out")


def test_skip_bad_leaves_bad_lines_out_and_lists_them(tmp_path, capsys):
    tone(tmp_path / "s" / "a.wav")
    tone(tmp_path / "s" / "b.wav")
    tone(tmp_path / "t" / "b.wav")
    manifest = tmp_path / "m.tsv"
    manifest.write_text("s/a.wav\tONE\ns/gone.wav\tTWO\ns/b.wav\t&\njust one column\nt/b.wav\tTHREE\ts\n")
    out = tmp_path / "out"
    assert import_manifest.main(["--manifest", str(manifest), "--output_dir", str(out), "--skip_bad", "true"]) == 0
    assert table(out, "text") == ["s-a ONE", "s-b-2 THREE"]  # ids are assigned before skipping
    skipped = table(out, "skipped_utts.txt")
    assert [line.split("\t")[0] for line in skipped] == ["s-gone", "s-b", f"{manifest}:4"]
    assert f"{manifest}:2: s-gone: audio file not found" in skipped[0]
    assert f"{manifest}:3: s-b: transcript '&' cannot be normalized: '&' holds digits or symbols" in skipped[1]
    assert f"{manifest}:4: 1 tab-separated column(s)" in skipped[2]
    printed = capsys.readouterr().out
    assert "skipped 3 of 5 utterances" in printed and f"{out}: 2 labeled utterances" in printed


def test_skip_bad_with_nothing_left_fails(tmp_path):
    (tmp_path / "m.tsv").write_text("gone.wav\tHELLO\n")
    entries, problems = read_manifest(tmp_path / "m.tsv")
    with pytest.raises(DataDirError, match="nothing left to import"):
        import_data_dir(entries, problems, tmp_path / "out", labeled=True, skip_bad=True)


def test_cli_error_exits_1_naming_the_line(tmp_path, capsys):
    (tmp_path / "m.tsv").write_text("gone.wav\tHELLO\n")
    assert import_manifest.main(["--manifest", str(tmp_path / "m.tsv"), "--output_dir", str(tmp_path / "out")]) == 1
    assert f"{tmp_path / 'm.tsv'}:1: gone: audio file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_audio_folder_is_searched_recursively_for_audio_only(tmp_path):
    root = tmp_path / "unlab"
    tone(root / "x.wav")                       # in the root: speaker = stem
    tone(root / "spk9" / "deep" / "y.FLAC")    # speaker = parent folder, extension in any case
    tone(root / "spk9" / "z.ogg", 3200)
    (root / "spk9" / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    assert import_manifest.main(["--audio_dir", str(root), "--output_dir", str(out), "--nj", "2"]) == 0
    assert table(out, "wav.scp") == [f"deep-y {root / 'spk9/deep/y.FLAC'}", f"spk9-z {root / 'spk9/z.ogg'}",
                                     f"x {root / 'x.wav'}"]
    assert table(out, "utt2spk") == ["deep-y deep", "spk9-z spk9", "x x"]
    assert table(out, "utt2dur") == ["deep-y 0.1", "spk9-z 0.2", "x 0.1"]
    assert not (out / "text").exists() and not (out / "text.ref").exists()


def test_audio_folder_without_audio_fails(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataDirError, match="no audio files"):
        find_audio(tmp_path)


def test_audio_list_resolves_relative_paths_and_names_bad_lines(tmp_path):
    lists = tmp_path / "lists"
    tone(lists / "spk" / "a.wav")
    tone(lists / "b.wav")
    listing = lists / "unlab.lst"
    listing.write_text(f"spk/a.wav\n\n{lists / 'b.wav'}\n")  # relative, blank, absolute
    out = tmp_path / "out"
    entries, problems = read_audio_list(listing)
    import_data_dir(entries, problems, out, labeled=False)
    assert table(out, "wav.scp") == [f"b {lists / 'b.wav'}", f"spk-a {lists / 'spk/a.wav'}"]
    assert table(out, "utt2spk") == ["b b", "spk-a spk"]

    listing.write_text("spk/a.wav\nspk/missing.wav\n")
    entries, problems = read_audio_list(listing)
    with pytest.raises(DataDirError, match=r"unlab\.lst:2: spk-missing: audio file not found"):
        import_data_dir(entries, problems, out, labeled=False)


def test_empty_or_absent_manifest_is_an_error(tmp_path):
    (tmp_path / "empty.tsv").write_text("\n\n")
    with pytest.raises(DataDirError, match="empty.tsv: lists no utterance"):
        read_manifest(tmp_path / "empty.tsv")
    with pytest.raises(DataDirError, match="absent.tsv: file not found"):
        read_manifest(tmp_path / "absent.tsv")
