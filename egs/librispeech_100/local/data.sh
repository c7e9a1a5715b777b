#!/usr/bin/env bash
# Stage 1 of egs/librispeech_100: LibriSpeech -> Kaldi data dirs for slimIPL's 100 h setting (docs/method.md, hyper-parameters).
#
#   train_clean_100  labeled     train-clean-100 (about 100 h)
#   train_860        unlabeled   train-clean-360 + train-other-500 (about 860 h); no text: the truth is in
#                                text.ref, read by pseudo-label metrics only, never by training
#   dev_clean dev_other test_clean test_other   labeled evaluation sets
#   dev_clean_other  dev_clean + dev_other pooled: the validation set (slimIPL validates on both)
# Each data dir: wav.scp (<uttid> <absolute FLAC path>; stage 2 formats the audio), text or text.ref, utt2spk
# (speaker = LibriSpeech speaker id), spk2utt, utt2dur; uttid = <speaker>-<chapter>-<NNNN>; sorted in C order.
# No two sets share a speaker (as published); a malformed trans.txt line or a missing FLAC stops it with the file,
# line and utterance id at fault.
#
# Usage (from egs/librispeech_100; the engine passes --seed and --nj, and --local_data_opts verbatim):
#   local/data.sh [--nj 2] [--download false]
#     --download true   first fetch the parts missing under $LIBRISPEECH (db.sh) from openslr.org
set -euo pipefail
# shellcheck disable=SC2034  # --seed is accepted (the engine passes it) but not used here
seed=1          # the engine's option: LibriSpeech is fixed, so it changes nothing here
nj=2            # processes reading FLAC headers (utt2dur)
download=false  # true: download the missing parts first
openslr=https://www.openslr.org/resources/12
help_message="Usage: local/data.sh [--nj $nj] [--download $download]   (corpus location: db.sh)"
. "${SOFTPL_ROOT:-../..}/utils/parse_options.sh"
# shellcheck source=../db.sh  # run from the recipe folder
. ./db.sh
if [ -z "$LIBRISPEECH" ]; then
  echo "$0: LIBRISPEECH is not set: set it in db.sh (or export it) to the folder that holds LibriSpeech/;" \
    "with --local_data_opts '--download true' the corpus is downloaded there" >&2
  exit 1
fi
case "$download" in true|false) ;; *) echo "$0: --download must be true or false, got '$download'" >&2; exit 1 ;; esac

if [ "$download" = true ]; then
  for part in dev-clean dev-other test-clean test-other train-clean-100 train-clean-360 train-other-500; do
    local/download.sh "$openslr/$part.tar.gz" "$LIBRISPEECH" "LibriSpeech/$part"
  done
fi

ls=$LIBRISPEECH/LibriSpeech
python -m softpl.corpora.librispeech --data_dir data --nj "$nj" \
  --labeled train_clean_100 "$ls/train-clean-100" \
  --unlabeled train_860 "$ls/train-clean-360" "$ls/train-other-500" \
  --labeled dev_clean "$ls/dev-clean" --labeled dev_other "$ls/dev-other" \
  --labeled test_clean "$ls/test-clean" --labeled test_other "$ls/test-other" \
  --disjoint_speakers train_clean_100 train_860 dev_clean dev_other test_clean test_other
# Validation (stage 6 and 8 select and report by it) pools dev-clean and dev-other, as slimIPL validates on both.
"${SOFTPL_ROOT:-../..}/utils/combine_data.sh" data/dev_clean_other data/dev_clean data/dev_other
