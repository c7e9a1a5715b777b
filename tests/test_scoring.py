"""softpl.scoring.wer and softpl.scoring.sclite: hand-counted alignments, trn files, and agreement with sclite."""
from __future__ import annotations

import random
import re
import shutil

import pytest

from softpl.scoring import sclite
from softpl.scoring.sclite import check_trn_entry, find_sclite, parse_result, run_sclite, write_trn
from softpl.scoring.wer import ErrorCounts, align, tokenize


def _has_sclite() -> bool:
    try:
        find_sclite()
    except FileNotFoundError:
        return False
    return True


needs_sclite = pytest.mark.skipif(not _has_sclite(), reason="sclite (NIST SCTK) not installed: apt-get install sctk")


@pytest.mark.parametrize(
    "ref, hyp, corr, sub, dele, ins",
    [
        ("a b c", "a b c", 3, 0, 0, 0),
        ("a b c", "a x c", 2, 1, 0, 0),
        ("a b c", "a c", 2, 0, 1, 0),
        ("a c", "a b c", 2, 0, 0, 1),
        ("a b", "", 0, 0, 2, 0),
        ("", "x y", 0, 0, 0, 2),
        ("", "", 0, 0, 0, 0),
        # D+I (cost 3+3) beats two substitutions (4+4); plain Levenshtein calls both optimal.
        ("a b", "b c", 1, 0, 1, 1),
        # 3 substitutions (12) tie with I,I,C,D,D (12); sclite prefers substitutions.
        ("a b c", "d e a", 0, 3, 0, 0),
        # sclite folds ASCII case only.
        ("The CAT", "the cat", 2, 0, 0, 0),
        ("é", "É", 0, 1, 0, 0),
    ],
)
def test_align_counts_by_hand(ref, hyp, corr, sub, dele, ins):
    counts = align(ref.split(), hyp.split())
    assert (counts.corr, counts.sub, counts.del_, counts.ins) == (corr, sub, dele, ins)
    assert counts.n_ref == len(ref.split())
    assert counts.n_sent == 1
    assert counts.sent_err == int(sub + dele + ins > 0)


def test_error_counts_rates_sum_and_dict():
    a = ErrorCounts(n_sent=1, n_ref=3, corr=2, sub=1, del_=0, ins=1, sent_err=1)
    b = ErrorCounts(n_sent=1, n_ref=5, corr=4, sub=0, del_=1, ins=1, sent_err=1)
    total = a + b
    assert total == ErrorCounts(n_sent=2, n_ref=8, corr=6, sub=1, del_=1, ins=2, sent_err=2)
    assert total.errors == 4
    assert total.error_rate == 50.0
    assert total.percent(total.corr) == 75.0
    assert total.sent_error_rate == 100.0
    d = total.to_dict()
    assert d == {"n_sent": 2, "n_ref": 8, "corr": 6, "sub": 1, "del": 1, "ins": 2, "err": 4, "sent_err": 2,
                 "error_rate": 50.0}
    assert ErrorCounts.from_dict(d) == total
    # no reference tokens: sclite prints 0.0 rather than dividing by zero
    assert ErrorCounts(n_sent=1, n_ref=0, ins=2, sent_err=1).error_rate == 0.0


def test_tokenize_words_and_espnet_chars():
    assert tokenize("  a  bc ", "word") == ["a", "bc"]
    assert tokenize("ab  c", "char") == ["a", "b", "<space>", "c"]
    assert tokenize("", "char") == []
    with pytest.raises(ValueError, match="'word' or 'char'"):
        tokenize("a", "bpe")


def test_write_trn_format(tmp_path):
    path = tmp_path / "score_wer" / "ref.trn"
    write_trn(path, [("spk1-u1", "spk1", ["A", "B"]), ("u2", "s2", [])])
    assert path.read_text() == "A B\t(spk1-spk1-u1)\n\t(s2-u2)\n"


@pytest.mark.parametrize("uttid, spk, tokens, message", [
    ("u1", "s", ["a", "@", "b"], r"utterance u1: token '@' is sclite markup"),
    ("u1", "s", ["{", "a"], r"token '\{' is sclite markup"),
    ("u1", "s", [";;x"], r"token ';;x' is sclite markup"),
    ("u(1)", "s", ["a"], r"utterance u\(1\): the utterance id 'u\(1\)' contains a parenthesis"),
    ("u1", "s)", ["a"], r"the speaker id 's\)' contains a parenthesis"),
])
def test_trn_entry_rejects_what_sclite_misreads(uttid, spk, tokens, message):
    with pytest.raises(ValueError, match=message):
        check_trn_entry(uttid, spk, tokens)


RESULT_TXT = """\
       | SPKR   | # Snt # Wrd | Corr    Sub    Del    Ins    Err  S.Err |
       |--------+-------------+-----------------------------------------|
       | s      |    4      7 | 28.6   42.9   28.6   14.3   85.7   75.0 |
       |================================================================|
       | Sum/Avg|    4      7 | 28.6   42.9   28.6   14.3   85.7   75.0 |
       |================================================================|

        | SPKR | # Snt # Wrd | Corr    Sub    Del    Ins    Err  S.Err |
        |------+-------------+-----------------------------------------|
        | s    |    4      7 |    2      3      2      1      6      3 |
        |==============================================================|
        | Sum  |    4      7 |    2      3      2      1      6      3 |
        |==============================================================|
        | Mean |  4.0    7.0 |  2.0    3.0    2.0    1.0    6.0    3.0 |
"""


def test_parse_result_reads_raw_sum_line(tmp_path):
    path = tmp_path / "result.txt"
    path.write_text(RESULT_TXT)
    assert parse_result(path) == ErrorCounts(n_sent=4, n_ref=7, corr=2, sub=3, del_=2, ins=1, sent_err=3)
    path.write_text(RESULT_TXT.split("\n\n")[0])  # percentage table only
    with pytest.raises(ValueError, match=r"result.txt: no '\| Sum \|' totals line"):
        parse_result(path)


def test_find_sclite_order_and_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(sclite, "SCLITE_FALLBACK", tmp_path / "absent")
    monkeypatch.setattr(shutil, "which", lambda name: "/opt/bin/sctk" if name == "sctk" else None)
    assert find_sclite() == ["/opt/bin/sctk", "sclite"]
    fallback = tmp_path / "sclite"
    fallback.write_text("")
    monkeypatch.setattr(sclite, "SCLITE_FALLBACK", fallback)
    assert find_sclite() == [str(fallback)]
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/sclite" if name == "sclite" else None)
    assert find_sclite() == ["/usr/bin/sclite"]
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(sclite, "SCLITE_FALLBACK", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="apt-get install sctk"):
        find_sclite()


def _random_pairs(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """Sentence pairs from a tiny vocabulary (many equal-cost alignments), some empty, some differing in case."""
    vocab = ["a", "b", "the", "cat", "sat", "on", "mat"]
    pairs = [("", ""), ("the cat", ""), ("", "a cat"), ("a b c", "d e a")]
    while len(pairs) < n:
        ref = [rng.choice(vocab) for _ in range(rng.randint(0, 9))]
        hyp = [w.upper() if rng.random() < 0.2 else w for w in ref]
        for _ in range(rng.randint(0, 4)):  # random edits
            op = rng.choice("sdi")
            pos = rng.randint(0, len(hyp))
            if op == "i":
                hyp.insert(pos, rng.choice(vocab))
            elif hyp and pos < len(hyp):
                if op == "s":
                    hyp[pos] = rng.choice(vocab)
                else:
                    del hyp[pos]
        pairs.append((" ".join(ref), " ".join(hyp)))
    return pairs


@needs_sclite
@pytest.mark.parametrize("token_type", ["word", "char"])
def test_python_counts_equal_sclite_per_utterance(tmp_path, token_type):
    pairs = _random_pairs(random.Random(13), 40)
    ids = [f"spk{i % 3}-utt{i:03d}" for i in range(len(pairs))]
    refs = [tokenize(r, token_type) for r, _ in pairs]
    hyps = [tokenize(h, token_type) for _, h in pairs]
    write_trn(tmp_path / "ref.trn", [(u, u.split("-")[0], t) for u, t in zip(ids, refs)])
    write_trn(tmp_path / "hyp.trn", [(u, u.split("-")[0], t) for u, t in zip(ids, hyps)])
    total = run_sclite(tmp_path / "ref.trn", tmp_path / "hyp.trn", tmp_path / "result.txt")

    python = [align(r, h) for r, h in zip(refs, hyps)]
    assert total == sum(python, ErrorCounts())
    assert total.errors > 0 and total.n_sent == 40
    # sclite's alignment dump: "id: (spk-utt)" then "Scores: (#C #S #D #I) c s d i"
    dump = re.findall(r"id: \((\S+)\)\nScores: \(#C #S #D #I\) (\d+) (\d+) (\d+) (\d+)",
                      (tmp_path / "result.txt").read_text())
    per_utt = {utt_id: tuple(map(int, numbers)) for utt_id, *numbers in dump}
    assert len(per_utt) == 40
    for utt, counts in zip(ids, python):
        spk = utt.split("-")[0]
        assert per_utt[f"{spk}-{utt}"] == (counts.corr, counts.sub, counts.del_, counts.ins), utt
