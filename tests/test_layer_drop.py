"""Layer drop: model cpl's encoders skip layers at ``layer_drop_rate`` in training, as ESPnet's own loops do not."""
from __future__ import annotations

import pytest
import torch
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
from espnet2.legacy.nets.pytorch_backend.transformer.repeat import MultiSequential

from softpl.models.layer_drop import LayerDropSequential
from softpl.pl.dropout import lower_dropout
from test_cpl_model import build_model

LAYERS = 4


def model_with(tmp_path, rate, *, encoder="transformer", extra=(), **model_conf):
    conf = ["--encoder_conf", f"num_blocks={LAYERS}", "--encoder_conf", f"layer_drop_rate={rate}", *extra]
    return build_model(tmp_path, encoder=encoder, extra=conf, **model_conf)


def count_calls(encoder, passes=1):
    """Layer calls over ``passes`` encoder passes of one small batch, in the encoder's current mode."""
    calls = []
    hooks = [layer.register_forward_hook(lambda *_: calls.append(1)) for layer in encoder.encoders._modules.values()]
    try:
        for _ in range(passes):
            encoder(torch.randn(2, 9, 8), torch.tensor([9, 6]))
    finally:
        for hook in hooks:
            hook.remove()
    return len(calls)


def test_espnets_transformer_encoder_alone_ignores_its_layer_drop_rate():
    """Why softpl steps in: the encoder loops over its stack past MultiSequential.forward, where the rate acts."""
    encoder = TransformerEncoder(8, output_size=8, attention_heads=2, linear_units=8, num_blocks=LAYERS,
                                 input_layer="linear", layer_drop_rate=1.0).train()
    assert count_calls(encoder) == LAYERS


@pytest.mark.parametrize("encoder", ["transformer", "conformer"])
def test_rate_one_drops_every_layer_in_training_and_none_in_eval(tmp_path, encoder):
    model = model_with(tmp_path, 1.0, encoder=encoder)
    assert type(model.encoder.encoders) is LayerDropSequential
    assert count_calls(model.encoder.train()) == 0
    assert count_calls(model.encoder.eval()) == LAYERS


def test_rate_half_drops_about_half_of_the_layers_reproducibly_by_torchs_seed(tmp_path):
    encoder = model_with(tmp_path, 0.5).encoder.train()
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(count_calls(encoder, passes=100))
    assert runs[0] == runs[1]
    assert 0.4 < runs[0] / (100 * LAYERS) < 0.6


def test_calling_the_stack_drops_layers_once(tmp_path):
    """MultiSequential.forward (the path of encoders that call their stack) drops by the same rate, not twice."""
    stack = model_with(tmp_path, 0.5).encoder.encoders.train()
    calls = []
    for layer in stack._modules.values():
        layer.register_forward_hook(lambda *_: calls.append(1))
    torch.manual_seed(0)
    for _ in range(100):
        stack(torch.randn(2, 9, 8), torch.ones(2, 1, 9, dtype=torch.bool))
    assert 0.4 < len(calls) / (100 * LAYERS) < 0.6


def test_lowering_the_rate_at_pl_start_takes_effect(tmp_path):
    model = model_with(tmp_path, 1.0)
    assert count_calls(model.encoder.train()) == 0
    assert lower_dropout(model, 0.0)["layer_drop"] == 1
    assert count_calls(model.encoder.train()) == LAYERS


def test_state_dict_keys_are_espnets_and_load_into_its_model(tmp_path):
    model = model_with(tmp_path, 0.3)
    stock = model_with(tmp_path, 0.3, extra=["--model", "espnet"])
    assert type(stock.encoder.encoders) is MultiSequential
    assert list(model.state_dict()) == list(stock.state_dict())
    stock.load_state_dict(model.state_dict())


@pytest.mark.parametrize("encoder,rate", [("transformer", 0.0), ("e_branchformer", 1.0)])
def test_rate_zero_and_an_encoder_with_its_own_layer_drop_are_left_alone(tmp_path, encoder, rate):
    """Rate 0: the model is ESPnet's as built. E-Branchformer drops layers by its own rate: not twice."""
    model = model_with(tmp_path, rate, encoder=encoder)
    assert type(model.encoder.encoders) is MultiSequential


def test_intermediate_ctc_trains_with_layers_dropped(tmp_path):
    model = model_with(tmp_path, 1.0, encoder="conformer", interctc_weight=0.5,
                       extra=["--encoder_conf", "interctc_layer_idx=[2]"]).train()
    text = torch.tensor([[3, 4, 5], [4, 3, -1]])
    loss, stats, _ = model(torch.randn(2, 9, 8), torch.tensor([9, 6]), text, torch.tensor([3, 2]))
    loss.backward()
    assert torch.isfinite(loss).all() and "loss_interctc_layer2" in stats
    assert all(p.grad is None for p in model.encoder.encoders.parameters())  # no layer ran
