#!/usr/bin/env bash
# egs/synth_en: the embedded default corpus. Synthetic English speech rendered locally with espeak-ng
# (and flite for the "other" domain) from Debian's fortunes; nothing is downloaded.
# Corpus options go to the shared stage engine (the repository's run.sh); pass any of its options
# after them, e.g. ./run.sh --stage 6 --stop_stage 7. ./run.sh --help lists stages and options.
set -euo pipefail
cd "$(dirname "$0")"
softpl_root=${SOFTPL_ROOT:-$(cd ../.. && pwd)}
. ./cmd.sh
exec "$softpl_root/run.sh" --train_cmd "$train_cmd" --decode_cmd "$decode_cmd" --cuda_cmd "$cuda_cmd" \
  --train_set train_labeled --unlabeled_set train_unlabeled --valid_set dev \
  --test_sets "dev test_clean test_other" \
  --token_type char --seed_config conf/train_seed.yaml --pl_train_config conf/train_pl.yaml \
  --pl_configs "hard soft soft_mix" --pl_nj 2 \
  "$@"
