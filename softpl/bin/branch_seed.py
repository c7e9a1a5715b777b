"""Start a continuation run from the seed's last training state (see :mod:`softpl.train.branch`).

    python -m softpl.bin.branch_seed --seed_exp exp/asr_seed --print_epoch true
        prints the seed's last epoch (the branch point; a branch's epochs are numbered on from it)
    python -m softpl.bin.branch_seed --seed_exp exp/asr_seed --config exp/pl_hard/train.yaml --output_dir exp/pl_hard
        checks that the continuation config keeps the seed's optimizer and schedule, and writes
        exp/pl_hard/checkpoint.pth; then train with ``--resume true --output_dir exp/pl_hard``.
    python -m softpl.bin.branch_seed --decoded_model exp/pl_hard
        prints the checkpoint of a trained run that the recipe decodes (the one rule for every row of a table)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from espnet2.utils.types import str2bool

from softpl.train.branch import BranchError, branch_checkpoint, check_same_schedule, decoded_model_name, load_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed_exp", type=Path, help="the seed's ESPnet experiment folder")
    parser.add_argument("--decoded_model", type=Path, metavar="EXP",
                        help="print the checkpoint of the trained run EXP that is decoded, and exit")
    parser.add_argument("--print_epoch", type=str2bool, default=False,
                        help="true: print the seed's last epoch (the branch point) and exit")
    parser.add_argument("--config", type=Path, help="the continuation's training config (checked against the seed's)")
    parser.add_argument("--output_dir", type=Path, help="the continuation's experiment folder")
    args = parser.parse_args(argv)
    try:
        if args.decoded_model is not None:
            if not (args.decoded_model / "config.yaml").is_file():
                raise BranchError(f"{args.decoded_model}/config.yaml not found: not an ESPnet experiment folder")
            config = yaml.safe_load((args.decoded_model / "config.yaml").read_text())
            model = args.decoded_model / decoded_model_name(config)
            if not model.exists():
                raise BranchError(f"{model} not found: train {args.decoded_model} to its end first (ESPnet writes the "
                                  "average when training finishes), or name the checkpoint with run.sh --decode_model")
            print(model)
            return
        if args.seed_exp is None:
            parser.error("--seed_exp is needed (or --decoded_model)")
        if args.print_epoch:
            print(int(load_checkpoint(args.seed_exp / "checkpoint.pth")["reporter"]["epoch"]))
            return
        if args.config is None or args.output_dir is None:
            parser.error("--config and --output_dir are needed (or --print_epoch true)")
        check_same_schedule(args.seed_exp / "config.yaml", args.config)
        epoch = branch_checkpoint(args.seed_exp / "checkpoint.pth", args.output_dir)
    except BranchError as err:
        sys.exit(f"branch_seed: error: {err}")
    print(f"branch_seed: {args.output_dir}/checkpoint.pth continues {args.seed_exp} after its epoch {epoch}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
