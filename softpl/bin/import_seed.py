"""Use an existing ESPnet ASR model as the seed: an experiment folder or an unpacked model-zoo folder.

``python -m softpl.bin.import_seed --model_dir DIR --text dump/raw/train_labeled/text --output_dir exp/asr_seed``
finds the model's ``config.yaml`` and weights in DIR (an ESPnet ``exp/asr_*`` folder, or a model-zoo folder
holding ``exp/**/config.yaml``; DIR may also be a model-zoo tag such as ``pyf98/librispeech_100_ctc_e_branchformer``,
which ``espnet_model_zoo`` resolves from its local cache, downloading it where it can), checks that it can do CTC
and that its token list covers the characters of the labeled transcripts, and writes to ``--output_dir``:

- ``config.yaml``: the model's config with its file paths (bpemodel, normalization statistics) made
  absolute, so ESPnet and softpl's decoders load it from anywhere;
- a link to the chosen weights, named as the recipe's decoding rule expects from the config
  (:func:`softpl.train.branch.decoded_model_name`, e.g. ``valid.loss.ave.pth``), which stage 8 initializes from;
- ``tokens.txt``: its token list;
- ``train_seed.yaml``: the architecture part of the config (no data, output or token options), the base
  that stage 8 merges the continuation schedule and a PL variant onto;
- ``seed_facts``: ``key=value`` lines the stage engine reads one by one (token_type, bpemodel, init_param).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from softpl.data.datadir import read_table
from softpl.data.validate import allowed_characters
from softpl.tasks.cpl_asr import CPLASRTask
from softpl.train.branch import decoded_model_name

# Preferred weights, as ESPnet names averaged and best models.
MODEL_PREFERENCE = ("valid.loss.ave.pth", "valid.acc.ave.pth", "valid.cer_ctc.ave.pth", "valid.loss.best.pth",
                    "valid.acc.best.pth", "latest.pth")
# Options that describe the training data or run, not the model: dropped from train_seed.yaml.
RUN_OPTIONS = ("train_data_path_and_name_and_type", "valid_data_path_and_name_and_type", "train_shape_file",
               "valid_shape_file", "output_dir", "token_list", "bpemodel", "token_type", "init_param",
               "ngpu", "seed", "resume", "dist_rank", "local_rank", "dist_world_size", "dist_master_addr",
               "dist_master_port", "dist_init_method", "dist_launcher", "multiprocessing_distributed",
               "collect_stats", "write_collected_feats", "print_config", "config", "version", "dry_run",
               "allow_variable_data_keys", "use_preprocessor", "non_linguistic_symbols", "cleaner", "g2p",
               "frontend_conf_fs", "wandb_project", "wandb_id", "wandb_entity", "wandb_name", "pretrain_path")
# The seed run's length and model choice: the continuation config (conf/train_pl.yaml) sets its own. The optimizer
# and schedule are kept: an imported seed has no optimizer state to branch from, so its continuation restarts the
# seed's optimizer and schedule from step 0 (warm-up included). Batching is kept, as a default the continuation
# config may override.
ESPNET_TRAINING_ONLY = ("keep_nbest_models", "best_model_criterion", "max_epoch", "patience", "num_iters_per_epoch")


class SeedError(ValueError):
    """The folder does not hold an ESPnet ASR model softpl can continue; the message says why and what to do."""


def find_model(model_dir: Path) -> tuple[Path, Path]:
    """(config.yaml, weights) of the ESPnet ASR model in ``model_dir`` (an exp folder or a model-zoo folder)."""
    configs = [model_dir / "config.yaml"] if (model_dir / "config.yaml").exists() else \
        sorted(model_dir.glob("exp/**/config.yaml"))
    configs = [c for c in configs if any((c.parent / name).exists() for name in MODEL_PREFERENCE)
               or list(c.parent.glob("*.pth"))]
    if not configs:
        raise SeedError(f"{model_dir}: no ESPnet model found (config.yaml next to *.pth, directly or under exp/); "
                        "pass an ESPnet ASR experiment folder or an unpacked model-zoo folder")
    if len(configs) > 1:
        raise SeedError(f"{model_dir}: several models found ({', '.join(str(c.parent) for c in configs)}); "
                        "pass the folder of the one to use")
    config = configs[0]
    for name in MODEL_PREFERENCE:
        if (config.parent / name).exists():
            return config, (config.parent / name).resolve()
    return config, sorted(config.parent.glob("*.pth"))[-1].resolve()


def resolve_model_dir(model_dir: str) -> Path:
    """``model_dir`` as a folder: itself when it is one, else a model-zoo tag unpacked by ``espnet_model_zoo``."""
    if Path(model_dir).is_dir():
        return Path(model_dir).resolve()
    if Path(model_dir).exists() or "/" not in model_dir:
        raise SeedError(f"{model_dir}: not a folder (nor a model-zoo tag such as <user>/<model name>); pass an "
                        "ESPnet ASR experiment folder, an unpacked model-zoo folder or a model-zoo tag")
    try:
        from espnet_model_zoo.downloader import ModelDownloader
    except ImportError:
        raise SeedError(f"{model_dir} is not a folder; as a model-zoo tag it needs espnet_model_zoo "
                        "(pip install espnet_model_zoo), which is not installed") from None
    try:
        files = ModelDownloader().download_and_unpack(model_dir)
    except Exception as err:  # noqa: BLE001 -- any failure of the download or unpacking is reported alike
        raise SeedError(f"model-zoo tag {model_dir}: espnet_model_zoo could not provide it ({err}); without a "
                        "network, unpack the model somewhere and pass that folder") from err
    return Path(files["asr_train_config"]).resolve().parent


def absolute(path: str | None, model_dir: Path, config_dir: Path) -> str | None:
    """A path of the config made absolute: relative to the model-zoo root, else to the config's folder."""
    if path is None or Path(path).is_absolute():
        return path
    for base in (model_dir, config_dir):
        if (base / path).exists():
            return str((base / path).resolve())
    raise SeedError(f"{config_dir / 'config.yaml'}: {path} not found under {model_dir} or {config_dir}")


def check_ctc(config: dict, path: Path) -> float:
    """The model's CTC weight; a clear error when the model cannot do CTC."""
    if config.get("model", "espnet") not in ("espnet", "cpl"):
        raise SeedError(f"{path}: model '{config.get('model')}' is not an ESPnet CTC/attention ASR model; "
                        "softpl continues models of ESPnet's asr task ('model: espnet')")
    ctc_weight = float(config.get("model_conf", {}).get("ctc_weight", 0.5))
    if ctc_weight <= 0:
        raise SeedError(f"{path}: model_conf.ctc_weight is {ctc_weight}: the model has no CTC branch, and "
                        "pseudo-labeling needs CTC posteriors; choose a CTC or hybrid CTC/attention model")
    return ctc_weight


def check_tokens(token_list: Path, text: Path, path: Path) -> None:
    """Every character of the labeled transcripts must be writable with the model's tokens."""
    allowed = allowed_characters(token_list)
    missing = sorted({ch for _, _, value in read_table(text) for ch in value if ch not in allowed})
    if missing:
        raise SeedError(f"{path}: the model's token list cannot write {''.join(missing)!r} found in {text}; "
                        "use a model trained on this language/normalization, or normalize the data like its "
                        "training data (e.g. case)")


def import_seed(model_dir: Path, text: Path, out: Path) -> dict[str, str]:
    """Write the seed folder ``out`` from an ESPnet model; return the facts also written to ``out/seed_facts``."""
    config_path, weights = find_model(model_dir)
    config = yaml.safe_load(config_path.read_text())
    check_ctc(config, config_path)
    tokens = config["token_list"]
    if isinstance(tokens, str):
        tokens = Path(absolute(tokens, model_dir, config_path.parent)).read_text().split()
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokens.txt").write_text("\n".join(tokens) + "\n")
    check_tokens(out / "tokens.txt", text, config_path)
    config["token_list"] = tokens
    config["bpemodel"] = absolute(config.get("bpemodel"), model_dir, config_path.parent)
    if isinstance(config.get("normalize_conf"), dict) and "stats_file" in config["normalize_conf"]:
        config["normalize_conf"]["stats_file"] = absolute(config["normalize_conf"]["stats_file"], model_dir,
                                                          config_path.parent)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    link = out / decoded_model_name(config)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(weights)
    options = {action.dest for action in CPLASRTask.get_parser()._actions}
    # Keep the model's options; drop run/data options and what ESPnet adds to a dumped config ("distributed").
    architecture = {k: v for k, v in config.items() if k in options and k not in RUN_OPTIONS + ESPNET_TRAINING_ONLY}
    (out / "train_seed.yaml").write_text(yaml.safe_dump(architecture, sort_keys=False, allow_unicode=True))
    init_param = str(link)  # the whole model, a hybrid one's attention decoder included
    facts = {"token_type": config.get("token_type", "char"), "bpemodel": config["bpemodel"] or "",
             "init_param": init_param}
    (out / "seed_facts").write_text("".join(f"{k}={v}\n" for k, v in facts.items()))
    return facts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True,
                        help="ESPnet ASR experiment folder, unpacked model-zoo folder, or model-zoo tag")
    parser.add_argument("--text", type=Path, required=True, help="labeled transcripts the token list must cover")
    parser.add_argument("--output_dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        facts = import_seed(resolve_model_dir(args.model_dir), args.text, args.output_dir)
    except SeedError as e:
        print(f"import_seed: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{args.output_dir}: seed from {os.path.realpath(facts['init_param'].split(':')[0])} "
          f"(token type {facts['token_type']})")


if __name__ == "__main__":
    main()
