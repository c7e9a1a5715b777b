"""Merge ESPnet YAML configs: later files override earlier ones; mappings (``*_conf``) merge key by key.

A pseudo-labeling run's config is the seed's architecture + the corpus' continuation schedule + one PL
variant: ``python -m softpl.bin.merge_configs conf/train_seed.yaml conf/train_pl.yaml conf/pl/soft.yaml
--out exp/pl_soft/train.yaml``. ``--supervised true`` makes the matching supervised-only continuation for stock
ESPnet (:func:`softpl.tasks.stock_config.supervised_equivalent`): softpl's own options are dropped and
``num_iters_per_epoch`` is multiplied by ``1 + pl_unlabeled_per_labeled``, so it makes as many updates as a
pseudo-labeling run.
``--after_epoch S`` is for runs that continue the seed's training state (``softpl.bin.branch_seed``): the
continuation config's ``max_epoch`` counts its own epochs, and ESPnet numbers them on from the seed's last
epoch S, so the written ``max_epoch`` is S plus that.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from espnet2.utils.types import str2bool

from softpl.tasks.stock_config import supervised_equivalent

def deep_merge(base: dict, override: dict) -> dict:
    """``base`` updated with ``override``; nested mappings are merged rather than replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: an ESPnet config must be a YAML mapping of option names to values")
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", type=Path, nargs="+", help="YAML files, later ones override earlier ones")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--supervised", type=str2bool, default=False, help="supervised-only equivalent (see above)")
    parser.add_argument("--after_epoch", type=int, default=0,
                        help="the seed epoch the run continues from: max_epoch becomes this plus max_epoch")
    args = parser.parse_args(argv)
    merged: dict = {}
    for path in args.configs:
        merged = deep_merge(merged, load_yaml(path))
    if args.supervised:
        merged = supervised_equivalent(merged)
    if args.after_epoch:
        if "max_epoch" not in merged:
            parser.error("--after_epoch needs max_epoch in the configs (the continuation's number of epochs)")
        merged["max_epoch"] = args.after_epoch + merged["max_epoch"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(yaml.safe_dump(merged, sort_keys=False, allow_unicode=True), encoding="utf-8")


if __name__ == "__main__":
    main()
