#!/usr/bin/env bash
# Stage 1 of egs/synth_en: render the embedded synthetic English corpus locally (no downloads).
#
# Data contract: for each set in train_labeled, train_unlabeled, dev, test_clean, test_other it writes
#   data/<set>/wav.scp   <uttid> <absolute path of a 16 kHz mono 16-bit PCM wav under corpus/<set>/>
#   data/<set>/text      <uttid> <TRANSCRIPT>  (LibriSpeech style: A-Z, apostrophe, single spaces)
#                        train_unlabeled has no text: its truth is in text.ref, for pseudo-label metrics only
#   data/<set>/utt2spk, data/<set>/spk2utt, data/<set>/utt2dur (seconds)
# every file sorted by uttid in C order; uttid = <speaker>-<set>-<index>, speaker = engine_voice[_variant].
# No sentence is in two sets. espeak-ng speaks every set; flite speaks a tenth of train_labeled, half of dev and
# train_unlabeled and all of test_other (a domain shift the unlabeled data covers).
# The corpus depends on --seed only, not on --nj.
#
# Usage (from egs/synth_en, with the venv's python on PATH):
#   local/data.sh [--seed 1] [--nj 2] [--num_train_labeled 1000] [--num_train_unlabeled 14000] [--num_dev 300]
#                 [--num_test_clean 300] [--num_test_other 300] [--snr_db 5 25] ...
# Every argument goes to `python -m softpl.bin.make_synth_corpus` (see its --help) and overrides the defaults here.
set -euo pipefail

exec python -m softpl.bin.make_synth_corpus --data_dir data --audio_dir corpus "$@"
