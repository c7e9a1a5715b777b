"""softpl configs turned into ESPnet's: one home for the supervised continuation of stage 8 and the export.

Which keys are softpl's own is read from the parsers (options that ``CPLASRTask`` defines and ESPnet's
``ASRTask`` does not) and from ``ESPnetASRModel.__init__`` (the model_conf keys stock ESPnet takes); defaults are
read from softpl's parser, never copied.
"""
from __future__ import annotations

import functools
import inspect

from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.asr.specaug.specaug import SpecAug
from espnet2.tasks.asr import ASRTask

from softpl.tasks.cpl_asr import CPLASRTask


class StockConfigError(ValueError):
    """The config cannot be turned into stock ESPnet's; the message says why."""


@functools.cache
def softpl_only_options() -> frozenset[str]:
    """Options that softpl's task defines and stock ESPnet's ASR task does not (``pl_*``, ``unlabeled_*``)."""
    stock = {action.dest for action in ASRTask.get_parser()._actions}
    return frozenset({action.dest for action in CPLASRTask.get_parser()._actions} - stock)


def softpl_default(option: str):
    """The default of one of softpl's options, from its parser."""
    return CPLASRTask.get_parser().get_default(option)


def stock_config(config: dict) -> dict:
    """``config`` as stock ESPnet's ASR task loads it: ``model: espnet`` (where it names a model),
    ESPnetASRModel's model_conf keys only, ``specaug: specaug`` for softpl's ``scheduled`` (its schedule and cap
    act in training only), no option that only softpl's task defines."""
    if config.get("model", "espnet") not in ("espnet", "cpl"):
        raise StockConfigError(f"model '{config.get('model')}' is neither softpl's cpl nor ESPnet's espnet model")
    accepted = set(inspect.signature(ESPnetASRModel.__init__).parameters)
    exported = task_options(config)
    if "model" in config:
        exported["model"] = "espnet"
    if "model_conf" in config:
        exported["model_conf"] = {k: v for k, v in (config["model_conf"] or {}).items() if k in accepted}
    if config.get("specaug") == "scheduled":
        specaug_keys = set(inspect.signature(SpecAug.__init__).parameters)
        exported["specaug"] = "specaug"
        exported["specaug_conf"] = {k: v for k, v in (config.get("specaug_conf") or {}).items() if k in specaug_keys}
    return exported


def task_options(config: dict) -> dict:
    """``config`` without the options only softpl's task defines (``pl_*``, ``unlabeled_*``)."""
    return {key: value for key, value in config.items() if key not in softpl_only_options()}


def supervised_equivalent(config: dict) -> dict:
    """The supervised-only continuation of a pseudo-labeling config for ESPnet's ASR task (``softpl.bin.asr_train``:
    the model and SpecAugment classes of the seed, so the labeled loss is the PL runs'), with as many updates:
    ``num_iters_per_epoch`` times ``1 + pl_unlabeled_per_labeled`` (the config's ratio, else softpl's default)."""
    if "num_iters_per_epoch" not in config:
        raise StockConfigError("the supervised continuation needs num_iters_per_epoch in the configs, to match the "
                               "number of updates")
    ratio = config.get("pl_unlabeled_per_labeled", softpl_default("pl_unlabeled_per_labeled"))
    plain = task_options(config)
    plain["num_iters_per_epoch"] = config["num_iters_per_epoch"] * (1 + ratio)
    return plain
