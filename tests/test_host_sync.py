"""No host-device synchronization on the pseudo-label hot path.

On CPU: every call that would make the host wait for a GPU (``item``, ``tolist``, ``nonzero``, ``bool``/``int``/
``float`` of a tensor, ``cpu``, ``numpy``) made from softpl's own code is counted; the unlabeled training step
must make none (value checks go through :func:`softpl.checks.require`, a device-side assertion on GPUs), and
labeling a batch a fixed number, whatever the batch size. Where a GPU exists the same step also runs under
``torch.cuda.set_sync_debug_mode("error")``.
"""
from __future__ import annotations

import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch

from softpl.pl.labeler import label_batch, teacher_log_probs
from test_cpl_model import TOKENS, batch, build_model

SOFTPL = str(Path(__file__).resolve().parents[1] / "softpl")
SYNCING = ("item", "tolist", "nonzero", "__bool__", "__int__", "__float__", "cpu", "numpy")
# Not syncs: require's CPU branch and its failure messages; the checks of the host-side cache records.
HOST_SIDE = ("require", "message", "<lambda>", "__post_init__")
REGULARIZED = dict(pl_target="soft", soft_reduction="utterance", mix_ctc_weight=0.5, entropy_weight=-0.1,
                   prior_weight=0.3, blank_handling="downweight", blank_weight=0.5, confidence_threshold=0.1)


@pytest.fixture
def host_syncs(monkeypatch):
    """Counter of syncing tensor calls made directly from softpl code (outside the CPU branch of require)."""
    calls = Counter()
    for name in SYNCING:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(SOFTPL) and caller.f_code.co_name not in HOST_SIDE:
                calls[f"{caller.f_code.co_filename.removeprefix(SOFTPL)}:{caller.f_lineno} {_name}"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("conf", [dict(pl_target="hard"), dict(pl_target="frame_hard"), REGULARIZED],
                         ids=["hard", "frame_hard", "soft_regularized"])
def test_unlabeled_step_makes_no_host_sync(tmp_path, host_syncs, conf):
    model = build_model(tmp_path, **conf).train()
    speech, lengths, pl = batch(model)
    prior = torch.full((len(TOKENS),), 1 / len(TOKENS))
    host_syncs.clear()
    loss, stats, _ = model(speech, lengths, **pl, pl_token_prior=prior)
    loss.sum().backward()
    assert not host_syncs, f"host syncs in the unlabeled step: {dict(host_syncs)}"


def test_labeling_syncs_per_batch_not_per_utterance(tmp_path, host_syncs):
    model = build_model(tmp_path)
    counts = []
    for size in (2, 8):
        speech, lengths = torch.randn(size, 9, 8), torch.randint(5, 10, (size,))
        host_syncs.clear()
        log_probs, enc_lens, _ = teacher_log_probs(model, speech, lengths)
        label_batch(log_probs, enc_lens, keep_soft=True, topk=2, blank_id=0)
        counts.append(sum(host_syncs.values()))
    # transcripts (2), frame ids, kept values, their indices and mask, lengths: 7 copies to the host per batch
    assert counts[0] == counts[1] <= 7, f"labeling syncs grow with the batch: {counts}, {dict(host_syncs)}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_unlabeled_step_on_gpu_under_sync_debug_mode(tmp_path):
    """Synchronizations that CUDA itself reports during a GPU step: none may come from softpl's code (ESPnet's
    encoder and CTC have their own, as in a stock ESPnet step)."""
    model = build_model(tmp_path, **REGULARIZED).train()
    speech, lengths, pl = batch(model)  # made on CPU, then everything moves to the GPU
    model.cuda()
    inputs = {"speech": speech, "speech_lengths": lengths, **pl, "pl_token_prior": torch.full((len(TOKENS),), 0.1)}
    inputs["pl_token_prior"] /= inputs["pl_token_prior"].sum()
    inputs = {key: value.cuda() for key, value in inputs.items()}
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loss, _, _ = model(**inputs)
            loss.sum().backward()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    sites = [f"{w.filename}:{w.lineno}" for w in record if "synchroniz" in str(w.message)]
    print(f"{len(sites)} synchronizations in the step:", *sites, sep="\n  ")
    ours = [site for site in sites if site.startswith(SOFTPL)]
    assert not ours, f"softpl code synchronizes with the GPU: {ours}"
