#!/usr/bin/env bash
# utils/combine_data.sh <dst> <src>...: one Kaldi data dir holding every utterance of the sources (as Kaldi's
# utils/combine_data.sh): wav.scp, text, utt2spk, utt2dur concatenated in C order, spk2utt made from utt2spk.
# The sources must not share an utterance id (stops with the repeated ids). egs/librispeech_100 and
# egs/librilight_10h pool dev-clean and dev-other into the validation set, as slimIPL validates on both.
set -euo pipefail
export LC_ALL=C
[ $# -ge 2 ] || { echo "usage: $0 <dst> <src>..." >&2; exit 1; }
dst=$1; shift
tmp=$dst.tmp
rm -rf "$tmp"; mkdir -p "$tmp"
for file in wav.scp text utt2spk utt2dur; do
  for src in "$@"; do
    [ -f "$src/$file" ] || { echo "$0: $src/$file is missing" >&2; exit 1; }
  done
  for src in "$@"; do cat "$src/$file"; done | sort > "$tmp/$file"
done
repeated=$(cut -d' ' -f1 "$tmp/wav.scp" | uniq -d | head -5 | tr '\n' ' ')
[ -z "$repeated" ] || { echo "$0: utterance ids in more than one of $*: $repeated" >&2; exit 1; }
awk '{utts[$2] = utts[$2] " " $1} END {for (spk in utts) print spk utts[spk]}' "$tmp/utt2spk" | sort > "$tmp/spk2utt"
rm -rf "$dst"; mv "$tmp" "$dst"
