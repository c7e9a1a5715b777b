#!/usr/bin/env bash
# Stage 1 of egs/librilight_10h: Libri-light's 10 h limited supervision + LibriSpeech -> Kaldi data dirs for
# slimIPL's 10 h setting (docs/method.md, 'slimIPL hyper-parameters').
#
#   train_10h   labeled     librispeech_finetuning/1h/{0..5}/{clean,other} + 9h/{clean,other} (about 10 h)
#   train_960   unlabeled   LibriSpeech train-clean-100 + train-clean-360 + train-other-500 (960 h) without the
#                           utterances of train_10h (which Libri-light drew from them); no text: the truth is in
#                           text.ref, read by pseudo-label metrics only, never by training
#   dev_clean dev_other test_clean test_other   labeled evaluation sets (LibriSpeech's)
#   dev_clean_other  dev_clean + dev_other pooled: the validation set (slimIPL validates on both)
# Each data dir: wav.scp (<uttid> <absolute FLAC path>; stage 2 formats the audio), text or text.ref, utt2spk
# (speaker = LibriSpeech speaker id), spk2utt, utt2dur; uttid = <speaker>-<chapter>-<NNNN>; sorted in C order.
# The evaluation sets share no speaker with any other set; train_10h and train_960 do share speakers (as published).
#
# Usage (from egs/librilight_10h; the engine passes --seed and --nj, and --local_data_opts verbatim):
#   local/data.sh [--nj 2] [--download false]
#     --download true   first fetch what is missing under $LIBRISPEECH and $LIBRILIGHT_FINETUNING (db.sh)
set -euo pipefail
# shellcheck disable=SC2034  # --seed is accepted (the engine passes it) but not used here
seed=1          # the engine's option: the corpora are fixed, so it changes nothing here
nj=2            # processes reading FLAC headers (utt2dur)
download=false  # true: download the missing parts first
openslr=https://www.openslr.org/resources/12
finetuning_url=https://dl.fbaipublicfiles.com/librilight/data/librispeech_finetuning.tgz
help_message="Usage: local/data.sh [--nj $nj] [--download $download]   (corpus locations: db.sh)"
. "${SOFTPL_ROOT:-../..}/utils/parse_options.sh"
# shellcheck source=../db.sh  # run from the recipe folder
. ./db.sh
for var in LIBRISPEECH LIBRILIGHT_FINETUNING; do
  if [ -z "${!var}" ]; then
    echo "$0: $var is not set: set it in db.sh (or export it) to the folder that holds" \
      "$([ $var = LIBRISPEECH ] && echo LibriSpeech/ || echo librispeech_finetuning/);" \
      "with --local_data_opts '--download true' the corpus is downloaded there" >&2
    exit 1
  fi
done
case "$download" in true|false) ;; *) echo "$0: --download must be true or false, got '$download'" >&2; exit 1 ;; esac

if [ "$download" = true ]; then
  local/download.sh "$finetuning_url" "$LIBRILIGHT_FINETUNING" librispeech_finetuning
  for part in dev-clean dev-other test-clean test-other train-clean-100 train-clean-360 train-other-500; do
    local/download.sh "$openslr/$part.tar.gz" "$LIBRISPEECH" "LibriSpeech/$part"
  done
fi

ls=$LIBRISPEECH/LibriSpeech
ll=$LIBRILIGHT_FINETUNING/librispeech_finetuning
python -m softpl.corpora.librispeech --data_dir data --nj "$nj" \
  --labeled train_10h "$ll"/1h/{0..5}/{clean,other} "$ll"/9h/{clean,other} \
  --unlabeled train_960 "$ls/train-clean-100" "$ls/train-clean-360" "$ls/train-other-500" \
  --labeled dev_clean "$ls/dev-clean" --labeled dev_other "$ls/dev-other" \
  --labeled test_clean "$ls/test-clean" --labeled test_other "$ls/test-other" \
  --disjoint_speakers dev_clean dev_other test_clean test_other
# Validation (stage 6 and 8 select and report by it) pools dev-clean and dev-other, as slimIPL validates on both.
"${SOFTPL_ROOT:-../..}/utils/combine_data.sh" data/dev_clean_other data/dev_clean data/dev_other
