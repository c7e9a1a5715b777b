"""Model export: a softpl run's config becomes one stock ESPnet loads, and the weights decode there unchanged."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import without_softpl
from softpl.bin.export_model import ExportError, export, pack_paths
from softpl.tasks.stock_config import StockConfigError, stock_config
from softpl.tasks.cpl_asr import CPLASRTask
from test_cpl_model import DECODER, TOKENS

# What a stock-ESPnet process prints: whether the run's own config loads (it must not: model cpl), and the
# CTC argmax of the exported model on a fixed input.
STOCK_DECODE = """
import json, sys, torch
from espnet2.tasks.asr import ASRTask
try:
    ASRTask.build_model_from_file(sys.argv[1], sys.argv[3], "cpu")
    refused = ""
except Exception as err:
    refused = str(err)
model, _ = ASRTask.build_model_from_file(sys.argv[2], sys.argv[3], "cpu")
model.eval()
torch.manual_seed(1)
speech, lengths = torch.randn(2, 7, 8), torch.tensor([7, 5])
with torch.no_grad():
    enc, _ = model.encode(speech, lengths)
    print(json.dumps({"refused": refused, "model": type(model).__name__, "argmax": model.ctc.argmax(enc).tolist(),
                      "softpl": any(name.startswith("softpl") for name in sys.modules)}))
"""


def trained_run(tmp_path, *, decoder: bool):
    """A run folder as cpl_train leaves it: config.yaml (model: cpl, pl_* options) and a checkpoint."""
    (tmp_path / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    args = CPLASRTask.get_parser().parse_args([
        "--output_dir", str(tmp_path), "--token_list", str(tmp_path / "tokens.txt"), "--model", "cpl",
        "--model_conf", "pl_target=soft", "--model_conf", "entropy_weight=0.1", "--model_conf", "sym_space=▁",
        "--model_conf", f"ctc_weight={0.5 if decoder else 1.0}", "--input_size", "8", "--encoder", "transformer",
        "--encoder_conf", "output_size=8", "--encoder_conf", "attention_heads=2", "--encoder_conf", "linear_units=8",
        "--encoder_conf", "num_blocks=1", "--encoder_conf", "input_layer=linear", "--pl_cache_size", "7",
        # softpl's SpecAugment (its update counter is in the weights), exported as ESPnet's
        "--specaug", "scheduled", "--specaug_conf", "apply_time_warp=false", "--specaug_conf", "start_update=5",
        "--specaug_conf", "time_mask_width_range=[0,4]", "--specaug_conf", "time_mask_max_ratio=0.1",
        *(DECODER if decoder else []),
    ])
    args.token_list = TOKENS  # as ESPnet writes it into config.yaml
    torch.manual_seed(0)
    model = CPLASRTask.build_model(args).eval()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(vars(args), allow_unicode=True))
    torch.save(model.state_dict(), tmp_path / "valid.loss.ave.pth")
    return model


def test_stock_config_drops_softpl_options_and_pl_model_conf():
    config = {"model": "cpl", "model_conf": {"ctc_weight": 0.3, "pl_target": "soft", "lsm_weight": 0.1},
              "pl_cache_size": 50, "unlabeled_shape_file": ["x"], "batch_bins": 100, "encoder": "conformer"}
    assert stock_config(config) == {"model": "espnet", "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1},
                                    "batch_bins": 100, "encoder": "conformer"}
    scheduled = {"specaug": "scheduled", "specaug_conf": {"start_update": 5000, "time_mask_max_ratio": 0.1,
                                                          "num_time_mask": 10}}
    assert stock_config(scheduled) == {"specaug": "specaug", "specaug_conf": {"num_time_mask": 10}}
    with pytest.raises(StockConfigError, match="model 'transducer' is neither"):
        stock_config({"model": "transducer"})


def test_exported_model_loads_and_decodes_alike_in_stock_espnet_without_softpl(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model = trained_run(run, decoder=True)  # hybrid: the decoder's options go through as well
    config = export(run, run / "valid.loss.ave.pth", tmp_path / "export")
    weights = tmp_path / "export/model.pth"  # the run's, less SpecAugment's update counter
    assert set(torch.load(run / "valid.loss.ave.pth")) - set(torch.load(weights)) == {"specaug.num_updates"}
    out = subprocess.run([sys.executable, "-c", STOCK_DECODE, str(run / "config.yaml"), str(config),
                          str(weights)], env=without_softpl(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    stock = json.loads(out.stdout.strip().splitlines()[-1])
    assert "scheduled" in stock.pop("refused")  # the check can fail: the run's own config needs softpl
    torch.manual_seed(1)
    speech, lengths = torch.randn(2, 7, 8), torch.tensor([7, 5])
    with torch.no_grad():
        expected = model.ctc.argmax(model.encode(speech, lengths)[0]).tolist()
    assert stock == {"model": "ESPnetASRModel", "argmax": expected, "softpl": False}


def test_export_names_what_is_missing(tmp_path):
    with pytest.raises(ExportError, match="config.yaml not found"):
        export(tmp_path, tmp_path / "m.pth", tmp_path / "export")


def test_packed_paths_are_the_names_the_packer_stores(tmp_path, monkeypatch):
    """Links resolved and relative to the working folder, as espnet2's pack stores files: otherwise unpacking
    cannot rewrite the config's paths (a recipe's stats folder may be a link to another experiment's)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp/asr_stats/train").mkdir(parents=True)
    (tmp_path / "exp/asr_stats/train/feats_stats.npz").write_bytes(b"stats")
    (tmp_path / "exp_hybrid").mkdir()
    (tmp_path / "exp_hybrid/asr_stats").symlink_to(tmp_path / "exp/asr_stats")
    config = {"normalize": "global_mvn", "normalize_conf": {"stats_file": "exp_hybrid/asr_stats/train/feats_stats.npz"},
              "bpemodel": None}
    assert pack_paths(config) == [Path("exp/asr_stats/train/feats_stats.npz")]
    assert config["normalize_conf"]["stats_file"] == "exp/asr_stats/train/feats_stats.npz"
    with pytest.raises(ExportError, match="missing: run from the recipe folder"):
        pack_paths({"bpemodel": "data/bpe.model"})
