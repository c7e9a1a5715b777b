"""EMA teacher: a slowly moving average of the student that makes the pseudo-labels (slimIPL's ``--slimIPL_ema``).

A slower teacher damps the feedback loop in which the student's drift becomes its own next target (docs/method.md,
'The collapse' and regularizer 7). torch.optim.swa_utils.AveragedModel is not used: its first update copies the student
instead of averaging, it keeps the student's dtype (bf16 shadows lose the small EMA increments), and it pairs
parameters by position without checking that the two models match.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside a DistributedDataParallel/DataParallel-style wrapper (anything exposing `.module`)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else model


class EMATeacher:
    """fp32 exponential moving average of a student's weights: shadow = decay * shadow + (1 - decay) * student.

    The teacher is a deep copy of the student, in eval mode, with parameters and buffers cast to fp32 and no
    gradients. Each `update` averages the floating parameters and floating buffers in fp32 (whatever the student's
    dtype): BatchNorm's running statistics then move at the pace of the averaged weights they normalize, not jump
    to the student's. Integer tensors (e.g. BatchNorm's num_batches_tracked) are counters and are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay} (slimIPL uses 0.999)")
        self.decay = decay
        self.num_updates = 0
        self._module = copy.deepcopy(_unwrap(model)).float().eval()
        for param in self._module.parameters():
            param.requires_grad_(False)
            param.grad = None

    @property
    def module(self) -> torch.nn.Module:
        """The teacher network used for labeling (eval mode, fp32, no gradients)."""
        return self._module

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move the shadow weights one EMA step towards `model` (the student, DDP-wrapped or not)."""
        student = _unwrap(model)
        student_params = dict(student.named_parameters())
        student_buffers = dict(student.named_buffers())
        teacher_params = dict(self._module.named_parameters())
        teacher_buffers = dict(self._module.named_buffers())
        for kind, ours, theirs in (
            ("parameters", teacher_params, student_params),
            ("buffers", teacher_buffers, student_buffers),
        ):
            if ours.keys() != theirs.keys():
                raise ValueError(
                    f"student and EMA teacher {kind} differ (missing in the student: "
                    f"{sorted(ours.keys() - theirs.keys())}, unknown to the teacher: "
                    f"{sorted(theirs.keys() - ours.keys())}); build the EMATeacher from this model"
                )
        shadow_state = {**teacher_params, **teacher_buffers}
        student_state = {**student_params, **student_buffers}
        averaged = [name for name, tensor in shadow_state.items() if tensor.is_floating_point()]
        shadow = [shadow_state[name] for name in averaged]
        current = [student_state[name].detach().to(t.device, t.dtype) for name, t in zip(averaged, shadow)]
        if shadow:
            torch._foreach_lerp_(shadow, current, 1.0 - self.decay)
        for name, tensor in shadow_state.items():
            if not tensor.is_floating_point():
                tensor.copy_(student_state[name])
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Shadow weights, buffers and the number of updates, for an exact resume."""
        return {"shadow": self._module.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        missing = {"shadow", "num_updates"} - set(state)
        if missing:
            raise KeyError(f"EMA teacher state lacks {sorted(missing)}; was it saved by EMATeacher.state_dict?")
        self._module.load_state_dict(state["shadow"])
        self.num_updates = int(state["num_updates"])

    def to(self, device: torch.device | str) -> EMATeacher:
        """Move the teacher (kept in fp32) to `device`; returns self."""
        self._module.to(device)
        return self
