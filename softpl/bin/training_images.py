"""ESPnet's training curves (``<exp>/images/<metric>.png``) drawn once, from a run's checkpoint when it ends.

Stock ESPnet redraws every metric's curve after every epoch (``--use_matplotlib true``): one PNG per metric,
about 0.1 s each, so 1-2 s an epoch for a supervised run and 4-6 s for a pseudo-labeling run, which reports
some 40 metrics; where updates are cheap (a small model on a GPU) that is a large share of a run's wall time
(a third for bench/RESULTS.md's stand-in, a 1-block conformer on CPU). run.sh trains with
``--use_matplotlib false`` (unless ``--epoch_images true``) and calls this when a run ends, also when it fails
or a collapse alarm stops it: ESPnet's own ``Reporter.matplotlib_plot`` over the statistics that ESPnet saved
in ``checkpoint.pth``, so the images are the ones ESPnet would have left after the last finished epoch.
TensorBoard (``<exp>/tensorboard``) still follows the run epoch by epoch.

Usage: ``python -m softpl.bin.training_images --exp_dir exp/pl_hard [--output_dir exp/pl_hard/images]``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from espnet2.train.reporter import Reporter


def draw_training_images(exp_dir: Path, output_dir: Path | None = None) -> list[Path]:
    """Draw every metric of ``exp_dir/checkpoint.pth``'s reporter into ``output_dir`` (default
    ``exp_dir/images``); returns the images written."""
    checkpoint = exp_dir / "checkpoint.pth"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint} not found: ESPnet writes it at the end of every training epoch; "
                                f"train the run first (or point --exp_dir at the folder that holds train.log)")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    if "reporter" not in state:
        raise ValueError(f"{checkpoint} has no 'reporter' entry: not an ESPnet training checkpoint")
    reporter = Reporter()
    reporter.load_state_dict(state["reporter"])
    if not reporter.stats.get(reporter.get_epoch()):  # ESPnet draws the keys of the last epoch
        raise ValueError(f"{checkpoint}: the reporter holds no epoch statistics, so there is nothing to draw")
    output_dir = output_dir or exp_dir / "images"
    reporter.matplotlib_plot(output_dir)
    return sorted(output_dir.glob("*.png"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", type=Path, required=True, help="an ESPnet experiment folder (checkpoint.pth)")
    parser.add_argument("--output_dir", type=Path, default=None, help="where the PNGs go (default: EXP_DIR/images)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s) %(levelname)s: %(message)s")
    try:
        images = draw_training_images(args.exp_dir, args.output_dir)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"softpl.bin.training_images: {err}")
    logging.info("%d training curves in %s", len(images), images[0].parent if images else args.output_dir)


if __name__ == "__main__":
    main()
