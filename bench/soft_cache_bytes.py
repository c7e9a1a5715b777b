"""Bytes of the soft targets held in a pseudo-labeling cache, against full fp32 posteriors of the same frames.

Reads a state file that CPLTrainer saves every epoch (``<exp>/cpl_state/epoch<N>.rank<R>.pth``), so the numbers
are those of a real run's cache (trained teacher, real audio), not of a model's untrained posteriors.

Usage: ``python bench/soft_cache_bytes.py egs/synth_en/exp/pl_soft/cpl_state/epoch20.rank0.pth [...]``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import softpl.pl.targets  # noqa: F401  (registers SoftTarget and PseudoLabel for torch.load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("states", type=Path, nargs="+")
    args = parser.parse_args()
    for path in args.states:
        state = torch.load(path, map_location="cpu", weights_only=True)
        softs = [label.soft for entry in state["cache"]["entries"] for label in entry["labels"] if label.soft]
        if not softs:
            print(f"{path}: no soft targets in this cache")
            continue
        stored = sum(soft.nbytes for soft in softs)
        frames = sum(soft.num_frames for soft in softs)
        dense = frames * softs[0].vocab_size * 4
        kept = sum(len(soft.values) for soft in softs) / frames if softs[0].counts is not None else softs[0].vocab_size
        print(f"{path}: {len(softs)} utterances, {frames} frames, V={softs[0].vocab_size}, "
              f"{softs[0].storage} storage: {stored / frames:.2f} "
              f"bytes per frame ({kept:.2f} tokens kept), fp32 posteriors {dense / frames:.0f}: 1/{dense / stored:.1f}")


if __name__ == "__main__":
    main()
