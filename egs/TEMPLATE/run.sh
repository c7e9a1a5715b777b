#!/usr/bin/env bash
# egs/TEMPLATE: the recipe a new corpus starts from (utils/new_recipe.sh copies it and fills in the inputs).
# Stage 1 (local/data.sh) imports the corpus with softpl.bin.import_manifest; every later stage is the shared
# stage engine (the repository's run.sh). Pass any engine option after the corpus options, e.g.
# ./run.sh --stage 6 --stop_stage 7; ./run.sh --help lists stages and options.
set -euo pipefail
cd "$(dirname "$0")"
export SOFTPL_ROOT=${SOFTPL_ROOT:-$(cd ../.. && pwd)}  # the repository: stage engine, utils, .venv

# ---- corpus inputs (relative paths are read from this folder; no white space or commas in paths) ----------
# TSV manifest, one line per utterance: audio_path<TAB>transcript[<TAB>speaker]   -> data/train_labeled
labeled_manifest=/path/to/train.tsv
# folder searched recursively for audio, or a file listing one audio path per line -> data/train_unlabeled
unlabeled_audio=/path/to/unlabeled
# TSV manifest of the validation set                                              -> data/dev
dev_manifest=/path/to/dev.tsv
# TSV manifests of the test sets, space separated; each set is named by its file stem -> data/<stem>
test_manifests="/path/to/test.tsv"
# local/data.sh options for every set: --normalize false keeps non-English transcripts as written;
# --skip_bad true leaves bad manifest lines out (listed in data/<set>/skipped_utts.txt)
data_opts="--normalize true --skip_bad false"

# Every manifest becomes a labeled set SET=MANIFEST for local/data.sh; dev and the test sets are decoded.
labeled_sets="train_labeled=$labeled_manifest,dev=$dev_manifest"
test_sets="dev"
for manifest in $test_manifests; do
  name=$(basename "${manifest%.*}")
  labeled_sets+=",$name=$manifest"
  test_sets+=" $name"
done

. ./cmd.sh
exec "$SOFTPL_ROOT/run.sh" --train_cmd "$train_cmd" --decode_cmd "$decode_cmd" --cuda_cmd "$cuda_cmd" \
  --train_set train_labeled --unlabeled_set train_unlabeled --valid_set dev --test_sets "$test_sets" \
  --token_type char --seed_config conf/train_seed.yaml --pl_train_config conf/train_pl.yaml \
  --local_data_opts "--labeled $labeled_sets --unlabeled train_unlabeled=$unlabeled_audio $data_opts" \
  "$@"
