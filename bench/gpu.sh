#!/usr/bin/env bash
# bench/gpu.sh: softpl's GPU benchmark, one command, under 8 minutes on one H100/H200.
#
#   1. throughput (audio s per s) of stock ESPnet vs the plugin, labeled and unlabeled steps, bf16, for the
#      egs/synth_en conformer and a slimIPL-size 36-layer transformer (bench/gpu_throughput.py);
#   2. meanwhile, on the CPUs (niced): egs/synth_en stages 1-5 (corpus, features statistics), and after part 1,
#      on the GPU, a pseudo-labeling run of the 270 M model at a batch that fills the GPU, for the utilization of
#      the PL phase where the model, not the trainer's overhead, sets the pace (bench/gpu_pl_run.py), then the
#      tests that only run where a GPU exists (<out>/gpu_tests.log);
#   3. wall time of `cd egs/synth_en && ./run.sh --ngpu 1` stages 6-9, with GPU utilization sampled by
#      nvidia-smi every 0.5 s and each PL run's share of time spent labeling (train.log's pl_label_share);
#   4. bench/gpu_summary.py: <out>/gpu_results.json and <out>/gpu_results.md (the table for bench/RESULTS.md).
# With --librispeech_pilot true, after part 2's GPU work: egs/librispeech_100's seed config (stage 6) and, branched
# from it as stage 8 does, its pseudo-labeling config (train_pl.yaml + conf/pl/hard.yaml), each for --pilot_updates
# updates on noise at the recipe's batch per GPU of N GPUs for each N of --pilot_gpus (bench/gpu_pl_run.py
# --recipe_config): loss, memory, seconds per update, MFU, and the hours of the whole schedule on N GPUs
# (<out>/pilot_<seed|pl>_<N>gpu/; docs/porting.md, "GPU pilot").
#
# Usage: bench/gpu.sh [--out DIR] [--dry_run true] [--budget S] [--throughput false] [--pl_run false]
#                     [--gpu_tests false] [--recipe false] [--librispeech_pilot true] [--pilot_gpus "8 16"]
#                     [--pilot_updates N] [--pl_nj N] [--local_data_opts STR] [-- RUN.SH OPTIONS]
#   --out        results folder (default: $OUT when set, else bench/gpu_out)
#   --dry_run    true: a few CPU steps of part 1, of the PL run and (shrunk model) of the pilot, and the summary, no
#                recipe (what tests/ run)
#   --budget     seconds for the whole script (540); stages 6-9 are stopped when it runs out
#   --throughput false: skip part 1 (when its numbers are already recorded and the time is better spent on 3)
#   --pl_run     false: skip the 270 M pseudo-labeling run of part 2
#   --gpu_tests  false: skip the GPU tests of part 2
#   --recipe     false: skip egs/synth_en (stages 1-5 in part 2, and part 3)
#   --librispeech_pilot  true: the egs/librispeech_100 pilot above (default false; alone, with --throughput false
#                --pl_run false --gpu_tests false --recipe false, about 6 minutes on one H100/H200 for 8 and 16)
#   --pilot_gpus the GPU counts N whose batch per GPU the pilot runs ("8 16": 400 s and 200 s of audio per GPU)
#   --pilot_updates  updates of each pilot run (300; a multiple of 5, stage 8's 1 labeled + 4 unlabeled)
#   --pl_nj      stage-8 runs trained at once on the one GPU (4: all of egs/synth_en's; its models are too
#                small to fill an H100/H200 one at a time)
#   --local_data_opts  corpus options for stage 1 (e.g. smaller sets for a quick check; default: the full corpus)
#   -- ...       the rest goes to the stages 6-9 run.sh call (e.g. -- --stop_stage 8 --seed_args "--max_epoch 2")
#
# On a machine without ESPnet or the corpus tools (a bare GPU machine), prepare them where pip and apt work:
# bench/gpu_prepare.sh puts ESPnet's wheels in .whl/ and espeak-ng, flite, sclite and the fortunes in
# .devtools/; this script installs them into /tmp when it finds them (outside /tmp it writes only a .venv
# wrapper around python3 when the checkout has no .venv, and a /usr/share/games/fortunes link when that is absent).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/bench/gpu_out}
dry_run=false
budget=540  # seconds for the whole script: the recipe gets what the throughput part and stages 1-5 leave
throughput=true
pl_run=true
gpu_tests=true
recipe=true
librispeech_pilot=false
pilot_gpus="8 16"
pilot_updates=300
pl_nj=4
local_data_opts=""
recipe_args=()
t_start=$(date +%s)
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --dry_run) dry_run=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --throughput) throughput=$2; shift 2 ;;
    --pl_run) pl_run=$2; shift 2 ;;
    --gpu_tests) gpu_tests=$2; shift 2 ;;
    --recipe) recipe=$2; shift 2 ;;
    --librispeech_pilot) librispeech_pilot=$2; shift 2 ;;
    --pilot_gpus) pilot_gpus=$2; shift 2 ;;
    --pilot_updates) pilot_updates=$2; shift 2 ;;
    --pl_nj) pl_nj=$2; shift 2 ;;
    --local_data_opts) local_data_opts=$2; shift 2 ;;
    --) shift; recipe_args=("$@"); break ;;
    -h|--help) sed -n "2,42p" "$0"; exit 0 ;;
    *) echo "bench/gpu.sh: unknown option $1 (see --help)" >&2; exit 1 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
log() { echo "$(date '+%Y-%m-%d %H:%M:%S') [gpu.sh] $*"; }
phase() { echo "$1	$2	$(date +%s.%N)" >> "$out/phases.tsv"; }  # phase <name> <start|end>
: > "$out/phases.tsv"

# ---- environment: carried wheels and tools (bench/gpu_prepare.sh) ---------------------------------
python=$root/.venv/bin/python
[ -x "$python" ] || python=$(command -v python3)
if ! "$python" -c 'import espnet' 2>/dev/null && compgen -G "$root/.whl/*.whl" >/dev/null; then
  log "installing carried wheels into /tmp/softpl_site"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/softpl_site \
    "$root"/.whl/*.whl
  export PYTHONPATH=/tmp/softpl_site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -f "$root/.devtools/tools.tar.xz" ]; then
  log "unpacking carried corpus tools into /tmp/softpl_tools"
  mkdir -p /tmp/softpl_tools && tar xJf "$root/.devtools/tools.tar.xz" -C /tmp/softpl_tools --strip-components 1
  # The carried libraries are seen by these tools alone (wrappers), never by Python or CUDA.
  mkdir -p /tmp/softpl_tools/path
  for tool in /tmp/softpl_tools/bin/*; do
    printf '#!/bin/sh\nLD_LIBRARY_PATH=/tmp/softpl_tools/lib exec %s "$@"\n' "$tool" > "/tmp/softpl_tools/path/${tool##*/}"
    chmod +x "/tmp/softpl_tools/path/${tool##*/}"
  done
  export PATH=/tmp/softpl_tools/path:$PATH ESPEAK_DATA_PATH=/tmp/softpl_tools/share
  [ -e /usr/share/games/fortunes ] || { mkdir -p /usr/share/games && ln -s /tmp/softpl_tools/share/fortunes /usr/share/games/fortunes; }
fi
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ ! -x "$root/.venv/bin/python" ]; then
  # run.sh uses .venv (utils/setup_env.sh); on a machine whose python3 already holds torch, point it there.
  log "no .venv: run.sh will use $python (with PYTHONPATH=$PYTHONPATH)"
  mkdir -p "$root/.venv/bin"
  for name in python python3; do printf '#!/bin/sh\nexec %s "$@"\n' "$python" > "$root/.venv/bin/$name"; done
  chmod +x "$root/.venv/bin/python" "$root/.venv/bin/python3"
  sha1sum < "$root/setup.py" | cut -d' ' -f1 > "$root/.venv/.softpl-installed"
fi
python=$root/.venv/bin/python
"$python" -c 'import espnet, torch; print("espnet", espnet.__version__, "torch", torch.__version__,
  "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")' \
  | tee "$out/versions.txt"

sampler=""
if command -v nvidia-smi >/dev/null && [ "$dry_run" != true ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >> "$out/versions.txt"
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
    > "$out/gpu_util.csv" &
  sampler=$!
fi
trap '[ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true' EXIT

# ---- 2 (background, CPUs): corpus and statistics --------------------------------------------------
prep=""
if [ "$dry_run" != true ] && [ "$recipe" = true ]; then
  # Niced: the GPU work in the foreground gets the CPU time it needs to feed the GPU (kernel launches, loading).
  log "egs/synth_en stages 1-5 on the CPUs, niced, in the background ($out/prep.log)"
  (cd "$root/egs/synth_en" && phase prep start && timeout 300 nice -n 10 ./run.sh --stage 1 --stop_stage 5 --nj "$(nproc)" \
    ${local_data_opts:+--local_data_opts "$local_data_opts"} > "$out/prep.log" 2>&1; rc=$?; phase prep end; exit $rc) &
  prep=$!
  # A fresh machine builds matplotlib's font cache at its first import (tens of seconds, once per machine):
  # build it now, beside the corpus, so that the reports of stages 7 and 9 time the recipe and not the machine.
  "$python" -c 'import matplotlib.pyplot' > /dev/null 2>&1 &
fi

# ---- 1: throughput --------------------------------------------------------------------------------
phase throughput start
if [ "$throughput" = true ]; then
  if [ "$dry_run" = true ]; then
    throughput_args=(--device cpu --steps 1 --batch 2 --utt_seconds 1)
    configs=("$root/egs/synth_en/conf/train_seed.yaml")
  else
    throughput_args=(--batch 128 --steps 6)
    configs=("$root/egs/synth_en/conf/train_seed.yaml" "$root/bench/conf/transformer_270m.yaml")
  fi
  log "throughput: ${configs[*]}"
  timeout 200 "$python" "$root/bench/gpu_throughput.py" --config "${configs[@]}" "${throughput_args[@]}" \
    --out "$out/throughput.json" > "$out/throughput.log" 2>&1 || log "throughput ended with an error (see throughput.log)"
else
  log "throughput: skipped (--throughput $throughput)"
fi
phase throughput end

# ---- 2 (foreground, GPU, while the CPUs prepare the corpus): a 270 M pseudo-labeling run ------------
if [ "$pl_run" = true ]; then
  if [ "$dry_run" = true ]; then
    pl_run_args=(--config "$root/bench/conf/conformer_tiny.yaml" --batch 2 --utt_seconds 1 --updates 12
                 --num_workers 0 --log_interval 2 --diag_interval 2)
  else
    pl_run_args=()  # its defaults: bench/conf/transformer_270m.yaml, 64 x 15 s, 100 updates, bf16
  fi
  log "pseudo-labeling run ($out/pl_run/train.log)"
  phase pl_run start
  timeout 240 "$python" "$root/bench/gpu_pl_run.py" --output_dir "$out/pl_run" "${pl_run_args[@]}" \
    > "$out/pl_run.log" 2>&1 || log "pseudo-labeling run failed or timed out (see pl_run.log)"
  phase pl_run end
fi

# ---- 2 (foreground, GPU, while the CPUs prepare the corpus): the tests that need a GPU -------------
if [ "$gpu_tests" = true ] && [ "$dry_run" != true ]; then
  log "GPU tests ($out/gpu_tests.log)"
  phase gpu_tests start
  (cd "$root" && timeout 100 "$python" -m pytest -q -p no:cacheprovider tests/test_host_sync.py \
    tests/test_cpl_trainer.py::test_auto_labeling_precision_is_half_on_gpu_with_use_amp; \
    SOFTPL_TEST_NGPU=1 timeout 120 "$python" -m pytest -q -p no:cacheprovider tests/test_cpl_trainer.py \
      -k every_target) > "$out/gpu_tests.log" 2>&1 || log "GPU tests failed or timed out (see gpu_tests.log)"
  phase gpu_tests end
fi

# ---- the egs/librispeech_100 pilot (GPU): the seed config, then stage 8's PL config branched from it ----------
if [ "$librispeech_pilot" = true ]; then
  ls_conf=$root/egs/librispeech_100/conf
  if [ "$dry_run" = true ]; then  # a shrunk model, 1 s utterances, 16 / N of them per batch, 10 updates
    pilot_args=(--utt_seconds 1 --updates 10 --log_interval 5 --diag_interval 4 --num_workers 0 --override
                "{encoder_conf: {output_size: 64, attention_heads: 2, linear_units: 128, num_blocks: 2}}")
  else  # LibriSpeech train-clean-100's mean utterance is 12.7 s: 32 x 12.5 s = the 400 s per GPU of 8 GPUs
    pilot_args=(--utt_seconds 12.5 --updates "$pilot_updates" --log_interval 25 --diag_interval 20
                --time_limit 240)
  fi
  phase pilot start
  for n in $pilot_gpus; do
    batch=()
    [ "$dry_run" != true ] || batch=(--batch $(( (16 + n - 1) / n )))
    log "librispeech_100 pilot, batch per GPU of $n GPUs: seed ($out/pilot_seed_${n}gpu/train.log)"
    timeout 300 "$python" "$root/bench/gpu_pl_run.py" --output_dir "$out/pilot_seed_${n}gpu" \
      --recipe_config "$ls_conf/train_seed.yaml" --recipe_gpus "$n" --keep_checkpoint true \
      "${pilot_args[@]}" "${batch[@]}" > "$out/pilot_seed_${n}gpu.log" 2>&1 \
      || log "pilot seed run failed or timed out (see pilot_seed_${n}gpu.log)"
    if [ -f "$out/pilot_seed_${n}gpu/exp/checkpoint.pth" ]; then
      log "librispeech_100 pilot, batch per GPU of $n GPUs: PL, hard ($out/pilot_pl_${n}gpu/train.log)"
      timeout 300 "$python" "$root/bench/gpu_pl_run.py" --output_dir "$out/pilot_pl_${n}gpu" \
        --recipe_config "$ls_conf/train_seed.yaml" "$ls_conf/train_pl.yaml" "$root/conf/pl/hard.yaml" \
        --recipe_gpus "$n" --branch_from "$out/pilot_seed_${n}gpu/exp" "${pilot_args[@]}" "${batch[@]}" \
        > "$out/pilot_pl_${n}gpu.log" 2>&1 || log "pilot PL run failed or timed out (see pilot_pl_${n}gpu.log)"
      rm -f "$out/pilot_seed_${n}gpu/exp/checkpoint.pth"  # GBs at 270 M: not a result
    fi
  done
  phase pilot end
fi

# ---- 3: the recipe on the GPU, stages 6-9 ---------------------------------------------------------
if [ -n "$prep" ]; then
  if wait "$prep"; then
    recipe_timeout=$(( budget - ($(date +%s) - t_start) - 15 ))
    [ "$recipe_timeout" -ge 60 ] || recipe_timeout=60
    log "stages 6-9 with --ngpu 1 (limit ${recipe_timeout} s; $out/recipe.log)"
    phase recipe start
    (cd "$root/egs/synth_en" && timeout "$recipe_timeout" ./run.sh --stage 6 --stop_stage 9 --ngpu 1 --gpu_inference true \
      --pl_nj "$pl_nj" "${recipe_args[@]}" \
      > "$out/recipe.log" 2>&1) || log "stages 6-9 did not finish (see recipe.log)"
    phase recipe end
    for f in "$root"/egs/synth_en/exp/*/train.log; do
      cp "$f" "$out/train_$(basename "$(dirname "$f")").log"
    done
    for f in "$root"/egs/synth_en/exp/*/decode_*/logdir/decode.1.log; do  # where decoding's time goes
      [ -f "$f" ] || continue
      run=${f#"$root"/egs/synth_en/exp/}
      cp "$f" "$out/decode_${run%%/*}.log"
    done
  else
    log "stages 1-5 failed (see prep.log): no recipe timing"
  fi
fi

# ---- 4: summary -----------------------------------------------------------------------------------
[ -z "$sampler" ] || { kill "$sampler" 2>/dev/null || true; sampler=""; }
"$python" "$root/bench/gpu_summary.py" --output_dir "$out"
log "results: $out/gpu_results.json, $out/gpu_results.md"
