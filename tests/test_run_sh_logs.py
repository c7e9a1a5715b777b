"""run.sh keeps the log of a training's earlier attempts when it resumes the run (rotate_log, ESPnet's names)."""
from __future__ import annotations

import subprocess

from conftest import REPO


def rotate(folder, name="train.log") -> None:
    """Call run.sh's own rotate_log (its text cut out of run.sh) on ``folder/name``."""
    run_sh = (REPO / "run.sh").read_text()
    start = run_sh.index("rotate_log() {")
    function = run_sh[start:run_sh.index("\n}\n", start) + 3]
    subprocess.run(["bash", "-euc", f'{function}\nrotate_log "$1"', "rotate", str(folder / name)], check=True)


def test_a_resumed_run_keeps_its_earlier_logs_newest_first(tmp_path):
    (tmp_path / "train.log").write_text("attempt 1\n")
    rotate(tmp_path)
    assert not (tmp_path / "train.log").exists() and (tmp_path / "train.1.log").read_text() == "attempt 1\n"
    (tmp_path / "train.log").write_text("attempt 2\n")
    rotate(tmp_path)
    assert (tmp_path / "train.1.log").read_text() == "attempt 2\n"
    assert (tmp_path / "train.2.log").read_text() == "attempt 1\n"


def test_an_empty_or_missing_log_is_left_alone(tmp_path):
    rotate(tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "train.log").write_text("")
    rotate(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["train.log"]
