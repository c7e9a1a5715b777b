"""Make the embedded synthetic English corpus (stage 1 of `egs/synth_en`): fortunes -> TTS -> Kaldi data dirs.

    python -m softpl.bin.make_synth_corpus --data_dir data --audio_dir corpus --seed 1 --nj 2
"""
from __future__ import annotations

import argparse
import os
import sys

from softpl.corpora.synth import (DEFAULT_DOMAINS, ESPEAK_VOICES, SETS, CorpusError, Domains, make_corpus,
                                  split_sentences)
from softpl.corpora.fortunes import closed_vocabulary, list_fortune_files, read_fortune_sentences

DEFAULT_SIZES = {"train_labeled": 1000, "train_unlabeled": 14000, "dev": 300, "test_clean": 300, "test_other": 300}


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _set_share(value: str) -> tuple[str, float]:
    name, _, share = value.partition("=")
    if name not in SETS or not share:
        raise argparse.ArgumentTypeError(f"expected SET=SHARE with SET one of {list(SETS)}, got {value!r}")
    return name, float(share)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Render a synthetic English ASR corpus from Debian's fortune files with espeak-ng and flite. "
                    "Writes Kaldi data dirs <data_dir>/{" + ",".join(SETS) + "} (wav.scp, text or text.ref, "
                    "utt2spk, spk2utt, utt2dur) and 16 kHz mono 16-bit wavs under <audio_dir>/<set>/. "
                    "train_unlabeled has no `text`: its truth is in `text.ref`, for pseudo-label metrics only. "
                    "Each set mixes a clean domain (espeak-ng) and an other domain (by default flite: a tenth of "
                    "train_labeled, half of dev and of train_unlabeled, all of test_other): a domain shift.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data_dir", default="data", help="where the Kaldi data dirs go")
    parser.add_argument("--audio_dir", default="corpus", help="where the wav files go")
    parser.add_argument("--seed", type=int, default=1,
                        help="seeds the sentence split and every utterance's voice, rate, pitch and noise")
    parser.add_argument("--nj", type=_positive_int, default=os.cpu_count() or 1,
                        help="rendering processes (the corpus does not depend on it)")
    for name in ("train_labeled", "train_unlabeled", "dev", "test_clean", "test_other"):
        parser.add_argument(f"--num_{name}", type=_positive_int, default=DEFAULT_SIZES[name],
                            help=f"utterances in {name} (one distinct sentence each)")
    parser.add_argument("--fortune_dir", default="/usr/share/games/fortunes",
                        help="folder of fortune files (Debian package `fortunes`)")
    parser.add_argument("--min_words", type=_positive_int, default=4, help="shortest sentence kept, in words")
    parser.add_argument("--max_words", type=_positive_int, default=20, help="longest sentence kept, in words")
    parser.add_argument("--vocab_size", type=int, default=0,
                        help="keep only sentences made of the N most frequent words (a closed vocabulary: 1000 "
                             "leaves about 2,400 sentences, 2000 about 4,600); 0: every usable sentence")
    parser.add_argument("--other_share", type=_set_share, nargs="+", default=[], metavar="SET=SHARE",
                        help="share of a set in the other domain, e.g. train_labeled=0 train_unlabeled=0.7 "
                             f"(defaults: {dict(DEFAULT_DOMAINS.other_share)})")
    parser.add_argument("--held_out_voices", nargs="+", default=[], choices=ESPEAK_VOICES, metavar="VOICE",
                        help="espeak-ng accents that speak only in the other domain (the clean domain keeps the "
                             f"others of {list(ESPEAK_VOICES)}): a shift the seed can still hear")
    parser.add_argument("--other_flite_share", type=float, default=1.0,
                        help="with --held_out_voices: the share of the other domain that flite speaks (the rest: "
                             "the held-out accents)")
    parser.add_argument("--snr_db", type=float, nargs=2, default=(15.0, 35.0), metavar=("LOW", "HIGH"),
                        help="range of the signal-to-noise ratio of the added coloured noise, in dB")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.snr_db[0] > args.snr_db[1]:
        parser.error(f"--snr_db LOW HIGH needs LOW <= HIGH, got {args.snr_db[0]} {args.snr_db[1]}")
    sizes = {name: getattr(args, f"num_{name}") for name in SETS}
    try:
        domains = Domains(held_out_voices=tuple(args.held_out_voices), other_flite_share=args.other_flite_share)
        domains = domains.with_shares(dict(args.other_share))
        found = read_fortune_sentences(list_fortune_files(args.fortune_dir), args.min_words, args.max_words)
        if args.vocab_size:
            found = closed_vocabulary(found, args.vocab_size)
        print(f"sentences: {found.summary()}", flush=True)
        sentences_by_set = split_sentences(found.sentences, sizes, args.seed)
        summaries = make_corpus(sentences_by_set, args.data_dir, args.audio_dir, args.seed, args.nj,
                                tuple(args.snr_db), domains)
    except (CorpusError, FileNotFoundError, ValueError) as err:
        sys.exit(f"make_synth_corpus: error: {err}")
    print(f"{'set':<16} {'utterances':>10} {'hours':>7} {'speakers':>8} {'other domain':>12}")
    for s in summaries:
        print(f"{s.name:<16} {s.utterances:>10} {s.hours:>7.2f} {s.speakers:>8} {s.other:>12}")


if __name__ == "__main__":
    main()
