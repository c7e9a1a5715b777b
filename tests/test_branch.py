"""Branching from the seed's training state: a branched run continues the seed's optimizer and schedule."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
import yaml
from espnet2.schedulers.warmup_lr import WarmupLR

from cpl_data import cpl_train_args, make_corpus
from softpl.train.branch import BranchError, branch_checkpoint, branch_epoch, check_same_schedule, decoded_model_name

pytestmark = pytest.mark.integration  # subprocess trainings or recipe runs: make integration

WARMUP = 5
LR = 0.001  # rates below 1e-3 are logged with 4 significant digits
LR_LOGGED = re.compile(r"(\d+)epoch:train:(\d+)-\d+batch: .*?optim0_lr0=([0-9.e+-]+)")


def seed_args(args: list[str]) -> list[str]:
    """The tiny corpus' command line for stock ESPnet: no unlabeled data, no pl_* options, ESPnet's model."""
    kept, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg.startswith(("--pl_", "--unlabeled_")) or (arg == "--model" and args[i + 1] == "cpl"):
            skip = True
            continue
        kept.append(arg)
    return kept


def train(module: str, args: list[str], log) -> str:
    with open(log, "a") as f:
        done = subprocess.run([sys.executable, "-m", module, *args], stdout=f, stderr=subprocess.STDOUT, timeout=600)
    assert done.returncode == 0, log.read_text()[-3000:]
    return log.read_text()


def warmup_lr_after(steps: int) -> float:
    """ESPnet's WarmupLR after ``steps`` optimizer steps."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler = WarmupLR(optimizer, warmup_steps=WARMUP)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    return optimizer.param_groups[0]["lr"]


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    """A stock-ESPnet seed trained 2 epochs (8 updates) with a warm-up schedule."""
    root = tmp_path_factory.mktemp("branch")
    sets = make_corpus(root)
    schedule = ["--optim_conf", f"lr={LR}", "--scheduler", "warmuplr", "--scheduler_conf", f"warmup_steps={WARMUP}"]
    args = seed_args(cpl_train_args(root, sets, root / "seed", "--max_epoch", "2", *schedule))
    train("espnet2.bin.asr_train", args, root / "seed.log")
    return root, sets, schedule


def adam_steps(checkpoint) -> int:
    states = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return int(next(iter(states["optimizers"][0]["state"].values()))["step"])


@pytest.mark.parametrize("kind", ["pl", "supervised"])
def test_branched_run_continues_the_seeds_optimizer_step_count_and_learning_rate(seed, tmp_path, kind):
    root, sets, schedule = seed
    seed_dir = root / "seed"
    assert adam_steps(seed_dir / "checkpoint.pth") == 8  # 2 epochs x 4 batches of 2 utterances
    out_dir = tmp_path / kind
    assert branch_checkpoint(seed_dir / "checkpoint.pth", out_dir) == 2
    assert branch_epoch(out_dir / "checkpoint.pth") == 2
    args = cpl_train_args(root, sets, out_dir, "--max_epoch", "3", "--resume", "true", *schedule)
    if kind == "pl":
        log = train("softpl.bin.cpl_train", args, tmp_path / "train.log")
        assert "continuing the seed's training state after its epoch 2" in log
        updates = 12  # 4 labeled batches x (1 + 2 unlabeled)
    else:
        log = train("espnet2.bin.asr_train", seed_args(args), tmp_path / "train.log")
        updates = 4
    lrs = {(int(e), int(i)): float(lr) for e, i, lr in LR_LOGGED.findall(log)}
    assert min(lrs) == (3, 1), "the branch numbers its epochs on from the seed's"
    # ESPnet logs the rate after each update's scheduler step: the seed logged warmup_lr_after(1) first, and the
    # branch's first update is the 9th of one continued schedule (a fresh one would log warmup_lr_after(1) again).
    seed_lrs = {(int(e), int(i)): float(lr) for e, i, lr in LR_LOGGED.findall((root / "seed.log").read_text())}
    assert seed_lrs[(1, 1)] == pytest.approx(warmup_lr_after(1), rel=1e-3)
    assert lrs[(3, 1)] == pytest.approx(warmup_lr_after(9), rel=1e-3)
    assert lrs[(3, 1)] != pytest.approx(warmup_lr_after(1), rel=1e-3)
    assert adam_steps(out_dir / "checkpoint.pth") == 8 + updates
    states = torch.load(out_dir / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert list(states["reporter"]["stats"]) == [3], "the branch's history (and its model average) is its own"
    assert (out_dir / "valid.loss.ave.pth").exists() and branch_epoch(out_dir / "checkpoint.pth") is None


def test_branch_refuses_another_schedule_and_a_missing_checkpoint(tmp_path):
    seed_config, branch_config = tmp_path / "seed.yaml", tmp_path / "branch.yaml"
    seed_config.write_text(yaml.safe_dump({"optim": "adam", "optim_conf": {"lr": 0.003}, "scheduler": "warmuplr"}))
    branch_config.write_text(yaml.safe_dump({"optim": "adam", "optim_conf": {"lr": 0.001}, "scheduler": "warmuplr"}))
    with pytest.raises(BranchError, match=r"same optimizer and schedule \(optim_conf: seed \{'lr': 0.003\}"):
        check_same_schedule(seed_config, branch_config)
    branch_config.write_text(seed_config.read_text())
    check_same_schedule(seed_config, branch_config)
    seed_config.write_text(yaml.safe_dump({"optim": "adam", "optim_conf": {"lr": 0.003}, "scheduler": "warmuplr",
                                           "scheduler_conf": {}}))  # as ESPnet writes an absent *_conf
    check_same_schedule(seed_config, branch_config)
    with pytest.raises(BranchError, match="checkpoint.pth not found.*train the seed"):
        branch_checkpoint(tmp_path / "no_seed" / "checkpoint.pth", tmp_path / "out")


def test_every_run_is_decoded_from_the_average_its_first_validation_criterion_names(tmp_path):
    criteria = [["train", "loss", "min"], ["valid", "cer_ctc", "min"], ["valid", "loss", "min"]]
    assert decoded_model_name({"best_model_criterion": criteria}) == "valid.cer_ctc.ave.pth"
    assert decoded_model_name({"best_model_criterion": [["train", "loss", "min"]]}) == "valid.loss.ave.pth"
    assert decoded_model_name({}) == "valid.loss.ave.pth"
    exp = tmp_path / "pl_hard"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump({"best_model_criterion": criteria}))
    cli = [sys.executable, "-m", "softpl.bin.branch_seed", "--decoded_model", str(exp)]
    missing = subprocess.run(cli, capture_output=True, text=True)
    assert missing.returncode != 0 and "valid.cer_ctc.ave.pth not found: train" in missing.stderr
    (exp / "valid.cer_ctc.ave.pth").write_bytes(b"")
    printed = subprocess.run(cli, capture_output=True, text=True, check=True).stdout.strip()
    assert printed == str(exp / "valid.cer_ctc.ave.pth")


def test_branch_seed_cli_prints_the_epoch_and_branches_into_output_dir(tmp_path, capsys):
    from softpl.bin import branch_seed

    seed = tmp_path / "asr_seed"
    seed.mkdir()
    torch.save({"model": {}, "reporter": {"stats": {1: {}}, "epoch": 3}, "optimizers": [], "schedulers": []},
               seed / "checkpoint.pth")
    config = yaml.safe_dump({"optim": "adam", "optim_conf": {"lr": LR}})
    (seed / "config.yaml").write_text(config)
    (tmp_path / "train.yaml").write_text(config)
    branch_seed.main(["--seed_exp", str(seed), "--print_epoch", "true"])
    assert capsys.readouterr().out.strip() == "3"
    branch_seed.main(["--seed_exp", str(seed), "--config", str(tmp_path / "train.yaml"),
                      "--output_dir", str(tmp_path / "pl_hard")])
    assert branch_epoch(tmp_path / "pl_hard" / "checkpoint.pth") == 3
