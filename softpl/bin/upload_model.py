"""Upload a packed model to the Hugging Face Hub, as ESPnet's ``asr.sh`` does (its ``--hf_repo`` stage).

Usage::

    python -m softpl.bin.upload_model --packed exp/pl_hard/pl_hard_valid.cer_ctc.ave.zip --hf_repo user/name \\
        [--output_dir exp/pl_hard/hf_upload] [--dry_run true|false]

The archive is the one stage 11 of ``run.sh`` packs (``softpl.bin.export_model``: a config stock ESPnet loads,
the weights and their files, the decode's RESULTS.md). It is unpacked into ``--output_dir`` with ESPnet's own
``unpack``, keeping the packed relative paths (the layout ESPnet's model zoo reads back from a Hub snapshot,
``meta.yaml`` included), a model card ``README.md`` is written next to it (YAML front matter with the Hub tags,
what the model is, how to decode it with stock ESPnet, the packed RESULTS.md), and the folder is pushed with
``huggingface_hub`` (``create_repo(exist_ok=True)``, then ``upload_folder``). ``--dry_run true`` prepares the
folder and prints what it would upload, without any network call. Stage 12 of ``run.sh`` runs it.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import yaml
from espnet2.main_funcs.pack_funcs import unpack
from espnet2.utils.types import str2bool

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
TAGS = ["espnet", "audio", "automatic-speech-recognition"]


class UploadError(RuntimeError):
    """The model cannot be uploaded as asked; the message says why and what to do."""


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id or "") or ".." in repo_id or repo_id.endswith((".", "-")):
        raise UploadError(f"--hf_repo must be a Hugging Face repository id <user>/<name> (e.g. jdoe/softpl_pl_hard), "
                          f"got '{repo_id}'")
    return repo_id


def prepare_folder(packed: Path, output_dir: Path) -> dict[str, str]:
    """Unpack ``packed`` into ``output_dir`` (emptied first if a previous unpack left it); return meta.yaml's files
    (``asr_train_config``, ``asr_model_file``) as paths relative to ``output_dir``, as they were packed."""
    if not packed.is_file():
        raise UploadError(f"{packed} not found (--packed): pack the run first (run.sh --stage 11 --stop_stage 11)")
    if output_dir.exists() and any(output_dir.iterdir()):
        if not (output_dir / "meta.yaml").is_file():
            raise UploadError(f"{output_dir} is not empty and holds no unpacked model (meta.yaml): choose another "
                              "--output_dir; everything in it would be uploaded")
        shutil.rmtree(output_dir)  # a previous unpack: refreshed, so that no stale file is uploaded
    output_dir.mkdir(parents=True, exist_ok=True)
    # Unpacked from inside the folder into ".", ESPnet's unpack rewrites the config's paths to themselves: the
    # folder keeps the packed relative paths, which the model zoo resolves against a Hub snapshot.
    archive = packed.resolve()
    try:
        with contextlib.chdir(output_dir):
            files = unpack(archive, ".", use_cache=False)
    except (RuntimeError, OSError, zipfile.BadZipFile, tarfile.TarError) as err:
        raise UploadError(f"{packed} is not an archive ESPnet's packer made: {type(err).__name__}: {err}") from err
    return {key: str(Path(value)) for key, value in files.items()}


def describe_run(run: str) -> str:
    """What a run of a softpl recipe is, by the name run.sh gives it."""
    name = re.sub(r"_seed\d+$", "", run)
    if name.startswith("pl_"):
        return (f"continued from the recipe's supervised seed model with softpl's continuous pseudo-labeling "
                f"(variant `{name[3:]}`): labeled and unlabeled audio, the pseudo-labels made by the model itself "
                f"as it trains")
    if name == "asr_seed":
        return "the recipe's supervised seed model (ESPnet's `asr_train` on the labeled set only)"
    if name == "asr_supervised_cont":
        return ("the supervised-only baseline: the seed model continued on the labeled set for as many updates as "
                "the pseudo-labeling runs (ESPnet's training)")
    return "a run of the recipe"


def model_card(repo_id: str, folder: Path, files: dict[str, str], *, run: str, recipe: str, license_: str,
               recipe_command: str = "") -> str:
    """The Hub model card (README.md) of an unpacked folder, in the spirit of ESPnet's TEMPLATE_HF_Readme.md."""
    config_path, model_path = files.get("asr_train_config"), files.get("asr_model_file")
    config = yaml.safe_load((folder / config_path).read_text(encoding="utf-8")) if config_path else {}
    ctc_weight = float((config.get("model_conf") or {}).get("ctc_weight", 0.3))
    # CTC-only: the CTC prefix search with beam 1 (softpl decodes greedily); hybrid: ESPnet's joint beam search.
    ctc_weight, beam_size = (1.0, 1) if ctc_weight >= 1.0 else (ctc_weight, 10)
    decode_opts = f"--ctc_weight {ctc_weight} --beam_size {beam_size}"
    front = {"tags": TAGS, "library_name": "espnet", "license": license_}
    recipe_words = f"the softpl recipe `{recipe}`" if recipe else "a softpl recipe"
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---", "",
        "## ESPnet2 ASR model", "", f"### `{repo_id}`", "",
        f"This model is the run `{run}` of {recipe_words} (semi-supervised ASR with continuous pseudo-labeling, "
        f"an ESPnet-style recipe collection): {describe_run(run)}.",
        f"Checkpoint: `{Path(model_path).name if model_path else '?'}`. It was exported for stock ESPnet "
        "(`model: espnet`, the pseudo-labeling options dropped; the weights are those of ESPnet's "
        "`ESPnetASRModel`) and packed with ESPnet's packer: decoding it needs ESPnet only, not softpl.", "",
        "### Demo: how to use in ESPnet2", "",
        "With [ESPnet](https://espnet.github.io/espnet/installation.html) and `espnet_model_zoo` installed:", "",
        "```python", "import soundfile",
        "from espnet2.bin.asr_inference import Speech2Text", "",
        f'speech2text = Speech2Text.from_pretrained("{repo_id}", ctc_weight={ctc_weight}, beam_size={beam_size})',
        'speech, rate = soundfile.read("speech.wav")  # 16 kHz mono', "text, *_ = speech2text(speech)[0]",
        "print(text)", "```", "",
        "or on a Kaldi-style data folder, from a clone of this repository (`git clone https://huggingface.co/"
        f"{repo_id}`, run in it):", "",
        "```bash",
        f"python -m espnet2.bin.asr_inference --asr_train_config {config_path} --asr_model_file {model_path} \\",
        f"    --data_path_and_name_and_type data/test/wav.scp,speech,sound {decode_opts} --output_dir decode",
        "```", "",
        "Each results table below names the decoding that made it. softpl's own tables come from greedy best-path "
        "CTC decoding, which stock ESPnet does not offer; its search above (a CTC prefix search with beam "
        f"{beam_size}) can pick other transcripts in places: its own numbers are the `decode_espnet` table where one "
        "is packed (`./run.sh --espnet_inference true`).", "",
    ]
    if recipe_command:
        lines += ["### The recipe command", "",
                  "The softpl call that trained this run (`--seed_model_dir " + repo_id
                  + "` starts a softpl recipe from this model instead):", "",
                  "```bash", recipe_command, "```", ""]
    results = sorted(p for p in folder.rglob("RESULTS.md") if p.is_file())
    for path in results:
        lines += [f"<!-- {path.relative_to(folder)} -->", path.read_text(encoding="utf-8").rstrip(), ""]
    if config:
        lines += ["## ASR config", "", "<details><summary>expand</summary>", "", "```",
                  yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip(), "```", "", "</details>", ""]
    return "\n".join(lines)


def upload(repo_id: str, folder: Path, commit_message: str) -> str:
    """Create the Hub repository if needed and upload ``folder`` into it; return the repository's URL."""
    import huggingface_hub

    if not huggingface_hub.get_token():
        raise UploadError("no Hugging Face token: run `hf auth login` (older huggingface_hub: "
                          "`huggingface-cli login`) or set HF_TOKEN, then upload again")
    api = huggingface_hub.HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", commit_message=commit_message)
    except Exception as err:  # network, permissions, quota: the prepared folder stays for a manual upload
        raise UploadError(f"uploading {folder} to https://huggingface.co/{repo_id} failed: "
                          f"{type(err).__name__}: {err}\nThe folder is ready: upload it by hand with "
                          f"`hf upload {repo_id} {folder} .` once the cause is fixed") from err
    return f"https://huggingface.co/{repo_id}"


def run_name(packed: Path, files: dict[str, str]) -> str:
    """The run a stage-11 archive holds: the folder above export/config.yaml, else the archive's name."""
    config = Path(files.get("asr_train_config", ""))
    if config.parent.name == "export" and config.parent.parent.name:
        return config.parent.parent.name
    return packed.stem


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packed", type=Path, required=True,
                        help="the zip stage 11 packed (exp/<run>/<run>_<model>.zip)")
    parser.add_argument("--hf_repo", required=True, help="Hugging Face repository id <user>/<name>")
    parser.add_argument("--output_dir", type=Path,
                        help="the folder uploaded: the unpacked model and its README.md (default: hf_upload next "
                             "to --packed)")
    parser.add_argument("--dry_run", type=str2bool, default=False,
                        help="prepare the folder and list what would be uploaded, without any network call")
    parser.add_argument("--license", default="cc-by-4.0", help="license in the model card (as ESPnet's asr.sh)")
    parser.add_argument("--recipe", default="", help="the recipe's name, for the model card (e.g. synth_en)")
    parser.add_argument("--recipe_command", default="", help="the call that trained the run, for the model card")
    parser.add_argument("--commit_message", default="", help="Hub commit message (default: names the archive)")
    args = parser.parse_args(argv)
    output_dir = args.output_dir or args.packed.parent / "hf_upload"
    try:
        repo_id = check_repo_id(args.hf_repo)
        files = prepare_folder(args.packed, output_dir)
        run = run_name(args.packed, files)
        card = model_card(repo_id, output_dir, files, run=run, recipe=args.recipe, license_=args.license,
                          recipe_command=args.recipe_command)
        (output_dir / "README.md").write_text(card, encoding="utf-8")
        if args.dry_run:
            listed = sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*") if p.is_file())
            print(f"upload_model: dry run: would upload {output_dir} to https://huggingface.co/{repo_id} "
                  f"({len(listed)} files):")
            for name in listed:
                print(f"  {name}")
            return
        url = upload(repo_id, output_dir, args.commit_message or f"softpl: {run} ({args.packed.name})")
    except UploadError as err:
        sys.exit(f"upload_model: error: {err}")
    print(f"upload_model: {args.packed} uploaded to {url} (from {output_dir})", file=sys.stderr)


if __name__ == "__main__":
    main()
