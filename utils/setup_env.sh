#!/usr/bin/env bash
# Create or refresh softpl's environment; sourced by run.sh and called by `make test`.
#   * .venv at the repository root from a Python >= 3.12 (PATH first, then pyenv's installs),
#     with softpl installed editable plus its test extras (pinned set in setup.py);
#   * system tools the recipes need: espeak-ng, flite, fortunes (corpus), sclite (Debian's sctk).
#     As root they are installed with apt-get; otherwise it stops with the exact command to run.
# Idempotent: when nothing changed (setup.py unchanged, tools present) a second call takes about a second.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"

log() { echo "[setup_env] $*" >&2; }

# ---- system tools ---------------------------------------------------------------------------------
declare -A pkg_of=([espeak-ng]=espeak-ng [flite]=flite [sclite]=sctk)
missing=()
for tool in espeak-ng flite sclite; do
  if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/lib/sctk/bin/$tool" ]; then
    missing+=("${pkg_of[$tool]}")
  fi
done
ls /usr/share/games/fortunes/fortunes >/dev/null 2>&1 || missing+=(fortunes fortunes-min)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing system packages: ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    log "missing system packages: ${missing[*]}"
    log "run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

# ---- Python >= 3.12 -------------------------------------------------------------------------------
find_python() {
  local cand
  for cand in python3.13 python3.12 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
    [ -x "$cand" ] && { echo "$cand"; return 0; }
  done
  return 1
}

stamp="$venv/.softpl-installed"
want=$(cat "$root/setup.py" | sha1sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  py=$(find_python) || { log "no Python >= 3.12 found (ESPnet 202611 needs it); install one, e.g. 'pyenv install 3.12'"; exit 1; }
  log "creating $venv with $py"
  "$py" -m venv "$venv"
fi
log "installing softpl and its pinned dependencies into $venv (first time: a few minutes, torch is large)"
"$venv/bin/python" -m pip install -q --upgrade pip >&2
"$venv/bin/python" -m pip install -q -e "$root[test]" >&2
echo "$want" > "$stamp"
log "environment ready: $("$venv/bin/python" --version), $("$venv/bin/python" -c 'import espnet, torch; print("espnet", espnet.__version__, "torch", torch.__version__)' 2>/dev/null)"
