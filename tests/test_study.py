"""softpl.scoring.study: seed-suffixed runs grouped per variant, mean ± std, collapse counts; and report's study
table."""
from __future__ import annotations

import json
import math

import pytest

from softpl.bin import report
from softpl.scoring.study import RunSummary, group_by_variant, mean_history, mean_std, study_md, variant_of
from softpl.scoring.wer import ErrorCounts


def test_variant_of_strips_only_a_seed_suffix():
    assert variant_of("pl_soft_seed2") == "pl_soft"
    assert variant_of("asr_supervised_cont_seed13") == "asr_supervised_cont"
    assert variant_of("pl_soft") == "pl_soft"
    assert variant_of("pl_seedless") == "pl_seedless"
    assert group_by_variant(["asr_seed", "pl_a_seed1", "pl_b_seed1", "pl_a_seed2"]) == {
        "asr_seed": ["asr_seed"], "pl_a": ["pl_a_seed1", "pl_a_seed2"], "pl_b": ["pl_b_seed1"]}


def test_mean_std_uses_the_sample_standard_deviation():
    assert mean_std([10.0, 12.0, 14.0]) == "12.00 ± 2.00"  # sqrt(((-2)^2 + 0 + 2^2) / 2) = 2
    assert mean_std([0.5, 0.7], 3) == "0.600 ± 0.141"
    assert mean_std([7.0]) == "7.00"
    assert mean_std([]) == "-" and mean_std([math.nan]) == "-"


def _pl(blank: float, wer: float, alarm: int | None) -> dict:
    return {"updates": 100, "pl_blank_rate": blank, "pl_frame_entropy": 0.5, "pl_wer_vs_ref": wer, "alarm_step": alarm}


def test_study_table_rows_collapse_and_alarms():
    runs = [
        RunSummary("asr_seed", {"dev": 40.0, "test": 42.0}, None, None),
        RunSummary("pl_soft_seed1", {"dev": 95.0, "test": 97.0}, _pl(0.95, 99.0, 60), 100.0),
        RunSummary("pl_soft_seed2", {"dev": 60.0, "test": 62.0}, _pl(0.5, 70.0, None), 110.0),
        RunSummary("pl_hard_seed1", {"dev": 30.0, "test": 33.0}, _pl(0.3, 35.0, None), 90.0),
        RunSummary("pl_hard_seed2", {"dev": 32.0, "test": 35.0}, _pl(0.3, 37.0, None), 94.0),
    ]
    text = study_md(runs, ["dev", "test"])
    lines = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    header = lines[0]
    rows = {cells[0]: dict(zip(header, cells)) for cells in lines[2:]}
    assert list(rows) == ["asr_seed", "pl_soft", "pl_hard"]
    assert rows["asr_seed"]["seeds"] == "1" and rows["asr_seed"]["dev WER"] == "40.00"
    assert rows["asr_seed"]["collapsed"] == "0/1" and rows["asr_seed"]["final PL WER"] == "-"
    soft = rows["pl_soft"]
    assert soft["dev WER"] == "77.50 ± 24.75" and soft["final PL blank rate"] == "0.725 ± 0.318"
    assert soft["collapsed"] == "1/2" and soft["alarm at update"] == "60" and soft["wall time (s)"] == "105 ± 7"
    assert rows["pl_hard"]["collapsed"] == "0/2" and rows["pl_hard"]["alarm at update"] == "no"
    assert rows["pl_hard"]["test WER"] == "34.00 ± 1.41"
    # WER alone marks a collapse too (on the first set), whatever the blank rate.
    assert RunSummary("x", {"dev": 90.0}, _pl(0.1, 99.0, None), None).collapsed("dev")
    assert not RunSummary("x", {"dev": 89.9, "test": 99.0}, _pl(0.1, 99.0, None), None).collapsed("dev")


def test_mean_history_averages_epochs_all_runs_have():
    a = [{"epoch": 1, "updates": 10, "valid.wer_ctc": 0.5}, {"epoch": 2, "updates": 20, "valid.wer_ctc": 0.4}]
    b = [{"epoch": 1, "updates": 10, "valid.wer_ctc": 0.3, "train.extra": 1.0}]
    assert mean_history([a, b]) == [{"epoch": 1, "updates": 10, "valid.wer_ctc": pytest.approx(0.4)}]


def _scores(errors: int) -> str:
    counts = ErrorCounts(n_sent=2, n_ref=10, corr=10 - errors, sub=errors, del_=0, ins=0, sent_err=1).to_dict()
    return json.dumps({"wer": counts, "cer": counts, "n_utts": 2})


def test_report_adds_the_study_table_for_seed_suffixed_runs(tmp_path):
    exp = tmp_path / "exp"
    for model, errors, seconds in (("asr_seed", 5, None), ("asr_supervised_cont_seed1", 4, 30),
                                   ("asr_supervised_cont_seed2", 2, 34)):
        (exp / model / "decode_greedy" / "dev").mkdir(parents=True)
        (exp / model / "decode_greedy" / "dev" / "scores.json").write_text(_scores(errors))
        if seconds:
            (exp / model / "train_seconds").write_text(f"{seconds}\n")
    out = tmp_path / "RESULTS.md"
    report.report(exp, out, "t", "cmd", sets=["dev"])
    text = out.read_text()
    assert "## Seed study" in text
    assert "|asr_supervised_cont|2|30.00 ± 14.14|-|-|-|0/2|-|32 ± 3|" in text
    assert "|asr_seed|1|50.00|-|-|-|0/1|-|-|" in text
    # Without seed-suffixed runs there is no study table.
    report.report(exp, out, "t", "cmd", models=["asr_seed"])
    assert "Seed study" not in out.read_text()
