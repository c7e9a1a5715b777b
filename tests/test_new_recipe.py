"""utils/new_recipe.sh and egs/TEMPLATE: a recipe made from TSV manifests and an audio folder runs stages 1-7.

Recipes are made in tmp_path with ``--egs_dir``; the engine is found through SOFTPL_ROOT (conftest.run_env).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_env
from softpl.corpora.synth import Utterance, draw_plan, render_utterance
from softpl.corpora.fortunes import list_fortune_files, read_fortune_sentences

NEW_RECIPE = REPO / "utils" / "new_recipe.sh"


def new_recipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(NEW_RECIPE), *map(str, args)], env=run_env(), capture_output=True,
                          text=True, timeout=60)


def run_sh_value(recipe: Path, variable: str) -> str:
    """The value a variable gets in the recipe's run.sh (the line ``variable="value"``)."""
    line = next(line for line in (recipe / "run.sh").read_text().splitlines() if line.startswith(f"{variable}="))
    return line.split("=", 1)[1].strip('"')


def test_writes_absolute_inputs_and_keeps_placeholders_for_the_rest(tmp_path):
    (tmp_path / "train.tsv").write_text("a.wav\tA\n")
    (tmp_path / "unlab").mkdir()
    done = new_recipe("mycorpus", "--egs_dir", tmp_path / "egs", "--labeled_manifest", tmp_path / "train.tsv",
                      "--unlabeled", tmp_path / "unlab")
    assert done.returncode == 0, done.stderr
    recipe = tmp_path / "egs" / "mycorpus"
    assert [p.name for p in (tmp_path / "egs").iterdir()] == ["mycorpus"]  # no work folder left behind
    assert sorted(p.name for p in recipe.iterdir()) == ["cmd.sh", "conf", "local", "run.sh"]
    assert run_sh_value(recipe, "labeled_manifest") == str(tmp_path / "train.tsv")
    assert run_sh_value(recipe, "unlabeled_audio") == str(tmp_path / "unlab")
    template = REPO / "egs" / "TEMPLATE"
    assert run_sh_value(recipe, "dev_manifest") == run_sh_value(template, "dev_manifest")
    assert "dev_manifest" in done.stdout and "test_manifests" in done.stdout and "labeled_manifest" not in done.stdout
    # Made outside the repository, the recipe records where the engine is.
    assert f"export SOFTPL_ROOT=${{SOFTPL_ROOT:-{REPO}}}" in (recipe / "run.sh").read_text()
    assert (recipe / "run.sh").stat().st_mode & 0o111 and (recipe / "local" / "data.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("args, message", [
    (("--labeled_manifest", "absent.tsv"), "--labeled_manifest absent.tsv: not found"),
    (("--test_manifests", "t/dev.tsv"), "set name 'dev' is taken"),
    (("--test_manifests", "t/a.tsv u/a.tsv"), "set name 'a' is taken by t/a.tsv"),
    (("--dev_manifest", "my dev.tsv"), "holds white space"),
    (("--unknown", "x"), "unknown option --unknown"),
])
def test_refuses_bad_inputs_before_making_anything(tmp_path, args, message):
    for name in ("t/dev.tsv", "t/a.tsv", "u/a.tsv", "my dev.tsv"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("a.wav\tA\n")
    done = subprocess.run(["bash", str(NEW_RECIPE), "c", "--egs_dir", str(tmp_path / "egs"), *args],
                          cwd=tmp_path, env=run_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and message in done.stderr
    assert not (tmp_path / "egs" / "c").exists()


def test_refuses_an_existing_recipe_and_the_template_name(tmp_path):
    (tmp_path / "egs" / "taken").mkdir(parents=True)
    done = new_recipe("taken", "--egs_dir", tmp_path / "egs")
    assert done.returncode != 0 and "taken exists" in done.stderr
    done = new_recipe("TEMPLATE", "--egs_dir", tmp_path / "egs")
    assert done.returncode != 0 and "cannot be named TEMPLATE" in done.stderr
    assert new_recipe("--help").stdout.startswith("Usage: utils/new_recipe.sh NAME")


def render_corpus(root: Path) -> dict[str, list[tuple[Path, str]]]:
    """Speak 32 short fortune sentences with espeak-ng/flite into root/audio/<set>/<speaker>/<n>.wav.

    The other sets use only characters of the 16 labeled sentences (the token list comes from those alone).
    """
    sentences = read_fortune_sentences(list_fortune_files("/usr/share/games/fortunes"), 4, 8).sentences
    labeled = sentences[:16]
    known = set("".join(labeled))
    others = iter(s for s in sentences[16:] if set(s) <= known)
    sizes = {"train_unlabeled": 6, "dev": 5, "test_clean": 5}
    chosen = {"train_labeled": labeled, **{name: [next(others) for _ in range(n)] for name, n in sizes.items()}}
    corpus = {}
    for set_name, chosen_sentences in chosen.items():
        corpus[set_name] = []
        for index, text in enumerate(chosen_sentences):
            plan = draw_plan(1, set_name, index)
            wav = root / "audio" / set_name / plan.speaker_id / f"{index:03d}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            render_utterance(Utterance(f"{set_name}-{index}", text, plan, wav))
            corpus[set_name].append((wav, text))
    return corpus


@pytest.mark.smoke
def test_recipe_from_manifests_runs_stages_1_to_7(tmp_path):
    corpus = render_corpus(tmp_path / "corpus")
    manifests = {}
    for set_name in ("train_labeled", "dev", "test_clean"):
        manifests[set_name] = tmp_path / "corpus" / f"{set_name}.tsv"
        # Relative paths, raw-case text with punctuation; speakers from the folders, or (odd lines) named.
        manifests[set_name].write_text("".join(
            f"{wav.relative_to(tmp_path / 'corpus')}\t{text.capitalize()}.{f'{chr(9)}reader{n % 3}' if n % 2 else ''}\n"
            for n, (wav, text) in enumerate(corpus[set_name])))
    done = new_recipe("my_corpus", "--egs_dir", tmp_path / "egs",
                      "--labeled_manifest", manifests["train_labeled"],
                      "--unlabeled", tmp_path / "corpus" / "audio" / "train_unlabeled",
                      "--dev_manifest", manifests["dev"], "--test_manifests", manifests["test_clean"])
    assert done.returncode == 0, done.stderr
    recipe = tmp_path / "egs" / "my_corpus"

    proc = subprocess.run(
        ["./run.sh", "--stop_stage", "7", "--nj", "2", "--min_dur", "0.3", "--speed_perturb_factors", "0.9 1.0 1.1",
         "--seed_config", str(REPO / "tests/conf/train_seed_smoke.yaml")],
        cwd=recipe, env=run_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"

    for set_name in ("train_labeled", "dev", "test_clean"):
        text = (recipe / "data" / set_name / "text").read_text().splitlines()
        assert len(text) == len(corpus[set_name])
        assert {line.split(" ", 1)[1] for line in text} == {sentence for _, sentence in corpus[set_name]}
    assert "reader1-" in (recipe / "data/train_labeled/utt2spk").read_text()
    assert len((recipe / "data/train_unlabeled/wav.scp").read_text().splitlines()) == 6
    assert not (recipe / "data/train_unlabeled/text").exists()
    # Speed perturbation (as ESPnet's asr.sh): the seed trained on the union of the three speeds.
    perturbed = (recipe / "dump/raw/train_labeled_sp/wav.scp").read_text()
    assert len(perturbed.splitlines()) == 3 * len((recipe / "dump/raw/train_labeled/wav.scp").read_text().splitlines())
    assert "sp0.9-" in perturbed and "sp1.1-" in perturbed
    assert "dump/raw/train_labeled_sp/wav.scp" in (recipe / "exp/asr_seed/config.yaml").read_text()
    for set_name in ("dev", "test_clean"):
        decode, = (recipe / "exp/asr_seed").glob("decode_greedy_*")  # named after the decoded checkpoint
        scores = json.loads((decode / set_name / "scores.json").read_text())
        assert scores["n_utts"] == len(corpus[set_name])
    results = (recipe / "exp" / "RESULTS.md").read_text()
    assert "asr_seed" in results and "test_clean" in results and "my_corpus" in results
