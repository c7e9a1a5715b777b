"""Pseudo-label targets: compact soft storage, tempering, sampled paths and padded batch targets."""
from __future__ import annotations

import io

import pytest
import torch

from softpl.decode.greedy import greedy_ctc_decode
from softpl.pl.soft_storage import SoftTarget, compress_posteriors, expand_soft_targets, pack_entries, packed_value_step
from softpl.pl.targets import PseudoLabel, frame_id_batch, make_pseudo_labels, pack_soft_targets, sample_paths, temper

FP16_UNIT_ROUNDOFF = 2.0**-11  # relative rounding of a normal fp16 number
FP16_SUBNORMAL_STEP = 2.0**-24  # absolute spacing of fp16 subnormals


def random_log_probs(batch: int, frames: int, vocab: int, seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(batch, frames, vocab, generator=g)).log_softmax(dim=-1)


def test_topk_reconstruction_spreads_the_leftover_mass_uniformly():
    probs = torch.tensor([[0.5, 0.3, 0.1, 0.1], [0.06, 0.2, 0.7, 0.04]])
    soft = compress_posteriors(probs, topk=2)
    assert soft.storage == "packed" and soft.values.dtype == torch.int16 and soft.indices is None  # V <= 256
    expected = torch.tensor([[0.5, 0.3, 0.1, 0.1], [0.05, 0.2, 0.7, 0.05]])
    torch.testing.assert_close(soft.to_dense(), expected, atol=2e-4, rtol=0)


@pytest.mark.parametrize("vocab", [32, 300])  # packed codes (an 11-bit probability for V <= 32); fp16
def test_topk_error_bound_and_rows_sum_to_one(vocab):
    topk = 8
    probs = random_log_probs(1, 200, vocab)[0].exp()
    dense = compress_posteriors(probs, topk).to_dense()
    assert dense.dtype == torch.float32 and dense.shape == (200, vocab)
    leftover = 1 - probs.topk(topk, dim=1).values.sum(dim=1)
    assert leftover.max() > 0.01  # the bound below is exercised, not trivially met
    # per frame: a step per kept value (packed: half a step of rounding, or a tiny value raised to one step),
    # or fp16's relative rounding
    rounding = topk * packed_value_step(vocab) if vocab <= 256 else FP16_UNIT_ROUNDOFF + topk * FP16_SUBNORMAL_STEP
    l1 = (dense - probs).abs().sum(dim=1)
    assert torch.all(l1 <= 2 * leftover + 2 * rounding)
    assert torch.all((dense.sum(dim=1) - 1).abs() <= 2 * rounding)


def test_topk_storage_for_top8_of_32():
    probs = random_log_probs(1, 10, 32)[0].exp()
    compact = compress_posteriors(probs, topk=8)
    full = compress_posteriors(probs, topk=None)
    assert compact.nbytes == 10 * 8 * 2 + 10  # a 16-bit code per kept token + a uint8 count per frame
    assert full.nbytes == 10 * 32 * 4


def test_packed_codes_round_trip_the_token_and_quantize_the_probability():
    """V = 31: 5 bits of token id, 11 bits of probability (a step of 1/2047), every code and extreme."""
    step = packed_value_step(31)
    assert step == 1 / 2047
    values = torch.tensor([1.0, 0.9995, 0.5, 1e-6, 0.0, step * 0.6])
    indices = torch.tensor([0, 30, 17, 1, 5, 31 - 1])
    codes = pack_entries(values, indices, 31)
    assert codes.dtype == torch.int16
    decoded = SoftTarget(codes, None, 31, torch.ones(6, dtype=torch.uint8)).entries()
    assert decoded[1].tolist() == indices.tolist() and decoded[1].dtype == torch.uint8
    assert decoded[0][0] == 1.0 and abs(decoded[0][1] - 0.9995) <= step / 2 and abs(decoded[0][2] - 0.5) <= step / 2
    assert torch.equal(decoded[0][3:], torch.full((3,), step))  # a kept token keeps at least one step: stays kept
    grid = torch.arange(1, 2048) / 2047  # every level, each token id
    codes = pack_entries(grid, torch.arange(2047) % 31, 31)
    assert codes.min() < 0  # the top bit is used (two's complement)
    decoded = SoftTarget(codes, None, 31, torch.ones(2047, dtype=torch.uint8)).entries()
    torch.testing.assert_close(decoded[0], grid, atol=1e-7, rtol=0)
    assert decoded[1].tolist() == (torch.arange(2047) % 31).tolist()
    with pytest.raises(ValueError, match="1-256 tokens"):
        packed_value_step(257)


def test_mass_keeps_the_fewest_tokens_holding_it():
    probs = torch.tensor([[0.9995, 0.0002, 0.0002, 0.0001], [0.6, 0.3, 0.0999, 0.0001], [0.5, 0.5, 0.0, 0.0]])
    soft = compress_posteriors(probs, topk=3, mass=0.999)
    assert soft.counts.tolist() == [1, 3, 2]  # 0.9995 >= 0.999; 0.6 + 0.3 < 0.999 <= 0.9999 (capped at 3); 1.0
    assert soft.entries()[1].tolist() in ([0, 0, 1, 2, 0, 1], [0, 0, 1, 2, 1, 0])
    dense = soft.to_dense()
    torch.testing.assert_close(dense[0], torch.tensor([0.9995, 0.0005 / 3, 0.0005 / 3, 0.0005 / 3]), atol=3e-4, rtol=0)
    torch.testing.assert_close(dense[1], torch.tensor([0.6, 0.3, 0.0999, 0.0001]), atol=3e-4, rtol=0)
    torch.testing.assert_close(dense.sum(dim=1), torch.ones(3), atol=1e-3, rtol=0)


def test_mass_storage_of_confident_character_posteriors_is_a_twentieth_of_fp32():
    """A trained CTC model over 31 characters: most frames blank at p > 0.999, the rest confident tokens."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(400, 31, generator=g)
    logits[torch.arange(400), torch.randint(0, 31, (400,), generator=g) * (torch.rand(400, generator=g) < 0.3)] += 12
    probs = logits.softmax(dim=-1)
    soft, full = compress_posteriors(probs, topk=8, mass=0.999), compress_posteriors(probs, topk=None)
    assert soft.nbytes * 20 <= full.nbytes
    frames = torch.repeat_interleave(torch.arange(400), soft.counts.long())
    kept = probs[frames, soft.entries()[1].long()]
    leftover = 1 - torch.zeros(400).index_add_(0, frames, kept)  # per frame, the teacher's mass not kept
    l1 = (soft.to_dense() - probs).abs().sum(dim=1)
    rounding = 8 * packed_value_step(31)  # up to one step per kept value
    assert torch.all(l1 <= 2 * leftover + 2 * rounding)
    assert leftover.max() <= 1 - 0.999 + rounding or soft.counts.max() == 8


def test_fp16_storage_of_caches_saved_before_the_packed_codes_still_expands():
    """Exact resume of a run whose cache holds the earlier storage (fp16 values, uint8 indices) for V <= 256."""
    probs = random_log_probs(1, 6, 31, seed=2)[0].exp()
    packed = compress_posteriors(probs, topk=4)
    values, indices = packed.entries()
    earlier = SoftTarget(values.half(), indices, 31, packed.counts)
    assert earlier.storage == "fp16" and earlier.nbytes == packed.nbytes + len(values)
    torch.testing.assert_close(earlier.to_dense(), packed.to_dense(), atol=1e-3, rtol=0)
    label = PseudoLabel([1], torch.zeros(6, dtype=torch.int16), earlier, 6)
    with pytest.raises(ValueError, match="stores its soft target differently"):  # one storage per batch
        pack_soft_targets([label, PseudoLabel([1], torch.zeros(6, dtype=torch.int16), packed, 6)], 6)


@pytest.mark.parametrize("topk", [None, 32, 100])
def test_full_storage_is_exact(topk):
    probs = random_log_probs(1, 5, 32)[0].exp()
    soft = compress_posteriors(probs, topk)
    assert soft.storage == "full" and soft.indices is None and soft.values.dtype == torch.float32
    assert torch.equal(soft.to_dense(), probs)


def test_large_vocabularies_store_int32_indices():
    probs = torch.full((2, 40000), 1 / 40000)
    assert compress_posteriors(probs, topk=4).indices.dtype == torch.int32
    mid = compress_posteriors(torch.full((2, 300), 1 / 300), topk=4)
    assert mid.storage == "fp16" and mid.values.dtype == torch.float16 and mid.indices.dtype == torch.int16
    with pytest.raises(ValueError, match="topk must be 1-255"):
        compress_posteriors(probs, topk=0)


def test_temper_identity_sharpening_and_argmax_limit():
    q = torch.tensor([0.5, 0.25, 0.25])
    assert temper(q, 1.0, log_domain=False) is q
    # q^2 / sum(q^2) = [0.25, 0.0625, 0.0625] / 0.375
    torch.testing.assert_close(temper(q, 0.5, log_domain=False), torch.tensor([2 / 3, 1 / 6, 1 / 6]))
    torch.testing.assert_close(temper(q.log(), 0.5, log_domain=True).exp(), torch.tensor([2 / 3, 1 / 6, 1 / 6]))
    torch.testing.assert_close(temper(q, 0.01, log_domain=False), torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        temper(q, 0.0, log_domain=False)


def test_sampling_at_a_tiny_temperature_is_greedy():
    log_probs = random_log_probs(4, 30, 6, seed=1)
    lengths = torch.tensor([30, 25, 7, 0])
    generator = torch.Generator().manual_seed(0)
    sampled = sample_paths(log_probs, lengths, temperature=1e-5, generator=generator)
    assert sampled == greedy_ctc_decode(log_probs, lengths)


def test_sampling_is_reproducible_with_a_fixed_generator():
    log_probs = random_log_probs(3, 40, 5, seed=2, scale=1.0)
    lengths = torch.tensor([40, 33, 12])
    first = sample_paths(log_probs, lengths, generator=torch.Generator().manual_seed(7))
    again = sample_paths(log_probs, lengths, generator=torch.Generator().manual_seed(7))
    other = sample_paths(log_probs, lengths, generator=torch.Generator().manual_seed(8))
    assert first == again
    assert first != other


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [(1.0, [0.5, 0.2, 0.3]), (0.5, [0.25 / 0.38, 0.04 / 0.38, 0.09 / 0.38])],  # q^(1/τ) renormalized
)
def test_sampled_frequencies_of_a_one_frame_distribution(temperature, expected):
    draws = 20000
    q = torch.tensor([0.5, 0.2, 0.3])  # blank, token 1, token 2
    log_probs = q.log().expand(draws, 1, 3)
    paths = sample_paths(log_probs, torch.ones(draws, dtype=torch.long), temperature, torch.Generator().manual_seed(3))
    counts = [sum(path == outcome for path in paths) for outcome in ([], [1], [2])]
    frequencies = torch.tensor(counts, dtype=torch.float) / draws
    torch.testing.assert_close(frequencies, torch.tensor(expected), atol=0.015, rtol=0)


def hand_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two utterances over V=4: paths "1 1 0 2 2" (5 frames) and "3 0 3" + 2 padding frames."""
    paths = torch.tensor([[1, 1, 0, 2, 2], [3, 0, 3, 1, 1]])
    log_probs = (4.0 * torch.nn.functional.one_hot(paths, 4).float()).log_softmax(dim=-1)
    return log_probs, torch.tensor([5, 3])


def test_make_pseudo_labels_hard_and_soft():
    log_probs, lengths = hand_batch()
    labels = make_pseudo_labels(log_probs, lengths, keep_soft=True, topk=2)
    assert [label.tokens for label in labels] == [[1, 2], [3, 3]]
    assert [label.num_frames for label in labels] == [5, 3]
    assert labels[1].frame_ids.tolist() == [3, 0, 3] and labels[1].frame_ids.dtype == torch.int16
    assert labels[0].soft.counts.tolist() == [2] * 5 and labels[0].soft.values.device.type == "cpu"
    torch.testing.assert_close(labels[1].soft.to_dense(), log_probs[1, :3].exp(), atol=1e-3, rtol=0)
    # frame ids (5 * int16) + top-2 16-bit codes (5 * 2 * 2) + counts (5 * uint8)
    assert labels[0].nbytes == 10 + 20 + 5
    confident = make_pseudo_labels(log_probs, lengths, keep_soft=True, topk=2, soft_mass=0.9)
    assert [label.soft.counts.tolist() for label in confident] == [[1] * 5, [1] * 3]  # p = 0.948 > 0.9
    hard_only = make_pseudo_labels(log_probs, lengths, keep_soft=False)
    assert all(label.soft is None for label in hard_only) and hard_only[0].nbytes == 10


def test_make_pseudo_labels_rejects_raw_logits_naming_the_utterance():
    log_probs, lengths = hand_batch()
    logits = log_probs.clone()
    logits[1] += 1.0
    with pytest.raises(ValueError, match="utterance 1 of the batch, frame 0.*not raw logits"):
        make_pseudo_labels(logits, lengths, keep_soft=True)


def test_packed_soft_targets_expand_to_the_stored_posteriors_with_zero_padding():
    log_probs, lengths = hand_batch()
    labels = make_pseudo_labels(log_probs, lengths, keep_soft=True, topk=None)
    values, indices = pack_soft_targets(labels, 6, lengths=lengths)
    assert indices is None and values.shape == (2, 6, 4)
    targets = expand_soft_targets(values, indices, 4)
    assert torch.equal(targets[0, 5], torch.zeros(4)) and torch.equal(targets[1, 3:], torch.zeros(3, 4))
    torch.testing.assert_close(targets[1, :3], log_probs[1, :3].exp())


@pytest.mark.parametrize("mass", [1.0, 0.5])
def test_packed_topk_targets_expand_like_each_utterance_alone(mass):
    log_probs, lengths = random_log_probs(2, 5, 4, scale=2.0), torch.tensor([5, 3])
    labels = make_pseudo_labels(log_probs, lengths, keep_soft=True, topk=2, soft_mass=mass)
    if mass < 1:
        assert {c for label in labels for c in label.soft.counts.tolist()} == {1, 2}  # both widths in one batch
    values, indices = pack_soft_targets(labels, 5)
    assert values.dtype == torch.float32 and indices.shape == (2, 5, 2)  # unpacked from the 16-bit codes
    batch = expand_soft_targets(values, indices, 4)
    for b, label in enumerate(labels):
        torch.testing.assert_close(batch[b, : label.num_frames], label.soft.to_dense())
        for t, count in enumerate(label.soft.counts.tolist()):  # unused slots: value 0, the first kept index
            assert values[b, t, count:].tolist() == [0.0] * (2 - count)
            assert indices[b, t, count:].tolist() == [int(indices[b, t, 0])] * (2 - count)
    assert values[1, 3:].abs().sum() == 0  # padding frames hold zeros


def test_frame_id_batch_pads_with_minus_one():
    log_probs, lengths = hand_batch()
    ids = frame_id_batch(make_pseudo_labels(log_probs, lengths, keep_soft=False), 5)
    assert ids.dtype == torch.long
    assert ids.tolist() == [[1, 1, 0, 2, 2], [3, 0, 3, -1, -1]]


def test_frame_mismatch_between_teacher_and_student_names_the_utterance():
    log_probs, lengths = hand_batch()
    labels = make_pseudo_labels(log_probs, lengths, keep_soft=True)
    with pytest.raises(ValueError, match="utterance 0 .*5 frames but the student has only 4"):
        pack_soft_targets(labels, 4)
    with pytest.raises(ValueError, match="utterance 1 .*3 frames but the student has 2 frames"):
        frame_id_batch(labels, 5, lengths=torch.tensor([5, 2]))


def test_packing_soft_targets_needs_soft_labels():
    log_probs, lengths = hand_batch()
    labels = make_pseudo_labels(log_probs, lengths, keep_soft=False)
    with pytest.raises(ValueError, match="utterance 0 .*keep_soft=True"):
        pack_soft_targets(labels, 5)


def test_pseudo_labels_load_with_weights_only():
    log_probs, lengths = hand_batch()
    labels = make_pseudo_labels(log_probs, lengths, keep_soft=True, topk=2)
    buffer = io.BytesIO()
    torch.save(labels, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=True)
    assert isinstance(restored[0], PseudoLabel) and isinstance(restored[0].soft, SoftTarget)
    assert restored[1].tokens == [3, 3]
    assert torch.equal(restored[0].soft.to_dense(), labels[0].soft.to_dense())
