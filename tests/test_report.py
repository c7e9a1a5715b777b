"""softpl.bin.score (scores.json, ESPnet's score_* layout) and softpl.bin.report (RESULTS.md files)."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from softpl.bin import report, score
from softpl.data.datadir import DataDir
from softpl.scoring.sclite import find_sclite
from softpl.scoring.wer import ErrorCounts

try:
    find_sclite()
    HAS_SCLITE = True
except FileNotFoundError:
    HAS_SCLITE = False

REF = "u1 THE CAT SAT\nu2 A DOG\nu3 HELLO\n"
HYP = "u1 the cat sat on\nu2 a fog\n"  # u3 missing: scored as an empty hypothesis
UTT2SPK = "u1 s1\nu2 s1\nu3 s2\n"
# Words: u1 C3 I1, u2 C1 S1, u3 D1.
WER = {"n_sent": 3, "n_ref": 6, "corr": 4, "sub": 1, "del": 1, "ins": 1, "err": 3, "sent_err": 3, "error_rate": 50.0}
# Chars (<space> between words): u1 11 ref chars all correct + I3 ("<space> o n"), u2 "a dog"/"a fog" C4 S1,
# u3 "hello" D5.
CER = {"n_sent": 3, "n_ref": 21, "corr": 15, "sub": 1, "del": 5, "ins": 3, "err": 9, "sent_err": 3,
       "error_rate": 100 * 9 / 21}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def texts(tmp_path):
    return (_write(tmp_path / "data" / "text", REF), _write(tmp_path / "decode" / "text", HYP),
            _write(tmp_path / "data" / "utt2spk", UTT2SPK))


@pytest.mark.skipif(not HAS_SCLITE, reason="sclite (NIST SCTK) not installed: apt-get install sctk")
def test_score_writes_espnet_layout_and_agrees_with_sclite(texts, tmp_path, caplog):
    ref, hyp, utt2spk = texts
    out = tmp_path / "decode"
    with caplog.at_level(logging.WARNING):
        scores = score.score(ref, hyp, out, utt2spk)
    assert "1 of 3 reference utterances have no hypothesis" in caplog.text and "u3" in caplog.text
    assert scores["wer"] == WER
    assert scores["cer"] == pytest.approx(CER)
    assert (scores["n_utts"], scores["n_missing_hyp"], scores["sclite_checked"]) == (3, 1, True)
    assert json.loads((out / "scores.json").read_text()) == scores
    for metric in ("wer", "cer"):
        assert {p.name for p in (out / f"score_{metric}").iterdir()} == {"ref.trn", "hyp.trn", "result.txt"}
    assert (out / "score_wer" / "hyp.trn").read_text() == "the cat sat on\t(s1-u1)\na fog\t(s1-u2)\n\t(s2-u3)\n"
    assert (out / "score_cer" / "ref.trn").read_text().splitlines()[1] == "A <space> D O G\t(s1-u2)"


def test_score_cli_without_sclite(texts, tmp_path, capsys):
    ref, hyp, _ = texts
    out = tmp_path / "py_only"
    score.main(["--ref", str(ref), "--hyp", str(hyp), "--output_dir", str(out), "--sclite", "false"])
    line = capsys.readouterr().out.strip()
    assert line == (f"{out}: WER 50.00% (S 1 D 1 I 1 / 6), CER 42.86% (S 1 D 5 I 3 / 21) over 3 utterances; "
                    "sclite not run")
    assert not (out / "score_wer" / "result.txt").exists()
    # without utt2spk each utterance is its own speaker
    assert (out / "score_wer" / "ref.trn").read_text().splitlines()[0] == "THE CAT SAT\t(u1-u1)"
    assert json.loads((out / "scores.json").read_text())["wer"] == WER


def test_key_only_hypothesis_line_is_an_empty_hypothesis(tmp_path):
    ref = _write(tmp_path / "ref", "u1 A B\n")
    hyp = _write(tmp_path / "hyp", "u1\n")  # what a decoder writes for an empty output
    scores = score.score(ref, hyp, tmp_path / "out", use_sclite=HAS_SCLITE)
    assert (scores["wer"]["del"], scores["wer"]["n_ref"], scores["n_missing_hyp"]) == (2, 2, 0)
    assert (scores["cer"]["del"], scores["cer"]["n_ref"]) == (3, 3)


def test_score_module_entry_point(texts, tmp_path):
    ref, hyp, _ = texts
    proc = subprocess.run([sys.executable, "-m", "softpl.bin.score", "--ref", str(ref), "--hyp", str(hyp),
                           "--output_dir", str(tmp_path / "cli"), "--sclite", "false"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "WER 50.00%" in proc.stdout


@pytest.mark.parametrize("ref_text, hyp_text, spk_text, message", [
    (REF, HYP + "u9 extra words\n", None,
     r"text:3: utterance u9 has no reference in .*text \(1 such: u9\)"),
    (REF + "u2 AGAIN\n", HYP, None, r"text:4: utterance u2 appears again \(first at line 2\)"),
    (REF, HYP, "u1 s1\nu2 s1\n", r"utt2spk: no speaker for utterance u3 of .*text:3"),
    ("u1 MAIL AT@HOME\n", "u1 mail\n", None, r"text:1: utterance u1: token '@' is sclite markup"),
    ("", HYP, None, r"text: no utterances to score"),
])
def test_score_rejects_bad_input(tmp_path, ref_text, hyp_text, spk_text, message):
    ref = _write(tmp_path / "ref" / "text", ref_text)
    hyp = _write(tmp_path / "hyp" / "text", hyp_text)
    utt2spk = _write(tmp_path / "ref" / "utt2spk", spk_text) if spk_text else None
    _write(tmp_path / "out" / "scores.json", "{}")  # from an earlier run: must not survive a failed rescoring
    with pytest.raises(ValueError, match=message):
        score.score(ref, hyp, tmp_path / "out", utt2spk, use_sclite=False)
    assert not (tmp_path / "out" / "scores.json").exists()


# --- RESULTS.md ------------------------------------------------------------------------------------------------

SEED_DEV_WER = ErrorCounts(n_sent=4, n_ref=20, corr=17, sub=2, del_=1, ins=1, sent_err=2)  # Err 4/20 = 20%
SEED_DEV_CER = ErrorCounts(n_sent=4, n_ref=80, corr=76, sub=2, del_=2, ins=0, sent_err=2)  # 4/80 = 5%
SEED_TEST_WER = ErrorCounts(n_sent=2, n_ref=8, corr=7, sub=1, del_=0, ins=0, sent_err=1)  # 12.5%
SEED_TEST_CER = ErrorCounts(n_sent=2, n_ref=30, corr=29, sub=1, del_=0, ins=0, sent_err=1)  # 3.333...%
PL_DEV_WER = ErrorCounts(n_sent=4, n_ref=20, corr=19, sub=1, del_=0, ins=0, sent_err=1)  # 5%
PL_DEV_CER = ErrorCounts(n_sent=4, n_ref=80, corr=79, sub=0, del_=1, ins=0, sent_err=1)  # 1.25%


def _scores(wer: ErrorCounts, cer: ErrorCounts) -> str:
    return json.dumps({"wer": wer.to_dict(), "cer": cer.to_dict(), "n_utts": wer.n_sent})


@pytest.fixture
def exp_dir(tmp_path):
    exp = tmp_path / "exp"
    _write(exp / "seed" / "decode_greedy" / "dev" / "scores.json", _scores(SEED_DEV_WER, SEED_DEV_CER))
    _write(exp / "seed" / "decode_greedy" / "test" / "scores.json", _scores(SEED_TEST_WER, SEED_TEST_CER))
    _write(exp / "seed" / "decode_greedy" / "logdir" / "decode.log", "not a set\n")
    _write(exp / "pl_soft" / "decode_greedy" / "dev" / "scores.json", _scores(PL_DEV_WER, PL_DEV_CER))
    _write(exp / "pl_soft" / "train.log", "")
    _write(exp / "unscored" / "decode_greedy" / "dev" / "text", "u1 hello\n")
    return exp


def _tables(markdown: str) -> list[list[dict[str, str]]]:
    """Parse every markdown table back into rows of {header: cell}."""
    tables, block = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line.strip("|").split("|"))
        elif block:
            header, _, *body = block
            tables.append([dict(zip(header, cells)) for cells in body])
            block = []
    return tables


def test_report_summary_order_values_and_header(exp_dir, tmp_path, caplog):
    out = tmp_path / "RESULTS.md"
    with caplog.at_level(logging.WARNING):
        report.main(["--exp_dir", str(exp_dir), "--out", str(out), "--title", "toy corpus",
                     "--sets", "test", "dev", "--models", "seed", "pl_soft", "--command", "./run.sh --stage 10"])
    assert "unscored/decode_greedy/dev: decoded but not scored" in caplog.text
    text = out.read_text()
    assert "# toy corpus\n" in text
    assert "- command: `./run.sh --stage 10`\n" in text
    assert "- machine: `" in text and " cores" in text
    assert "- espnet version: `espnet " in text and "- pytorch version: `pytorch " in text
    assert "- system tools: `" in text and "sctk " in text  # the scorer's version (installed by make test)
    (table,) = _tables(text)
    assert list(table[0]) == ["model", "test WER", "test CER", "dev WER", "dev CER"]
    assert table == [
        {"model": "seed/decode_greedy", "test WER": "12.50", "test CER": "3.33", "dev WER": "20.00",
         "dev CER": "5.00"},
        {"model": "pl_soft/decode_greedy", "test WER": "-", "test CER": "-", "dev WER": "5.00", "dev CER": "1.25"},
    ]


@pytest.mark.parametrize("value, plots", [("", None), ("exp/plots", Path("exp/plots"))])
def test_report_cli_empty_plots_folder_means_no_curves(monkeypatch, value, plots):
    calls = []
    monkeypatch.setattr(report, "report", lambda *args: calls.append(args))
    report.main(["--exp_dir", "exp", "--out", "exp/RESULTS.md", "--plots", value])
    assert calls[0][6] == plots  # "" used to become Path("."): curves drawn into the working directory


def test_report_defaults_sorted_models_and_discovered_sets(exp_dir, tmp_path):
    out = tmp_path / "RESULTS.md"
    report.report(exp_dir, out, "t", "cmd")
    (table,) = _tables(out.read_text())
    assert [row["model"] for row in table] == ["pl_soft/decode_greedy", "seed/decode_greedy"]
    assert list(table[0]) == ["model", "dev WER", "dev CER", "test WER", "test CER"]


def test_per_decode_results_md_in_espnet_format(exp_dir, tmp_path):
    report.report(exp_dir, tmp_path / "RESULTS.md", "t", "cmd")
    text = (exp_dir / "seed" / "decode_greedy" / "RESULTS.md").read_text()
    assert text.startswith("<!-- Generated by softpl.bin.report -->\n# RESULTS\n## Environments\n- date: `")
    # The decoding that made the table, so that a stock-ESPnet user knows what reproduces it.
    assert "\n## exp/seed\n\nDecoding: softpl's batched greedy CTC decoding (the best path" in text
    assert "`espnet2.bin.asr_inference --ctc_weight 1.0 --beam_size 1` (a CTC prefix search, no LM)" in text
    assert ".\n\n### WER\n\n|dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err|\n|---|" in text
    assert text.index("### WER") < text.index("### CER")
    wer, cer = _tables(text)
    assert wer == [
        {"dataset": "decode_greedy/dev", "Snt": "4", "Wrd": "20", "Corr": "85.0", "Sub": "10.0", "Del": "5.0",
         "Ins": "5.0", "Err": "20.0", "S.Err": "50.0"},
        {"dataset": "decode_greedy/test", "Snt": "2", "Wrd": "8", "Corr": "87.5", "Sub": "12.5", "Del": "0.0",
         "Ins": "0.0", "Err": "12.5", "S.Err": "50.0"},
    ]
    assert cer[0] == {"dataset": "decode_greedy/dev", "Snt": "4", "Wrd": "80", "Corr": "95.0", "Sub": "2.5",
                      "Del": "2.5", "Ins": "0.0", "Err": "5.0", "S.Err": "50.0"}
    assert (exp_dir / "pl_soft" / "decode_greedy" / "RESULTS.md").is_file()
    assert not (exp_dir / "unscored" / "decode_greedy" / "RESULTS.md").exists()


@pytest.mark.parametrize("kwargs, error, message", [
    ({"models": ["seed", "nope"]}, ValueError, r"--models: no scored decode folder for nope; scored models: pl_soft, "),
    ({"sets": ["dev", "eval"]}, ValueError, r"--sets: no scores for eval; scored sets: dev, test"),
])
def test_report_rejects_unknown_models_and_sets(exp_dir, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        report.report(exp_dir, tmp_path / "RESULTS.md", "t", "cmd", **kwargs)
    assert not (tmp_path / "RESULTS.md").exists()
    assert not (exp_dir / "seed" / "decode_greedy" / "RESULTS.md").exists()


def test_report_without_scores_says_what_to_run(tmp_path):
    (tmp_path / "exp" / "m").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="decode and score first"):
        report.report(tmp_path / "exp", tmp_path / "RESULTS.md", "t", "cmd")


def test_report_names_a_broken_scores_file(exp_dir, tmp_path):
    _write(exp_dir / "pl_soft" / "decode_greedy" / "test" / "scores.json", '{"wer": ')
    with pytest.raises(ValueError, match=r"pl_soft/decode_greedy/test/scores.json:1: not valid JSON"):
        report.report(exp_dir, tmp_path / "RESULTS.md", "t", "cmd")
    _write(exp_dir / "pl_soft" / "decode_greedy" / "test" / "scores.json", '{"wer": {}}')
    with pytest.raises(ValueError, match=r"test/scores.json: no cer scores; rerun softpl.bin.score"):
        report.report(exp_dir, tmp_path / "RESULTS.md", "t", "cmd")


def test_report_header_records_data_fingerprints_and_threads(exp_dir, tmp_path):
    """Runs on two machines can tell whether they saw the same data, and with how many threads they trained."""
    data = tmp_path / "dev"
    data.mkdir()
    (data / "wav.scp").write_text("u1 cmd1 |\nu2 cmd2 |\n")
    (data / "text").write_text("u1 A\nu2 B\n")
    out = tmp_path / "RESULTS.md"
    report.main(["--exp_dir", str(exp_dir), "--out", str(out), "--sets", "dev", "--data_dirs", str(data),
                 "--threads", "2 for the seed, 1 per stage-8 run (2 at a time)"])
    text = out.read_text()
    fingerprint = DataDir.load(data).fingerprint()
    assert f"- data {data}: `2 utterances, fingerprint {fingerprint}`" in text
    assert ", threads: 2 for the seed, 1 per stage-8 run (2 at a time)" in text
