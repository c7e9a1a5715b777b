"""Stage 2: a data dir's audio as mono at ``--fs``, referenced in place or rewritten, and validated.

    python -m softpl.bin.format_data --data_dir data/dev --output_dir dump/raw/org/dev --fs 16000 \\
        [--skip_bad false] [--nj 2]

Mono WAV/FLAC files at ``--fs`` are referenced where they are; other audio is written as 16-bit PCM WAV to
``OUTPUT_DIR/data/<uttid>.wav``. Writes ``OUTPUT_DIR/wav.scp`` (absolute paths), ``utt2dur``,
``utt2num_samples`` and copies text, text.ref, utt2spk and spk2utt. Bad utterances fail the run, or with
``--skip_bad true`` are left out and listed in ``OUTPUT_DIR/skipped_utts.txt``. Exits 1 with the list of
problems on stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet2.utils.types import str2bool

from softpl.data.datadir import DataDirError
from softpl.data.format_audio import format_data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, required=True, help="Kaldi-style data dir (stage 1 output)")
    parser.add_argument("--output_dir", type=Path, required=True, help="formatted data dir to write (replaced)")
    parser.add_argument("--fs", type=int, default=16000, help="output sample rate (Hz)")
    parser.add_argument("--skip_bad", type=str2bool, default=False, help="drop bad utterances instead of failing")
    parser.add_argument("--nj", type=int, default=1, help="parallel conversion processes")
    args = parser.parse_args(argv)
    try:
        summary = format_data_dir(args.data_dir, args.output_dir, fs=args.fs, skip_bad=args.skip_bad, nj=args.nj)
    except DataDirError as e:
        print(f"ERROR: {args.data_dir}: {e}", file=sys.stderr)
        return 1
    skipped = f"; skipped {summary.skipped}" if summary.skipped else ""
    print(f"{args.output_dir}: {summary.utterances} utterances, {summary.seconds / 3600:.2f} hours at {args.fs} Hz "
          "mono; "
          f"{summary.in_place} used in place, {summary.utterances - summary.in_place} written "
          f"(resampled {summary.resampled}, downmixed {summary.downmixed}){skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
