"""The per-epoch progress lines run.sh prints while ESPnet trains (softpl.bin.training_progress)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from softpl.bin.training_progress import progress_line

# ESPnet 202611's epoch summary, as it writes it to train.log (seed of egs/synth_en).
SEED_LINE = ("[vm] 2026-12-07 12:39:20,681 (trainer:392) INFO: 9epoch results: [train] iter_time=0.004, "
             "forward_time=0.226, loss_ctc=46.656, loss=46.656, backward_time=0.200, grad_norm=43.514, clip=100.000, "
             "loss_scale=1.000, optim_step_time=0.014, optim0_lr0=0.002, train_time=0.452, time=32.25 seconds, "
             "total_count=639, [valid] loss_ctc=53.950, cer_ctc=0.329, loss_att=nan, acc=nan, cer=nan, wer=nan, "
             "loss=53.950, time=6.09 seconds, total_count=207")


def test_an_epoch_summary_becomes_one_line_with_the_time_left():
    line = progress_line("asr_seed", SEED_LINE, total=14, elapsed=540.0, epochs_done=9)
    assert line == "[asr_seed] epoch 9/14, 639 updates, train loss 46.66, dev CER 32.9 %, 9.0 min, about 5.0 min left"
    assert progress_line("asr_seed", SEED_LINE.replace("9epoch", "14epoch"), 14, 600.0, 14).endswith("10.0 min")
    assert progress_line("x", "INFO: 10epoch:train:61-70batch: iter_time=0.004, loss=34.301", 14, 1.0, 1) is None


def test_follower_prints_each_epoch_prefixed_by_the_run_and_ends_on_sigterm(tmp_path):
    exp = tmp_path / "pl_hard"
    exp.mkdir()
    (exp / "config.yaml").write_text("batch_bins: 600000\nmax_epoch: 20\n")
    log = exp / "train.log"
    log.write_text("some INFO line\n")
    follower = subprocess.Popen([sys.executable, "-m", "softpl.bin.training_progress", "--log", str(log),
                                 "--pid", str(subprocess.os.getpid()), "--interval", "0.1"],
                                stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    with log.open("a") as f:
        f.write(SEED_LINE.replace("9epoch", "15epoch") + "\n" + SEED_LINE.replace("9epoch", "16epoch"))
    time.sleep(0.5)  # the second summary has no newline yet: a line still being written is not read
    follower.send_signal(signal.SIGTERM)
    out, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("[pl_hard] epoch 15/20, 639 updates, train loss 46.66")


def test_follower_ends_when_the_process_it_watches_ends(tmp_path):
    """run.sh's shell killed (Ctrl-C, a cluster's time limit): its follower does not outlive it."""
    (tmp_path / "train.log").write_text("")
    watched = subprocess.Popen(["sleep", "1"])
    follower = subprocess.Popen([sys.executable, "-m", "softpl.bin.training_progress", "--log",
                                 str(tmp_path / "train.log"), "--pid", str(watched.pid), "--interval", "0.1"])
    watched.wait()
    assert follower.wait(timeout=30) == 0
