"""run.sh never stops silently: a stage started on inputs made by hand works, a stage whose input is missing names
it and the stage that makes it, and every non-zero exit says where it stopped."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import REPO, run_env

pytestmark = pytest.mark.integration  # subprocess trainings or recipe runs: make integration

SETS = {"train_labeled": True, "train_unlabeled": False, "dev": True}
SET_OPTS = ["--train_set", "train_labeled", "--unlabeled_set", "train_unlabeled", "--valid_set", "dev",
            "--test_sets", "dev", "--nj", "1"]


def recipe(tmp_path: Path, data_sh: str = "#!/bin/sh\nexit 0\n") -> Path:
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "data.sh").write_text(data_sh)
    (tmp_path / "local" / "data.sh").chmod(0o755)
    return tmp_path


def run_sh(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "run.sh"), *SET_OPTS, *args], cwd=folder, env=run_env(), capture_output=True,
                          text=True, timeout=600)


def write_data_dir(folder: Path, name: str, labeled: bool, n: int = 3) -> None:
    """A Kaldi data dir written by hand (as a user brings one): wav.scp, utt2spk, spk2utt, text."""
    d = folder / "data" / name
    (d / "wav").mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    ids = [f"spk1-{name}-{i}" for i in range(n)]
    for utt in ids:
        soundfile.write(d / "wav" / f"{utt}.wav", 0.1 * rng.standard_normal(16000), 16000, subtype="PCM_16")
    (d / "wav.scp").write_text("".join(f"{utt} {d / 'wav' / utt}.wav\n" for utt in ids))
    (d / "utt2spk").write_text("".join(f"{utt} spk1\n" for utt in ids))
    (d / "spk2utt").write_text("spk1 " + " ".join(ids) + "\n")
    if labeled:
        (d / "text").write_text("".join(f"{utt} HELLO WORLD\n" for utt in ids))


@pytest.mark.parametrize("seed_opts", [(), ("--seed_model_dir", "zoo")], ids=["", "seed_model_dir"])
def test_stage_2_formats_a_data_dir_written_without_stage_1(tmp_path, seed_opts):
    """... also with --seed_model_dir, whose seed stages 4-6 import (not run here: nothing of it is read)."""
    folder = recipe(tmp_path)
    for name, labeled in SETS.items():
        write_data_dir(folder, name, labeled)
    proc = run_sh(folder, "--stage", "2", "--stop_stage", "3", *seed_opts)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in SETS:
        assert len((folder / "dump/raw" / name / "wav.scp").read_text().splitlines()) == 3
    assert "made outside run.sh" in (folder / "dump/raw/.stage3.done").read_text()  # stage 1's marker is absent


# stage -> (the input it names, the stage that makes it)
MISSING = {
    2: ("data/train_labeled/wav.scp", "stage 1 makes it"),
    3: ("dump/raw/org/train_labeled/wav.scp", "stage 2 makes it"),
    4: ("dump/raw/train_labeled/text", "stage 3 makes it"),
    5: ("data/token_list/char/tokens.txt", "stage 4 makes it"),
    6: ("exp/asr_stats_char/train/feats_stats.npz", "stage 5 makes it"),
    7: ("exp/asr_seed/config.yaml", "stage 6 trains the seed"),
    8: ("exp/asr_seed/config.yaml", "stage 6 trains the seed"),
    9: ("exp/asr_supervised_cont/config.yaml", "stage 8 trains it"),
}


@pytest.mark.parametrize("stage", sorted(MISSING))
def test_a_stage_started_without_its_input_names_it_and_what_makes_it(tmp_path, stage):
    """Each stage started alone in an empty recipe: its predecessor's outputs and marker are missing."""
    proc = run_sh(recipe(tmp_path), "--stage", str(stage), "--stop_stage", str(stage))
    path, maker = MISSING[stage]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"run.sh: stage {stage} needs {path}, which is missing; {maker}" in proc.stderr, proc.stderr
    assert f"run.sh: stopped with exit status 1 in stage {stage}" in proc.stderr


def test_a_failing_command_is_named_with_the_stage_it_stopped(tmp_path):
    proc = run_sh(recipe(tmp_path, "#!/bin/sh\necho 'no corpus here' >&2\nexit 3\n"), "--stop_stage", "1")
    assert proc.returncode == 3
    assert "no corpus here" in proc.stderr
    assert "run.sh: stopped with exit status 3 in stage 1 (line " in proc.stderr and "local/data.sh" in proc.stderr


@pytest.mark.parametrize("ngpu, gpu_inference, device", [("1", "auto", "GPU"), ("0", "auto", "CPU"),
                                                         ("1", "false", "CPU"), ("0", "true", "GPU")])
def test_gpu_inference_auto_decodes_on_gpu_when_ngpu_is_above_zero(tmp_path, ngpu, gpu_inference, device):
    """Stage 7 up to its decoding jobs, which go to stand-in job commands (cmd.sh's decode_cmd, cuda_cmd) that
    record how they were called and fail, so that nothing is decoded."""
    folder = recipe(tmp_path)
    (folder / "exp" / "asr_seed").mkdir(parents=True)
    for name in ("config.yaml", "model.pth"):
        (folder / "exp" / "asr_seed" / name).write_text("stand-in\n")
    (folder / "dump" / "raw" / "dev").mkdir(parents=True)
    (folder / "dump" / "raw" / "dev" / "wav.scp").write_text("utt1 utt1.wav\n")
    for on in ("cpu", "gpu"):
        (folder / f"{on}_job.sh").write_text(f'#!/bin/sh\necho "{on} $*" > {folder}/jobs.txt\nexit 1\n')
        (folder / f"{on}_job.sh").chmod(0o755)
    proc = run_sh(folder, "--stage", "7", "--stop_stage", "7", "--ngpu", ngpu, "--gpu_inference", gpu_inference,
                  "--decode_model", "model.pth", "--decode_cmd", str(folder / "cpu_job.sh"),
                  "--cuda_cmd", str(folder / "gpu_job.sh"))
    assert proc.returncode == 1 and "run.sh: decoding with exp/asr_seed/model.pth failed" in proc.stderr, \
        proc.stdout + proc.stderr
    assert f"decoding exp/asr_seed/model.pth with 1 job(s) per set on {device}" in proc.stdout
    job = (folder / "jobs.txt").read_text()
    if device == "GPU":
        assert job.startswith("gpu --gpu 1 JOB=1:1 ") and job.rstrip().endswith("--ngpu 1"), job
    else:
        assert job.startswith("cpu JOB=1:1 ") and job.rstrip().endswith("--ngpu 0"), job


def test_a_bad_gpu_inference_value_is_refused_before_any_stage(tmp_path):
    folder = recipe(tmp_path, "#!/bin/sh\ntouch data_sh_ran\n")
    proc = run_sh(folder, "--gpu_inference", "bogus")
    assert proc.returncode == 1 and "run.sh: --gpu_inference must be auto, true or false, got 'bogus'" in proc.stderr
    assert not (folder / "data_sh_ran").exists()
