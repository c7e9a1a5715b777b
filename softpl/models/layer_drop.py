"""Layer drop (``encoder_conf.layer_drop_rate``) for ESPnet encoders that loop over their layer stack themselves.

ESPnet applies ``layer_drop_rate`` in ``MultiSequential.forward`` only, but ESPnet 202611's transformer and conformer
encoders call each layer of ``self.encoders`` in their own loop, so the rate had no effect there. Here the stack's
iteration drops the layers instead, which reaches both the encoders' loops and ``MultiSequential.forward``.
"""
from __future__ import annotations

import torch
from espnet2.legacy.nets.pytorch_backend.transformer.repeat import MultiSequential


def _skip(*args, **kwargs):
    """A dropped layer: its inputs pass unchanged, as ``MultiSequential.forward`` leaves them."""
    return args


class LayerDropSequential(MultiSequential):
    """``MultiSequential`` whose iteration applies layer drop: in training, each pass over the stack skips each layer
    with probability ``layer_drop_rate``, read at every pass (so lowering it, :func:`softpl.pl.dropout.lower_dropout`,
    takes effect), drawn from torch's RNG as ``MultiSequential`` draws it. Eval mode runs every layer."""

    def __iter__(self):
        layers = super().__iter__()
        if not self.training or self.layer_drop_rate <= 0:
            return layers
        keep = (torch.empty(len(self)).uniform_() >= self.layer_drop_rate).tolist()
        return iter([layer if kept else _skip for layer, kept in zip(layers, keep)])

    def forward(self, *args):
        """Every layer of one pass in turn (the pass drops the layers: not twice)."""
        for layer in self:
            args = layer(*args)
        return args


def enable_layer_drop(encoder: torch.nn.Module) -> None:
    """Make ``encoder.encoders`` a :class:`LayerDropSequential` when its ``layer_drop_rate`` is on; the same layer
    modules under the same names, so the state_dict keys stay ESPnet's. An encoder that drops layers by a rate of its
    own (E-Branchformer's ``layer_drop_rate``) and a rate of 0 are left alone."""
    stack = getattr(encoder, "encoders", None)
    if type(stack) is not MultiSequential or stack.layer_drop_rate <= 0 or hasattr(encoder, "layer_drop_rate"):
        return
    encoder.encoders = LayerDropSequential(*stack, layer_drop_rate=stack.layer_drop_rate)
