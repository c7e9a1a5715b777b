"""The unlabeled stream: fixed per-pass orders, loading ahead by workers, exact continuation after a seek."""
import pytest
import torch

from softpl.pl.stream import UnlabeledStream, stream_order


class FakeSampler:
    def __init__(self, batches):
        self.batches = batches

    def generate(self, seed):
        return self.batches


class FakeFactory:
    """What UnlabeledStream reads of an ESPnet SequenceIterFactory: sampler, dataset, collate_fn."""

    def __init__(self, num_utts=7, per_batch=2):
        keys = [f"u{i}" for i in range(num_utts)]
        self.sampler = FakeSampler([tuple(keys[i:i + per_batch]) for i in range(0, num_utts, per_batch)])
        self.dataset = {key: (key, {"speech": torch.full((3,), float(i))}) for i, key in enumerate(keys)}

    @staticmethod
    def collate_fn(items):
        return [k for k, _ in items], {"speech": torch.stack([d["speech"] for _, d in items]),
                                       "speech_lengths": torch.full((len(items),), 3)}


def take(stream, n):
    return [stream.next() for _ in range(n)]


@pytest.mark.parametrize("num_workers", [0, 1, 3])  # 3 workers load every third batch, in turn
def test_stream_follows_the_seeded_pass_orders_and_loads_each_batch(num_workers):
    factory = FakeFactory()
    stream = UnlabeledStream(factory, seed=3, rank=0, num_workers=num_workers)
    got = take(stream, 9)  # 4 batches per pass: two passes and one batch of the third
    expected_order = (stream_order(3, 0, 0, 4) + stream_order(3, 0, 1, 4) + stream_order(3, 0, 2, 4))[:9]
    assert [keys for keys, _ in got] == [list(factory.sampler.batches[i]) for i in expected_order]
    for keys, batch in got:
        assert batch["speech"][:, 0].tolist() == [float(k[1:]) for k in keys]
    assert stream.position == (2, 1)


def test_seek_continues_exactly_where_a_saved_position_left_off():
    reference = UnlabeledStream(FakeFactory(), seed=1, rank=0, num_workers=1)
    whole = [keys for keys, _ in take(reference, 10)]
    first = UnlabeledStream(FakeFactory(), seed=1, rank=0, num_workers=1)
    take(first, 4)
    saved = first.position
    resumed = UnlabeledStream(FakeFactory(), seed=1, rank=0, num_workers=0)
    resumed.seek(saved)
    assert [keys for keys, _ in take(resumed, 6)] == whole[4:]
    resumed.seek((0, 4))  # an index at the end of a pass is the start of the next one
    assert resumed.position == (1, 0)


def test_ranks_stream_in_their_own_orders_and_an_empty_set_is_refused():
    assert stream_order(1, 0, 0, 50) != stream_order(1, 1, 0, 50)
    factory = FakeFactory()
    factory.sampler = FakeSampler([])
    with pytest.raises(ValueError, match="unlabeled set gave no batches"):
        UnlabeledStream(factory, seed=1, rank=0, num_workers=0)


def test_loading_leaves_the_global_rng_alone():
    """A resumed run starts a new loader; had it drawn from the global RNG, every later dropout mask would shift."""
    stream = UnlabeledStream(FakeFactory(), seed=1, rank=0, num_workers=0)
    torch.manual_seed(5)
    take(stream, 3)
    stream.seek(stream.position)
    take(stream, 2)
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))


def test_several_workers_resume_mid_pass_in_the_same_order():
    """A seek to an odd position with 2 workers: the workers' turns restart from it."""
    whole = [keys for keys, _ in take(UnlabeledStream(FakeFactory(), seed=2, rank=0, num_workers=0), 11)]
    resumed = UnlabeledStream(FakeFactory(), seed=2, rank=0, num_workers=2)
    resumed.seek((1, 1))
    assert [keys for keys, _ in take(resumed, 6)] == whole[5:]
