"""Importing an ESPnet model as the seed: finding it, path fixing, and the errors for unusable models."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import yaml

from softpl.bin.import_seed import SeedError, import_seed, resolve_model_dir

TOKENS = ["<blank>", "<unk>", "<space>", "A", "B", "C", "'", "<sos/eos>"]


def zoo(tmp_path, **config_changes):
    """An unpacked model-zoo folder: exp/<asr>/config.yaml + weights, stats under exp/ with relative paths."""
    root = tmp_path / "zoo"
    exp = root / "exp" / "asr_train"
    exp.mkdir(parents=True)
    (root / "exp" / "stats").mkdir()
    (root / "exp" / "stats" / "feats_stats.npz").write_bytes(b"stats")
    (exp / "valid.acc.ave.pth").write_bytes(b"weights")
    config = {"model": "espnet", "model_conf": {"ctc_weight": 0.3}, "token_list": TOKENS, "token_type": "char",
              "bpemodel": None, "normalize": "global_mvn",
              "normalize_conf": {"stats_file": "exp/stats/feats_stats.npz"}, "encoder": "conformer",
              "decoder": "transformer", "decoder_conf": {"num_blocks": 2},
              "train_data_path_and_name_and_type": [["dump/x/wav.scp", "speech", "sound"]], "max_epoch": 70,
              "distributed": False, "required": ["output_dir", "token_list"], "version": "202611"}
    config.update(config_changes)
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "text").write_text("u1 ABC CAB\nu2 A B'C\n")
    return root


def test_import_from_a_model_zoo_folder(tmp_path):
    facts = import_seed(zoo(tmp_path), tmp_path / "text", tmp_path / "seed")
    seed = tmp_path / "seed"
    assert (seed / "valid.loss.ave.pth").resolve() == (tmp_path / "zoo/exp/asr_train/valid.acc.ave.pth").resolve()
    config = yaml.safe_load((seed / "config.yaml").read_text())
    assert config["normalize_conf"]["stats_file"] == str((tmp_path / "zoo/exp/stats/feats_stats.npz").resolve())
    architecture = yaml.safe_load((seed / "train_seed.yaml").read_text())
    # A hybrid seed stays whole: its attention decoder and weighting go on into the continuation.
    assert architecture["model_conf"]["ctc_weight"] == 0.3 and architecture["decoder"] == "transformer"
    assert architecture["decoder_conf"] == {"num_blocks": 2}
    assert "train_data_path_and_name_and_type" not in architecture and "max_epoch" not in architecture
    assert not {"distributed", "required", "version"} & set(architecture)  # not options: ESPnet would refuse them
    assert (seed / "tokens.txt").read_text().split() == TOKENS
    assert facts["token_type"] == "char" and facts["init_param"] == str(seed / "valid.loss.ave.pth")


def test_a_model_without_ctc_is_refused(tmp_path):
    with pytest.raises(SeedError, match="ctc_weight is 0.0.*no CTC branch"):
        import_seed(zoo(tmp_path, model_conf={"ctc_weight": 0.0}), tmp_path / "text", tmp_path / "seed")


def test_a_token_list_that_cannot_write_the_data_is_refused(tmp_path):
    root = zoo(tmp_path, token_list=["<blank>", "<unk>", "<space>", "A", "B", "<sos/eos>"])
    with pytest.raises(SeedError, match="cannot write \"'C\""):
        import_seed(root, tmp_path / "text", tmp_path / "seed")


def test_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").write_text("u1 A\n")
    with pytest.raises(SeedError, match="no ESPnet model found"):
        import_seed(tmp_path / "empty", tmp_path / "text", tmp_path / "seed")


def test_a_model_zoo_tag_is_resolved_by_espnet_model_zoo(tmp_path, monkeypatch):
    # espnet_model_zoo's unpacking makes the config's paths absolute
    root = zoo(tmp_path, normalize_conf={"stats_file": str(tmp_path / "zoo/exp/stats/feats_stats.npz")})
    asked = []

    class ModelDownloader:  # espnet_model_zoo's interface: unpacks a tag, returns the files of the model
        def download_and_unpack(self, tag):
            asked.append(tag)
            return {"asr_train_config": str(root / "exp/asr_train/config.yaml"),
                    "asr_model_file": str(root / "exp/asr_train/valid.acc.ave.pth")}

    module = types.ModuleType("espnet_model_zoo.downloader")
    module.ModelDownloader = ModelDownloader
    monkeypatch.setitem(sys.modules, "espnet_model_zoo", types.ModuleType("espnet_model_zoo"))
    monkeypatch.setitem(sys.modules, "espnet_model_zoo.downloader", module)
    assert resolve_model_dir("user/some_model") == (root / "exp/asr_train").resolve() and asked == ["user/some_model"]
    assert resolve_model_dir(str(root)) == root.resolve()  # a folder stays a folder
    facts = import_seed(resolve_model_dir("user/some_model"), tmp_path / "text", tmp_path / "seed")
    assert Path(facts["init_param"]).resolve() == (root / "exp/asr_train/valid.acc.ave.pth").resolve()


def test_a_model_zoo_tag_without_espnet_model_zoo_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "espnet_model_zoo", None)  # not installed
    with pytest.raises(SeedError, match=r"needs espnet_model_zoo \(pip install espnet_model_zoo\)"):
        resolve_model_dir("user/some_model")
    with pytest.raises(SeedError, match="not a folder"):
        resolve_model_dir(str(tmp_path / "missing_folder"))
