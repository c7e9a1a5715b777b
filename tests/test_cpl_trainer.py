"""The CPL task and trainer end to end on a tiny corpus: every target runs, and a killed run resumes exactly."""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest
import torch

from cpl_data import cpl_train_args, make_corpus
from softpl.pl.labeler import TargetNeeds
from softpl.tasks.cpl_asr import CPLASRTask, check_no_data_parallel
from softpl.pl.labeler import reference_batches
from softpl.pl.cache import dynamic_refresh_prob

STEP = re.compile(r"(\d+)epoch:train:(\d+)-\d+batch: .*?(?<!_)loss=([-0-9.e+naif]+)")


def step_losses(log: str) -> dict[tuple[int, int], str]:
    """(epoch, iteration) -> loss as ESPnet logged it (log_interval 1: one line per update)."""
    return {(int(e), int(i)): loss for e, i, loss in STEP.findall(log)}


def cpl_train(args, log, **kwargs):
    """Start softpl.bin.cpl_train; its output (ESPnet's log) is appended to ``log``, as a recipe's train.log."""
    with open(log, "a") as f:
        return subprocess.Popen([sys.executable, "-m", "softpl.bin.cpl_train", *args], stdout=f,
                                stderr=subprocess.STDOUT, **kwargs)


def test_dynamic_refresh_rises_with_churn_and_saturates():
    assert dynamic_refresh_prob(0.0, 0.1, 0.5, churn_scale=0.2) == 0.1
    assert dynamic_refresh_prob(0.1, 0.1, 0.5, churn_scale=0.2) == pytest.approx(0.3)
    assert dynamic_refresh_prob(0.6, 0.1, 0.5, churn_scale=0.2) == 0.5


def test_reference_batches_are_seeded_distinct_and_not_the_longest_first():
    batches = [(f"utt{i}",) for i in range(50)]  # as ESPnet sorts them: longest first
    drawn = reference_batches(batches, 10, seed=3)
    assert drawn == reference_batches(batches, 10, seed=3)
    assert len(set(drawn)) == 10 and set(drawn) <= set(batches)
    assert drawn != batches[:10] and drawn != reference_batches(batches, 10, seed=4)
    assert sorted(reference_batches(batches[:4], 10, seed=3)) == batches[:4]


def test_ngpu_above_one_in_one_process_is_refused(tmp_path):
    message = r"--ngpu 2 in one process .* use --multiprocessing_distributed true \(one process per GPU"
    with pytest.raises(ValueError, match=message):
        check_no_data_parallel(argparse.Namespace(ngpu=2, distributed=False))
    check_no_data_parallel(argparse.Namespace(ngpu=2, distributed=True))  # DDP (a launcher or one process per GPU)
    check_no_data_parallel(argparse.Namespace(ngpu=1, distributed=False))
    sets = {name: tmp_path / name for name in ("train", "unlabeled", "dev")}
    with pytest.raises(ValueError, match=message):  # refused by the entry point before anything is built
        CPLASRTask.main(cmd=cpl_train_args(tmp_path, sets, tmp_path / "exp", "--ngpu", "2"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpl")
    return root, make_corpus(root)


def run_to_end(args, log) -> str:
    proc = cpl_train(args, log)
    proc.wait(timeout=600)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return log.read_text()


# A hybrid CTC/attention model (ESPnet's usual recipe shape), tiny.
HYBRID = ("--model_conf", "ctc_weight=0.5", "--decoder", "transformer", "--decoder_conf", "num_blocks=1",
          "--decoder_conf", "linear_units=16", "--decoder_conf", "attention_heads=2")


@pytest.mark.integration
@pytest.mark.parametrize("variant", [
    ("hard", ["--pl_refresh", "dynamic", "--pl_refresh_prob_max", "0.9", "--pl_teacher_dropout", "true",
              "--pl_dropout", "0.05", "--num_workers", "1",  # the unlabeled stream loaded by a worker
              "--pl_lexicon", "labeled", "--pl_transcript", "lexicon_beam", "--pl_lm_beam_size", "8",
              "--pl_keep_share", "0.5", "--pl_confidence", "lexicon"]),
    ("soft", ["--model_conf", "mix_ctc_weight=0.5", "--model_conf", "entropy_weight=-0.1",
              "--model_conf", "blank_handling=drop", "--model_conf", "prior_weight=0.5"]),
    ("frame_hard", ["--model_conf", "confidence_threshold=0.2"]),
    ("sampled", ["--pl_teacher", "ema", "--pl_consistent_aug", "true", "--specaug", "specaug",
                 "--specaug_conf", "apply_time_warp=false", "--specaug_conf", "time_mask_width_range=[0,2]"]),
    ("sampled", [*HYBRID, "--pl_transcript", "beam", "--pl_beam_size", "2"]),
    ("oracle", []),
], ids=["hard", "soft", "frame_hard", "sampled", "hybrid_sampled_beam", "oracle"])
def test_every_target_trains_and_reports_pl_diagnostics(corpus, tmp_path, variant):
    root, sets = corpus
    target, extra = variant
    out_dir = tmp_path / target
    log = run_to_end(cpl_train_args(root, sets, out_dir, "--max_epoch", "1", "--model_conf", f"pl_target={target}",
                                    *extra), tmp_path / "train.log")
    summary = re.search(r"1epoch results: \[train\] (.*)", log).group(1)
    for key in ("pl_blank_rate", "pl_frame_entropy", "pl_mi_proxy", "pl_length_ratio", "pl_wer_vs_ref",
                "pl_cache_mean_age", "pl_student_blank_rate", "pl_label_share", "pl_assemble_share",
                "pl_cache_input_mbytes", "pl_coverage", "pl_coverage_audio"):
        assert f"{key}=" in summary, f"{key} missing from the epoch summary"
    assert 0 < float(re.search(r"pl_label_share=([0-9.e+-]+)", summary).group(1)) < 1
    assert 0 < float(re.search(r"pl_assemble_share=([0-9.e+-]+)", summary).group(1)) < 1
    if "--decoder" in extra:  # the attention branch trained on the beam transcripts, validated by accuracy
        assert "loss_pl_att=" in summary and "pl_acc_att=" in summary and "acc=" in log.split("[valid]", 1)[1]
    if target == "hard":  # dynamic refresh: p moves with the measured churn, within [p, p_max]
        p = float(re.search(r"pl_refresh_prob=([0-9.e+-]+)", summary).group(1))
        assert "pl_churn=" in summary and 0.5 <= p <= 0.9
        # --pl_keep_share 0.5: one of each labeled batch's 2 utterances trained on, the kept labels' WER reported
        assert float(re.search(r"pl_kept_share=([0-9.e+-]+)", summary).group(1)) == 0.5
        assert "pl_kept_wer_vs_ref=" in summary
    # 4 labeled batches x 2: 8 unlabeled updates label 2 (the fill) + 0.5 x 6 (the refreshes) of 6 batches
    assert "this run's 8 unlabeled updates will label about 5 batches of the 6 unlabeled ones (83 % of the set): " \
        "raise pl_cache_size" in log
    history = [json.loads(line) for line in (out_dir / "cpl_history.jsonl").read_text().splitlines()]
    coverage = history[0].pop("pl_coverage"), history[0].pop("pl_coverage_audio")
    assert history == [{"epoch": 1, "updates": 12, "pl_started": True}]  # 4 labeled batches x (1 + 2)
    covered = re.search(r"pseudo-labeling coverage after epoch 1: (\d+) of 12 unlabeled utterances", log)
    # the 2 cached batches of 2 utterances at least, and the share of audio as the share of utterances
    assert 4 <= int(covered.group(1)) <= 12 and coverage[0] == pytest.approx(int(covered.group(1)) / 12)
    assert 0 < coverage[1] <= 1 and (coverage[1] == 1) == (coverage[0] == 1)
    assert (out_dir / "cpl_state" / "epoch1.rank0.pth").exists()
    # The cache's transcripts, as text (the fixture's char tokenizer writes a space as "<space>", which its token
    # list lacks: <unk>).
    from cpl_data import TOKENS

    state = torch.load(out_dir / "cpl_state" / "epoch1.rank0.pth", weights_only=True)
    cached = {key: "".join(TOKENS[i] for i in label.tokens).replace("<unk>", " ")
              for entry in state["cache"]["entries"] for key, label in zip(entry["keys"], entry["labels"])}
    if target == "oracle":  # the cache holds the truth of each cached utterance, tokenized as the labeled text is
        truth = dict(line.split(" ", 1) for line in (sets["unlabeled"] / "text.ref").read_text().splitlines())
        assert all(text == truth[key] for key, text in cached.items())
    if target == "hard":  # --pl_lexicon labeled, lexicon_beam: the labeled set's words and their bigram
        lines = (sets["train"] / "text").read_text().splitlines()
        words = {word for line in lines for word in line.split()[1:]}
        assert (f"pseudo-transcripts made of the {len(words)} words of {sets['train'] / 'text'} (--pl_lexicon, "
                "--pl_transcript lexicon_beam)") in log
        assert (out_dir / "pl_lm_bigram.arpa").read_text().startswith(f"\\data\\\nngram 1={len(words) + 2}\n")
        assert all(set(text.split()) <= words for text in cached.values())  # the search spells lexicon words only


@pytest.mark.integration
@pytest.mark.parametrize("model", [(), (*HYBRID, "--pl_transcript", "beam", "--pl_beam_size", "2"),
                                   ("--pl_cache_input", "keys", "--num_workers", "1", "--pl_keep_share", "0.5")],
                         ids=["ctc", "hybrid_beam", "ctc_keys_only_cache_surest_half"])
def test_sigkill_during_pseudo_labeling_then_resume_gives_the_same_losses(corpus, tmp_path, model):
    root, sets = corpus
    reference = tmp_path / "reference"
    expected = step_losses(run_to_end(cpl_train_args(root, sets, reference, "--max_epoch", "3", "--model_conf",
                                                     "pl_target=soft", *model), tmp_path / "reference.log"))
    assert len([k for k in expected if k[0] == 3]) == 12

    killed = tmp_path / "killed"
    args = cpl_train_args(root, sets, killed, "--max_epoch", "3", "--model_conf", "pl_target=soft", *model,
                          "--resume", "true")
    log = tmp_path / "killed.log"
    proc = cpl_train(args, log, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline:  # kill in the middle of epoch 2, after some pseudo-labeled updates
        if "2epoch:train:6-6batch" in log.read_text():
            break
        if proc.poll() is not None:
            pytest.fail("the run ended before it could be killed")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "3epoch:train" not in log.read_text()

    # --resume true: from the epoch-1 checkpoint and pseudo-labeling state; the new lines override the old ones.
    resumed = step_losses(run_to_end(args, log))
    for epoch in (2, 3):
        steps = sorted(k for k in expected if k[0] == epoch)
        assert [resumed[k] for k in steps] == [expected[k] for k in steps], f"epoch {epoch} differs after resume"


@pytest.mark.integration
def test_cached_features_and_keys_train_as_the_audio_they_came_from(corpus, tmp_path):
    """--pl_cache_input auto keeps each cached batch's log-mel features (the frontend is fixed) and training on
    them skips the frontend, or, over --pl_cache_memory_gib, its keys only (its audio loaded again by a loader
    worker when trained on); every update's loss is the one of keeping the audio (--pl_cache_input audio)."""
    root, sets = corpus
    runs = {}
    for name, extra in (("auto", ()), ("audio", ("--pl_cache_input", "audio")),
                        ("keys", ("--pl_cache_memory_gib", "1e-5", "--num_workers", "1"))):
        args = cpl_train_args(root, sets, tmp_path / name, "--max_epoch", "2", "--model_conf", "pl_target=soft",
                              *extra)
        runs[name] = run_to_end(args, tmp_path / f"{name}.log")
    assert "MB of input (features)" in runs["auto"] and "MB of input (audio)" in runs["audio"]
    assert "PL cache input: features; keeping the features of 2 batches would take an estimated" in runs["auto"]
    chosen = re.search(r"PL cache input: keys \(batches loaded again when trained on; loader workers: 1\); "
                       r"keeping the features of 2 batches would take an estimated [0-9.e+-]+ GiB "
                       r"\(([0-9.e+-]+) MB per batch\), over --pl_cache_memory_gib 1e-05 \(--pl_cache_input auto\)",
                       runs["keys"])
    assert chosen and 0 < float(chosen.group(1)) < 0.1, runs["keys"][-3000:]
    assert "0.0 MB of input (keys)" in runs["keys"]
    audio = step_losses(runs["audio"])
    assert len([k for k in audio if k[0] == 2]) == 12
    assert step_losses(runs["auto"]) == audio and step_losses(runs["keys"]) == audio
    input_mb = [float(re.search(r"pl_cache_input_mbytes=([0-9.e+-]+)", runs[kept]).group(1)) for kept in runs]
    assert input_mb[0] < input_mb[1] / 4  # 16 log-mels per 128 samples: 1/8 of the audio's fp32 bytes
    assert input_mb[2] == 0


@pytest.mark.integration
def test_beam_transcripts_need_a_hybrid_model(corpus, tmp_path):
    root, sets = corpus
    with pytest.raises(ValueError, match="--pl_transcript beam needs a hybrid CTC/attention model"):
        CPLASRTask.main(cmd=cpl_train_args(root, sets, tmp_path / "exp", "--pl_transcript", "beam"))


def test_alarm_inputs_are_means_over_every_ranks_labelings():
    from softpl.metrics.collapse import alarm_inputs

    rank0 = {"pl_blank_rate": [0.9, 0.96], "pl_length_ratio": [0.5]}
    rank1 = {"pl_blank_rate": [0.2], "pl_mi_proxy": [1.0, 3.0]}  # labeled at other updates, so other keys too

    def other_ranks(diag):  # what torch.distributed.all_reduce(SUM) adds from the other rank
        def reduce_sum(totals):
            totals += alarm_totals(diag)
        return reduce_sum

    def alarm_totals(diag):
        import torch
        from softpl.metrics.collapse import ALARM_INPUTS
        return torch.tensor([[sum(diag.get(k, [])), len(diag.get(k, []))] for k in ALARM_INPUTS], dtype=torch.float64)

    seen0, seen1 = alarm_inputs(rank0, other_ranks(rank1)), alarm_inputs(rank1, other_ranks(rank0))
    assert seen0 == seen1 == pytest.approx({"blank_rate": 2.06 / 3, "mi_proxy": 2.0, "length_ratio": 0.5})
    assert alarm_inputs({"pl_churn": [0.1]}, lambda totals: None) == {}  # nothing labeled: nothing to judge


@pytest.mark.parametrize("refresh", ["fixed", "dynamic"])
def test_churn_pass_runs_every_churn_interval_under_fixed_refresh_and_at_every_dynamic_refresh(monkeypatch, refresh):
    """Churn costs one more teacher pass: under fixed refresh (a diagnostic) at the first refresh, then at the first
    one --pl_churn_interval or more unlabeled updates after the last; dynamic refresh sets p by it: every refresh."""
    from softpl.pl.cache import PLCache
    from softpl.pl import slimipl as slimipl_module

    slimipl = object.__new__(slimipl_module.SlimIPL)  # the loop's state only: labeling and churn are counted stubs
    slimipl.opt = argparse.Namespace(pl_refresh=refresh, pl_churn_interval=100, pl_diag_interval=10**9)
    slimipl.cache = PLCache(capacity=5, seed=0)
    slimipl.diag, slimipl.refresh_prob, slimipl.token_prior, slimipl.teacher = defaultdict(list), 0.2, None, None
    slimipl.needs = TargetNeeds(transcript=True)
    slimipl.updates = slimipl.unlabeled_updates = slimipl.next_churn_update = 0
    slimipl.label_seconds = slimipl.assemble_seconds = 0.0
    churned_at, labeled = [], []
    slimipl._label = lambda model, device: labeled.append(slimipl.unlabeled_updates) or \
        {"keys": [], "labels": [], "aug_seed": None}
    slimipl._churn = lambda model, entry, device: churned_at.append(slimipl.unlabeled_updates) or 0.0
    slimipl.input = argparse.Namespace(choose=lambda *args: None, read=lambda *args: None, mode="audio",
                                       train_input=lambda model, entry, device: {})
    monkeypatch.setattr(slimipl_module, "pseudo_label_batch", lambda labels, needs, **kwargs: {})
    model = argparse.Namespace(pl_target="hard", hybrid=False, fixed_frontend=False)
    for _ in range(1000):
        slimipl._unlabeled_step(model, reporter=None, device="cpu")
    refreshes = len(labeled) - 5  # after the 5 batches that filled the cache
    assert 150 < refreshes < 250  # p = 0.2 of 1000 reads
    if refresh == "dynamic":
        assert len(churned_at) == refreshes
    else:  # at the first refresh, then at the first refresh 100 or more updates after the last measurement
        gaps = [b - a for a, b in zip(churned_at, churned_at[1:])]
        assert churned_at[0] < 30 and all(100 <= gap < 130 for gap in gaps) and len(gaps) >= 7, churned_at


def test_every_teacher_pass_runs_at_the_labeling_precision(tmp_path, monkeypatch):
    """--pl_label_dtype: the labeling passes and the labeled reference at PL start run at the named precision
    (auto: the training forward's, fp32 on CPU whatever --use_amp says, as ESPnet trains on CPU); the
    posteriors come back in fp32."""
    from softpl.pl import slimipl as slimipl_module
    from test_cpl_model import build_model

    model = build_model(tmp_path)
    dtypes = []
    model.ctc.ctc_lo.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    speech, lengths = torch.randn(2, 7, 8), torch.tensor([7, 5])
    labeled = {"speech": speech, "speech_lengths": lengths, "text_lengths": torch.tensor([2, 1])}
    for label_dtype, dtype in (("auto", torch.float32), ("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        slimipl = object.__new__(slimipl_module.SlimIPL)  # what _teacher_pass and start read, nothing more
        slimipl.opt = argparse.Namespace(
            pl_label_dtype=label_dtype, use_amp=True, pl_transcript="greedy", pl_dropout=None, pl_teacher="live",
            seed=0, pl_prior_batches=1, pl_unlabeled_per_labeled=4, pl_cache_size=2, pl_refresh_prob=0.1,
            max_epoch=1, num_iters_per_epoch=None)
        slimipl.stream = argparse.Namespace(batches=[("u1",), ("u2",)])
        slimipl.teacher, slimipl.rank, slimipl.updates, slimipl.needs = None, 0, 0, TargetNeeds(transcript=True)
        slimipl.labeled = argparse.Namespace(sampler=argparse.Namespace(generate=lambda epoch: [("a", "b")]))
        monkeypatch.setattr(slimipl_module, "load_batch", lambda factory, keys: labeled)
        dtypes.clear()
        log_probs, _, _ = slimipl._teacher_pass(model, {"speech": speech, "speech_lengths": lengths}, "cpu")
        slimipl.start(model, "cpu", epoch=1)
        assert dtypes == [dtype, dtype] and log_probs.dtype == torch.float32, label_dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_auto_labeling_precision_is_half_on_gpu_with_use_amp(tmp_path):
    """On a GPU, auto labels under ESPnet's own --use_amp autocast (bf16 where the GPU has it, else fp16)."""
    from softpl.pl.labeler import teacher_log_probs
    from softpl.pl.labeler import labeling_autocast
    from test_cpl_model import build_model

    model = build_model(tmp_path).cuda()
    dtypes = []
    model.ctc.ctc_lo.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    speech, lengths = torch.randn(2, 7, 8).cuda(), torch.tensor([7, 5]).cuda()
    for use_amp in (False, True):
        with labeling_autocast("auto", use_amp, "cuda"):
            teacher_log_probs(model, speech, lengths)
    assert dtypes[0] == torch.float32 and dtypes[1] in (torch.bfloat16, torch.float16)


def test_oracle_transcripts_are_the_truth_tokenized_as_the_labeled_text(tmp_path):
    """pl_target oracle: the cached transcripts are text.ref through the task's own preprocessor (char tokens);
    an unlabeled utterance without truth is an error naming it."""
    from espnet2.train.preprocessor import CommonPreprocessor
    from cpl_data import TOKENS
    from softpl.pl.labeler import reference_tokenizer

    preprocess = CommonPreprocessor(train=True, token_type="char", token_list=TOKENS, space_symbol="▁")
    unlabeled = argparse.Namespace(dataset=argparse.Namespace(preprocess=preprocess))
    tokens = reference_tokenizer(unlabeled, {"u1": "BAD CAB", "u2": "ACE"}, ["u1", "u2"])
    assert tokens("u1") == [4, 3, 6, 2, 5, 3, 4]  # B A D ▁ C A B
    assert tokens("u2") == [3, 5, 7]
    with pytest.raises(ValueError, match=r"1 of its 3 utterances have none \(first: u3\)"):
        reference_tokenizer(unlabeled, {"u1": "BAD", "u2": "ACE"}, ["u1", "u2", "u3"])


def test_a_resume_with_another_fixed_refresh_prob_is_refused():
    """p lives in SlimIPL alone (the cache is given it at each draw): a resume checks it against the options."""
    from softpl.pl import slimipl as slimipl_module

    slimipl = object.__new__(slimipl_module.SlimIPL)
    slimipl.opt = argparse.Namespace(pl_refresh="fixed", pl_refresh_prob=0.2)
    with pytest.raises(ValueError, match=r"refreshed with p = 0.1, this run asks for --pl_refresh_prob 0.2"):
        slimipl.load_state_dict({"refresh_prob": 0.1}, model=None)
