"""The labeler's teacher mode: dropout on asks for Dropout only; BatchNorm labels with (and keeps) its statistics."""
from __future__ import annotations

import torch

from softpl.pl.labeler import joint_beam_search, label_batch, teacher_log_probs, teacher_mode


class TinyASR(torch.nn.Module):
    """The two calls the labeler makes (``encode``, ``ctc.log_softmax``) over a BatchNorm and Dropout stack."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(4)
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.Dropout1d(0.5))
        self.ctc = torch.nn.Module()
        self.ctc.log_softmax = lambda enc: torch.log_softmax(enc, dim=-1)

    def encode(self, speech, speech_lengths, aug_seed=None, features=False):
        x = self.norm(speech.transpose(1, 2)).transpose(1, 2)
        return self.layers(x), speech_lengths


def test_teacher_dropout_leaves_batchnorm_in_eval_and_restores_modes():
    torch.manual_seed(0)
    model = TinyASR().train()
    model.norm.eval()  # a mix of modes, all to be restored
    speech, lengths = 3.0 + torch.randn(2, 6, 4), torch.tensor([6, 4])
    stats = {name: buffer.clone() for name, buffer in model.norm.named_buffers()}
    modes = {name: module.training for name, module in model.named_modules()}

    first, *_ = teacher_log_probs(model, speech, lengths, dropout=True)
    second, *_ = teacher_log_probs(model, speech, lengths, dropout=True)
    assert not torch.equal(first, second)  # dropout is on
    for name, buffer in model.norm.named_buffers():
        assert torch.equal(buffer, stats[name]), f"BatchNorm {name} changed while labeling"
    assert {name: module.training for name, module in model.named_modules()} == modes

    clean, *_ = teacher_log_probs(model, speech, lengths)
    torch.testing.assert_close(clean, teacher_log_probs(model, speech, lengths)[0])


def test_teacher_mode_sets_only_dropout_and_the_top_level_augmentation_flag():
    model = TinyASR().train()
    with teacher_mode(model, dropout=True, augment=True):
        assert model.training and not model.norm.training and not model.layers[0].training
        assert model.layers[1].training and model.layers[2].training
    with teacher_mode(model, dropout=False, augment=True):
        assert model.training and not any(module.training for module in model.modules() if module is not model)
    assert all(module.training for module in model.modules())


def test_beam_transcripts_are_espnets_joint_search_of_each_utterance_alone(tmp_path):
    from espnet2.legacy.nets.beam_search import BeamSearch
    from espnet2.legacy.nets.scorers.ctc import CTCPrefixScorer
    from test_cpl_model import build_model

    model = build_model(tmp_path, decoder=True, ctc_weight=0.5)
    torch.manual_seed(1)
    speech, lengths = torch.randn(3, 9, 8), torch.tensor([9, 6, 4])
    log_probs, enc_lens, transcripts = teacher_log_probs(
        model, speech, lengths, beam_search=joint_beam_search(model, beam_size=3, ctc_weight=0.3))
    assert log_probs.shape[:2] == (3, int(enc_lens.max()))

    # The reference: ESPnet's unbatched search, one utterance at a time, as asr_inference with --batch_size 1.
    reference = BeamSearch(
        beam_size=3, weights={"decoder": 0.7, "ctc": 0.3}, sos=model.sos, eos=model.eos,
        scorers={"decoder": model.decoder, "ctc": CTCPrefixScorer(ctc=model.ctc, eos=model.eos)},
        vocab_size=len(model.token_list), token_list=model.token_list, pre_beam_score_key="full")
    with torch.no_grad():
        enc, _ = model.encode(speech, lengths)
        expected = [reference(enc[b, : int(enc_lens[b])])[0].yseq.tolist() for b in range(3)]
    assert all(seq[0] == model.sos and seq[-1] == model.eos for seq in expected)
    assert transcripts == [seq[1:-1] for seq in expected]
    assert any(transcripts), "an empty search result makes this test vacuous"
    assert teacher_log_probs(model, speech, lengths)[2] is None  # no search asked: greedy transcripts downstream


def test_given_transcripts_replace_the_greedy_ones_and_a_sampled_path_is_kept_beside_them():
    log_probs = torch.log_softmax(torch.tensor([[[0.0, 5.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 5.0]]]), dim=-1)
    lengths = torch.tensor([3])
    labels = label_batch(log_probs, lengths, keep_soft=False, topk=None)
    assert labels[0].tokens == [1, 2] and labels[0].sampled is None  # greedy: frames 1, blank, 2
    labels = label_batch(log_probs, lengths, keep_soft=False, topk=None, transcripts=[[2, 2, 1]])
    assert labels[0].tokens == [2, 2, 1]
    assert labels[0].frame_ids.tolist() == [1, 0, 2]  # the frame-level targets stay the CTC posteriors'
    labels = label_batch(log_probs, lengths, keep_soft=False, topk=None, transcripts=[[2, 2, 1]],
                         sample_temperature=1e-3, generator=torch.Generator().manual_seed(0))
    assert labels[0].sampled == [1, 2] and labels[0].tokens == [2, 2, 1]  # sampled path for CTC, beam for attention
