"""Stage 1 for any corpus: write a Kaldi data dir from a TSV manifest, an audio folder or an audio list.

    python -m softpl.bin.import_manifest --manifest train.tsv --output_dir data/train_labeled
    python -m softpl.bin.import_manifest --audio_dir /corpus/unlab --output_dir data/train_unlabeled
    python -m softpl.bin.import_manifest --audio_list unlab.lst --output_dir data/train_unlabeled

A manifest holds one labeled utterance per line: ``audio_path<TAB>transcript[<TAB>speaker]``. An audio folder is
searched recursively for files soundfile reads; an audio list names one file per line. Both give unlabeled sets
(no ``text``). Writes wav.scp (absolute paths), text (labeled only), utt2spk, spk2utt and utt2dur, sorted by
utterance id; how ids and speakers are made is in the notes below (``softpl.data.manifest``). Bad lines fail the
import with their file and line, or with ``--skip_bad true`` are left out and listed in ``OUTPUT_DIR/skipped_utts.txt``.
Exits 1 with the list of problems on stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet2.utils.types import str2bool

from softpl.data.datadir import DataDirError
from softpl.data import manifest
from softpl.data.manifest import find_audio, import_data_dir, read_audio_list, read_manifest


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, epilog=manifest.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="TSV: audio_path<TAB>transcript[<TAB>speaker] (labeled)")
    source.add_argument("--audio_dir", type=Path, help="folder searched recursively for audio (unlabeled)")
    source.add_argument("--audio_list", type=Path, help="file of audio paths, one per line (unlabeled)")
    parser.add_argument("--output_dir", type=Path, required=True, help="Kaldi data dir to write (replaced)")
    parser.add_argument("--normalize", type=str2bool, default=True,
                        help="normalize transcripts the LibriSpeech way (English: A-Z, apostrophe, single spaces); "
                             "false keeps them as written, white space collapsed")
    parser.add_argument("--skip_bad", type=str2bool, default=False,
                        help="leave bad lines out (listed in OUTPUT_DIR/skipped_utts.txt) instead of failing")
    parser.add_argument("--nj", type=int, default=1, help="threads reading audio headers")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        if args.manifest is not None:
            entries, problems = read_manifest(args.manifest)
        elif args.audio_list is not None:
            entries, problems = read_audio_list(args.audio_list)
        else:
            entries, problems = find_audio(args.audio_dir), []
        summary = import_data_dir(entries, problems, args.output_dir, labeled=args.manifest is not None,
                                  normalize=args.normalize, skip_bad=args.skip_bad, nj=args.nj)
    except DataDirError as e:
        print(f"ERROR: import into {args.output_dir}: {e}", file=sys.stderr)
        return 1
    kind = "labeled" if args.manifest is not None else "unlabeled"
    skipped = f"; skipped {summary.skipped}" if summary.skipped else ""
    print(f"{args.output_dir}: {summary.utterances} {kind} utterances, {summary.seconds / 3600:.2f} hours, "
          f"{summary.speakers} speakers{skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
