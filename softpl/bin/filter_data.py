"""Stage 3: keep the utterances of a formatted data dir whose duration lies in [min_dur, max_dur].

Every per-utterance file (wav.scp, text, text.ref, utt2spk, utt2dur, utt2num_samples) is filtered
consistently and spk2utt regenerated. Removed utterances are counted and listed with their duration in
``<output_dir>/filtered_utts.txt``: nothing is dropped silently. Without bounds the dir is copied unchanged.
The output is written to ``<output_dir>.tmp`` and renamed at the end, so a partial output never looks finished.
"""
from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

from softpl.data.datadir import copy_data_dir, read_table


def filter_by_duration(src: Path, dst: Path, min_dur: float = 0.0,
                       max_dur: float = math.inf) -> list[tuple[str, float]]:
    """Write the filtered copy of ``src`` to ``dst``; return the removed (utterance id, duration) pairs."""
    durations = {key: float(value) for _, key, value in read_table(src / "utt2dur")}
    removed = [(key, dur) for key, dur in durations.items() if not min_dur <= dur <= max_dur]
    drop = {key for key, _ in removed}
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    copy_data_dir(src, tmp, exclude=drop)
    if removed:
        (tmp / "filtered_utts.txt").write_text("".join(f"{k}\t{d:.3f}\n" for k, d in removed))
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return removed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, required=True, help="formatted data dir")
    parser.add_argument("--output_dir", type=Path, required=True, help="filtered data dir to write (replaced)")
    parser.add_argument("--min_dur", type=float, default=0.0, help="seconds")
    parser.add_argument("--max_dur", type=float, default=math.inf, help="seconds")
    args = parser.parse_args(argv)
    total = len(read_table(args.data_dir / "utt2dur"))
    removed = filter_by_duration(args.data_dir, args.output_dir, args.min_dur, args.max_dur)
    note = f" (listed in {args.output_dir / 'filtered_utts.txt'})" if removed else ""
    print(f"{args.output_dir}: kept {total - len(removed)} of {total} utterances; "
          f"removed {len(removed)} outside [{args.min_dur}, {args.max_dur}] s{note}")


if __name__ == "__main__":
    main()
