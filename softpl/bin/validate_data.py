"""Validate a Kaldi-style data dir: prints ``OK: DIR (N utterances, H hours)`` or lists every problem and exits 1.

With ``--skip_bad true`` the bad utterances are dropped from the dir in place (listed in ``DIR/skipped_utts.txt``);
problems not tied to one utterance (a missing or unsorted file) always fail.

    python -m softpl.bin.validate_data --data_dir dump/raw/org/train_unlabeled --fs 16000 \\
        --labeled_dirs dump/raw/org/train_labeled --skip_bad false
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet2.utils.types import str2bool

from softpl.data.datadir import DataDir, DataDirError
from softpl.data.validate import raise_or_skip, validate_data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, required=True)
    parser.add_argument("--fs", type=int, default=16000, help="sample rate every audio must have (Hz)")
    parser.add_argument("--token_list", type=Path, help="check that every transcript character has a token")
    parser.add_argument("--labeled_dirs", type=Path, nargs="+", default=[],
                        help="labeled sets that must share no utterance with this (unlabeled) set")
    parser.add_argument("--audio_check", type=str2bool, default=True,
                        help="read every audio header; false checks the tables only")
    parser.add_argument("--skip_bad", type=str2bool, default=False, help="drop bad utterances instead of failing")
    args = parser.parse_args(argv)
    try:
        problems = validate_data_dir(args.data_dir, fs=args.fs, check_audio=args.audio_check,
                                     token_list=args.token_list, labeled_dirs=args.labeled_dirs)
        raise_or_skip(problems, args.data_dir, args.skip_bad)
        data = DataDir.load(args.data_dir)
    except DataDirError as e:
        print(f"ERROR: {args.data_dir}: {e}", file=sys.stderr)
        return 1
    # Without utt2dur the duration comes from the audio headers, which only an audio check has vouched for.
    known = data.utt2dur is not None or args.audio_check
    duration = f"{data.total_seconds() / 3600:.2f} hours" if known else "duration unknown: no utt2dur"
    print(f"OK: {args.data_dir} ({len(data.wav_scp)} utterances, {duration})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
