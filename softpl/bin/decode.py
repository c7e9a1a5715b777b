"""Batched greedy CTC decoding of a data dir with an ESPnet ASR model (stock or softpl-trained).

Loads the model with ESPnet's ``ASRTask.build_model_from_file`` and the audio with ESPnet's dataset
(batches of utterances of similar length, so they waste little padding), takes the frame-wise argmax of
the CTC posteriors (:func:`softpl.decode.greedy.greedy_ctc_decode`) and detokenizes with ESPnet's
tokenizer. Writes ``<output_dir>/<set>/{text,token,token_int}`` (Kaldi style, sorted by utterance id).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

import softpl.models  # noqa: F401  (registers softpl's model classes in ESPnet)
from espnet2.tasks.asr import ASRTask
from espnet2.text.build_tokenizer import build_tokenizer
from espnet2.text.token_id_converter import TokenIDConverter
from espnet2.train.dataset import ESPnetDataset

from softpl.data.datadir import read_table, write_table
from softpl.decode.greedy import greedy_ctc_decode


def load_asr_model(config: Path, model_file: Path, device: str):
    """Build an ESPnet ASR model from its ``config.yaml`` and weights, in eval mode; return (model, args)."""
    model, args = ASRTask.build_model_from_file(config, model_file, device)
    model.eval()
    if getattr(model, "ctc", None) is None:
        raise ValueError(f"{config}: the model has no CTC branch (ctc_weight 0); greedy CTC decoding needs one")
    return model, args


def decode_data_dir(model, args, data_dir: Path, output_dir: Path, batch_size: int, device: str,
                    keys: set[str] | None = None) -> dict:
    """Decode every utterance of ``data_dir`` (only ``keys`` when given: one job's share); return timing statistics."""
    lengths = {key: int(value) for _, key, value in read_table(data_dir / "utt2num_samples")
               if keys is None or key in keys}
    # ESPnet's map-style dataset with batches of similar length (longest first), so padding wastes little.
    dataset = ESPnetDataset(
        [(str(data_dir / "wav.scp"), "speech", "sound")], preprocess=ASRTask.build_preprocess_fn(args, False)
    )
    ordered = sorted(lengths, key=lambda k: (-lengths[k], k))
    loader = DataLoader(
        dataset,
        batch_sampler=[ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)],
        collate_fn=ASRTask.build_collate_fn(args, False),
    )
    tokenizer = build_tokenizer(token_type=args.token_type, bpemodel=args.bpemodel)
    converter = TokenIDConverter(token_list=args.token_list)
    blank_id = args.token_list.index("<blank>") if "<blank>" in args.token_list else 0

    texts, tokens, token_ints = {}, {}, {}
    audio_s = sum(float(value) for _, key, value in read_table(data_dir / "utt2dur") if key in lengths)
    start = time.perf_counter()
    with torch.no_grad(), tqdm(total=len(lengths), desc=f"decode {data_dir.name}", unit="utt") as bar:
        for keys, batch in loader:
            speech = batch["speech"].to(device)
            speech_lengths = batch["speech_lengths"].to(device)
            enc, enc_lens = model.encode(speech, speech_lengths)
            log_probs = model.ctc.log_softmax(enc)
            for key, ids in zip(keys, greedy_ctc_decode(log_probs, enc_lens, blank_id=blank_id)):
                pieces = converter.ids2tokens(ids)
                token_ints[key] = " ".join(map(str, ids))
                tokens[key] = " ".join(pieces)
                texts[key] = tokenizer.tokens2text(pieces).strip()
            bar.update(len(keys))
    elapsed = time.perf_counter() - start
    output_dir.mkdir(parents=True, exist_ok=True)
    write_table(output_dir / "text", texts)
    write_table(output_dir / "token", tokens)
    write_table(output_dir / "token_int", token_ints)
    return {"utterances": len(texts), "audio_s": audio_s, "elapsed_s": elapsed, "rtf": elapsed / max(audio_s, 1e-9)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asr_train_config", type=Path, required=True)
    parser.add_argument("--asr_model_file", type=Path, required=True)
    parser.add_argument("--data_dir", type=Path, nargs="+", required=True,
                        help="formatted data dirs (wav.scp, utt2num_samples, utt2dur)")
    parser.add_argument("--output_dir", type=Path, required=True,
                        help="decode folder; each data dir's output goes to <output_dir>/<data dir name>")
    parser.add_argument("--key_file", type=Path, nargs="+",
                        help="one per --data_dir: decode only the utterances listed there (first column), as "
                             "ESPnet's --key_file; one job's share when a decoding is split into jobs")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--ngpu", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = "cuda" if args.ngpu > 0 else "cpu"
    start = time.perf_counter()  # this line's time stamp less the job's start: interpreter and imports
    model, train_args = load_asr_model(args.asr_train_config, args.asr_model_file, device)
    logging.info("loaded %s on %s in %.1f s", args.asr_model_file, device, time.perf_counter() - start)
    if args.key_file is not None and len(args.key_file) != len(args.data_dir):
        parser.error(f"--key_file: one per --data_dir ({len(args.data_dir)}), got {len(args.key_file)}")
    for i, data_dir in enumerate(args.data_dir):
        output_dir = args.output_dir / data_dir.name
        keys = None if args.key_file is None else {key for _, key, _ in read_table(args.key_file[i])}
        stats = decode_data_dir(model, train_args, data_dir, output_dir, args.batch_size, device, keys)
        logging.info(
            "decoded %d utterances of %s (%.1f s of audio) in %.1f s (RTF %.3f) -> %s/text",
            stats["utterances"], data_dir, stats["audio_s"], stats["elapsed_s"], stats["rtf"], output_dir,
        )


if __name__ == "__main__":
    main()
