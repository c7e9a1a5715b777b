"""Export a trained model for stock ESPnet and its model zoo: a config that ESPnet loads without softpl, packed.

Usage::

    python -m softpl.bin.export_model --exp_dir exp/pl_hard --model_file exp/pl_hard/valid.cer_ctc.ave.pth \\
        --output_dir exp/pl_hard/export [--outpath exp/pl_hard/pl_hard_valid.cer_ctc.ave.zip]

A softpl run's ``config.yaml`` says ``model: cpl`` and holds the pseudo-labeling options, which stock ESPnet does
not know. ``CPLASRModel`` adds no parameters to ``ESPnetASRModel``, so the export is a config change only:
``OUTPUT_DIR/config.yaml`` is the run's config with ``model: espnet``, ``model_conf`` reduced to what
``ESPnetASRModel`` takes, ``specaug: scheduled`` as ESPnet's ``specaug`` (the weights then lose its update
counter, in ``OUTPUT_DIR/model.pth``), and softpl's own options (``pl_*``, ``unlabeled_*``) dropped. The weights
are checked to load into stock ESPnet's model (strictly) before anything is packed. With ``--outpath`` the config, the
weights and the files the config points to (normalization statistics, bpe model) and ``--option`` files are
packed with ESPnet's own packer (``espnet2.bin.pack asr``), in the layout ESPnet's model zoo unpacks; run it from
the recipe folder, as ESPnet's ``asr.sh`` does, so that packed paths are relative. Stage 11 of ``run.sh`` runs it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.main_funcs.pack_funcs import pack
from espnet2.tasks.asr import ASRTask

from softpl.tasks.stock_config import StockConfigError, stock_config


class ExportError(StockConfigError):
    """The run cannot be exported as asked; the message names the file and what to do."""


def packed_name(path: str | Path) -> str:
    """The name ESPnet's packer stores a file under: links resolved, relative to the working folder when inside
    it. The exported config must name its files so, or unpacking cannot point the config at them."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def pack_paths(config: dict) -> list[Path]:
    """Point the config's files (normalization statistics, bpe model) at their packed names, in place; return
    them (the files a packed model needs)."""
    files = []
    normalize_conf = config.get("normalize_conf") or {}
    for holder, key in ((normalize_conf, "stats_file"), (config, "bpemodel")):
        path = holder.get(key)
        if path is None or (holder is normalize_conf and not config.get("normalize")):
            continue
        if not Path(path).exists():
            raise ExportError(f"the config points to {path}, which is missing: run from the recipe folder "
                              "(paths in config.yaml are relative to it)")
        holder[key] = packed_name(path)
        files.append(Path(holder[key]))
    return files


def stock_weights(model_file: Path, output_dir: Path) -> Path:
    """The weights stock ESPnet loads: ``model_file``, or where it holds softpl's SpecAugment update counter
    (``specaug.num_updates`` of ``specaug: scheduled``, read in training only) ``output_dir/model.pth`` without it."""
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    kept = {key: value for key, value in state.items() if not key.startswith("specaug.")}
    if len(kept) == len(state):
        return model_file
    torch.save(kept, output_dir / "model.pth")
    return output_dir / "model.pth"


def check_loads(config_path: Path, model_file: Path) -> None:
    """Build stock ESPnet's model from the exported config and load the weights into it strictly."""
    model, _ = ASRTask.build_model_from_file(config_path, None, "cpu")
    if type(model) is not ESPnetASRModel:
        raise ExportError(f"{config_path}: ESPnet builds a {type(model).__name__}, not ESPnetASRModel")
    state = torch.load(model_file, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ExportError(f"{model_file} does not load into stock ESPnet's model: {err}") from err


def export(exp_dir: Path, model_file: Path, output_dir: Path, outpath: Path | None = None,
           options: list[Path] = ()) -> Path:
    """Write ``output_dir/config.yaml`` (and pack to ``outpath``); return the config's path."""
    config_file = exp_dir / "config.yaml"
    if not config_file.is_file():
        raise ExportError(f"{config_file} not found: --exp_dir must be an ESPnet experiment folder")
    if not model_file.is_file():
        raise ExportError(f"{model_file} not found (--model_file)")
    config = stock_config(yaml.safe_load(config_file.read_text(encoding="utf-8")))
    files = pack_paths(config)
    output_dir.mkdir(parents=True, exist_ok=True)
    exported = output_dir / "config.yaml"
    exported.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    model_file = stock_weights(model_file, output_dir)
    check_loads(exported, model_file)
    if outpath is not None:
        missing = [str(path) for path in options if not path.exists()]
        if missing:
            raise ExportError(f"--option files not found: {', '.join(missing)}")
        pack(files={"asr_model_file": model_file}, yaml_files={"asr_train_config": exported},
             option=[*files, *options], outpath=outpath)
    return exported


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", type=Path, required=True, help="the run's ESPnet experiment folder")
    parser.add_argument("--model_file", type=Path, required=True, help="the checkpoint to export")
    parser.add_argument("--output_dir", type=Path, required=True, help="gets the stock ESPnet config.yaml")
    parser.add_argument("--outpath", type=Path, help="pack config, weights and their files into this zip")
    parser.add_argument("--option", type=Path, action="append", default=[],
                        help="another file to pack (e.g. RESULTS.md), as espnet2.bin.pack's --option")
    args = parser.parse_args(argv)
    try:
        exported = export(args.exp_dir, args.model_file, args.output_dir, args.outpath, args.option)
    except StockConfigError as err:  # ExportError included
        sys.exit(f"export_model: error: {err}")
    print(f"export_model: {exported} (stock ESPnet config of {args.model_file})"
          + (f", packed into {args.outpath}" if args.outpath else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
