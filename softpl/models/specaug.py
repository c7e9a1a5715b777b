"""ScheduledSpecAug (``--specaug scheduled``): ESPnet's SpecAug as slimIPL configures flashlight's SpecAugment.

Two settings ESPnet's own ``SpecAug`` cannot express (docs/porting.md):

- ``start_update``: no augmentation for the first N training forwards (slimIPL: ``--saug_start_update=5000``).
  ESPnet calls SpecAugment once per training forward, so with ``accum_grad`` 1 this counts updates. The count is a
  buffer of the model (``specaug.num_updates``), saved in ESPnet's checkpoints, so a resumed or branched run counts on;
- ``time_mask_max_ratio``: time masks narrower than ``min(time_mask_width_range's end, ratio x length)``, the
  batch's padded length as flashlight takes it (slimIPL: ``--saug_tmaskt=50 --saug_tmaskp=0.1``).
"""
from __future__ import annotations

from typing import Optional

import torch
from espnet2.asr.specaug.specaug import SpecAug
from espnet2.layers.mask_along_axis import MaskAlongAxis, mask_along_axis


class CappedTimeMask(MaskAlongAxis):
    """ESPnet's time masking with widths drawn from ``[low, min(high, floor(max_ratio x length)))``."""

    def __init__(self, max_ratio: float, **kwargs):
        super().__init__(dim="time", **kwargs)
        self.max_ratio = max_ratio

    def forward(self, spec: torch.Tensor, spec_lengths: torch.Tensor = None):
        low, high = self.mask_width_range
        high = min(high, int(spec.shape[self.dim] * self.max_ratio))
        if high <= low:  # too short for any mask (flashlight skips it too)
            return spec, spec_lengths
        return mask_along_axis(spec, spec_lengths, mask_width_range=(low, high), dim=self.dim,
                               num_mask=self.num_mask, replace_with_zero=self.replace_with_zero)


class ScheduledSpecAug(SpecAug):
    """ESPnet's SpecAug, off for the first ``start_update`` training forwards, with time masks capped at
    ``time_mask_max_ratio`` of the length (None: uncapped). Every other option is SpecAug's."""

    def __init__(self, start_update: int = 0, time_mask_max_ratio: Optional[float] = None,
                 num_time_mask: int = 2, replace_with_zero: bool = True, **kwargs):
        super().__init__(num_time_mask=num_time_mask, replace_with_zero=replace_with_zero, **kwargs)
        if start_update < 0:
            raise ValueError(f"specaug_conf.start_update must be >= 0, got {start_update}")
        if time_mask_max_ratio is not None:
            if not 0.0 < time_mask_max_ratio <= 1.0:
                raise ValueError(f"specaug_conf.time_mask_max_ratio must be in (0, 1], got {time_mask_max_ratio}")
            if not isinstance(self.time_mask, MaskAlongAxis):
                raise ValueError("specaug_conf.time_mask_max_ratio caps time_mask_width_range (frames): set "
                                 "apply_time_mask true and time_mask_width_range, not time_mask_width_ratio_range")
            self.time_mask = CappedTimeMask(time_mask_max_ratio, mask_width_range=self.time_mask.mask_width_range,
                                            num_mask=num_time_mask, replace_with_zero=replace_with_zero)
        self.start_update = start_update
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def forward(self, x, x_lengths=None):
        self.num_updates += 1
        if self.num_updates <= self.start_update:
            return x, x_lengths
        return super().forward(x, x_lengths)
