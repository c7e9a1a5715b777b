"""CPLASRModel: each pseudo-label loss equals its definition composed by hand from the student's posteriors."""
from __future__ import annotations

import pytest
import torch

from softpl.losses import regularizers as reg
from softpl.losses.soft_ctc import frame_cross_entropy, soft_cross_entropy
from softpl.pl.labeler import TargetNeeds
from softpl.pl.soft_storage import expand_soft_targets
from softpl.pl.targets import temper
from softpl.tasks.cpl_asr import CPLASRTask
from espnet2.asr.espnet_model import ESPnetASRModel

TOKENS = ["<blank>", "<unk>", "▁", "A", "B", "C", "<sos/eos>"]


DECODER = ["--decoder", "transformer", "--decoder_conf", "attention_heads=2", "--decoder_conf", "linear_units=8",
           "--decoder_conf", "num_blocks=1", "--decoder_conf", "dropout_rate=0.0",
           "--decoder_conf", "positional_dropout_rate=0.0", "--decoder_conf", "self_attention_dropout_rate=0.0",
           "--decoder_conf", "src_attention_dropout_rate=0.0"]


# ESPnet's default frontend (STFT + 8 log-mels) and its default normalization, instead of 8-dim features in.
FRONTEND = ["--frontend", "default", "--frontend_conf", "n_fft=64", "--frontend_conf", "hop_length=32",
            "--frontend_conf", "n_mels=8", "--normalize", "utterance_mvn"]


def build_model(tmp_path, *, encoder="transformer", decoder=False, frontend=False, extra=(), **model_conf):
    (tmp_path / "tokens.txt").write_text("\n".join(TOKENS) + "\n")
    conf = ["--model_conf", "ctc_weight=1.0", "--model_conf", "sym_space=▁", *(DECODER if decoder else [])]
    for key, value in model_conf.items():
        conf += ["--model_conf", f"{key}={value}"]
    args = CPLASRTask.get_parser().parse_args([
        "--output_dir", str(tmp_path), "--token_list", str(tmp_path / "tokens.txt"), "--model", "cpl",
        *(FRONTEND if frontend else ["--input_size", "8"]), "--encoder", encoder, "--encoder_conf", "output_size=8",
        "--encoder_conf", "attention_heads=2", "--encoder_conf", "linear_units=8", "--encoder_conf", "num_blocks=1",
        "--encoder_conf", "input_layer=linear", "--encoder_conf", "dropout_rate=0.0",
        "--encoder_conf", "attention_dropout_rate=0.0", "--encoder_conf", "positional_dropout_rate=0.0", *conf,
        *extra,
    ])
    torch.manual_seed(0)
    return CPLASRTask.build_model(args).eval()  # eval: no dropout, so forward passes are repeatable


def batch(model, *, soft_topk=2):
    """Unlabeled speech (B=2 feature sequences) and pseudo-labels made from the model's own posteriors."""
    torch.manual_seed(1)
    speech = torch.randn(2, 7, 8)
    lengths = torch.tensor([7, 5])
    with torch.no_grad():
        enc, enc_lens = model.encode(speech, lengths)
        teacher = model.ctc.log_softmax(enc).exp()
    values, indices = teacher.topk(soft_topk, dim=-1)
    return speech, lengths, {
        "pl_text": torch.tensor([[3, 4, 5], [4, -1, -1]]), "pl_text_lengths": torch.tensor([3, 1]),
        "pl_soft_values": values.half(), "pl_soft_indices": indices, "pl_frame_ids": teacher.argmax(-1),
    }


def student(model, speech, lengths):
    enc, enc_lens = model.encode(speech, lengths)
    return enc, enc_lens, model.ctc.log_softmax(enc)


@pytest.mark.parametrize("target", ["hard", "oracle"])  # the oracle's pl_text holds the truth: the same loss
def test_hard_target_is_ctc_on_the_pseudo_transcript(tmp_path, target):
    model = build_model(tmp_path, pl_target=target)
    speech, lengths, pl = batch(model)
    loss, stats, weight = model(speech, lengths, **pl)
    loss = loss.squeeze()  # force_gatherable makes it (1,)
    enc, enc_lens, _ = student(model, speech, lengths)
    torch.testing.assert_close(loss, model.ctc(enc, enc_lens, pl["pl_text"], pl["pl_text_lengths"]))
    assert int(weight) == 2 and "pl_student_blank_rate" in stats


def test_soft_target_is_frame_ce_on_espnets_ctc_scale(tmp_path):
    model = build_model(tmp_path, pl_target="soft", soft_temperature=0.5)
    speech, lengths, pl = batch(model)
    loss, stats, _ = model(speech, lengths, **pl)
    loss = loss.squeeze()
    _, enc_lens, log_probs = student(model, speech, lengths)
    q = temper(expand_soft_targets(pl["pl_soft_values"], pl["pl_soft_indices"], len(TOKENS)), 0.5, log_domain=False)
    per_frame = soft_cross_entropy(log_probs, q, enc_lens)
    # "utterance" reduction: the frame mean times frames per utterance = sum over frames / B, as ESPnet's CTC.
    torch.testing.assert_close(loss, per_frame * enc_lens.sum() / 2)
    frame_model = build_model(tmp_path, pl_target="soft", soft_temperature=0.5, soft_reduction="frame",
                              soft_scale=20)
    torch.testing.assert_close(frame_model(speech, lengths, **pl)[0].squeeze(), 20 * per_frame)


def test_frame_hard_with_confidence_mask(tmp_path):
    model = build_model(tmp_path, pl_target="frame_hard", confidence_threshold=0.3, soft_reduction="frame")
    speech, lengths, pl = batch(model)
    loss, _, _ = model(speech, lengths, **pl)
    loss = loss.squeeze()
    _, enc_lens, log_probs = student(model, speech, lengths)
    q = expand_soft_targets(pl["pl_soft_values"], pl["pl_soft_indices"], len(TOKENS))
    weights = reg.confidence_weights(q, enc_lens, 0.3)
    torch.testing.assert_close(loss, frame_cross_entropy(log_probs, pl["pl_frame_ids"], enc_lens, weights))


def test_soft_mixture_entropy_prior_and_blank_drop_add_up(tmp_path):
    conf = dict(pl_target="soft", soft_reduction="frame", mix_ctc_weight=0.5, entropy_weight=-0.1,
                prior_weight=0.3, blank_handling="drop")
    model = build_model(tmp_path, **conf)
    speech, lengths, pl = batch(model)
    prior = torch.full((len(TOKENS),), 1 / len(TOKENS))
    loss, stats, _ = model(speech, lengths, **pl, pl_token_prior=prior)
    loss = loss.squeeze()
    enc, enc_lens, log_probs = student(model, speech, lengths)
    q = expand_soft_targets(pl["pl_soft_values"], pl["pl_soft_indices"], len(TOKENS))
    expected = (
        soft_cross_entropy(log_probs, q, enc_lens, reg.blank_frame_weights(q, enc_lens, 0, 0.0))
        + 0.5 * model.ctc(enc, enc_lens, pl["pl_text"], pl["pl_text_lengths"])
        - 0.1 * reg.frame_entropy(log_probs, enc_lens)
        + 0.3 * reg.marginal_prior_kl(log_probs, enc_lens, prior)
    )
    torch.testing.assert_close(loss, expected)
    assert {"loss_pl_soft", "loss_pl_mix_ctc", "pl_prior_kl", "pl_frames_used"} <= set(stats)


def test_entropy_and_prior_terms_are_reduced_like_the_soft_loss(tmp_path):
    """With the default "utterance" reduction every frame term is summed over frames and averaged over
    utterances: the entropy and prior terms are scaled by frames per utterance as the soft CE is, so that
    entropy_weight=-0.1 weighs a frame's entropy a tenth of that frame's CE (and not a tenth divided by T)."""
    conf = dict(pl_target="soft", entropy_weight=-0.1, prior_weight=0.3)
    model = build_model(tmp_path, **conf)
    speech, lengths, pl = batch(model)
    prior = torch.full((len(TOKENS),), 1 / len(TOKENS))
    loss = model(speech, lengths, **pl, pl_token_prior=prior)[0].squeeze()
    _, enc_lens, log_probs = student(model, speech, lengths)
    q = expand_soft_targets(pl["pl_soft_values"], pl["pl_soft_indices"], len(TOKENS))
    frames_per_utt = enc_lens.sum() / 2
    expected = frames_per_utt * (
        soft_cross_entropy(log_probs, q, enc_lens)
        - 0.1 * reg.frame_entropy(log_probs, enc_lens)
        + 0.3 * reg.marginal_prior_kl(log_probs, enc_lens, prior)
    )
    torch.testing.assert_close(loss, expected)
    # The same weights under the "frame" reduction: every term a frame mean, the ratios unchanged.
    frame_model = build_model(tmp_path, soft_reduction="frame", **conf)
    torch.testing.assert_close(frame_model(speech, lengths, **pl, pl_token_prior=prior)[0].squeeze(),
                               expected / frames_per_utt)


def test_what_the_labeler_must_keep(tmp_path):
    def needs(**conf):
        return build_model(tmp_path, **conf).target_needs

    assert needs(pl_target="hard") == TargetNeeds(transcript=True)
    assert needs(pl_target="oracle") == TargetNeeds(transcript=True, reference=True)
    assert needs(pl_target="sampled") == TargetNeeds(transcript=True, sampled_path=True)
    assert needs(pl_target="frame_hard", blank_handling="drop") == TargetNeeds(soft=True, frame_ids=True)
    assert needs(pl_target="soft", mix_ctc_weight=1.0, prior_weight=0.5) == TargetNeeds(transcript=True, soft=True,
                                                                                        prior=True)
    assert needs(pl_target="soft") == TargetNeeds(soft=True)
    assert needs(pl_target="frame_hard", confidence_threshold=0.5) == TargetNeeds(soft=True, frame_ids=True)


def test_seeded_specaug_repeats_its_masks_and_leaves_the_global_rng_alone(tmp_path):
    from espnet2.asr.specaug.specaug import SpecAug

    model = build_model(tmp_path)
    model.specaug = SpecAug(apply_time_warp=False, freq_mask_width_range=(1, 3), time_mask_width_range=(1, 3))
    model.train()  # SpecAugment on; the encoder has no dropout
    speech, lengths = torch.randn(2, 7, 8), torch.tensor([7, 5])
    # Without a frontend ESPnet's SpecAugment masks its input in place: give each pass its own copy.
    torch.manual_seed(5)
    first, _ = model.encode(speech.clone(), lengths, aug_seed=11)
    after_first = torch.rand(1)
    torch.manual_seed(5)
    second, _ = model.encode(speech.clone(), lengths, aug_seed=11)
    assert torch.equal(first, second) and torch.equal(torch.rand(1), after_first)
    assert not torch.equal(first, model.encode(speech.clone(), lengths, aug_seed=12)[0])


def test_given_features_encode_as_their_audio_and_are_left_unchanged(tmp_path):
    """A cached batch's features (``collect_feats``, what labeling keeps) encode exactly as its audio; ESPnet's
    normalization works in place, so the model must normalize a copy, not the cache's tensor."""
    model = build_model(tmp_path, frontend=True)
    assert model.fixed_frontend
    torch.manual_seed(2)
    speech, lengths = torch.randn(2, 800), torch.tensor([800, 600])
    feats = model.collect_feats(speech, lengths, None, None)
    kept = feats["feats"].clone()
    from_audio, _ = model.encode(speech, lengths)
    from_features, _ = model.encode(feats["feats"], feats["feats_lengths"], features=True)
    assert torch.equal(from_features, from_audio) and torch.equal(feats["feats"], kept)
    assert torch.equal(model.encode(speech, lengths)[0], from_audio)  # features only for that call: audio again
    model.autocast_frontend = True  # frontend in bf16 under AMP: training's features are not labeling's fp32 ones
    assert not model.fixed_frontend
    model.autocast_frontend = False
    model.frontend.register_parameter("gain", torch.nn.Parameter(torch.ones(1)))  # a trainable frontend
    assert not model.fixed_frontend


@pytest.mark.parametrize("norm", ["none", "sqrt"])
def test_ctc_target_norm_divides_each_utterance_by_the_root_of_its_target_length(tmp_path, norm):
    """Two frames, so each utterance's CTC loss is a sum over its few alignments written out by hand."""
    model = build_model(tmp_path, ctc_target_norm=norm)
    torch.manual_seed(2)
    enc, enc_lens = torch.randn(2, 2, 8), torch.tensor([2, 2])
    text, text_lengths = torch.tensor([[3, -1], [3, 4]]), torch.tensor([1, 2])
    p = model.ctc.log_softmax(enc).exp().double()
    blank = model.blank_id
    # "A" in two frames: A A, A -, - A; "A B": only A B.
    loss_a = -torch.log(p[0, 0, 3] * p[0, 1, 3] + p[0, 0, 3] * p[0, 1, blank] + p[0, 0, blank] * p[0, 1, 3])
    loss_ab = -torch.log(p[1, 0, 3] * p[1, 1, 4])
    scale = (1.0, 2 ** -0.5) if norm == "sqrt" else (1.0, 1.0)
    expected = (scale[0] * loss_a + scale[1] * loss_ab) / 2  # mean over the batch's utterances
    torch.testing.assert_close(model._ctc_loss(enc, enc_lens, text, text_lengths).double(), expected)
    # ESPnet's labeled training step and the pseudo-transcript loss both go through it.
    speech, lengths, pl = batch(model)
    model.train()  # build_model's encoder has no dropout: the same output as in eval mode
    loss, _, _ = model(speech, lengths, text=pl["pl_text"], text_lengths=pl["pl_text_lengths"])
    unlabeled, _, _ = model(speech, lengths, **pl)
    enc, enc_lens, _ = student(model, speech, lengths)
    for value in (loss, unlabeled):
        torch.testing.assert_close(value.squeeze(), model._ctc_loss(enc, enc_lens, pl["pl_text"],
                                                                    pl["pl_text_lengths"]))


def test_validation_reports_greedy_cer_and_wer(tmp_path):
    model = build_model(tmp_path)
    speech, lengths, _ = batch(model)
    text = torch.tensor([[3, 2, 4], [5, -1, -1]])
    loss, stats, _ = model(speech, lengths, text=text, text_lengths=torch.tensor([3, 1]))
    assert 0.0 <= float(stats["cer_ctc"]) and 0.0 <= float(stats["wer_ctc"])
    assert model.ids_to_text([3, 2, 4]) == "A B" and model.ids_to_text([2, 3, 3, 2]) == "AA"


def test_option_errors(tmp_path):
    with pytest.raises((AssertionError, ValueError), match="decoder|ctc_weight"):  # ESPnet itself may refuse first
        build_model(tmp_path, ctc_weight=0.5)  # hybrid weighting without a decoder
    with pytest.raises(ValueError, match="labels with its CTC branch"):
        build_model(tmp_path, decoder=True, ctc_weight=0.0)
    with pytest.raises(ValueError, match="pl_target"):
        build_model(tmp_path, pl_target="fuzzy")
    with pytest.raises(ValueError, match="ctc_target_norm"):
        build_model(tmp_path, ctc_target_norm="cube")
    model = build_model(tmp_path, pl_target="soft")
    speech, lengths, pl = batch(model)
    with pytest.raises(ValueError, match="pl_soft_values"):
        model(speech, lengths, pl_text=pl["pl_text"], pl_text_lengths=pl["pl_text_lengths"])


@pytest.mark.parametrize("conf", [dict(pl_target="soft"), dict(pl_target="frame_hard"),
                                  dict(pl_target="hard", confidence_threshold=0.5)])
def test_frame_level_targets_refuse_specaugments_time_warp(tmp_path, conf):
    """The student's warped frames would go out of step with the teacher's frame targets."""
    specaug = ["--specaug", "specaug", "--specaug_conf", "time_mask_width_range=[0,2]"]
    warp = [*specaug, "--specaug_conf", "apply_time_warp=true"]
    with pytest.raises(ValueError, match="set specaug_conf.apply_time_warp false"):
        build_model(tmp_path, extra=warp, **conf)
    build_model(tmp_path, extra=warp, pl_target="hard")  # CTC on a transcript: no frame alignment to keep
    build_model(tmp_path, extra=[*specaug, "--specaug_conf", "apply_time_warp=false"], **conf)


def test_hybrid_hard_target_is_espnets_hybrid_loss_on_the_pseudo_transcript(tmp_path):
    model = build_model(tmp_path, decoder=True, ctc_weight=0.3, pl_target="hard")
    speech, lengths, pl = batch(model)
    loss, stats, _ = model(speech, lengths, **pl)
    espnet_loss, _, _ = ESPnetASRModel.forward(model, speech, lengths, pl["pl_text"], pl["pl_text_lengths"])
    torch.testing.assert_close(loss.squeeze(), espnet_loss.squeeze())
    assert {"loss_pl_ctc", "loss_pl_att", "pl_acc_att"} <= set(stats)


def test_hybrid_soft_target_weighs_the_ctc_branch_loss_and_the_attention_loss(tmp_path):
    model = build_model(tmp_path, decoder=True, ctc_weight=0.3, pl_target="soft", soft_reduction="frame")
    assert model.target_needs == TargetNeeds(transcript=True, soft=True)  # the attention branch reads the transcript
    speech, lengths, pl = batch(model)
    loss, stats, _ = model(speech, lengths, **pl)
    enc, enc_lens, log_probs = student(model, speech, lengths)
    q = expand_soft_targets(pl["pl_soft_values"], pl["pl_soft_indices"], len(TOKENS))
    loss_att = model._calc_att_loss(enc, enc_lens, pl["pl_text"], pl["pl_text_lengths"])[0]
    torch.testing.assert_close(loss.squeeze(), 0.3 * soft_cross_entropy(log_probs, q, enc_lens) + 0.7 * loss_att)
    # A sampled transcript for CTC, the greedy one for the attention branch.
    sampled = {**pl, "pl_att_text": torch.tensor([[5, 5, -1], [3, 4, 5]]), "pl_att_text_lengths": torch.tensor([2, 3])}
    model.pl_target = "sampled"
    assert model.target_needs == TargetNeeds(transcript=True, sampled_path=True, attention_text=True)
    loss, _, _ = model(speech, lengths, **sampled)
    loss_att = model._calc_att_loss(enc, enc_lens, sampled["pl_att_text"], sampled["pl_att_text_lengths"])[0]
    expected = 0.3 * model.ctc(enc, enc_lens, pl["pl_text"], pl["pl_text_lengths"]) + 0.7 * loss_att
    torch.testing.assert_close(loss.squeeze(), expected)


def test_hybrid_validation_reports_espnets_loss_and_attention_accuracy(tmp_path):
    model = build_model(tmp_path, decoder=True, ctc_weight=0.3)
    speech, lengths, pl = batch(model)
    loss, stats, _ = model(speech, lengths, pl["pl_text"], pl["pl_text_lengths"])
    enc, enc_lens, _ = student(model, speech, lengths)
    loss_ctc = model.ctc(enc, enc_lens, pl["pl_text"], pl["pl_text_lengths"])
    torch.testing.assert_close(loss.squeeze(), 0.3 * loss_ctc + 0.7 * stats["loss_att"].squeeze())
    assert 0.0 <= float(stats["acc"]) <= 1.0 and "cer_ctc" in stats and "wer_ctc" in stats


@pytest.mark.parametrize("encoder", ["transformer", "conformer"])
@pytest.mark.parametrize("decoder", [False, True], ids=["ctc", "hybrid"])
def test_forward_backward_like_espnets_own_model_test(tmp_path, encoder, decoder):
    """The shape of ESPnet's test/espnet2/asr/test_espnet_model.py, with CPLASRModel, labeled and unlabeled."""
    model = build_model(tmp_path, encoder=encoder, decoder=decoder, ctc_weight=0.3 if decoder else 1.0,
                        pl_target="soft").train()
    speech, lengths, pl = batch(model)
    for inputs in ({"text": pl["pl_text"], "text_lengths": pl["pl_text_lengths"]}, pl):
        model.zero_grad()
        loss, _, _ = model(speech, lengths, **inputs)
        loss.sum().backward()
        assert torch.isfinite(loss).all()
        assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)
        if decoder:
            assert all(p.grad is not None for p in model.decoder.parameters() if p.requires_grad)
