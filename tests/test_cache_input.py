"""What cached batches keep (--pl_cache_input): the memory estimate, the choice against the budget, and keys-only
batches loaded again in the order the cache reads them."""
import argparse
import logging

import pytest
import torch

from softpl.pl.cache import PLCache
from softpl.pl.cache_input import CacheInput, estimate_cache_bytes
from test_stream import FakeFactory


def test_estimate_is_capacity_times_mean_padded_batch_times_bytes_per_unit():
    lengths = {"a": 100, "b": 60, "c": 50, "d": 30, "e": 30}
    batches = [("a", "b"), ("c",), ("d", "e")]
    # padded: 2 x 100, 1 x 50, 2 x 30 -> mean 310 / 3 units; x 4 bytes (fp32 audio) x C = 1000
    assert estimate_cache_bytes(batches, lengths, 4.0, 1000) == pytest.approx(1000 * 4 * 310 / 3)
    # slimIPL 10 h: 1000 batches of 25 utterances of 16 s, 80 fp32 log-mels per 160 samples (2 bytes per sample)
    ten_hours = {f"u{i}": 16 * 16000 for i in range(25)}
    gib = estimate_cache_bytes([tuple(ten_hours)], ten_hours, 80 * 4 / 160, 1000) / 2**30
    assert gib == pytest.approx(400 * 16000 * 2 * 1000 / 2**30) and 11 < gib < 12


def options(**kwargs):
    values = dict(pl_cache_input="auto", pl_cache_memory_gib=8.0, pl_cache_size=1000, num_workers=0, seed=1)
    return argparse.Namespace(**{**values, **kwargs})


@pytest.mark.parametrize("option, budget_gib, mode", [
    ("auto", 1e-6, "keys"), ("auto", 1.0, "audio"), ("audio", 1e-6, "audio"), ("keys", 1.0, "keys")])
def test_auto_keeps_keys_only_over_the_budget_and_says_so(caplog, option, budget_gib, mode):
    factory = FakeFactory(num_utts=4)  # 2 batches of 2 utterances of 3 fp32 samples
    lengths = {f"u{i}": 3 for i in range(4)}
    cache_input = CacheInput(options(pl_cache_input=option, pl_cache_memory_gib=budget_gib), factory,
                             factory.sampler.batches, lengths)
    with caplog.at_level(logging.INFO):
        cache_input.choose(labeler=None, fixed_frontend=False, device="cpu")  # audio: no frontend to run
    assert cache_input.mode == mode
    over = "over" if budget_gib < 1e-3 else "within"
    # 1000 batches x 2 utterances x 3 samples x 4 bytes = 24000 bytes
    assert f"keeping the audio of 1000 batches would take an estimated 2.24e-05 GiB (2.29e-05 MB per batch), {over} " \
           f"--pl_cache_memory_gib {budget_gib:g} (--pl_cache_input {option})" in caplog.text
    assert caplog.records[-1].levelname == ("WARNING" if option == "audio" and over == "over" else "INFO")


@pytest.mark.parametrize("num_workers", [0, 1])
def test_keys_only_batches_are_loaded_in_the_order_the_cache_reads_them(num_workers):
    factory = FakeFactory(num_utts=8)  # 4 batches of 2 utterances; speech holds each utterance's number
    cache_input = CacheInput(options(pl_cache_input="keys", pl_cache_size=4, num_workers=num_workers), factory,
                             factory.sampler.batches, {f"u{i}": 3 for i in range(8)})
    cache_input.choose(labeler=None, fixed_frontend=False, device="cpu")
    cache = PLCache(4, seed=0)
    for keys in factory.sampler.batches:
        cache.append(cache_input.keep({"keys": list(keys)}, batch={"speech": torch.zeros(1)}), step=0)
    assert all("input" not in entry for entry in cache.entries)
    for read in range(11):  # across passes, with refreshes that put other batches in the slots just read
        slot = cache.next_slot()
        entry = cache.get(slot)
        cache_input.read(entry, lambda: [cache.get(s)["keys"] for s in cache.rest_of_pass()])
        if read % 3 == 0:
            cache.replace(slot, {"keys": list(factory.sampler.batches[read % 4][::-1])}, step=read)
        batch = cache_input.train_input(None, entry, "cpu")
        assert batch["speech"][:, 0].tolist() == [float(key[1:]) for key in entry["keys"]]
        assert cache_input.train_input(None, entry, "cpu") is batch  # the churn pass and training: one load
    fresh = CacheInput(options(pl_cache_input="keys"), factory, factory.sampler.batches, {})
    fresh.mode = "keys"  # a resumed run's first read, mid-pass
    assert fresh.train_input(None, cache.get(0), "cpu")["speech"].shape == (2, 3)
