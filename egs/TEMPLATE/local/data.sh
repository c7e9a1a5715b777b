#!/usr/bin/env bash
# Stage 1 of a recipe made from egs/TEMPLATE: import the corpus into Kaldi data dirs under data/.
#
# Data contract (what stage 1 must write, whatever the corpus; the later stages rely on it):
#   one folder data/<set> for every set the run.sh options name: --train_set, --unlabeled_set, --valid_set
#   and each of --test_sets (here: train_labeled, train_unlabeled, dev and one per test manifest), holding
#     wav.scp   <uttid> <audio path, or a Kaldi command ending in |>   (any rate/channels soundfile reads)
#     text      <uttid> <TRANSCRIPT>   labeled sets only; the unlabeled set has NO text (its truth, when
#               known, may go to text.ref, which only the pseudo-label metrics read)
#     utt2spk   <uttid> <speaker>      the speaker id a prefix of the utterance id (Kaldi convention)
#     spk2utt   <speaker> <uttid>...   derived from utt2spk
#     utt2dur   <uttid> <seconds>      optional (stage 2 writes it anyway)
#   every file sorted by uttid in C order (LC_ALL=C sort), one line per utterance, ids unique across sets.
#   Stage 2 checks all of it and names the file, line and utterance at fault.
# A corpus with its own layout replaces the body below with its own preparation (keep the options).
#
# By default each set comes from softpl.bin.import_manifest (see its --help for the id and speaker rule):
#   --labeled   SET=MANIFEST[,SET=MANIFEST...]  TSV manifests (audio_path<TAB>transcript[<TAB>speaker])
#   --unlabeled SET=SOURCE[,SET=SOURCE...]      SOURCE: a folder of audio (recursive) or a list of audio paths
#   --normalize true|false  LibriSpeech-style English normalization of transcripts (default true)
#   --skip_bad true|false   leave bad lines out, listed in data/<set>/skipped_utts.txt (default false)
# run.sh passes them from its corpus inputs; ./run.sh --local_data_opts "..." replaces all of them.
#
# Usage (from the recipe folder, with the venv's python on PATH):
#   local/data.sh [--seed 1] [--nj 2] --labeled train_labeled=train.tsv,dev=dev.tsv --unlabeled train_unlabeled=unlab/
set -euo pipefail

# shellcheck disable=SC2034  # --seed is accepted (the engine passes it) but not used here
seed=1          # given by the stage engine; the import is deterministic and does not use it
nj=1            # threads reading audio headers
labeled=""
unlabeled=""
normalize=true
skip_bad=false
help_message=$(sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//')
. "${SOFTPL_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}/utils/parse_options.sh"
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }
[ -n "$labeled" ] || { echo "$0: no labeled sets: give --labeled SET=MANIFEST[,...] (see --help)" >&2; exit 1; }

declare -A seen=()
import_set() {  # import_set <labeled|unlabeled> <SET=SOURCE>
  local set=${2%%=*} source=${2#*=} from
  if [ -z "$set" ] || [ "$set" = "$2" ] || [ -z "$source" ]; then
    echo "$0: --$1 entry '$2' is not SET=SOURCE" >&2; exit 1
  fi
  [ -z "${seen[$set]:-}" ] || { echo "$0: set '$set' given twice ($2 and ${seen[$set]})" >&2; exit 1; }
  seen[$set]=$2
  [ -e "$source" ] || { echo "$0: $source (set $set) not found; set the corpus inputs at the top of run.sh" >&2; exit 1; }
  if [ "$1" = labeled ]; then from=(--manifest "$source")
  elif [ -d "$source" ]; then from=(--audio_dir "$source")
  else from=(--audio_list "$source")
  fi
  python -m softpl.bin.import_manifest "${from[@]}" --output_dir "data/$set" --normalize "$normalize" \
    --skip_bad "$skip_bad" --nj "$nj"
}

for entry in ${labeled//,/ }; do import_set labeled "$entry"; done
for entry in ${unlabeled//,/ }; do import_set unlabeled "$entry"; done
