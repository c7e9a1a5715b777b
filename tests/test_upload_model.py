"""Hugging Face upload of a packed model (stage 12): the folder and model card it prepares, and the Hub calls it
makes, with a fake HfApi (no network)."""
from __future__ import annotations

import os

import huggingface_hub
import pytest
import yaml
from espnet2.main_funcs.pack_funcs import pack

from softpl.bin import upload_model
from softpl.bin.upload_model import UploadError, check_repo_id, main

RESULTS = "# RESULTS\n## exp/pl_hard/valid.cer_ctc.ave\n### WER\n| dataset | Err |\n|---|---|\n| test_clean | 12.3 |\n"


@pytest.fixture
def packed(tmp_path, monkeypatch):
    """A zip as stage 11 packs it, made from the recipe folder (tmp_path) so that its paths are relative."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "exp/pl_hard"
    (run / "export").mkdir(parents=True)
    (tmp_path / "exp/asr_stats_char/train").mkdir(parents=True)
    (tmp_path / "exp/asr_stats_char/train/feats_stats.npz").write_bytes(b"stats")
    config = {"model": "espnet", "model_conf": {"ctc_weight": 1.0}, "normalize": "global_mvn",
              "normalize_conf": {"stats_file": "exp/asr_stats_char/train/feats_stats.npz"}, "token_list": ["<blank>"]}
    (run / "export/config.yaml").write_text(yaml.safe_dump(config))
    (run / "valid.cer_ctc.ave.pth").write_bytes(b"weights")
    (run / "decode_greedy_valid.cer_ctc.ave").mkdir()
    (run / "decode_greedy_valid.cer_ctc.ave/RESULTS.md").write_text(RESULTS)
    zip_path = run / "pl_hard_valid.cer_ctc.ave.zip"
    pack(files={"asr_model_file": "exp/pl_hard/valid.cer_ctc.ave.pth"},
         yaml_files={"asr_train_config": "exp/pl_hard/export/config.yaml"},
         option=["exp/asr_stats_char/train/feats_stats.npz", "exp/pl_hard/decode_greedy_valid.cer_ctc.ave/RESULTS.md"],
         outpath=zip_path)
    return zip_path


class FakeHfApi:
    calls: list = []

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        FakeHfApi.calls.append(("upload_folder", kwargs))


@pytest.fixture
def fake_hub(monkeypatch):
    FakeHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_fake")
    return FakeHfApi.calls


def front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def test_dry_run_prepares_the_folder_and_card_without_network(packed, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: pytest.fail("no Hub call in a dry run"))
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: pytest.fail("no Hub call in a dry run"))
    out = tmp_path / "exp/pl_hard/hf_upload"
    main(["--packed", str(packed), "--hf_repo", "jdoe/softpl_pl_hard", "--dry_run", "true", "--recipe", "synth_en",
          "--recipe_command", "cd egs/synth_en && ./run.sh --pl_configs hard"])
    for name in ("meta.yaml", "exp/pl_hard/valid.cer_ctc.ave.pth", "exp/pl_hard/export/config.yaml",
                 "exp/asr_stats_char/train/feats_stats.npz", "exp/pl_hard/decode_greedy_valid.cer_ctc.ave/RESULTS.md"):
        assert (out / name).is_file(), name
    # The config keeps the packed relative paths (the model zoo resolves them against the Hub snapshot).
    config = yaml.safe_load((out / "exp/pl_hard/export/config.yaml").read_text())
    assert config["normalize_conf"]["stats_file"] == "exp/asr_stats_char/train/feats_stats.npz"
    assert (out / "exp/pl_hard/valid.cer_ctc.ave.pth").read_bytes() == b"weights"
    readme = (out / "README.md").read_text()
    meta = front_matter(readme)
    assert meta["tags"] == ["espnet", "audio", "automatic-speech-recognition"]
    assert meta["library_name"] == "espnet" and meta["license"] == "cc-by-4.0"
    assert "`pl_hard`" in readme and "`synth_en`" in readme and "pseudo-labeling" in readme
    assert 'Speech2Text.from_pretrained("jdoe/softpl_pl_hard"' in readme
    assert "espnet2.bin.asr_inference --asr_train_config exp/pl_hard/export/config.yaml" in readme
    assert "greedy best-path CTC decoding, which stock ESPnet does not offer" in readme
    assert "| test_clean | 12.3 |" in readme and "./run.sh --pl_configs hard" in readme
    printed = capsys.readouterr().out
    assert "dry run" in printed and "jdoe/softpl_pl_hard" in printed and "README.md" in printed


def test_upload_creates_the_repo_and_uploads_the_folder(packed, tmp_path, fake_hub):
    out = tmp_path / "up"
    main(["--packed", str(packed), "--hf_repo", "jdoe/m", "--output_dir", str(out), "--license", "apache-2.0"])
    assert [call[0] for call in fake_hub] == ["create_repo", "upload_folder"]
    assert fake_hub[0][1] == "jdoe/m" and fake_hub[0][2]["exist_ok"] is True
    upload = fake_hub[1][1]
    assert upload["repo_id"] == "jdoe/m" and upload["repo_type"] == "model"
    assert os.path.samefile(upload["folder_path"], out) and upload["commit_message"]
    assert front_matter((out / "README.md").read_text())["license"] == "apache-2.0"


def test_a_second_upload_refreshes_the_folder(packed, tmp_path, fake_hub):
    out = tmp_path / "up"
    main(["--packed", str(packed), "--hf_repo", "jdoe/m", "--output_dir", str(out), "--dry_run", "true"])
    (out / "stale.bin").write_bytes(b"x")
    main(["--packed", str(packed), "--hf_repo", "jdoe/m", "--output_dir", str(out), "--dry_run", "true"])
    assert not (out / "stale.bin").exists() and (out / "meta.yaml").is_file()


def test_a_folder_that_is_not_an_unpacked_model_is_refused(packed, tmp_path, fake_hub):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not empty"):
        main(["--packed", str(packed), "--hf_repo", "jdoe/m", "--output_dir", str(out)])
    assert (out / "notes.txt").exists() and fake_hub == []


def test_no_token_is_a_clear_error_and_no_call(packed, monkeypatch, fake_hub):
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(SystemExit, match="no Hugging Face token.*login.*HF_TOKEN"):
        main(["--packed", str(packed), "--hf_repo", "jdoe/m"])
    assert fake_hub == []


def test_an_upload_failure_names_the_repo_and_the_folder(packed, tmp_path, monkeypatch, fake_hub):
    def refuse(self, **kwargs):
        raise OSError("403 Forbidden")

    monkeypatch.setattr(FakeHfApi, "upload_folder", refuse)
    with pytest.raises(SystemExit) as err:
        main(["--packed", str(packed), "--hf_repo", "jdoe/m", "--output_dir", str(tmp_path / "up")])
    message = str(err.value)
    assert "jdoe/m" in message and str(tmp_path / "up") in message and "403 Forbidden" in message
    assert "by hand" in message


@pytest.mark.parametrize("repo_id", ["name_only", "a/b/c", "/name", "user/", "us er/name", ""])
def test_a_bad_repo_id_is_refused(repo_id, packed, fake_hub):
    with pytest.raises(UploadError, match="<user>/<name>"):
        check_repo_id(repo_id)
    with pytest.raises(SystemExit, match="--hf_repo"):
        main(["--packed", str(packed), "--hf_repo", repo_id])
    assert fake_hub == []


def test_a_missing_zip_is_a_clear_error(tmp_path, fake_hub):
    with pytest.raises(SystemExit, match="not found.*--stage 11"):
        main(["--packed", str(tmp_path / "nope.zip"), "--hf_repo", "jdoe/m"])
    assert fake_hub == []


def test_runs_are_described_by_their_names():
    assert "pseudo-labeling" in upload_model.describe_run("pl_soft_seed2")
    assert "seed" in upload_model.describe_run("asr_seed")
    assert "supervised-only" in upload_model.describe_run("asr_supervised_cont")


def test_relative_paths_as_run_sh_gives_them(packed, tmp_path, fake_hub):
    main(["--packed", "exp/pl_hard/pl_hard_valid.cer_ctc.ave.zip", "--hf_repo", "jdoe/m", "--dry_run", "true"])
    assert (tmp_path / "exp/pl_hard/hf_upload/exp/pl_hard/valid.cer_ctc.ave.pth").is_file()


def test_a_file_that_is_not_a_packed_model_is_a_clear_error(tmp_path, monkeypatch, fake_hub):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(SystemExit, match="not an archive ESPnet's packer made"):
        main(["--packed", "bad.zip", "--hf_repo", "jdoe/m"])
    assert fake_hub == []
