"""The labeler's teacher mode: dropout on asks for Dropout only; BatchNorm labels with (and keeps) its statistics."""
from __future__ import annotations

import torch

from softpl.pl.labeler import teacher_log_probs, teacher_mode


class TinyASR(torch.nn.Module):
    """The two calls the labeler makes (``encode``, ``ctc.log_softmax``) over a BatchNorm and Dropout stack."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(4)
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.Dropout1d(0.5))
        self.ctc = torch.nn.Module()
        self.ctc.log_softmax = lambda enc: torch.log_softmax(enc, dim=-1)

    def encode(self, speech, speech_lengths, aug_seed=None):
        x = self.norm(speech.transpose(1, 2)).transpose(1, 2)
        return self.layers(x), speech_lengths


def test_teacher_dropout_leaves_batchnorm_in_eval_and_restores_modes():
    torch.manual_seed(0)
    model = TinyASR().train()
    model.norm.eval()  # a mix of modes, all to be restored
    speech, lengths = 3.0 + torch.randn(2, 6, 4), torch.tensor([6, 4])
    stats = {name: buffer.clone() for name, buffer in model.norm.named_buffers()}
    modes = {name: module.training for name, module in model.named_modules()}

    first, _ = teacher_log_probs(model, speech, lengths, dropout=True)
    second, _ = teacher_log_probs(model, speech, lengths, dropout=True)
    assert not torch.equal(first, second)  # dropout is on
    for name, buffer in model.norm.named_buffers():
        assert torch.equal(buffer, stats[name]), f"BatchNorm {name} changed while labeling"
    assert {name: module.training for name, module in model.named_modules()} == modes

    clean, _ = teacher_log_probs(model, speech, lengths)
    torch.testing.assert_close(clean, teacher_log_probs(model, speech, lengths)[0])


def test_teacher_mode_sets_only_dropout_and_the_top_level_augmentation_flag():
    model = TinyASR().train()
    with teacher_mode(model, dropout=True, augment=True):
        assert model.training and not model.norm.training and not model.layers[0].training
        assert model.layers[1].training and model.layers[2].training
    with teacher_mode(model, dropout=False, augment=True):
        assert model.training and not any(module.training for module in model.modules() if module is not model)
    assert all(module.training for module in model.modules())
