"""LibriSpeech / Libri-light layout readers (softpl.corpora.librispeech) and the recipes egs/librispeech_100 and
egs/librilight_10h, run on tiny corpora built in the published layouts from espeak-ng speech."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from conftest import REPO, run_env
from softpl.data.datadir import DataDir, DataDirError
from softpl.corpora.librispeech import SetSpec, TransLine, prepare, read_trans_txt, scan_part
from softpl.corpora.synth import Utterance as SynthUtterance
from softpl.corpora.synth import draw_plan, render_utterance

# ---- unit tests of the layout readers (silent FLACs, no TTS) ------------------------------------------------------


def write_chapter(part: Path, speaker: int, chapter: int, lines: list[str], seconds: float = 0.5,
                  flacs: list[str] | None = None) -> Path:
    """A ``<speaker>/<chapter>/`` folder with its trans.txt (``lines``) and a FLAC per id (or per ``flacs``)."""
    folder = part / str(speaker) / str(chapter)
    folder.mkdir(parents=True)
    trans = folder / f"{speaker}-{chapter}.trans.txt"
    trans.write_text("".join(f"{line}\n" for line in lines))
    for utt_id in flacs if flacs is not None else [line.split()[0] for line in lines]:
        sf.write(folder / f"{utt_id}.flac", np.zeros(int(seconds * 16000)), 16000, subtype="PCM_16")
    return trans


def test_read_trans_txt(tmp_path):
    trans = write_chapter(tmp_path, 19, 198, ["19-198-0000 NORTHANGER ABBEY", "19-198-0001 I'M NOT TIRED"])
    assert read_trans_txt(trans) == [TransLine(1, "19-198-0000", "NORTHANGER ABBEY"),
                                     TransLine(2, "19-198-0001", "I'M NOT TIRED")]


def test_read_trans_txt_names_every_malformed_line(tmp_path):
    trans = write_chapter(tmp_path, 19, 198, [
        "19-198-0000 GOOD LINE",
        "19-198-0001 lower case",
        "20-198-0002 FOREIGN SPEAKER",
        "19-198-0003",
        "19-198-0000 REPEATED ID",
    ], flacs=[])
    with pytest.raises(DataDirError) as error:
        read_trans_txt(trans)
    lines = {(p.line, p.utt) for p in error.value.problems}
    assert lines == {(2, "19-198-0001"), (3, None), (4, "19-198-0003"), (5, "19-198-0000")}
    message = str(error.value)
    assert f"{trans}:2: 19-198-0001: transcript 'lower case' is not upper-case" in message
    assert f"{trans}:3: utterance id '20-198-0002' does not belong to this file" in message
    assert "duplicate id (first at line 1)" in message


def test_scan_part_reports_missing_flac_and_missing_transcript(tmp_path):
    trans = write_chapter(tmp_path, 19, 198, ["19-198-0000 ONE", "19-198-0001 TWO"],
                          flacs=["19-198-0000", "19-198-0002"])
    with pytest.raises(DataDirError) as error:
        scan_part(tmp_path)
    message = str(error.value)
    assert f"{trans}:2: 19-198-0001: FLAC file missing: {trans.parent}/19-198-0001.flac" in message
    assert f"{trans.parent}/19-198-0002.flac: 19-198-0002: no transcript line in {trans}" in message
    assert len(error.value.problems) == 2


def test_scan_part_reads_speakers_chapters_and_missing_part(tmp_path):
    write_chapter(tmp_path / "part", 26, 495, ["26-495-0001 B", "26-495-0000 A"])
    write_chapter(tmp_path / "part", 19, 198, ["19-198-0000 C"])
    utts = scan_part(tmp_path / "part")
    assert [(u.utt_id, u.speaker, u.text, u.flac.name) for u in utts] == [
        ("19-198-0000", "19", "C", "19-198-0000.flac"),
        ("26-495-0000", "26", "A", "26-495-0000.flac"),
        ("26-495-0001", "26", "B", "26-495-0001.flac"),
    ]
    with pytest.raises(DataDirError, match="corpus part not found"):
        scan_part(tmp_path / "absent")


def test_prepare_writes_kaldi_dirs_and_keeps_labeled_out_of_unlabeled(tmp_path):
    corpus = tmp_path / "corpus"
    write_chapter(corpus / "labeled", 19, 198, ["19-198-0000 HELLO THERE"], seconds=1.5)
    write_chapter(corpus / "big", 19, 198, ["19-198-0000 HELLO THERE", "19-198-0001 GOOD BYE"], seconds=0.25)
    write_chapter(corpus / "dev", 84, 121, ["84-121-0000 A DEV LINE"], seconds=0.5)
    summary = prepare([SetSpec("train", (corpus / "labeled",), True), SetSpec("unlab", (corpus / "big",), False),
                       SetSpec("dev", (corpus / "dev",), True)], tmp_path / "data", disjoint_speakers=["dev"])
    assert summary == {"train": (1, 1.5 / 3600, 1), "unlab": (1, 0.25 / 3600, 1), "dev": (1, 0.5 / 3600, 1)}
    train = DataDir.load(tmp_path / "data/train")
    assert train.wav_scp == {"19-198-0000": str((corpus / "labeled/19/198/19-198-0000.flac").absolute())}
    assert train.text == {"19-198-0000": "HELLO THERE"} and train.text_ref is None
    assert train.utt2spk == {"19-198-0000": "19"} and train.utt2dur == {"19-198-0000": 1.5}
    assert (tmp_path / "data/train/spk2utt").read_text() == "19 19-198-0000\n"
    unlab = DataDir.load(tmp_path / "data/unlab")
    assert unlab.text is None and unlab.text_ref == {"19-198-0001": "GOOD BYE"}  # the labeled utterance is left out


def test_prepare_refuses_shared_speakers_and_repeated_utterances(tmp_path):
    write_chapter(tmp_path / "a", 19, 198, ["19-198-0000 ONE"])
    write_chapter(tmp_path / "b", 19, 227, ["19-227-0000 TWO"])
    sets = [SetSpec("train", (tmp_path / "a",), True), SetSpec("dev", (tmp_path / "b",), True)]
    with pytest.raises(ValueError, match=r"dev and train share 1 speakers \(19\)"):
        prepare(sets, tmp_path / "data", disjoint_speakers=["dev"])
    assert not (tmp_path / "data").exists()  # nothing written
    prepare(sets, tmp_path / "data")  # allowed where not asked for (Libri-light's train sets share speakers)
    with pytest.raises(DataDirError, match="19-198-0000: also in"):
        prepare([SetSpec("train", (tmp_path / "a", tmp_path / "a"), True)], tmp_path / "data2")


# ---- tiny corpora in the published layouts, spoken by espeak-ng ---------------------------------------------------

WORDS = ("RED GREEN BLUE BROWN SMALL GREAT OLD YOUNG TALL HAPPY").split()
NOUNS = ("CAT DOG BIRD HORSE KING SHIP TREE RIVER").split()
# LibriSpeech part -> (speaker, chapter, utterances); every speaker belongs to one part, as published.
LIBRISPEECH_PARTS = {
    "train-clean-100": [(19, 198, 4), (26, 495, 4)],
    "train-clean-360": [(100, 121669, 3)],
    "train-other-500": [(20, 205, 4), (22, 121140, 4)],
    "dev-clean": [(1272, 128104, 2)],
    "dev-other": [(116, 288045, 2)],
    "test-clean": [(1089, 134686, 2)],
    "test-other": [(1688, 142285, 2)],
}
# Libri-light's 14 folders of the 10 h set, each drawing utterances from a LibriSpeech training part.
LIBRILIGHT_FOLDERS = [f"1h/{k}/{kind}" for k in range(6) for kind in ("clean", "other")] + ["9h/clean", "9h/other"]
SOURCE_PART = {"clean": "train-clean-100", "other": "train-other-500"}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict:
    """LibriSpeech and librispeech_finetuning trees (FLAC + upper-case trans.txt); returns roots and truth."""
    root = tmp_path_factory.mktemp("corpora")
    librispeech, finetuning = root / "ls", root / "ll"
    texts, by_part, n = {}, {}, 0
    for part, chapters in LIBRISPEECH_PARTS.items():
        by_part[part] = []
        for speaker, chapter, count in chapters:
            folder = librispeech / "LibriSpeech" / part / str(speaker) / str(chapter)
            folder.mkdir(parents=True)
            lines = []
            for index in range(count):
                utt_id = f"{speaker}-{chapter}-{index:04d}"
                text = f"THE {WORDS[n % 10]} {NOUNS[n % 8]} WAS {WORDS[(n * 3 + 1) % 10]}{' AGAIN' * (n // 10)}"
                n += 1
                render_utterance(SynthUtterance(utt_id, text, draw_plan(1, "dev", n), folder / f"{utt_id}.flac"))
                lines.append(f"{utt_id} {text}")
                texts[utt_id] = text
                by_part[part].append(folder / f"{utt_id}.flac")
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(f"{line}\n" for line in lines))
    # The 10 h set: one utterance per folder, taken from LibriSpeech's training parts (as Libri-light did).
    labeled_10h = []
    pools = {kind: list(by_part[part]) for kind, part in SOURCE_PART.items()}
    for sub in LIBRILIGHT_FOLDERS:
        flac = pools[sub.rsplit("/", 1)[1]].pop(0)
        speaker, chapter, _ = flac.stem.split("-")
        folder = finetuning / "librispeech_finetuning" / sub / speaker / chapter
        folder.mkdir(parents=True)
        shutil.copy2(flac, folder / flac.name)
        (folder / f"{speaker}-{chapter}.trans.txt").write_text(f"{flac.stem} {texts[flac.stem]}\n")
        labeled_10h.append(flac.stem)
    # Stage 4 refuses evaluation text spelled with characters the labeled training text lacks.
    letters = {name: set("".join(texts[u] for u in utts)) for name, utts in (
        ("train_clean_100", [f.stem for f in by_part["train-clean-100"]]), ("train_10h", labeled_10h),
        ("eval", [f.stem for part in ("dev-clean", "dev-other", "test-clean", "test-other") for f in by_part[part]]))}
    assert letters["eval"] <= letters["train_clean_100"] and letters["eval"] <= letters["train_10h"]
    seconds = {flac.stem: round(sf.info(flac).duration, 3) for flacs in by_part.values() for flac in flacs}
    return {"LIBRISPEECH": librispeech, "LIBRILIGHT_FINETUNING": finetuning, "texts": texts, "seconds": seconds,
            "ids": {part: sorted(f.stem for f in flacs) for part, flacs in by_part.items()}, "train_10h": labeled_10h}


def recipe_with_db(recipe_copy, name: str) -> Path:
    """A runnable copy of egs/<name> with its db.sh (which takes the corpus locations from the environment)."""
    recipe = recipe_copy(name)
    shutil.copy2(REPO / "egs" / name / "db.sh", recipe / "db.sh")
    return recipe


def corpus_env(corpora) -> dict:
    env = run_env()
    env.update(LIBRISPEECH=str(corpora["LIBRISPEECH"]), LIBRILIGHT_FINETUNING=str(corpora["LIBRILIGHT_FINETUNING"]))
    return env


def run(recipe: Path, env: dict, *args: str) -> str:
    proc = subprocess.run(["./run.sh", *args], cwd=recipe, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"run.sh {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def tiny_configs(name: str, out: Path) -> tuple[Path, Path]:
    """egs/<name>'s own seed and PL configs, every slimIPL setting kept (Adagrad with the piecewise-linear warm-up,
    grad-norm 0.1, CTC x 1/sqrt(target length), layer drop = dropout, SpecAugment from update N with capped time
    masks), shrunk to a tiny model, a short warm-up and a few updates."""
    from softpl.bin.merge_configs import load_yaml

    seed, pl = (load_yaml(REPO / "egs" / name / "conf" / f) for f in ("train_seed.yaml", "train_pl.yaml"))
    seed["encoder_conf"].update(output_size=32, attention_heads=2, linear_units=64, num_blocks=2)
    seed["specaug_conf"]["start_update"] = 2
    seed["scheduler_conf"]["warmup_steps_list"][1] = 8
    seed.update(batch_bins=400000, max_epoch=1, num_iters_per_epoch=4, num_workers=0, use_amp=False,
                use_tensorboard=False, keep_nbest_models=1)
    pl.update(max_epoch=1, num_iters_per_epoch=2, batch_bins=200000, keep_nbest_models=1, pl_cache_size=2,
              pl_refresh_prob=0.5, pl_diag_interval=2, pl_prior_batches=2)
    paths = out / "train_seed_tiny.yaml", out / "train_pl_tiny.yaml"
    for path, config in zip(paths, (seed, pl)):
        path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return paths


def smoke_args(name: str, out: Path, supervised_baseline: bool = True) -> tuple[str, ...]:
    seed, pl = tiny_configs(name, out)
    return ("--nj", "2", "--min_dur", "0.3", "--seed_config", str(seed), "--pl_train_config", str(pl),
            "--pl_configs", "hard", "--supervised_baseline", str(supervised_baseline).lower())


def check_data_dir(recipe: Path, name: str, ids: list[str], corpora: dict, labeled: bool) -> None:
    data = DataDir.load(recipe / "data" / name)
    assert sorted(data.wav_scp) == sorted(ids)
    assert all(Path(path).is_absolute() and path.endswith(f"/{utt}.flac") for utt, path in data.wav_scp.items())
    assert (data.text if labeled else data.text_ref) == {utt: corpora["texts"][utt] for utt in ids}
    assert (data.text_ref if labeled else data.text) is None
    assert data.utt2spk == {utt: utt.split("-")[0] for utt in ids}
    assert data.utt2dur == {utt: corpora["seconds"][utt] for utt in ids}


def check_stages_6_and_8(recipe: Path, env: dict, smoke: tuple[str, ...]) -> None:
    """A few updates of the seed and of stage 8 (a PL run and the supervised continuation) with the recipe's
    settings: they train with slimIPL's optimizer, schedule, loss scaling, layer drop and validation sets."""
    out = run(recipe, env, "--stage", "6", "--stop_stage", "6", *smoke)
    assert "stage 6: seed training" in out and (recipe / "exp/asr_seed/valid.wer_ctc.ave.pth").is_file()
    seed = yaml.safe_load((recipe / "exp/asr_seed/config.yaml").read_text())
    assert (seed["model"], seed["model_conf"]["ctc_target_norm"], seed["specaug"]) == ("cpl", "sqrt", "scheduled")
    assert (seed["optim"], seed["scheduler"], seed["grad_clip"]) == ("adagrad", "piecewiselinearwarmuplr", 0.1)
    assert seed["encoder_conf"]["layer_drop_rate"] == seed["encoder_conf"]["dropout_rate"] > 0.1
    assert seed["valid_data_path_and_name_and_type"][0][0].endswith("dev_clean_other/wav.scp")
    out = run(recipe, env, "--stage", "8", "--stop_stage", "8", *smoke)
    assert "stage 8: pl_hard" in out
    assert ("stage 8: asr_supervised_cont" in out) == ("--supervised_baseline true" in " ".join(smoke))
    assert (recipe / "exp/pl_hard/latest.pth").is_file() and (recipe / "exp/pl_hard/cpl_history.jsonl").is_file()
    log = (recipe / "exp/pl_hard/train.log").read_text()
    assert "dropout 0.1 from now on" in log and "1 layer-drop stacks" in log
    # the warm-up goes on from the seed's last update: the lr has grown, not restarted
    seed_lr = torch.load(recipe / "exp/asr_seed/checkpoint.pth", weights_only=False)["optimizers"][0]
    pl_lr = torch.load(recipe / "exp/pl_hard/checkpoint.pth", weights_only=False)["optimizers"][0]
    assert pl_lr["param_groups"][0]["lr"] > seed_lr["param_groups"][0]["lr"] > 0


@pytest.mark.smoke
def test_librispeech_100_recipe(recipe_copy, corpora):
    recipe = recipe_with_db(recipe_copy, "librispeech_100")
    env = corpus_env(corpora)
    smoke = smoke_args("librispeech_100", recipe)
    out = run(recipe, env, "--stop_stage", "5", *smoke)
    for n in range(1, 6):
        assert f"stage {n}" in out
    ids = corpora["ids"]
    check_data_dir(recipe, "train_clean_100", ids["train-clean-100"], corpora, labeled=True)
    check_data_dir(recipe, "train_860", ids["train-clean-360"] + ids["train-other-500"], corpora, labeled=False)
    for name in ("dev_clean", "dev_other", "test_clean", "test_other"):
        check_data_dir(recipe, name, ids[name.replace("_", "-")], corpora, labeled=True)
    check_data_dir(recipe, "dev_clean_other", ids["dev-clean"] + ids["dev-other"], corpora, labeled=True)
    # Stage 2 kept the 16 kHz mono FLACs where they are (nothing rewritten); the unlabeled set still keeps its
    # truth out of training.
    formatted = DataDir.load(recipe / "dump/raw/train_860")
    assert formatted.text is None and len(formatted.text_ref) == 11
    assert formatted.wav_scp == DataDir.load(recipe / "data/train_860").wav_scp
    assert not any((recipe / "dump/raw/org/train_860/data").iterdir())
    assert (recipe / "exp/asr_stats_char/train/feats_stats.npz").is_file()
    check_stages_6_and_8(recipe, env, smoke)


@pytest.mark.smoke
def test_librilight_10h_recipe(recipe_copy, corpora):
    recipe = recipe_with_db(recipe_copy, "librilight_10h")
    env = corpus_env(corpora)
    # the supervised continuation's code and stock-config path are librispeech_100's (tested above): PL run only
    smoke = smoke_args("librilight_10h", recipe, supervised_baseline=False)
    run(recipe, env, "--stop_stage", "5", *smoke)
    ids = corpora["ids"]
    labeled = sorted(corpora["train_10h"])
    assert len(labeled) == 14
    check_data_dir(recipe, "train_10h", labeled, corpora, labeled=True)
    train_960 = ids["train-clean-100"] + ids["train-clean-360"] + ids["train-other-500"]
    unlabeled = sorted(set(train_960) - set(labeled))
    assert len(unlabeled) == 5  # 19 training utterances, 14 of them in the 10 h set
    check_data_dir(recipe, "train_960", unlabeled, corpora, labeled=False)
    check_data_dir(recipe, "test_other", ids["test-other"], corpora, labeled=True)
    assert len(DataDir.load(recipe / "dump/raw/train_10h").text) == 14
    check_stages_6_and_8(recipe, env, smoke)


def test_data_sh_says_which_variable_to_set(recipe_copy):
    for name, variable in (("librispeech_100", "LIBRISPEECH"), ("librilight_10h", "LIBRILIGHT_FINETUNING")):
        recipe = recipe_with_db(recipe_copy, name)
        env = run_env()
        env.pop("LIBRISPEECH", None)
        env.pop("LIBRILIGHT_FINETUNING", None)
        if variable == "LIBRILIGHT_FINETUNING":
            env["LIBRISPEECH"] = "/somewhere"
        proc = subprocess.run(["local/data.sh", "--nj", "1"], cwd=recipe, env=env, capture_output=True, text=True)
        assert proc.returncode == 1
        assert f"{variable} is not set: set it in db.sh" in proc.stderr
        assert not (recipe / "data").exists()


# ---- the paper-scale configs: every PL variant merges onto them and parses; the seed model builds ----------------

PAPER_SETTINGS = {  # recipe -> (seed dropout, unlabeled per labeled, cache batches): slimIPL's 100 h and 10 h
    "librispeech_100": (0.3, 4, 100),
    "librilight_10h": (0.5, 10, 1000),
}


@pytest.mark.parametrize("name", PAPER_SETTINGS)
def test_paper_configs_take_every_pl_variant(name, tmp_path):
    from softpl.bin.merge_configs import main as merge_configs
    from softpl.tasks.cpl_asr import CPLASRTask

    conf = REPO / "egs" / name / "conf"
    dropout, ratio, cache = PAPER_SETTINGS[name]
    token_list = tmp_path / "tokens.txt"
    token_list.write_text("\n".join(["<blank>", "<unk>", "\u2581", *"ETAONIHSRDLUMCWFGYPBVK'XJQZ", "<sos/eos>"]))
    required = ["--token_list", str(token_list), "--token_type", "char", "--output_dir", str(tmp_path / "exp"),
                "--train_data_path_and_name_and_type", "wav.scp,speech,sound", "--train_shape_file", "shape",
                "--valid_data_path_and_name_and_type", "wav.scp,speech,sound", "--valid_shape_file", "shape"]
    parser = CPLASRTask.get_parser()
    variants = sorted((REPO / "conf/pl").glob("*.yaml"))
    assert len(variants) >= 2
    for variant in variants:
        merged = tmp_path / f"{variant.stem}.yaml"
        merge_configs([str(conf / "train_seed.yaml"), str(conf / "train_pl.yaml"), str(variant), "--out", str(merged)])
        args = parser.parse_args(["--config", str(merged), *required])
        assert args.model == "cpl", variant
        assert (args.pl_unlabeled_per_labeled, args.pl_cache_size, args.pl_refresh_prob) == (ratio, cache, 0.1)
        assert (args.pl_start_updates, args.pl_dropout, args.encoder_conf["dropout_rate"]) == (0, 0.1, dropout)
        assert args.encoder_conf["num_blocks"] == 36 and args.batch_bins == 3200 * 16000
    seed = parser.parse_args(["--config", str(conf / "train_seed.yaml"), *required])
    assert seed.max_epoch * seed.num_iters_per_epoch // seed.accum_grad == 20000  # slimIPL's M supervised updates
    # slimIPL's optimizer: Adagrad, linear warm-up to 0.03 over 64k updates then constant, grad-norm 0.1; PL (at
    # update 20k) starts at 0.3 of the peak, inside the warm-up
    assert (seed.optim, seed.optim_conf["lr"], seed.grad_clip) == ("adagrad", 0.03, 0.1)
    steps, lrs = seed.scheduler_conf["warmup_steps_list"], seed.scheduler_conf["warmup_lr_list"]
    assert seed.scheduler == "piecewiselinearwarmuplr" and steps[:2] == [0, 64000] and lrs == [0.0, 0.03, 0.03]
    assert float(np.interp(20000, steps, lrs)) == pytest.approx(0.03 * 20 / 64)
    assert float(np.interp(10**7, steps, lrs)) == 0.03  # constant after the warm-up, for any run's length
    assert seed.model_conf["ctc_target_norm"] == "sqrt" and seed.unused_parameters
    assert seed.encoder_conf["layer_drop_rate"] == dropout
    assert (seed.specaug, seed.specaug_conf["start_update"], seed.specaug_conf["time_mask_max_ratio"]) == (
        "scheduled", 5000, 0.1)
    # the named alternative differs in its optimizer, schedule and clipping only
    adam = parser.parse_args(["--config", str(conf / "tuning/train_seed_adam.yaml"), *required])
    differ = {key for key, value in vars(seed).items() if vars(adam)[key] != value}
    assert differ == {"optim", "optim_conf", "scheduler", "scheduler_conf", "grad_clip", "config"}
    assert (adam.optim, adam.scheduler) == ("adam", "warmuplr")
    seed.encoder_conf["num_blocks"] = 1  # every other encoder option as configured; ESPnet checks them all
    model = CPLASRTask.build_model(seed)
    assert model.ctc.ctc_lo.out_features == 31  # blank, unk, space, 26 letters, apostrophe, sos/eos
