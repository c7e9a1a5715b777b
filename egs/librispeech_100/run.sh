#!/usr/bin/env bash
# egs/librispeech_100: slimIPL's 100 h setting (docs/method.md, hyper-parameters). LibriSpeech train-clean-100 is labeled,
# train-clean-360 + train-other-500 (860 h) unlabeled; dev-clean + dev-other validate (pooled: dev_clean_other);
# dev/test clean/other are scored.
#   1. Set LIBRISPEECH in db.sh (the folder holding LibriSpeech/), or add --local_data_opts "--download true".
#   2. ./run.sh --ngpu 8 --nj 16   (configs sized for 8 GPUs; several nodes: --num_nodes N with cmd.sh's train_cmd)
# Letters by default (slimIPL's targets). BPE instead, in folders of its own so the letter runs stay:
#   ./run.sh --token_type bpe --nbpe 300 --expdir exp_bpe300
# Options after these override them; ./run.sh --help lists the stages and every option.
set -euo pipefail
cd "$(dirname "$0")"
export SOFTPL_ROOT=${SOFTPL_ROOT:-$(cd ../.. && pwd)}  # local/data.sh finds utils/ through it
. ./cmd.sh
exec "$SOFTPL_ROOT/run.sh" --train_cmd "$train_cmd" --decode_cmd "$decode_cmd" --cuda_cmd "$cuda_cmd" \
  --train_set train_clean_100 --unlabeled_set train_860 --valid_set dev_clean_other \
  --test_sets "dev_clean dev_other test_clean test_other" \
  --max_dur 30 --token_type char --seed_config conf/train_seed.yaml --pl_train_config conf/train_pl.yaml \
  "$@"
