"""Two CPU processes (gloo) through torch's launcher: each rank keeps its own cache; training resumes."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from cpl_data import cpl_train_args, make_corpus

pytestmark = pytest.mark.integration  # subprocess trainings or recipe runs: make integration


def free_port() -> int:
    """A port nothing listens on now: tests run in parallel (pytest -n) must not share a rendezvous port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, log):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "softpl.bin.cpl_train", *args, "--dist_backend", "gloo", "--batch_size", "4"]
    with open(log, "a") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=900).returncode


@pytest.mark.smoke
def test_two_process_cpl_run_completes_and_resumes(tmp_path):
    sets = make_corpus(tmp_path / "data")
    out = tmp_path / "exp"
    log = tmp_path / "train.log"
    args = cpl_train_args(tmp_path / "data", sets, out, "--model_conf", "pl_target=soft", "--resume", "true")
    assert launch([*args, "--max_epoch", "1"], log) == 0, log.read_text()[-3000:]
    states = sorted(p.name for p in (out / "cpl_state").iterdir())
    assert states == ["epoch1.rank0.pth", "epoch1.rank1.pth"]  # one pseudo-labeling state per rank

    assert launch([*args, "--max_epoch", "2"], log) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "pseudo-labeling state restored" in text and "2epoch results" in text
    assert (out / "cpl_state" / "epoch2.rank1.pth").exists() and (out / "2epoch.pth").exists()


@pytest.mark.smoke
def test_collapse_stop_under_ddp_ends_every_rank(tmp_path):
    """The alarm's inputs are reduced over ranks at every report (a collective): with --pl_collapse_action stop
    both ranks stop at the same update instead of one waiting for the other in an all-reduce."""
    import json

    sets = make_corpus(tmp_path / "data")
    out = tmp_path / "exp"
    log = tmp_path / "train.log"
    args = cpl_train_args(tmp_path / "data", sets, out, "--max_epoch", "2", "--pl_collapse_action", "stop",
                          "--pl_collapse_max_blank_rate", "0", "--pl_collapse_patience", "1")
    assert launch(args, log) != 0  # stopped by the alarm, within launch()'s timeout: no rank hangs
    text = log.read_text()
    assert "CollapseDetected" in text and "2epoch results" not in text
    assert json.loads((out / "collapse_alarm.json").read_text())["reason"].startswith("blank_rate")
