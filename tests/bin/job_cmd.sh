#!/usr/bin/env bash
# A stand-in for Kaldi's run.pl in tests: "job_cmd.sh [--gpu N] JOB=1:N <log with JOB> <command with JOB...>"
# runs the N jobs one after another on this machine, each logged to its file (with a first line naming this
# script, which the tests look for), and fails when a job fails, as run.pl does.
set -euo pipefail
[ "${1:-}" = --gpu ] && shift 2
range=${1#JOB=}; log=$2; shift 2
status=0
for ((n = ${range%:*}; n <= ${range#*:}; n++)); do
  job_log=${log//JOB/$n}
  echo "# job_cmd.sh: job $n" > "$job_log"
  "${@//JOB/$n}" >> "$job_log" 2>&1 || status=1
done
exit "$status"
