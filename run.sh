#!/usr/bin/env bash
# softpl stage engine, shared by every recipe (the role ESPnet's asr.sh plays).
#   * At the repository root, with no recipe, it runs the embedded default corpus: egs/synth_en.
#   * In a recipe folder (one with local/data.sh), egs/<corpus>/run.sh sets corpus options and calls it.
# Every stage is idempotent and restartable: outputs are written to a temporary place and moved into
# place at the end, and a stage leaves a marker holding its options; a later call with the same options
# skips it ("already done"), a call with other options redoes it. --force true redoes stages anyway.
set -euo pipefail
{ # The whole script is one block: bash reads it completely before running, so editing this file while a
  # recipe runs cannot change what the running recipe does.

softpl_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
invocation="$(basename "$PWD")/run.sh $*"  # recorded in RESULTS.md
engine_args=("$@")  # this call's options, written into each experiment's run.sh (which reproduces it)
if [ ! -f local/data.sh ]; then
  # Not in a recipe: run the embedded default recipe.
  cd "$softpl_root/egs/synth_en"
  exec ./run.sh "$@"
fi

# ---- options (ESPnet names where ESPnet has one) --------------------------------------------------
stage=1                  # first stage to run
stop_stage=10            # last stage to run (11, export, and 12, upload, run when asked: --stage 11 --stop_stage 12)
skip_data_prep=false     # skip stages 1-4 (data preparation, formatting, filtering, token list)
skip_train=false         # skip stages 5, 6 and 8 (statistics and training)
skip_eval=false          # skip stages 7, 9 and 10 (decoding, scoring, report)
install_system_packages=auto  # missing system tools: auto = apt-get them where no password is needed (root,
                         # passwordless sudo), else stop with the command; true: through sudo (asks); false: stop
nj=2                     # parallel jobs for data preparation, formatting, stats, decoding
ngpu=0                   # GPUs per node for training, and for decoding (0: CPU)
num_nodes=1              # training nodes; > 1 goes through ESPnet's launcher (espnet2.bin.launch) with --train_cmd
train_cmd=""             # with --num_nodes > 1: a Kaldi-style cluster command, e.g. "slurm.pl" or "queue.pl" (cmd.sh)
seed=1                   # random seed for corpus rendering and training
force=false              # redo stages even when their marker says they are done
skip_bad=false           # stage 2: drop bad utterances (listed in skipped_utts.txt) instead of stopping
local_data_opts=""       # options passed to local/data.sh
train_set=train_labeled  # labeled training set
unlabeled_set=train_unlabeled  # unlabeled set (no text; text.ref only for pseudo-label metrics)
valid_set=dev            # validation set
test_sets="dev test_clean test_other"  # sets decoded and scored
fs=16000                 # sampling rate of formatted audio
speed_perturb_factors="" # stage 2: speed perturbation of the labeled set, e.g. "0.9 1.0 1.1" (-> <train_set>_sp)
min_dur=0.5              # stage 3: shortest training utterance kept (seconds)
max_dur=20.0             # stage 3: longest training utterance kept (seconds)
token_type=char          # stage 4: char or bpe (both built with sentencepiece from labeled text only)
nbpe=100                 # stage 4: vocabulary size for bpe
seed_config=conf/train_seed.yaml  # stage 6: ESPnet ASR training config of the seed model
seed_args=""             # stage 6: extra options for ESPnet's ASR training (softpl.bin.asr_train)
seed_exp=""              # stage 6: seed experiment folder (default: <expdir>/asr_seed)
seed_model_dir=""        # an ESPnet ASR experiment, unpacked model-zoo folder or model-zoo tag to start from
                         #   (skips stages 4-6; a tag needs espnet_model_zoo)
pl_train_config=conf/train_pl.yaml  # stage 8: continuation schedule shared by the PL runs and the baseline
pl_configs="hard soft"   # stage 8: PL variants (names under conf/pl/ or YAML paths), one run each
pl_args=""               # stage 8: extra options for softpl.bin.cpl_train
supervised_baseline=true # stage 8: also train the supervised-only continuation (stock ESPnet, same updates)
pl_seeds=""              # stage 8: training seeds; when set, every run of stage 8 is repeated per seed as
                         #   <run>_seed<N> and stage 10 adds a mean +- std table (empty: one run with --seed)
pl_nj=1                  # stages 8, 9: runs trained / decoded at once (each gets nproc/pl_nj CPU threads)
epoch_images=false       # stages 6, 8: true: ESPnet redraws exp/<run>/images after every epoch (--use_matplotlib;
                         #   1-6 s an epoch); false: once when the run ends, from its checkpoint (the same images)
plot_pl_configs=""       # stage 10: --pl_configs entries drawn in the curves (default: all)
decode_model=""          # stages 7, 9: the checkpoint decoded, for every row alike; default: ESPnet's average of each
                         #   run's keep_nbest_models best epochs by the first validation best_model_criterion of its
                         #   config (valid.<metric>.ave.pth; continuation runs inherit the seed config's criterion)
decode_batch_size=16     # stages 7, 9: utterances per batch for greedy CTC decoding
inference_nj=""          # stages 7, 9: decoding jobs, each on a share of every set (default: --nj), through decode_cmd/cuda_cmd of cmd.sh
gpu_inference=auto       # stages 7, 9: true: decode on GPU (one per job; cuda_cmd), false: on CPU (decode_cmd);
                         #   auto: on GPU when --ngpu > 0
decode_cmd=""            # Kaldi-style job command for collect-stats and decoding (run.pl/queue.pl/slurm.pl: cmd.sh); empty: local jobs
cuda_cmd=""              # the same for GPU decoding (--gpu_inference true)
export_models=""         # stage 11: runs exported for stock ESPnet and packed (default: the seed and every stage-8 run)
hf_repo=""               # stage 12: Hugging Face repository to upload to (<user>/<name>; one --export_models run)
espnet_inference=false   # stage 7: also decode with stock espnet2.bin.asr_inference (CTC beam 1) for comparison
dumpdir=dump             # formatted data
expdir=exp               # experiments

# --help shows the values in force when it is read: a recipe's overrides (given before the user's options) too.
usage() { cat <<EOF
Usage: ./run.sh [options]     (at the repository root: runs egs/synth_en)

Stages:
  1  data preparation (local/data.sh)           -> data/<set>
  2  format audio (${fs} Hz mono; usable WAV/FLAC kept in place) + validate -> dump/raw/org/<set>
  3  filter training sets by length             -> dump/raw/<set>
  4  token list (sentencepiece, labeled text)   -> data/token_list/<token_type>
  5  ESPnet collect-stats                       -> exp/asr_stats_<token_type>
  6  seed training (ESPnet's asr_train, softpl's classes registered) -> exp/asr_seed
  7  decode (batched greedy CTC) + score seed   -> exp/asr_seed/decode_greedy_<model>/<set>, exp/RESULTS.md
  8  continuous pseudo-labeling from the seed, one run per --pl_configs entry -> exp/pl_<name>;
     plus the supervised-only ESPnet continuation with as many updates  -> exp/asr_supervised_cont
  9  decode + score the runs of stage 8         -> exp/<run>/decode_greedy_<model>/<set>
  10 report: RESULTS.md (baselines first, then PL variants) + curves -> exp/RESULTS.md, exp/plots/
  11 export for stock ESPnet (config without softpl) + pack (espnet2.bin.pack asr) -> exp/<run>/<run>_<model>.zip
     (not run by default: --stage 11 --stop_stage 11)
  12 upload to Hugging Face (with --hf_repo: the one run of --export_models; model card) -> exp/<run>/hf_upload
     (not run by default: --stage 12 --stop_stage 12, or --stage 11 --stop_stage 12 to pack and upload)

Options (default):
  --stage (${stage}) --stop_stage (${stop_stage}) --nj (${nj}) --ngpu (${ngpu}) --seed (${seed})
  --skip_data_prep (${skip_data_prep}) --skip_train (${skip_train}) --skip_eval (${skip_eval})  as ESPnet's asr.sh
  --num_nodes (${num_nodes}) --train_cmd ("${train_cmd}")  multi-node training through ESPnet's launcher
  --force (${force})            redo stages even if done with the same options
  --install_system_packages (${install_system_packages})  missing system tools: auto|true|false (utils/setup_env.sh)
  --skip_bad (${skip_bad})      stage 2: drop bad utterances and list them instead of stopping
  --local_data_opts ("${local_data_opts}")  options for local/data.sh (e.g. corpus sizes)
  --train_set (${train_set}) --unlabeled_set (${unlabeled_set}) --valid_set (${valid_set})
  --test_sets ("${test_sets}") --fs (${fs}) --min_dur (${min_dur}) --max_dur (${max_dur})
  --speed_perturb_factors ("${speed_perturb_factors}")  stage 2: e.g. "0.9 1.0 1.1"; training uses <train_set>_sp
  --token_type (${token_type}: char|bpe) --nbpe (${nbpe})
  --seed_config (${seed_config}) --seed_args ("${seed_args}") --seed_exp (${seed_exp:-<expdir>/asr_seed})
  --seed_model_dir ("${seed_model_dir}")  an ESPnet model to use as the seed: stages 4-6 import it instead
  --pl_train_config (${pl_train_config}) --pl_configs ("${pl_configs}") --pl_args ("${pl_args}")
  --supervised_baseline (${supervised_baseline}) --decode_model (${decode_model})
  --pl_seeds ("${pl_seeds}")  repeat every stage-8 run per seed (<run>_seed<N>); stage 10 adds mean +- std
  --pl_nj (${pl_nj})            stage-8 runs trained, stage-9 runs decoded at once
  --epoch_images (${epoch_images})  stages 6, 8: ESPnet's exp/<run>/images after every epoch, or once at the end
  --plot_pl_configs ("${plot_pl_configs}")  stage 10: PL variants drawn in the curves (default: all)
  --decode_batch_size (${decode_batch_size}) --espnet_inference (${espnet_inference})
  --inference_nj (${inference_nj:-<nj>}) --gpu_inference (${gpu_inference})  decoding jobs, on GPU or CPU
  --decode_cmd ("${decode_cmd}") --cuda_cmd ("${cuda_cmd}")  job commands of cmd.sh (empty: local processes)
  --export_models ("${export_models}")  stage 11: runs to export (default: the seed and every stage-8 run)
  --hf_repo ("${hf_repo}")  stage 12: Hugging Face repository <user>/<name> to upload the one --export_models run to
  --dumpdir (${dumpdir}) --expdir (${expdir})
EOF
}
. "$softpl_root/utils/parse_options.sh"
[ $# -eq 0 ] || { echo "run.sh: unexpected argument '$1' (see --help)" >&2; exit 1; }
[[ "$pl_nj" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --pl_nj must be a positive integer, got '$pl_nj'" >&2; exit 1; }
seed_exp=${seed_exp:-$expdir/asr_seed}
inference_nj=${inference_nj:-$nj}
case "$gpu_inference" in
  auto) gpu_inference=$([ "$ngpu" -gt 0 ] && echo true || echo false) ;;
  true|false) ;;
  *) echo "run.sh: --gpu_inference must be auto, true or false, got '$gpu_inference'" >&2; exit 1 ;;
esac
decode_on=$([ "$gpu_inference" = true ] && echo gpu || echo cpu)  # run_jobs' device for decoding jobs
[[ "$inference_nj" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --inference_nj must be a positive integer, got '$inference_nj'" >&2; exit 1; }

# ---- environment ----------------------------------------------------------------------------------
# C locale, as Kaldi/ESPnet recipes set it (path.sh): byte-order sort and tools; Python keeps UTF-8 (PEP 540).
export LC_ALL=C
# the system tools of this recipe (local/system_tools), .venv
"$softpl_root/utils/setup_env.sh" --recipes . --install_system_packages "$install_system_packages"
export PATH="$softpl_root/.venv/bin:$PATH"
python=python
export PYTHONUNBUFFERED=1
# Progress bars: live on a terminal; in a log file one line every 30 s (tqdm reads TQDM_* defaults).
[ -t 2 ] || export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}

log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [run.sh] $*"; }
# No silent exit: every non-zero exit says where it stopped (the stage, and the command set -e stopped at).
current_stage=""
failed_command=""
set -o errtrace  # the ERR trap also in functions: the stages are functions
trap 'failed_command="line $LINENO: $BASH_COMMAND"' ERR
# shellcheck disable=SC2317  # called by the EXIT trap
say_why_on_exit() {
  local status=$?
  [ "$status" -eq 0 ] || echo "run.sh: stopped with exit status $status${current_stage:+ in stage $current_stage}${failed_command:+ \
($failed_command)}; the messages above say why" >&2
}
trap say_why_on_exit EXIT

# Run an ESPnet training entry point: one process (CPU or one GPU); one process per GPU (--ngpu N, ESPnet's
# --multiprocessing_distributed); or several nodes through ESPnet's launcher and a cluster command.
# ESPnet's per-metric curves (exp/<run>/images) are drawn once, when the run ends or stops, unless
# --epoch_images true (softpl.bin.training_images: ESPnet's own plotting over the run's checkpoint.pth).
# An earlier attempt's log is kept, with the names ESPnet's launcher gives: train.log -> train.1.log (the latest),
# train.1.log -> train.2.log, ...
rotate_log() {  # rotate_log <log file>
  local stem=${1%.log} n=1
  [ -s "$1" ] || return 0
  while [ -e "$stem.$n.log" ]; do n=$((n + 1)); done
  for ((; n > 1; n--)); do mv "$stem.$((n - 1)).log" "$stem.$n.log"; done
  mv "$1" "$stem.1.log"
}
train() {  # train <log file> <python module> <options...>
  local log_file=$1 module=$2 exp images=() rc=0 drawn follower shell=$BASHPID; shift 2
  exp=$(dirname "$log_file")
  [ "$epoch_images" = true ] || images=(--use_matplotlib false)
  rotate_log "$log_file"  # a resumed run keeps the log of its earlier attempts
  : > "$log_file"  # the progress lines below read this run's log only
  if [ "$num_nodes" -gt 1 ] && [ -z "$train_cmd" ]; then
    echo "run.sh: --num_nodes $num_nodes needs --train_cmd (e.g. slurm.pl, see cmd.sh)" >&2; exit 1
  fi
  # A line per finished epoch on the terminal (ESPnet writes its summaries to the log only), until this shell
  # ends or the training has. ($BASHPID is read above: in the background command it would be the follower's own.)
  $python -m softpl.bin.training_progress --log "$log_file" --pid "$shell" &
  follower=$!
  if [ "$num_nodes" -gt 1 ]; then
    # --max_num_log_files 1: the launcher's own rotation would only push rotate_log's backups up by an empty file
    $python -m espnet2.bin.launch --cmd "$train_cmd" --log "$log_file" --max_num_log_files 1 --ngpu "$ngpu" \
      --num_nodes "$num_nodes" \
      --init_file_prefix "$exp/.dist_init_" --multiprocessing_distributed true -- \
      $python -m "$module" "${images[@]}" "$@" || rc=$?
  elif [ "$ngpu" -gt 1 ]; then
    $python -m "$module" "${images[@]}" "$@" --ngpu "$ngpu" --multiprocessing_distributed true > "$log_file" 2>&1 || rc=$?
  else
    $python -m "$module" "${images[@]}" "$@" --ngpu "$ngpu" > "$log_file" 2>&1 || rc=$?
  fi
  kill -TERM "$follower" 2>/dev/null || true  # it reads the log once more, then ends
  wait "$follower" || true
  # Also after a failed or stopped run (a collapse alarm with --pl_collapse_action stop): its finished epochs.
  if [ "$epoch_images" != true ] && [ -f "$exp/checkpoint.pth" ] \
      && ! drawn=$($python -m softpl.bin.training_images --exp_dir "$exp" 2>&1) && [ "$rc" -eq 0 ]; then
    echo "run.sh: $exp trained, but drawing its curves into $exp/images failed:" >&2; echo "$drawn" >&2
  fi
  return "$rc"
}
run_stage() {  # run_stage <N>: in --stage..--stop_stage and not in a group the skip_* options turn off
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] || return 1
  case $1 in
    1|2|3|4) [ "$skip_data_prep" != true ] || return 1 ;;
    5|6|8) [ "$skip_train" != true ] || return 1 ;;
    7|9|10) [ "$skip_eval" != true ] || return 1 ;;
  esac
  current_stage=$1
}
# run.sh in an experiment folder: this recipe call again, for the stages that make that folder (as asr.sh does),
# and the same options as data, shell-quoted on one line (engine_args: what stage 12 puts on the model card).
write_exp_run_sh() {  # write_exp_run_sh <exp dir> <engine options...>
  local exp=$1; shift
  local args
  args=$(printf ' %q' "${engine_args[@]}" "$@")
  mkdir -p "$exp"
  echo "${args# }" > "$exp/engine_args"
  { echo "#!/usr/bin/env bash"
    echo "# Reproduces $exp: the call of the stage engine that made it (extra options may follow)."
    printf 'cd %q && exec %q%s "$@"\n' "$PWD" "$softpl_root/run.sh" "$args"
  } > "$exp/run.sh"
  chmod +x "$exp/run.sh"
}
# Run <nj> jobs of a command whose arguments say JOB (replaced by 1..nj): the one job pool of stages 5, 7 and 9.
# Through a Kaldi-style job command (decode_cmd for cpu jobs, cuda_cmd for gpu jobs: "<cmd> [--gpu 1] JOB=1:N
# <log> <command>") when cmd.sh sets one, else as local background processes (gpu jobs share the --ngpu GPUs
# round-robin).
run_jobs() {  # run_jobs <cpu|gpu> <nj> <log file with JOB> <command...>
  local on=$1 nj=$2 log_file=$3 cmd=$decode_cmd n pids=(); shift 3
  if [ "$on" = gpu ]; then cmd=$cuda_cmd; fi
  if [ -n "$cmd" ]; then
    if [ "$on" = gpu ]; then $cmd --gpu 1 JOB=1:"$nj" "$log_file" "$@"
    else $cmd JOB=1:"$nj" "$log_file" "$@"
    fi
    return
  fi
  for n in $(seq "$nj"); do
    if [ "$on" = gpu ]; then
      CUDA_VISIBLE_DEVICES=$(( (n - 1) % (ngpu > 0 ? ngpu : 1) )) "${@//JOB/$n}" > "${log_file//JOB/$n}" 2>&1 &
    else
      "${@//JOB/$n}" > "${log_file//JOB/$n}" 2>&1 &
    fi
    pids+=($!)
  done
  for n in "${!pids[@]}"; do
    wait "${pids[$n]}" || { echo "job $((n + 1)) failed, see ${log_file//JOB/$((n + 1))}:" >&2
                            tail -20 "${log_file//JOB/$((n + 1))}" >&2; return 1; }
  done
}

# A stage's marker holds its options: same options -> skip; else redo. Markers are written last.
stage_done() {  # stage_done <marker> <signature>
  [ "$force" != true ] && [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]
}
mark_done() { mkdir -p "$(dirname "$1")"; printf '%s' "$2" > "$1"; }
# The options a stage's input was made with (its marker), for the next stage's signature; inputs made by hand or
# elsewhere have no marker.
marker_of() { if [ -f "$1" ]; then cat "$1"; else printf 'made outside run.sh'; fi; }
# A stage's input that is missing stops run.sh with what it is and what makes it.
need() {  # need <stage> <path> <what makes it>
  [ -e "$2" ] || die "stage $1 needs $2, which is missing; $3"
}
die() { echo "run.sh: $*" >&2; exit 1; }
# A training folder is resumed (--resume true) only by a run with the same options; other options start afresh.
claim_exp_dir() {  # claim_exp_dir <dir> <signature>
  if [ -f "$1/.options" ] && [ "$(cat "$1/.options")" != "$2" ]; then
    log "$1 was started with other options: starting it afresh"
    rm -rf "$1"
  elif [ ! -f "$1/.options" ] && [ -f "$1/checkpoint.pth" ]; then
    echo "run.sh: $1 holds a training run of unknown options; remove it (or move it away) and rerun" >&2
    exit 1
  fi
  mkdir -p "$1"; printf '%s' "$2" > "$1/.options"
}
stage_timer_start() { _t0=$(date +%s); }
stage_timer_end() { log "stage $1 finished in $(( $(date +%s) - _t0 )) s"; }

data_feats=$dumpdir/raw
all_sets="$train_set $unlabeled_set $(echo "$valid_set $test_sets" | tr ' ' '\n' | sort -u | tr '\n' ' ')"
all_sets=$(printf '%s\n' "$all_sets" | awk '{for (i = 1; i <= NF; i++) if (!seen[$i]++) print $i}' | tr '\n' ' ')
labeled_sets=$(printf '%s' "$all_sets" | tr ' ' '\n' | grep -vx "$unlabeled_set" | tr '\n' ' ')
token_dir=data/token_list/$token_type
bpemodel=$token_dir/bpe.model
token_list=$token_dir/tokens.txt
stats_dir=$expdir/asr_stats_$token_type

# ---- stage 1: data preparation --------------------------------------------------------------------
stage_1() {
  local sig
  sig="seed=$seed nj=$nj opts=$local_data_opts $(grep -v '^#' db.sh 2>/dev/null || true)"
  if stage_done data/.stage1.done "$sig"; then
    log "stage 1: data preparation already done ($sig)"
  else
    log "stage 1: data preparation: local/data.sh --seed $seed --nj $nj $local_data_opts"
    stage_timer_start
    rm -f data/.stage1.done
    # shellcheck disable=SC2086
    local/data.sh --seed "$seed" --nj "$nj" $local_data_opts
    mark_done data/.stage1.done "$sig"
    stage_timer_end 1
  fi
}

# ---- stage 2: format audio + validate --------------------------------------------------------------
stage_2() {
  local sig set
  sig="fs=$fs skip_bad=$skip_bad sets=$all_sets${speed_perturb_factors:+ sp=$speed_perturb_factors} $(marker_of data/.stage1.done)"
  if stage_done "$data_feats/org/.stage2.done" "$sig"; then
    log "stage 2: formatting already done"
  else
    for set in $all_sets; do
      need 2 "data/$set/wav.scp" "stage 1 makes it (--stage 1), or write the Kaldi data dir data/$set by hand \
(wav.scp, text, utt2spk: local/data.sh's contract, docs/porting.md)"
    done
    log "stage 2: format audio to $fs Hz mono and validate: $all_sets"
    stage_timer_start
    rm -f "$data_feats/org/.stage2.done"
    for set in $all_sets; do
      $python -m softpl.bin.format_data --data_dir "data/$set" --output_dir "$data_feats/org/$set" \
        --fs "$fs" --nj "$nj" --skip_bad "$skip_bad"
    done
    # shellcheck disable=SC2046  # one data dir per labeled set (set names are single words)
    $python -m softpl.bin.validate_data --data_dir "$data_feats/org/$unlabeled_set" --fs "$fs" \
      --labeled_dirs $(for s in $labeled_sets; do echo "$data_feats/org/$s"; done) --audio_check false
    if [ -n "$speed_perturb_factors" ]; then
      log "stage 2: speed perturbation of $train_set by $speed_perturb_factors -> $data_feats/org/${train_set}_sp"
      $python -m softpl.bin.perturb_speed --data_dir "$data_feats/org/$train_set" \
        --output_dir "$data_feats/org/${train_set}_sp" --factors "$speed_perturb_factors" --fs "$fs" --nj "$nj"
    fi
    mark_done "$data_feats/org/.stage2.done" "$sig"
    stage_timer_end 2
  fi
}

# ---- stage 3: length filter -----------------------------------------------------------------------
stage_3() {
  local sig set
  sig="min_dur=$min_dur max_dur=$max_dur $(marker_of "$data_feats/org/.stage2.done")"
  if stage_done "$data_feats/.stage3.done" "$sig"; then
    log "stage 3: length filter already done"
  else
    for set in $all_sets ${speed_perturb_factors:+${train_set}_sp}; do
      need 3 "$data_feats/org/$set/wav.scp" "stage 2 makes it from data/$set (--stage 2)"
    done
    log "stage 3: keep training utterances of ${min_dur}-${max_dur} s; evaluation sets are kept whole"
    stage_timer_start
    rm -f "$data_feats/.stage3.done"
    for set in $all_sets ${speed_perturb_factors:+${train_set}_sp}; do
      if [ "$set" = "$train_set" ] || [ "$set" = "${train_set}_sp" ] || [ "$set" = "$unlabeled_set" ]; then
        $python -m softpl.bin.filter_data --data_dir "$data_feats/org/$set" --output_dir "$data_feats/$set" \
          --min_dur "$min_dur" --max_dur "$max_dur"
      else
        $python -m softpl.bin.filter_data --data_dir "$data_feats/org/$set" --output_dir "$data_feats/$set"
      fi
    done
    mark_done "$data_feats/.stage3.done" "$sig"
    stage_timer_end 3
  fi
}

# The settings of stages 4-8 (training set, tokenizer, normalization, data options), made after stage 3 on every
# call; with --seed_model_dir the seed is imported here, for stages 4-6 (import_seed reads stage 3's text).
training_settings() {
  local seed_token_type seed_bpemodel
  [ "$stop_stage" -ge 4 ] || return 0  # a run of stages 1-3 alone reads none of it (nor an imported seed)
  # With speed perturbation the labeled training set from here on is its perturbed union (as in ESPnet's asr.sh).
  [ -n "$speed_perturb_factors" ] && train_set=${train_set}_sp

  if [ -n "$seed_model_dir" ]; then
    # An existing ESPnet model is the seed: its token list, tokenizer and normalization replace stages 4-5.
    seed_config=$seed_exp/train_seed.yaml
    token_list=$seed_exp/tokens.txt
    if run_stage 4 || run_stage 5 || run_stage 6; then
      log "stages 4-6: seed imported from $seed_model_dir -> $seed_exp"
      $python -m softpl.bin.import_seed --model_dir "$seed_model_dir" --text "$data_feats/$train_set/text" \
        --output_dir "$seed_exp"
      mark_done "$seed_exp/.stage6.done" "imported from $( [ -d "$seed_model_dir" ] && cd "$seed_model_dir" && pwd || echo "$seed_model_dir")"
    fi
    need 6 "$seed_exp/seed_facts" "stage 6 imports the seed and writes it (--stage 6)"
    seed_fact() { sed -n "s/^$1=//p" "$seed_exp/seed_facts"; }  # one key=value line that import_seed wrote
    seed_token_type=$(seed_fact token_type)
    seed_bpemodel=$(seed_fact bpemodel)
    seed_init_param=$(seed_fact init_param)
    espnet_token_opts=(--token_type "$seed_token_type" --token_list "$token_list")
    [ -n "$seed_bpemodel" ] && espnet_token_opts+=(--bpemodel "$seed_bpemodel")
    norm_opts=()  # the imported config carries its own normalization
    shape_opts=(--train_shape_file "$data_feats/$train_set/utt2num_samples"
                --valid_shape_file "$data_feats/$valid_set/utt2num_samples")
  else
    espnet_token_opts=(--token_type bpe --bpemodel "$bpemodel" --token_list "$token_list")
    norm_opts=(--normalize global_mvn --normalize_conf "stats_file=$stats_dir/train/feats_stats.npz")
    shape_opts=(--train_shape_file "$stats_dir/train/speech_shape" --train_shape_file "$stats_dir/train/text_shape.bpe"
                --valid_shape_file "$stats_dir/valid/speech_shape" --valid_shape_file "$stats_dir/valid/text_shape.bpe")
    seed_init_param=""  # set at stage 8 when needed: the seed's decoded checkpoint
  fi
  # Options every ESPnet call shares: data, tokenizer and normalization statistics.
  asr_data_opts=(
    --use_preprocessor true "${espnet_token_opts[@]}" --frontend_conf "fs=$fs"
    --train_data_path_and_name_and_type "$data_feats/$train_set/wav.scp,speech,sound"
    --train_data_path_and_name_and_type "$data_feats/$train_set/text,text,text"
    --valid_data_path_and_name_and_type "$data_feats/$valid_set/wav.scp,speech,sound"
    --valid_data_path_and_name_and_type "$data_feats/$valid_set/text,text,text"
  )
}

# ---- stage 4: token list --------------------------------------------------------------------------
stage_4() {
  local sig set
  [ -z "$seed_model_dir" ] || return 0  # --seed_model_dir: the imported seed's token list (training_settings)
  sig="token_type=$token_type nbpe=$nbpe $(marker_of "$data_feats/.stage3.done")"
  if stage_done "$token_dir/.stage4.done" "$sig"; then
    log "stage 4: token list already done ($token_list)"
  else
    need 4 "$data_feats/$train_set/text" "stage 3 makes it (--stage 3)"
    log "stage 4: $token_type token list from $data_feats/$train_set/text (labeled text only)"
    stage_timer_start
    rm -f "$token_dir/.stage4.done"
    $python -m softpl.bin.make_token_list --text "$data_feats/$train_set/text" \
      --token_type "$token_type" --nbpe "$nbpe" --output_dir "$token_dir"
    for set in $labeled_sets; do
      $python -m softpl.bin.validate_data --data_dir "$data_feats/$set" --fs "$fs" \
        --token_list "$token_list" --audio_check false
    done
    mark_done "$token_dir/.stage4.done" "$sig"
    stage_timer_end 4
  fi
}

# ---- stage 5: ESPnet collect-stats ------------------------------------------------------------------
stage_5() {
  local sig _nj vocab_size dset
  [ -z "$seed_model_dir" ] || return 0  # --seed_model_dir: the imported config's normalization (training_settings)
  sig="config=$(sha1sum < "$seed_config" | cut -c1-12) nj=$nj $(marker_of "$token_dir/.stage4.done")"
  if stage_done "$stats_dir/.stage5.done" "$sig"; then
    log "stage 5: collect-stats already done ($stats_dir)"
  else
    need 5 "$token_list" "stage 4 makes it (--stage 4)"
    need 5 "$data_feats/$valid_set/wav.scp" "stage 3 makes it (--stage 3)"
    log "stage 5: ESPnet collect-stats ($nj jobs) -> $stats_dir"
    stage_timer_start
    rm -rf "$stats_dir"
    mkdir -p "$stats_dir/logdir"
    # ESPnet reads the utterance keys of each job from its "shape file": split wav.scp into _nj parts.
    _nj=$(( nj < $(wc -l < "$data_feats/$valid_set/wav.scp") ? nj : $(wc -l < "$data_feats/$valid_set/wav.scp") ))
    awk -v n="$_nj" -v p="$stats_dir/logdir/train.keys" '{print > (p "." ((NR - 1) % n + 1))}' "$data_feats/$train_set/wav.scp"
    awk -v n="$_nj" -v p="$stats_dir/logdir/valid.keys" '{print > (p "." ((NR - 1) % n + 1))}' "$data_feats/$valid_set/wav.scp"
    run_jobs cpu "$_nj" "$stats_dir/logdir/stats.JOB.log" \
      $python -m softpl.bin.asr_train --collect_stats true --config "$seed_config" "${asr_data_opts[@]}" \
        --train_shape_file "$stats_dir/logdir/train.keys.JOB" --valid_shape_file "$stats_dir/logdir/valid.keys.JOB" \
        --output_dir "$stats_dir/logdir/stats.JOB" --ngpu 0 --num_workers 0
    # shellcheck disable=SC2046  # one --input_dir per job
    $python -m espnet2.bin.aggregate_stats_dirs \
      $(for n in $(seq "$_nj"); do echo --input_dir "$stats_dir/logdir/stats.$n"; done) --output_dir "$stats_dir"
    # ESPnet's convention: the text shape file carries the vocabulary size as its second dimension.
    vocab_size=$(wc -l < "$token_list")
    for dset in train valid; do
      awk -v v="$vocab_size" '{print $1 " " $2 "," v}' "$stats_dir/$dset/text_shape" > "$stats_dir/$dset/text_shape.bpe"
    done
    mark_done "$stats_dir/.stage5.done" "$sig"
    stage_timer_end 5
  fi
}

# ---- stage 6: seed training (ESPnet's ASR task and trainer; softpl.bin.asr_train registers softpl's model and
# SpecAugment classes, which a seed config may name: egs/librispeech_100's model cpl, specaug scheduled) -------
stage_6() {
  local sig
  [ -z "$seed_model_dir" ] || return 0  # --seed_model_dir: training_settings imports the seed instead
  sig="config=$(sha1sum < "$seed_config" | cut -c1-12) seed=$seed ngpu=$ngpu args=$seed_args $(marker_of "$stats_dir/.stage5.done")"
  if stage_done "$seed_exp/.stage6.done" "$sig"; then
    log "stage 6: seed model already trained ($seed_exp)"
  else
    need 6 "$stats_dir/train/feats_stats.npz" "stage 5 makes it (--stage 5)"
    log "stage 6: seed training with ESPnet's asr_train (softpl.bin.asr_train) -> $seed_exp (log: $seed_exp/train.log)"
    stage_timer_start
    rm -f "$seed_exp/.stage6.done"
    claim_exp_dir "$seed_exp" "$sig"
    write_exp_run_sh "$seed_exp" --stage 6 --stop_stage 7
    # --resume true: an interrupted run continues from its last checkpoint.
    # shellcheck disable=SC2086
    train "$seed_exp/train.log" softpl.bin.asr_train --config "$seed_config" "${asr_data_opts[@]}" "${norm_opts[@]}" \
      "${shape_opts[@]}" --seed "$seed" --resume true --output_dir "$seed_exp" $seed_args \
      || { echo "seed training failed; last lines of $seed_exp/train.log:" >&2; tail -30 "$seed_exp/train.log" >&2; exit 1; }
    mark_done "$seed_exp/.stage6.done" "$sig"
    stage_timer_end 6
  fi
}

# The checkpoint of a run that stages 7, 9 and 11 use: --decode_model, or the decoding rule's default.
decoded_model() {  # decoded_model <exp_dir>
  if [ -z "$decode_model" ]; then
    $python -m softpl.bin.branch_seed --decoded_model "$1"
  elif [ -f "$1/$decode_model" ]; then
    echo "$1/$decode_model"
  else
    echo "run.sh: $1/$decode_model not found (--decode_model $decode_model)" >&2; return 1
  fi
}

# Decode one model on every test set (batched greedy CTC, --inference_nj jobs; optionally stock ESPnet
# inference too) and score it, into <exp>/decode_greedy_<model file stem>/ (as asr.sh names decode folders).
decode_and_score() {  # decode_and_score <exp_dir>
  local exp=$1 model dec set n _n _nj device_opts
  model=$(decoded_model "$exp") || exit 1
  dec=$exp/decode_greedy_$(basename "$model" .pth)
  # Done already with this model file (path, size, time), these sets and options: skip, as the other stages do.
  local sig
  sig="model=$model $(stat -c '%s %Y' "$(readlink -f "$model")") sets=$test_sets batch=$decode_batch_size"
  sig+=" espnet=$espnet_inference $(marker_of "$data_feats/.stage3.done")"
  if stage_done "$dec/.done" "$sig"; then
    log "$exp: already decoded and scored with $(basename "$model") ($dec)"
    return 0
  fi
  rm -rf "$dec"
  log "decoding $model with $inference_nj job(s) per set on $([ "$gpu_inference" = true ] && echo GPU || echo CPU)"
  device_opts=(--ngpu 0)
  [ "$gpu_inference" = true ] && device_opts=(--ngpu 1)
  # --inference_nj jobs, each decoding its share of every set (one model load per job), then merged in key order.
  _nj=$inference_nj
  for set in $test_sets; do
    _n=$(wc -l < "$data_feats/$set/wav.scp")
    [ "$_n" -ge "$_nj" ] || _nj=$_n  # at most one job per utterance of the smallest set
  done
  mkdir -p "$dec/logdir"
  for set in $test_sets; do
    awk -v n="$_nj" -v p="$dec/logdir/keys.$set" '{print $1 > (p "." ((NR - 1) % n + 1) ".scp")}' \
      "$data_feats/$set/wav.scp"
  done
  # shellcheck disable=SC2046  # one --data_dir and one --key_file per set (set names are single words)
  run_jobs "$decode_on" "$_nj" "$dec/logdir/decode.JOB.log" $python -m softpl.bin.decode --asr_train_config "$exp/config.yaml" \
    --asr_model_file "$model" --data_dir $(for set in $test_sets; do echo "$data_feats/$set"; done) \
    --key_file $(for set in $test_sets; do echo "$dec/logdir/keys.$set.JOB.scp"; done) \
    --output_dir "$dec/logdir/output.JOB" --batch_size "$decode_batch_size" "${device_opts[@]}" \
    || { echo "run.sh: decoding with $model failed (logs: $dec/logdir/)" >&2; exit 1; }
  log "$exp: decoded; scoring $test_sets"
  for set in $test_sets; do
    mkdir -p "$dec/$set"
    for f in text token token_int; do
      for n in $(seq "$_nj"); do cat "$dec/logdir/output.$n/$set/$f"; done | LC_ALL=C sort -k1,1 > "$dec/$set/$f"
    done
    $python -m softpl.bin.score --ref "$data_feats/$set/text" --hyp "$dec/$set/text" \
      --utt2spk "$data_feats/$set/utt2spk" --output_dir "$dec/$set" --asr_model_file "$model"
  done
  if [ "$espnet_inference" = true ]; then
    for set in $test_sets; do
      $python -m softpl.bin.asr_inference --asr_train_config "$exp/config.yaml" --asr_model_file "$model" \
        --data_path_and_name_and_type "$data_feats/$set/wav.scp,speech,sound" --ctc_weight 1.0 --beam_size 1 \
        --batch_size 1 "${device_opts[@]}" --output_dir "$exp/decode_espnet/$set" > "$exp/decode_espnet.$set.log" 2>&1
      $python -m softpl.bin.score --ref "$data_feats/$set/text" --hyp "$exp/decode_espnet/$set/1best_recog/text" \
        --utt2spk "$data_feats/$set/utt2spk" --output_dir "$exp/decode_espnet/$set" --asr_model_file "$model"
    done
  fi
  mark_done "$dec/.done" "$sig"
}

# What the report (stages 7 and 10) records beside the scores: the data (each data dir's fingerprint) and the
# training threads; made before stage 7 on every call.
report_settings() {
  local set
  pl_threads=${OMP_NUM_THREADS:-$(( $(nproc) / pl_nj > 0 ? $(nproc) / pl_nj : 1 ))}  # per stage-8 run
  report_opts=(--threads "${OMP_NUM_THREADS:-$(nproc)} for the seed, $pl_threads per stage-8 run ($pl_nj at a time)")
  for set in $all_sets; do
    [ "$set" = "${train_set%_sp}" ] && set=$train_set  # the labeled set trained on (speed-perturbed or not)
    [ ! -f "$data_feats/$set/wav.scp" ] || report_opts+=(--data_dirs "$data_feats/$set")
  done
}

# ---- stage 7: decode + score the seed -------------------------------------------------------------
stage_7() {
  need 7 "$seed_exp/config.yaml" "stage 6 trains the seed (--stage 6), or --seed_model_dir imports one"
  log "stage 7: greedy CTC decoding and scoring of $seed_exp on: $test_sets"
  stage_timer_start
  decode_and_score "$seed_exp"
  # shellcheck disable=SC2086  # --sets takes one argument per test set
  $python -m softpl.bin.report --exp_dir "$expdir" --out "$expdir/RESULTS.md" --sets $test_sets \
    --models "$(basename "$seed_exp")" --title "RESULTS: $(basename "$PWD")" --command "$invocation" "${report_opts[@]}"
  stage_timer_end 7
}

# Continuation runs of stage 8: the supervised baseline first, then one per PL variant.
pl_config_path() {  # a --pl_configs entry: a YAML path, or a name under the recipe's or softpl's conf/pl/
  if [ -f "$1" ]; then echo "$1"
  elif [ -f "conf/pl/$1.yaml" ]; then echo "conf/pl/$1.yaml"
  elif [ -f "$softpl_root/conf/pl/$1.yaml" ]; then echo "$softpl_root/conf/pl/$1.yaml"
  else echo "run.sh: PL config '$1' not found (conf/pl/$1.yaml, $softpl_root/conf/pl/$1.yaml)" >&2; return 1
  fi
}
# The runs, with their variant and seed, made after stage 7 on every call (a --pl_configs entry not found stops
# run.sh there).
continuation_settings() {
  local continuation_names name run run_seed
  continuation_names=""
  [ "$supervised_baseline" = true ] && continuation_names="asr_supervised_cont"
  declare -gA pl_yaml_of=() variant_of=() seed_of=()
  for name in $pl_configs; do
    run=pl_$(basename "$name" .yaml)
    pl_yaml_of[$run]=$(pl_config_path "$name") || exit 1
    continuation_names="$continuation_names $run"
  done
  continuation_runs=""  # seed-major: every variant's first seed before any second seed
  for run_seed in ${pl_seeds:-$seed}; do
    for name in $continuation_names; do
      run=$name; [ -n "$pl_seeds" ] && run=${name}_seed$run_seed
      variant_of[$run]=$name; seed_of[$run]=$run_seed
      continuation_runs="$continuation_runs $run"
    done
  done
}

# ---- stage 8: continuous pseudo-labeling -----------------------------------------------------------
# Every run branches from the seed's last training state (model, optimizer, scheduler: ESPnet's checkpoint.pth),
# as slimIPL is one run whose pseudo-labeling starts after M labeled updates; a seed imported without one
# (--seed_model_dir) starts from its weights with a fresh optimizer.
# shellcheck disable=SC2317  # called through run_at_once
train_continuation() {  # train_continuation <run>: one run of stage 8 (skipped when done with the same options)
  local run=$1 exp=$expdir/$1 new_config=$expdir/.$1.train.yaml trainer extra sig t0 start_opts after=$branch_after
  if [ "${variant_of[$run]}" = asr_supervised_cont ]; then
    $python -m softpl.bin.merge_configs "$seed_config" "$pl_train_config" --supervised true --after_epoch "$after" \
      --out "$new_config" || return 1
    trainer=softpl.bin.asr_train; extra=()
  else
    $python -m softpl.bin.merge_configs "$seed_config" "$pl_train_config" "${pl_yaml_of[${variant_of[$run]}]}" \
      --after_epoch "$after" --out "$new_config" || return 1
    trainer=softpl.bin.cpl_train
    extra=(--unlabeled_data_path_and_name_and_type "$data_feats/$unlabeled_set/wav.scp,speech,sound"
           --unlabeled_shape_file "$data_feats/$unlabeled_set/utt2num_samples")
  fi
  sig="config=$(sha1sum < "$new_config" | cut -c1-12) seed=${seed_of[$run]} ngpu=$ngpu args=$pl_args $(marker_of "$seed_exp/.stage6.done")"
  if stage_done "$exp/.stage8.done" "$sig"; then
    log "stage 8: $run already trained"; rm -f "$new_config"; return 0
  fi
  claim_exp_dir "$exp" "$sig"
  mv "$new_config" "$exp/train.yaml"
  local again=(--pl_configs "${pl_yaml_of[${variant_of[$run]}]:-}" --supervised_baseline false)
  [ "${variant_of[$run]}" = asr_supervised_cont ] && again=(--pl_configs "" --supervised_baseline true)
  [ -n "$pl_seeds" ] && again+=(--pl_seeds "${seed_of[$run]}")
  write_exp_run_sh "$exp" --stage 8 --stop_stage 9 "${again[@]}"
  if [ "$after" -gt 0 ]; then
    # A run interrupted earlier resumes from its own checkpoint; a new one starts from the seed's state.
    if [ ! -f "$exp/checkpoint.pth" ]; then
      $python -m softpl.bin.branch_seed --seed_exp "$seed_exp" --config "$exp/train.yaml" --output_dir "$exp" || return 1
    fi
    start_opts=()
  else
    [ -n "$seed_init_param" ] || seed_init_param=$($python -m softpl.bin.branch_seed --decoded_model "$seed_exp") \
      || return 1
    start_opts=(--init_param "$seed_init_param")
  fi
  log "stage 8: $run with $trainer from $seed_exp (log: $exp/train.log)"
  t0=$(date +%s)
  rm -f "$exp/.stage8.done"
  # shellcheck disable=SC2086
  train "$exp/train.log" "$trainer" --config "$exp/train.yaml" "${asr_data_opts[@]}" "${extra[@]}" "${norm_opts[@]}" \
    "${shape_opts[@]}" "${start_opts[@]}" --seed "${seed_of[$run]}" --resume true --output_dir "$exp" \
    $pl_args || { echo "$run failed; last lines of $exp/train.log:" >&2; tail -30 "$exp/train.log" >&2; return 1; }
  echo $(( $(date +%s) - t0 )) > "$exp/train_seconds"  # wall time of the call that finished it (stage 10 reports it)
  mark_done "$exp/.stage8.done" "$sig"
  log "stage 8 ($run) finished in $(cat "$exp/train_seconds") s"
}

# run_at_once <function> <run>...: "<function> <run>" for each run, --pl_nj at a time in background jobs, the
# cores shared out between them: on CPU for training and decoding, on GPUs for their host-side work (batch
# assembly, pseudo-label packing, process start-up), which contends when each run takes every core.
run_at_once() {
  local fn=$1 run threads running=0 failed=0
  shift
  if [ "$pl_nj" -eq 1 ]; then
    for run in "$@"; do "$fn" "$run" || return 1; done
    return 0
  fi
  threads=$pl_threads
  for run in "$@"; do
    if [ "$running" -ge "$pl_nj" ]; then wait -n || failed=1; running=$((running - 1)); fi
    (export OMP_NUM_THREADS=$threads; "$fn" "$run") &
    running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
  [ "$failed" -eq 0 ]
}

stage_8() {
  need 8 "$seed_exp/config.yaml" "stage 6 trains the seed (--stage 6), or --seed_model_dir imports one"
  need 8 "$data_feats/$unlabeled_set/wav.scp" "stage 3 makes it (--stage 3)"
  # The seed epoch every continuation goes on from (0: no training state to branch from), read once.
  branch_after=0
  if [ -f "$seed_exp/checkpoint.pth" ]; then
    branch_after=$($python -m softpl.bin.branch_seed --seed_exp "$seed_exp" --print_epoch true) || exit 1
  fi
  # shellcheck disable=SC2086  # one argument per run (run names are single words)
  run_at_once train_continuation $continuation_runs || { echo "run.sh: stage 8: a run failed (see above)" >&2; exit 1; }
}

# ---- stage 9: decode + score the continuation runs --------------------------------------------------
# shellcheck disable=SC2317  # called through run_at_once
decode_continuation() {  # decode_continuation <run>: stage 9 for one run
  need 9 "$expdir/$1/config.yaml" "stage 8 trains it (--stage 8)"
  log "stage 9: greedy CTC decoding and scoring of $expdir/$1 on: $test_sets"
  stage_timer_start
  decode_and_score "$expdir/$1"
  stage_timer_end "9 ($1)"
}

stage_9() {
  # shellcheck disable=SC2086  # one argument per run (run names are single words)
  run_at_once decode_continuation $continuation_runs || { echo "run.sh: stage 9: decoding a run failed (see above)" >&2; exit 1; }
}

# ---- stage 10: report -------------------------------------------------------------------------------
stage_10() {
  local plot_opts
  log "stage 10: $expdir/RESULTS.md and curves in $expdir/plots"
  plot_opts=()
  [ -z "$plot_pl_configs" ] || mapfile -t plot_opts < <(echo --plot_variants; for name in $plot_pl_configs; do echo "pl_$(basename "$name" .yaml)"; done)
  # The curves start at the seed's last epoch, where the continuation runs branched from it.
  [ -f "$seed_exp/checkpoint.pth" ] && plot_opts+=(--branch_from "$(basename "$seed_exp")")
  # shellcheck disable=SC2086
  $python -m softpl.bin.report --exp_dir "$expdir" --out "$expdir/RESULTS.md" --sets $test_sets \
    --models "$(basename "$seed_exp")" $continuation_runs --plots "$expdir/plots" "${plot_opts[@]}" --title "RESULTS: $(basename "$PWD")" \
    --command "$invocation" "${report_opts[@]}"
}
# After stage 7 or 10 (before 11): the results table on the terminal: no need to look for it.
show_results() {
  if run_stage 10 || run_stage 7; then
    echo; awk '/^## /{show = ($0 ~ /^## (WER|Seed study)/)} show' "$expdir/RESULTS.md"
    echo "(the whole report: $expdir/RESULTS.md)"
  fi
}
# ---- stage 11: export for stock ESPnet and pack --------------------------------------------------------
stage_11() {
  local run exp model stem pack_opts results
  for run in ${export_models:-$(basename "$seed_exp") $continuation_runs}; do
    exp=$expdir/$run
    [ -f "$exp/config.yaml" ] || { echo "run.sh: stage 11: $exp/config.yaml not found: train $run first" >&2; exit 1; }
    model=$(decoded_model "$exp") || exit 1
    stem=$(basename "$model" .pth)
    log "stage 11: $exp exported for stock ESPnet ($exp/export/config.yaml), packed into $exp/${run}_$stem.zip"
    pack_opts=()
    # The results packed with the model: softpl's greedy decoding, and stock ESPnet's search where it was run.
    for results in "$exp/decode_greedy_$stem/RESULTS.md" "$exp/decode_espnet/RESULTS.md"; do
      [ ! -f "$results" ] || pack_opts+=(--option "$results")
    done
    $python -m softpl.bin.export_model --exp_dir "$exp" --model_file "$model" --output_dir "$exp/export" \
      --outpath "$exp/${run}_$stem.zip" "${pack_opts[@]}"
  done
}
# ---- stage 12: upload to Hugging Face -----------------------------------------------------------------
stage_12() {
  local upload_runs run exp model packed train_opts
  if [ -z "$hf_repo" ]; then
    log "stage 12: skipped: no --hf_repo (the Hugging Face repository <user>/<name> to upload to)"
  else
    read -r -a upload_runs <<< "$export_models"
    [ "${#upload_runs[@]}" -eq 1 ] || { echo "run.sh: stage 12 uploads one model to --hf_repo $hf_repo:" \
      "--export_models must name exactly one run, got '${export_models}'" >&2; exit 1; }
    run=${upload_runs[0]}
    exp=$expdir/$run
    [ -f "$exp/config.yaml" ] || { echo "run.sh: stage 12: $exp/config.yaml not found: train $run first" >&2; exit 1; }
    model=$(decoded_model "$exp") || exit 1
    packed=$exp/${run}_$(basename "$model" .pth).zip
    [ -f "$packed" ] || { echo "run.sh: stage 12: $packed not found: pack it first" \
      "(--stage 11 --stop_stage 12 --export_models $run --hf_repo $hf_repo)" >&2; exit 1; }
    # The model card shows the call that trained the run: its engine_args (write_exp_run_sh).
    train_opts=$(cat "$exp/engine_args" 2>/dev/null || true)
    log "stage 12: uploading $packed to https://huggingface.co/$hf_repo (folder $exp/hf_upload)"
    $python -m softpl.bin.upload_model --packed "$packed" --hf_repo "$hf_repo" --output_dir "$exp/hf_upload" \
      --recipe "$(basename "$PWD")" ${train_opts:+--recipe_command "cd egs/$(basename "$PWD") && ./run.sh $train_opts"}
  fi
}

# ---- run the stages ---------------------------------------------------------------------------------
# The stages in order, each when in --stage..--stop_stage (run_stage), and between them the settings later stages
# read. `if`, not `run_stage N && stage_N`: a function called in a condition runs without set -e.
if run_stage 1; then stage_1; fi
if run_stage 2; then stage_2; fi
if run_stage 3; then stage_3; fi
training_settings
if run_stage 4; then stage_4; fi
if run_stage 5; then stage_5; fi
if run_stage 6; then stage_6; fi
report_settings
if run_stage 7; then stage_7; fi
continuation_settings
if run_stage 8; then stage_8; fi
if run_stage 9; then stage_9; fi
if run_stage 10; then stage_10; fi
show_results
if run_stage 11; then stage_11; fi
if run_stage 12; then stage_12; fi
log "done: stages ${stage}-${stop_stage}"
exit 0
}
