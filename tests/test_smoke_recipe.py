"""End-to-end smoke test: every stage (1-10) of the default recipe on a tiny synthetic corpus (minutes on 2 cores)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, run_env, without_softpl

TINY_CORPUS = (
    "--num_train_labeled 24 --num_train_unlabeled 12 --num_dev 6 --num_test_clean 5 --num_test_other 5"
)
SETS = ("dev", "test_clean", "test_other")
GREEDY = "decode_greedy_valid.cer_ctc.ave"  # decode folders name the checkpoint they decoded (the config's rule)


def run_recipe(recipe, *args):
    proc = subprocess.run(
        ["./run.sh", *args], cwd=recipe, env=run_env(), capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, f"run.sh {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.smoke
def test_stages_1_to_10_on_tiny_corpus(recipe_copy):
    recipe = recipe_copy("synth_en")
    common = (
        "--nj", "2", "--local_data_opts", TINY_CORPUS, "--min_dur", "0.3",
        "--seed_config", str(REPO / "tests/conf/train_seed_smoke.yaml"),
        "--pl_train_config", str(REPO / "tests/conf/train_pl_smoke.yaml"), "--pl_configs", "hard soft",
    )
    out = run_recipe(recipe, "--stop_stage", "7", "--espnet_inference", "true", *common)
    for n in range(1, 8):
        assert f"stage {n}" in out
    assert "[asr_seed] epoch 1/2, " in out and "[asr_seed] epoch 2/2, " in out  # progress while ESPnet trains
    assert "|asr_seed/decode_greedy_valid.cer_ctc.ave|" in out  # the results table, on the terminal at the end

    # Data contract: the unlabeled set keeps its truth out of training.
    assert not (recipe / "dump/raw/train_unlabeled/text").exists()
    assert (recipe / "dump/raw/train_unlabeled/text.ref").exists()
    tokens = (recipe / "data/token_list/char/tokens.txt").read_text().split("\n")
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>" and "<sos/eos>" in tokens

    # The seed model was trained by stock ESPnet and decoded twice (greedy, in --nj 2 jobs per set merged; ESPnet's
    # own inference), and every set is scored by sclite and Python.
    seed = recipe / "exp/asr_seed"
    assert (seed / "valid.cer_ctc.ave.pth").exists()  # the decoded checkpoint (the config's rule)
    assert (seed / GREEDY / "logdir/decode.2.log").exists()
    for s in SETS:
        for decode in (GREEDY, "decode_espnet"):
            scores = json.loads((seed / decode / s / "scores.json").read_text())
            assert scores["n_utts"] == len((recipe / "dump/raw" / s / "text").read_text().splitlines())
            assert scores["n_missing_hyp"] == 0 and scores["asr_model_file"] == "exp/asr_seed/valid.cer_ctc.ave.pth"
            assert scores["sclite_checked"] and (seed / decode / s / "score_wer/result.txt").exists()
    results = (recipe / "exp" / "RESULTS.md").read_text()
    assert "asr_seed" in results and all(s in results for s in SETS)
    # ESPnet's training curves were drawn once, when training ended, not after every epoch.
    assert "use_matplotlib: false" in (seed / "config.yaml").read_text() and (seed / "images/loss.png").exists()

    # Idempotent: a second call with the same options skips the finished stages, decoding included.
    out = run_recipe(recipe, "--stop_stage", "7", "--espnet_inference", "true", *common)
    for n in range(1, 7):
        assert f"stage {n}" in out and "already" in out.split(f"stage {n}", 1)[1].split("\n", 1)[0]
    assert "exp/asr_seed: already decoded and scored with valid.cer_ctc.ave.pth" in out and "] decoding " not in out
    # ... and so does the run.sh written into the experiment folder (the same call, for stages 6-7); asr.sh's
    # skip options leave out whole groups of stages.
    out = subprocess.run([str(seed / "run.sh")], env=run_env(), capture_output=True, text=True, timeout=600).stdout
    assert "stage 6: seed model already trained" in out and "already decoded and scored" in out
    assert (seed / "engine_args").read_text().split()[-4:] == ["--stage", "6", "--stop_stage", "7"]  # as data
    out = run_recipe(recipe, "--stop_stage", "7", "--skip_data_prep", "true", "--skip_eval", "true", *common)
    assert "stage 6: seed model already trained" in out and "stage 1" not in out and "stage 7" not in out

    # Stages 8-10: the supervised ESPnet continuation, hard and soft pseudo-labeling, their decoding, the report.
    # (Stage 9 decodes as stage 7 does, one function; softpl-trained models in ESPnet's inference: the hybrid below.)
    out = run_recipe(recipe, "--stage", "8", *common)
    runs = ("asr_supervised_cont", "pl_hard", "pl_soft")
    assert all(f"[{run}] epoch 3/" in out for run in runs)  # each run's progress, prefixed by its name
    for run in runs:
        assert (recipe / "exp" / run / GREEDY / "test_other/scores.json").exists()
    for run in runs[1:]:
        assert (recipe / "exp" / run / "cpl_history.jsonl").exists()
        assert (recipe / "exp" / run / "images/pl_blank_rate.png").exists()  # the curves, drawn at the end
    table = (recipe / "exp" / "RESULTS.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("|") and "decode_greedy" in line]
    assert [row.split("|")[1].split("/")[0] for row in rows] == ["asr_seed", *runs]  # baselines first
    assert "final PL blank rate" in table and "collapse alarm" in table
    assert "unlabeled set labeled (utts / audio)" in table and "% / " in table  # coverage of each PL run
    assert "- data dump/raw/dev: `6 utterances, fingerprint " in table and "threads: " in table  # comparable runs
    # Every continuation branched from the seed's last training state: epochs numbered on from the seed's 2.
    for run in runs:
        log = (recipe / "exp" / run / "train.log").read_text()
        assert "INFO: 3epoch results" in log and "INFO: 1epoch results" not in log
    for plot in ("dev_cer.png", "dev_wer.png", "pl_blank_rate.png", "pl_frame_entropy.png"):
        assert (recipe / "exp" / "plots" / plot).stat().st_size > 1000 and f"plots/{plot}" in table
    assert not (recipe / "RESULTS.md").exists() and not (recipe / "plots").exists()  # a recipe's curated copies stay

    # An ESPnet model as the seed: the seed above, packed like a model-zoo folder (paths relative to its root).
    zoo = recipe / "zoo"
    for rel in ("exp/asr_seed/config.yaml", "data/token_list/char/bpe.model",
                "exp/asr_stats_char/train/feats_stats.npz"):
        (zoo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(recipe / rel, zoo / rel)
    shutil.copy((recipe / "exp/asr_seed/valid.cer_ctc.ave.pth").resolve(), zoo / "exp/asr_seed/valid.cer_ctc.ave.pth")
    # Its decoding goes through a Kaldi-style job command (cmd.sh's decode_cmd; a stand-in for run.pl here).
    out = run_recipe(recipe, "--stage", "6", "--stop_stage", "9", "--expdir", "exp_zoo", "--seed_model_dir", "zoo",
                     "--supervised_baseline", "false", *common[:-2], "--pl_configs", "hard",
                     "--decode_cmd", str(REPO / "tests/bin/job_cmd.sh"))
    assert "seed imported from zoo" in out
    log = (recipe / "exp_zoo/asr_seed" / GREEDY / "logdir/decode.2.log").read_text()
    assert log.startswith("# job_cmd.sh: job 2") and "decoded" in log
    assert (recipe / "exp_zoo/asr_seed" / GREEDY / "dev/scores.json").exists()
    # (an imported seed's continuation config has no best_model_criterion: ESPnet's default, valid.loss)
    assert (recipe / "exp_zoo/pl_hard/decode_greedy_valid.loss.ave/test_other/scores.json").exists()

    # A hybrid CTC/attention seed (ESPnet's usual models) stays whole through pseudo-labeling, hard and soft, and
    # its PL models decode with stock ESPnet's joint CTC/attention beam search.
    (recipe / "exp_hybrid").mkdir()
    (recipe / "exp_hybrid/asr_stats_char").symlink_to(recipe / "exp/asr_stats_char")  # same data: stage 5's stats
    out = run_recipe(recipe, *common, "--stage", "6", "--stop_stage", "9", "--expdir", "exp_hybrid", "--seed_config",
                     str(REPO / "tests/conf/train_seed_hybrid_smoke.yaml"), "--supervised_baseline", "false")
    for run in ("pl_hard", "pl_soft"):
        exp = recipe / "exp_hybrid" / run
        assert (exp / "decode_greedy_valid.acc.ave/test_other/scores.json").exists()
        config = (exp / "config.yaml").read_text()
        assert "decoder: transformer" in config and "ctc_weight: 0.3" in config
        assert "loss_pl_att=" in (exp / "train.log").read_text()
    joint = subprocess.run(
        [sys.executable, "-m", "softpl.bin.asr_inference", "--asr_train_config",
         "exp_hybrid/pl_soft/config.yaml", "--asr_model_file", "exp_hybrid/pl_soft/valid.acc.ave.pth",
         "--data_path_and_name_and_type", "dump/raw/test_clean/wav.scp,speech,sound", "--ctc_weight", "0.3",
         "--beam_size", "2", "--batch_size", "1", "--ngpu", "0", "--output_dir", "exp_hybrid/joint"],
        cwd=recipe, env=run_env(), capture_output=True, text=True, timeout=600)
    assert joint.returncode == 0, joint.stderr[-3000:]
    hyps = (recipe / "exp_hybrid/joint/1best_recog/text").read_text().splitlines()
    assert len(hyps) == len((recipe / "dump/raw/test_clean/text").read_text().splitlines())

    # Stage 11: the model exported for stock ESPnet and packed; unpacked elsewhere (as the model zoo does), it
    # decodes with stock espnet2.bin.asr_inference in a process that cannot import softpl, to the same transcripts.
    out = run_recipe(recipe, *common, "--stage", "11", "--stop_stage", "11", "--expdir", "exp_hybrid", "--seed_config",
                     str(REPO / "tests/conf/train_seed_hybrid_smoke.yaml"), "--export_models", "pl_soft")
    packed = recipe / "exp_hybrid/pl_soft/pl_soft_valid.acc.ave.zip"
    assert packed.exists() and "model: espnet" in (recipe / "exp_hybrid/pl_soft/export/config.yaml").read_text()
    unpacked = recipe.parent / "unpacked"
    files = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys; from espnet2.main_funcs.pack_funcs import unpack; "
         "print(json.dumps(unpack(sys.argv[1], sys.argv[2])))", str(packed), str(unpacked)],
        env=without_softpl(recipe.parent), capture_output=True, text=True, check=True).stdout)
    stock = subprocess.run(
        [sys.executable, "-m", "espnet2.bin.asr_inference", "--asr_train_config", files["asr_train_config"],
         "--asr_model_file", files["asr_model_file"], "--data_path_and_name_and_type",
         f"{recipe / 'dump/raw/test_clean/wav.scp'},speech,sound", "--ctc_weight", "0.3", "--beam_size", "2",
         "--batch_size", "1", "--ngpu", "0", "--output_dir", str(recipe.parent / "stock")],
        cwd=recipe.parent, env=without_softpl(recipe.parent), capture_output=True, text=True, timeout=600)
    assert stock.returncode == 0, stock.stderr[-3000:]
    assert (recipe.parent / "stock/1best_recog/text").read_text().splitlines() == hyps

    # A seed study: every stage-8 run repeated per seed, two runs at a time; stage 10 adds mean ± std per variant.
    out = run_recipe(recipe, "--stage", "8", *common[:-2], "--pl_configs", "hard", "--pl_seeds", "1 2",
                     "--pl_nj", "2", "--plot_pl_configs", "hard")
    study_runs = ("asr_supervised_cont_seed1", "asr_supervised_cont_seed2", "pl_hard_seed1", "pl_hard_seed2")
    for run in study_runs:
        assert f"stage 8 ({run}) finished in" in out
        assert int((recipe / "exp" / run / "train_seconds").read_text()) >= 0
        assert (recipe / "exp" / run / GREEDY / "test_other/scores.json").exists()
    pl_seed1, pl_seed2 = ((recipe / "exp" / run / "latest.pth").read_bytes() for run in study_runs[2:])
    assert pl_seed1 != pl_seed2  # the seeds made different runs
    table = (recipe / "exp" / "RESULTS.md").read_text()
    study = table.split("## Seed study", 1)[1]
    assert "|asr_seed|1|" in study and "|asr_supervised_cont|2|" in study and "|pl_hard|2|" in study
    assert " ± " in study.split("|pl_hard|2|", 1)[1].split("\n", 1)[0]
