"""Branch a continuation run from a seed's training state: slimIPL's protocol, as one run would continue.

slimIPL is one training run: M labeled-only updates, then pseudo-labeling, with one optimizer and one
learning-rate schedule. The fair comparison branches every continuation (each pseudo-labeling variant and the
supervised-only ESPnet baseline) from the same seed *state*: ESPnet's ``checkpoint.pth`` of the seed's last
epoch, with its model, optimizer (Adam moments and step count), scheduler (step count, so the learning rate goes
on where it was) and AMP scaler. Averaged weights are for decoding, not for continuing: every run of a table is
decoded from the checkpoint :func:`decoded_model_name` names, by one rule.

:func:`branch_checkpoint` writes that state into a new experiment folder as its ``checkpoint.pth``, so that
ESPnet's own ``--resume true`` continues it: ESPnet's ``asr_train`` (``softpl.bin.asr_train``) for the
supervised baseline, ``softpl.bin.cpl_train`` for pseudo-labeling. The reporter keeps the seed's epoch count (the
branch's epochs are numbered on from it) but none of its history, so the branch's best-epoch choice and
checkpoint average cover the branch's own epochs only. The checkpoint is marked (``softpl_branch``) so that
CPLTrainer knows to start a fresh pseudo-labeling state.
"""
from __future__ import annotations

from pathlib import Path

import torch
import yaml

BRANCH_KEY = "softpl_branch"
# What must match between the seed's config and the branch's: the state continued is only meaningful under them.
SCHEDULE_KEYS = ("optim", "optim_conf", "scheduler", "scheduler_conf")


def decoded_model_name(config: dict) -> str:
    """The checkpoint a run is decoded from: ESPnet's average of its ``keep_nbest_models`` best epochs by the first
    validation criterion of its ``best_model_criterion`` (e.g. ``valid.cer_ctc.ave.pth``), ``valid.loss.ave.pth``
    when none is on the validation set. One rule for the seed and every continuation (which inherit its config)."""
    for phase, metric, _ in config.get("best_model_criterion") or ():
        if phase == "valid":
            return f"valid.{metric}.ave.pth"
    return "valid.loss.ave.pth"


class BranchError(ValueError):
    """The seed cannot be branched as asked; the message names the file and what to do."""


def load_checkpoint(path: Path) -> dict:
    """An ESPnet training checkpoint (model, reporter, optimizers, schedulers, scaler)."""
    if not path.is_file():
        raise BranchError(f"{path} not found: a branch continues the seed's last training state, which ESPnet "
                          "writes there at every epoch end; train the seed (stage 6) first")
    states = torch.load(path, map_location="cpu", weights_only=False)
    missing = {"model", "reporter", "optimizers", "schedulers"} - set(states)
    if missing:
        raise BranchError(f"{path} is not an ESPnet training checkpoint (it lacks {sorted(missing)})")
    return states


def _schedule_value(config: dict, key: str):
    """``config[key]``, with an absent or empty ``*_conf`` read as ``{}`` (ESPnet writes {} into config.yaml)."""
    found = config.get(key)
    return (found or {}) if key.endswith("_conf") else found


def check_same_schedule(seed_config: Path, branch_config: Path) -> None:
    """Raise unless both configs name the same optimizer and scheduler with the same options."""
    seed = yaml.safe_load(seed_config.read_text()) or {}
    branch = yaml.safe_load(branch_config.read_text()) or {}
    differ = [key for key in SCHEDULE_KEYS if _schedule_value(seed, key) != _schedule_value(branch, key)]
    if differ:
        detail = "; ".join(f"{key}: seed {seed.get(key)!r}, branch {branch.get(key)!r}" for key in differ)
        raise BranchError(f"{branch_config} continues {seed_config}'s optimizer state, so it must use the same "
                          f"optimizer and schedule ({detail}); remove these keys from the continuation config")


def branch_checkpoint(source: Path, out_dir: Path) -> int:
    """Write ``out_dir/checkpoint.pth``: the training state of ``source`` (the seed's ``checkpoint.pth``) with an
    empty history; return its epoch."""
    states = load_checkpoint(source)
    epoch = int(states["reporter"]["epoch"])
    states["reporter"] = {"stats": {}, "epoch": epoch}
    states[BRANCH_KEY] = {"from": str(source.resolve()), "epoch": epoch}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "checkpoint.pth.tmp"
    torch.save(states, tmp)
    tmp.replace(out_dir / "checkpoint.pth")
    return epoch


def branch_epoch(checkpoint: Path) -> int | None:
    """The seed epoch a checkpoint was branched at, or None when it is not an unmodified branch point."""
    if not checkpoint.is_file():
        return None
    states = torch.load(checkpoint, map_location="cpu", weights_only=False)
    info = states.get(BRANCH_KEY)
    if info is None or not states["reporter"]["stats"] == {}:
        return None
    return int(info["epoch"])
