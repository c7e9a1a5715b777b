"""slimIPL's dynamic dropout (``--slimIPL_dyn_dropout``): at PL start, dropout and layer drop are lowered together."""
from __future__ import annotations

import torch


def lower_dropout(model: torch.nn.Module, rate: float) -> dict[str, int]:
    """Set every dropout module (torch's Dropout family) and every layer-drop rate that is on to ``rate``.

    Layer drop is ESPnet's ``layer_drop_rate`` of its encoders' layer stacks (``MultiSequential``: the transformer,
    conformer and E-Branchformer encoders); a rate of 0 (layer drop off) stays 0, as slimIPL lowers a layer drop
    its config turned on. Returns how many modules of each kind were set, for the log."""
    counts = {"dropout": 0, "layer_drop": 0}
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = rate
            counts["dropout"] += 1
        if getattr(module, "layer_drop_rate", 0.0) > 0.0:
            module.layer_drop_rate = rate
            counts["layer_drop"] += 1
    return counts
