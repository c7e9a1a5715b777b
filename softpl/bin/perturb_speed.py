"""Speed perturbation of the labeled training set (ESPnet's ``--speed_perturb_factors``), stage 2 of run.sh.

    python -m softpl.bin.perturb_speed --data_dir dump/raw/org/train_labeled \\
        --output_dir dump/raw/org/train_labeled_sp --factors "0.9 1.0 1.1" --fs 16000 [--nj 2]

Writes the union of every factor's copy of the data dir (see :mod:`softpl.data.speed_perturb`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from softpl.data.datadir import DataDirError
from softpl.data.speed_perturb import perturb_data_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, required=True, help="formatted data dir (stage 2's output)")
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--factors", required=True, help="speed factors, e.g. '0.9 1.0 1.1' (1.0: as it is)")
    parser.add_argument("--fs", type=int, default=16000, help="sample rate of the data dir's audio")
    parser.add_argument("--nj", type=int, default=1, help="parallel processes")
    args = parser.parse_args(argv)
    try:
        n = perturb_data_dir(args.data_dir, args.output_dir, args.factors, fs=args.fs, nj=args.nj)
    except (ValueError, DataDirError) as err:
        sys.exit(f"perturb_speed: error: {err}")
    print(f"{args.output_dir}: {n} utterances (speed factors {args.factors}) from {args.data_dir}")


if __name__ == "__main__":
    main()
