"""End-to-end smoke test: every stage of the default recipe on a tiny synthetic corpus (minutes on 2 cores)."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import REPO, run_env

TINY_CORPUS = (
    "--num_train_labeled 24 --num_train_unlabeled 12 --num_dev 6 --num_test_clean 5 --num_test_other 5"
)
SETS = ("dev", "test_clean", "test_other")


def run_recipe(recipe, *args):
    proc = subprocess.run(
        ["./run.sh", *args], cwd=recipe, env=run_env(), capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, f"run.sh {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.smoke
def test_stages_1_to_7_on_tiny_corpus(recipe_copy):
    recipe = recipe_copy("synth_en")
    common = (
        "--nj", "2", "--local_data_opts", TINY_CORPUS, "--min_dur", "0.3",
        "--seed_config", str(REPO / "tests/conf/train_seed_smoke.yaml"),
    )
    out = run_recipe(recipe, "--stop_stage", "7", *common)
    for n in range(1, 8):
        assert f"stage {n}" in out

    # Data contract: the unlabeled set keeps its truth out of training.
    assert not (recipe / "dump/raw/train_unlabeled/text").exists()
    assert (recipe / "dump/raw/train_unlabeled/text.ref").exists()
    tokens = (recipe / "data/token_list/char/tokens.txt").read_text().split("\n")
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>" and "<sos/eos>" in tokens

    # The seed model was trained by stock ESPnet and decoded; every set is scored by sclite and Python.
    seed = recipe / "exp/asr_seed"
    assert (seed / "valid.loss.ave.pth").exists()
    for s in SETS:
        scores = json.loads((seed / "decode_greedy" / s / "scores.json").read_text())
        assert scores["n_utts"] == len((recipe / "dump/raw" / s / "text").read_text().splitlines())
        assert (seed / "decode_greedy" / s / "score_wer/result.txt").exists()
    results = (recipe / "RESULTS.md").read_text()
    assert "asr_seed" in results and all(s in results for s in SETS)

    # Idempotent: a second call with the same options skips the finished stages.
    out = run_recipe(recipe, "--stop_stage", "6", *common)
    for n in range(1, 7):
        assert f"stage {n}" in out and "already" in out.split(f"stage {n}", 1)[1].split("\n", 1)[0]
