"""NIST sclite (SCTK) wrapper: write ``ref.trn``/``hyp.trn``, run sclite as ESPnet's ``asr.sh`` does, read the totals.

A trn line is ``TOKENS<TAB>(SPK-UTTID)``, exactly what ``asr.sh`` builds with
``paste <(tokenize_text ...) <(awk '{ print "(" $2 "-" $1 ")" }' utt2spk)``; with ``-i rm`` sclite
takes the speaker from the text before the first ``-`` or ``_`` inside the parentheses.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from softpl.scoring.wer import ErrorCounts

SCLITE_FALLBACK = Path("/usr/lib/sctk/bin/sclite")  # Debian/Ubuntu package "sctk" installs it here

# ``| Sum  |    4      7 |    2      3      2      1      6      3 |`` -- the raw-count totals
# (Snt Wrd | Corr Sub Del Ins Err S.Err) that ``-o all`` prints after the percentage table.
_SUM_LINE = re.compile(r"^\s*\|\s*Sum\s*\|(?P<numbers>[\d\s|.]+)\|\s*$")


def find_sclite() -> list[str]:
    """The command that runs sclite: ``sclite`` on PATH, then the Debian path, then ``sctk sclite``."""
    if found := shutil.which("sclite"):
        return [found]
    if SCLITE_FALLBACK.is_file():
        return [str(SCLITE_FALLBACK)]
    if found := shutil.which("sctk"):
        return [found, "sclite"]
    raise FileNotFoundError(
        "sclite (NIST SCTK) not found on PATH, at /usr/lib/sctk/bin/sclite or as `sctk sclite`. "
        "Install it (`apt-get install sctk`, or build https://github.com/usnistgov/SCTK and put its bin/ "
        "on PATH), or score without it with --sclite false."
    )


def check_trn_entry(uttid: str, spk: str, tokens: Sequence[str]) -> None:
    """Raise ValueError if sclite would read this utterance differently from its plain tokens.

    sclite parses the last ``(...)`` of a line as its id and gives meaning to some tokens: ``@`` is
    the empty word, ``{`` opens an alternation (``{ a / b }``) and ``;;`` starts a comment.
    """
    for name, value in (("utterance id", uttid), ("speaker id", spk)):
        if "(" in value or ")" in value:
            raise ValueError(
                f"utterance {uttid}: the {name} {value!r} contains a parenthesis, which sclite reads as the end "
                "of the transcript; rename it in the data dir"
            )
    for token in tokens:
        if token == "@" or token.startswith(("{", ";;")):
            raise ValueError(
                f"utterance {uttid}: token {token!r} is sclite markup ('@' empty word, '{{' alternation, ';;' "
                "comment) and would be scored wrongly; normalise the text (e.g. spell it out) before scoring"
            )


def write_trn(path: Path, entries: Iterable[tuple[str, str, Sequence[str]]]) -> None:
    """Write ``(uttid, spk, tokens)`` entries as sclite trn lines ``TOKENS<TAB>(spk-uttid)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for uttid, spk, tokens in entries:
            check_trn_entry(uttid, spk, tokens)
            f.write(f"{' '.join(tokens)}\t({spk}-{uttid})\n")


def run_sclite(ref_trn: Path, hyp_trn: Path, result_txt: Path) -> ErrorCounts:
    """Run ``sclite -r ref.trn trn -h hyp.trn trn -i rm -o all stdout > result.txt`` and return its totals."""
    command = [*find_sclite(), "-r", str(ref_trn), "trn", "-h", str(hyp_trn), "trn", "-i", "rm", "-o", "all", "stdout"]
    with result_txt.open("w", encoding="utf-8") as out:
        proc = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"sclite failed (exit {proc.returncode}) on {ref_trn} / {hyp_trn}: {proc.stderr.strip()[-2000:]}\n"
            f"its output is in {result_txt}; command: {' '.join(command)}"
        )
    return parse_result(result_txt)


def parse_result(result_txt: Path) -> ErrorCounts:
    """Read the totals of a ``sclite -o all`` report.

    The raw-count ``Sum`` line is used rather than the ``Sum/Avg`` percentage line ESPnet greps: the
    percentages are rounded to 0.1 and cannot give exact counts back.
    """
    for line in result_txt.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := _SUM_LINE.match(line):
            n_sent, n_ref, corr, sub, dele, ins, _err, sent_err = (
                int(float(x)) for x in match["numbers"].replace("|", " ").split()
            )
            return ErrorCounts(n_sent=n_sent, n_ref=n_ref, corr=corr, sub=sub, del_=dele, ins=ins, sent_err=sent_err)
    raise ValueError(
        f"{result_txt}: no '| Sum |' totals line; it is not the output of `sclite ... -o all stdout` "
        "(or sclite stopped early): rerun the scoring"
    )
