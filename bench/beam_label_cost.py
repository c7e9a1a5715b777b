"""Benchmark: what ``--pl_transcript beam`` costs per labeled batch, and what it buys (pseudo-transcript WER).

Labels the same batches of unlabeled audio with a trained hybrid CTC/attention model: greedy CTC (the default)
and ESPnet's joint CTC/attention beam search at each ``--beam_sizes``, from one encoder pass each (what the
trainer does). Prints seconds per batch (median over batches, after one untimed batch) and the word error rate
of the pseudo-transcripts against the unlabeled set's ``text.ref``.

Usage (egs/synth_en, after a hybrid seed, e.g. ``--seed_config conf/train_seed_hybrid.yaml --expdir exp_hybrid``):
``python bench/beam_label_cost.py --exp egs/synth_en/exp_hybrid/asr_seed
--data_dir egs/synth_en/dump/raw/train_unlabeled [--batches 8] [--batch_seconds 37.5] [--beam_sizes 2 4 10]``.
Results and the command go to bench/RESULTS.md (written by hand from the output).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch
import yaml

from softpl.pl.labeler import joint_beam_search, label_batch, teacher_log_probs
from softpl.scoring.wer import align
from softpl.tasks.cpl_asr import CPLASRTask


def load_batches(data_dir: Path, num: int, batch_seconds: float) -> list[tuple[list[str], torch.Tensor, torch.Tensor]]:
    """``num`` batches of consecutive utterances (keys, padded audio, lengths) of about ``batch_seconds`` each."""
    entries = [line.split(maxsplit=1) for line in (data_dir / "wav.scp").read_text().splitlines()]
    batches, index = [], 0
    for _ in range(num):
        keys, waves, total = [], [], 0.0
        while total < batch_seconds and index < len(entries):
            key, path = entries[index]
            audio, fs = sf.read(path, dtype="float32")
            keys.append(key)
            waves.append(torch.from_numpy(audio))
            total += len(audio) / fs
            index += 1
        if not keys:
            break
        batches.append((keys, torch.nn.utils.rnn.pad_sequence(waves, batch_first=True),
                        torch.tensor([len(w) for w in waves])))
    return batches


def measure(model, batches, beam_size: int | None, ctc_weight: float, refs: dict[str, str]) -> tuple[float, float]:
    """(median seconds per batch, pseudo-transcript WER %) of one way of making the pseudo-transcripts."""
    times, errors, words = [], 0, 0
    for i, (keys, speech, lengths) in enumerate(batches):
        start = time.perf_counter()
        search = None if beam_size is None else joint_beam_search(model, beam_size, ctc_weight)
        log_probs, enc_lens, transcripts = teacher_log_probs(model, speech, lengths, beam_search=search)
        hyps = [label.tokens for label in label_batch(log_probs, enc_lens, keep_soft=False, topk=None,
                                                      blank_id=model.blank_id, transcripts=transcripts)]
        if i > 0:  # the first batch warms up
            times.append(time.perf_counter() - start)
        for key, ids in zip(keys, hyps):
            if key in refs:
                counts = align(refs[key].split(), model.ids_to_text(ids).split())
                errors, words = errors + counts.errors, words + counts.n_ref
    return statistics.median(times), 100.0 * errors / max(words, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp", type=Path, required=True, help="experiment folder of a hybrid model")
    parser.add_argument("--model_file", default="valid.acc.ave.pth", help="checkpoint inside --exp")
    parser.add_argument("--data_dir", type=Path, required=True, help="formatted unlabeled set (wav.scp, text.ref)")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch_seconds", type=float, default=37.5, help="audio per batch (synth_en: 600000 "
                                                                            "samples at 16 kHz)")
    parser.add_argument("--beam_sizes", type=int, nargs="+", default=[2, 4, 10])
    parser.add_argument("--ctc_weight", type=float, default=0.3, help="--pl_beam_ctc_weight")
    args = parser.parse_args()

    config = yaml.safe_load((args.exp / "config.yaml").read_text())
    config["model"] = "cpl"  # a stage-6 seed is stock ESPnet's model; the labeler reads the plugin's encode()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as cpl_config:
        yaml.safe_dump(config, cpl_config)
        model, _ = CPLASRTask.build_model_from_file(cpl_config.name, args.exp / args.model_file, "cpu")
    ref_file = args.data_dir / "text.ref"
    refs = dict(line.split(maxsplit=1) for line in ref_file.read_text().splitlines()) if ref_file.exists() else {}
    batches = load_batches(args.data_dir, args.batches + 1, args.batch_seconds)
    utts = sum(len(keys) for keys, _, _ in batches[1:])
    print(f"{len(batches) - 1} timed batches of ~{args.batch_seconds:g} s ({utts} utterances), "
          f"{torch.get_num_threads()} CPU threads, model {args.exp / args.model_file}")
    print(f"{'transcript':<14} {'s/batch':>8} {'x greedy':>9} {'PL WER %':>9}")
    greedy_time, greedy_wer = measure(model, batches, None, args.ctc_weight, refs)
    print(f"{'greedy CTC':<14} {greedy_time:8.3f} {1.0:9.1f} {greedy_wer:9.2f}")
    for beam in args.beam_sizes:
        seconds, wer = measure(model, batches, beam, args.ctc_weight, refs)
        print(f"{f'beam {beam}':<14} {seconds:8.3f} {seconds / greedy_time:9.1f} {wer:9.2f}")


if __name__ == "__main__":
    main()
