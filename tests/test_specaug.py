"""ScheduledSpecAug (softpl.models.specaug): SpecAugment from update N, time masks capped at a share of the length;
and slimIPL's dynamic dropout, which lowers layer drop with dropout (softpl.pl.dropout)."""
from __future__ import annotations

import pytest
import torch
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
from espnet2.tasks.asr import specaug_choices

import softpl.models  # noqa: F401  (registers --specaug scheduled)
from softpl.models.specaug import ScheduledSpecAug
from softpl.pl.dropout import lower_dropout


def time_only(**conf) -> ScheduledSpecAug:
    return ScheduledSpecAug(apply_time_warp=False, apply_freq_mask=False, time_mask_width_range=[0, 50],
                            num_time_mask=1, **conf)


def masked_frames(specaug, frames: int) -> torch.Tensor:
    """Frames zeroed in each of 64 all-one utterances of ``frames`` frames."""
    out, _ = specaug(torch.ones(64, frames, 4), torch.full((64,), frames))
    return (out == 0).all(dim=2).sum(dim=1)


def test_no_augmentation_before_start_update_and_the_count_is_saved():
    assert specaug_choices.get_class("scheduled") is ScheduledSpecAug
    torch.manual_seed(0)
    specaug = time_only(start_update=2)
    assert masked_frames(specaug, 400).sum() == 0 and masked_frames(specaug, 400).sum() == 0
    assert masked_frames(specaug, 400).sum() > 0  # the third training forward is augmented
    resumed = time_only(start_update=5)
    resumed.load_state_dict(specaug.state_dict())
    assert int(resumed.num_updates) == 3


def test_time_masks_are_capped_at_a_tenth_of_the_length():
    torch.manual_seed(0)
    capped = time_only(time_mask_max_ratio=0.1)
    widths = masked_frames(capped, 200)  # one mask per utterance: width < min(50, 20)
    assert widths.max() <= 19 and widths.max() >= 15
    assert masked_frames(capped, 9).sum() == 0  # floor(0.9) = 0: too short for a mask, as in flashlight
    assert masked_frames(time_only(), 200).max() > 19  # ESPnet's own: widths up to 49


def test_option_errors():
    with pytest.raises(ValueError, match="time_mask_max_ratio must be in"):
        time_only(time_mask_max_ratio=1.5)
    with pytest.raises(ValueError, match="not time_mask_width_ratio_range"):
        ScheduledSpecAug(apply_time_warp=False, time_mask_width_ratio_range=[0.0, 0.1], time_mask_max_ratio=0.1)


@pytest.mark.parametrize("layer_drop", [0.0, 0.3])
def test_lower_dropout_sets_dropout_and_the_layer_drop_that_is_on(layer_drop):
    encoder = TransformerEncoder(8, output_size=8, attention_heads=2, linear_units=8, num_blocks=2,
                                 dropout_rate=0.3, attention_dropout_rate=0.3, input_layer="linear",
                                 layer_drop_rate=layer_drop)
    counts = lower_dropout(encoder, 0.1)
    rates = {m.p for m in encoder.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)}
    assert rates == {0.1} and counts["dropout"] > 0
    assert encoder.encoders.layer_drop_rate == (0.1 if layer_drop else 0.0)
    assert counts["layer_drop"] == (1 if layer_drop else 0)
