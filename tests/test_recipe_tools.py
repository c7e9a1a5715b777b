"""Small recipe tools: config merging, the length filter, the token list, the labeler's teacher mode."""
from __future__ import annotations

import subprocess

import pytest
import torch
import yaml

from softpl.bin.filter_data import filter_by_duration
from softpl.bin.make_token_list import train_token_model
from softpl.bin.merge_configs import deep_merge, main as merge_main
from softpl.tasks.stock_config import supervised_equivalent
from softpl.data.datadir import read_table
from softpl.pl.labeler import TargetNeeds, pseudo_label_batch, teacher_mode
from softpl.pl.targets import PseudoLabel, make_pseudo_labels


def test_deep_merge_overrides_leaves_and_merges_mappings():
    base = {"encoder": "conformer", "encoder_conf": {"num_blocks": 4, "output_size": 144}, "max_epoch": 20}
    over = {"encoder_conf": {"num_blocks": 2}, "max_epoch": 5, "model": "cpl"}
    assert deep_merge(base, over) == {
        "encoder": "conformer", "encoder_conf": {"num_blocks": 2, "output_size": 144}, "max_epoch": 5, "model": "cpl"}
    assert base["encoder_conf"]["num_blocks"] == 4  # inputs untouched


def test_supervised_equivalent_makes_as_many_updates_without_pl_options():
    config = {"num_iters_per_epoch": 20, "pl_unlabeled_per_labeled": 4, "pl_cache_size": 20, "model": "cpl",
              "model_conf": {"ctc_weight": 1.0, "pl_target": "soft"}, "max_epoch": 10}
    plain = supervised_equivalent(config)
    # the seed's model class and its model_conf (the labeled loss, e.g. ctc_target_norm) stay
    assert plain == {"num_iters_per_epoch": 100, "model": "cpl", "model_conf": {"ctc_weight": 1.0, "pl_target": "soft"},
                     "max_epoch": 10}
    # without a ratio in the configs: softpl's default (its parser's), 4
    assert supervised_equivalent({"num_iters_per_epoch": 20})["num_iters_per_epoch"] == 100
    with pytest.raises(ValueError, match="num_iters_per_epoch"):
        supervised_equivalent({"pl_cache_size": 3})


def test_merge_configs_cli(tmp_path):
    (tmp_path / "a.yaml").write_text("optim: adam\noptim_conf: {lr: 0.1}\n")
    (tmp_path / "b.yaml").write_text("optim_conf: {lr: 0.01}\n")
    merge_main([str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"), "--out", str(tmp_path / "out.yaml")])
    assert yaml.safe_load((tmp_path / "out.yaml").read_text()) == {"optim": "adam", "optim_conf": {"lr": 0.01}}
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        merge_main([str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "x.yaml")])


def test_merge_configs_numbers_a_branch_epochs_on_from_the_seed(tmp_path):
    """--after_epoch S: the continuation's max_epoch counts its own epochs; ESPnet resumes at S + 1."""
    (tmp_path / "seed.yaml").write_text("max_epoch: 20\n")
    (tmp_path / "cont.yaml").write_text("max_epoch: 4\nnum_iters_per_epoch: 10\npl_unlabeled_per_labeled: 4\n")
    configs = [str(tmp_path / "seed.yaml"), str(tmp_path / "cont.yaml")]
    merge_main([*configs, "--after_epoch", "20", "--out", str(tmp_path / "pl.yaml")])
    assert yaml.safe_load((tmp_path / "pl.yaml").read_text())["max_epoch"] == 24
    merge_main([*configs, "--supervised", "true", "--after_epoch", "20", "--out", str(tmp_path / "sup.yaml")])
    assert yaml.safe_load((tmp_path / "sup.yaml").read_text()) == {"max_epoch": 24, "num_iters_per_epoch": 50}


def test_filter_by_duration_keeps_files_consistent_and_lists_the_removed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    durations = {"s1-a": 0.2, "s1-b": 3.0, "s2-c": 25.0, "s2-d": 5.0}
    (src / "utt2dur").write_text("".join(f"{k} {v}\n" for k, v in durations.items()))
    (src / "wav.scp").write_text("".join(f"{k} /x/{k}.wav\n" for k in durations))
    (src / "text").write_text("".join(f"{k} HELLO\n" for k in durations))
    (src / "utt2spk").write_text("".join(f"{k} {k.split('-')[0]}\n" for k in durations))
    removed = filter_by_duration(src, tmp_path / "dst", min_dur=0.5, max_dur=20.0)
    assert sorted(k for k, _ in removed) == ["s1-a", "s2-c"]
    for name in ("wav.scp", "text", "utt2spk", "utt2dur"):
        assert [k for _, k, _ in read_table(tmp_path / "dst" / name)] == ["s1-b", "s2-d"]
    assert read_table(tmp_path / "dst" / "spk2utt")[0][1:] == ("s1", "s1-b")
    assert (tmp_path / "dst" / "filtered_utts.txt").read_text() == "s1-a\t0.200\ns2-c\t25.000\n"
    assert not (tmp_path / "dst.tmp").exists()


def test_char_token_list_has_espnet_order_and_only_labeled_characters(tmp_path):
    (tmp_path / "text").write_text("u1 HELLO WORLD\nu2 IT'S A TEST\n")
    tokens = train_token_model(tmp_path / "text", tmp_path / "tok", "char", nbpe=0)
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>"
    assert set(tokens[2:-1]) == set("HELOWRDITSA'") | {"▁"}
    assert (tmp_path / "tok" / "tokens.txt").read_text().split("\n")[:-1] == tokens
    assert (tmp_path / "tok" / "bpe.model").exists()
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValueError, match="no transcripts"):
        train_token_model(tmp_path / "empty", tmp_path / "tok2", "char", nbpe=0)


def test_teacher_mode_switches_dropout_and_augmentation_and_restores_modes():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    model.train()
    with teacher_mode(model, dropout=False, augment=True):
        assert model.training and not model[1].training and not torch.is_grad_enabled()
    with teacher_mode(model, dropout=True, augment=False):
        assert not model.training and model[1].training
    assert model.training and model[1].training


def test_pseudo_label_batch_pads_transcripts_and_stacks_soft_targets():
    log_probs = torch.log_softmax(torch.tensor([[[0.0, 5, 0], [0, 5, 0], [5, 0, 0], [0, 0, 5]],
                                                [[0, 0, 5], [5, 0, 0], [5, 0, 0], [5, 0, 0]]]), dim=-1)
    labels = make_pseudo_labels(log_probs, torch.tensor([4, 2]), keep_soft=True, topk=2)
    batch = pseudo_label_batch(labels, TargetNeeds(transcript=True, soft=True, frame_ids=True))
    assert set(batch) == {"pl_text", "pl_text_lengths", "pl_soft_values", "pl_soft_indices", "pl_frame_ids"}
    assert batch["pl_text"].tolist() == [[1, 2], [2, -1]] and batch["pl_text_lengths"].tolist() == [2, 1]
    assert batch["pl_soft_values"].shape == (2, 4, 2) and batch["pl_soft_indices"].shape == (2, 4, 2)
    assert batch["pl_frame_ids"].tolist() == [[1, 1, 0, 2], [2, 0, -1, -1]]
    empty = make_pseudo_labels(torch.log_softmax(torch.tensor([[[5.0, 0, 0]]]), -1), torch.tensor([1]),
                               keep_soft=False)
    hard_only = pseudo_label_batch(empty, TargetNeeds(transcript=True))
    assert set(hard_only) == {"pl_text", "pl_text_lengths"} and hard_only["pl_text_lengths"].tolist() == [0]


def test_pseudo_label_batch_sampled_paths_attention_text_prior_and_aug_seed():
    """A sampled-path target trains CTC on the path and the attention branch on the transcript; the prior and the
    augmentation seed ride along when asked."""
    label = PseudoLabel([3, 1], torch.zeros(3, dtype=torch.int16), None, 3, sampled=[2])
    needs = TargetNeeds(transcript=True, sampled_path=True, attention_text=True, prior=True)
    prior = torch.tensor([0.5, 0.25, 0.25])
    batch = pseudo_label_batch([label], needs, token_prior=prior, aug_seed=7)
    assert batch["pl_text"].tolist() == [[2]] and batch["pl_att_text"].tolist() == [[3, 1]]
    assert batch["pl_att_text_lengths"].tolist() == [2] and batch["pl_token_prior"] is prior
    assert batch["pl_aug_seed"].tolist() == [7]
    with pytest.raises(ValueError, match="token prior"):
        pseudo_label_batch([label], needs)
    with pytest.raises(ValueError, match="sampled paths, but the labels hold none"):
        pseudo_label_batch([PseudoLabel([3], torch.zeros(3, dtype=torch.int16), None, 3)], needs, token_prior=prior)


def test_run_sh_rejects_a_bad_pl_nj_before_any_stage(tmp_path):
    from conftest import REPO, run_env

    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "data.sh").write_text("#!/bin/sh\ntouch data_sh_ran\n")
    proc = subprocess.run([str(REPO / "run.sh"), "--pl_nj", "0"], cwd=tmp_path, env=run_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "--pl_nj must be a positive integer, got '0'" in proc.stderr
    assert not (tmp_path / "data_sh_ran").exists()


def test_recipe_help_shows_the_recipes_own_settings():
    from conftest import REPO, run_env

    proc = subprocess.run([str(REPO / "egs/synth_en/run.sh"), "--pl_nj", "3", "--help"], env=run_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert '--pl_configs ("hard soft soft_mix")' in proc.stdout  # egs/synth_en's value, not the engine's
    assert "--pl_nj (3)" in proc.stdout  # options given before --help are shown too
