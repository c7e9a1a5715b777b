#!/usr/bin/env bash
# Create or refresh softpl's environment; called by the stage engine (run.sh) for its recipe and by `make`.
#   * system tools: those each recipe lists in egs/<recipe>/local/system_tools (one home per recipe), plus
#     --tools. When one is missing it installs it with apt-get, saying what it installs, where it can without
#     asking (as root, or with sudo that needs no password); elsewhere, or with --install_system_packages false,
#     it stops with the exact apt-get command to run (--install_system_packages true: through sudo, asking).
#   * .venv at the repository root from a Python >= 3.12 (PATH first, then pyenv's installs),
#     with softpl installed editable plus its test extras (pinned set in setup.py); --venv false skips it.
# Idempotent: when nothing changed (setup.py unchanged, tools present) a second call takes about a second.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv_dir="$root/.venv"

recipes=all                    # recipe folders whose local/system_tools are checked: "all" (every egs/*), or none ("")
tools=""                       # more system tools to check, e.g. "shellcheck" (make lint)
install_system_packages=auto   # auto: install missing system tools with apt-get where no password is needed (root,
                               # sudo -n), else stop and print the command; true: install (sudo may ask); false: stop
venv=true                      # false: system tools only (no .venv)
help_message="Usage: utils/setup_env.sh [--recipes all|\"DIR ...\"] [--tools \"TOOL ...\"] [--install_system_packages auto|true|false] [--venv true|false]
  --recipes                  recipe folders whose local/system_tools are checked (default: all, every egs/*)
  --tools                    more system tools to check (known: espeak-ng flite fortunes sclite shellcheck)
  --install_system_packages  auto (default): install what is missing with apt-get when that needs no password
                             (root, or sudo -n), else stop and print the apt-get command to run;
                             true: install (as root, else through sudo, which may ask); false: stop and print
  --venv                     false: check the system tools only, leave .venv alone (default: true)"
. "$root/utils/parse_options.sh"
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }
case "$install_system_packages" in auto|true|false) ;; *) echo "$0: --install_system_packages must be auto, true or false" >&2; exit 1 ;; esac
case "$venv" in true|false) ;; *) echo "$0: --venv must be true or false" >&2; exit 1 ;; esac

log() { echo "[setup_env] $*" >&2; }

# ---- system tools ---------------------------------------------------------------------------------
# tool -> the Debian packages that provide it
declare -A packages_of=([espeak-ng]=espeak-ng [flite]=flite [fortunes]="fortunes fortunes-min" [sclite]=sctk
                        [shellcheck]=shellcheck)
fortune_dir=/usr/share/games/fortunes  # softpl.bin.make_synth_corpus --fortune_dir
have_tool() {
  case "$1" in
    fortunes) [ -f "$fortune_dir/fortunes" ] && [ -f "$fortune_dir/art" ] ;;  # fortunes-min's file, fortunes' files
    sclite) command -v sclite >/dev/null || [ -x /usr/lib/sctk/bin/sclite ] || command -v sctk >/dev/null ;;
    *) command -v "$1" >/dev/null ;;
  esac
}

declare -A needed_by=()  # tool -> who needs it
wanted=()                # tools in first-mention order
need_tool() {  # need_tool <tool> <who>
  [ -n "${packages_of[$1]:-}" ] || { log "$2: unknown system tool '$1' (known: ${!packages_of[*]})"; exit 1; }
  [ -n "${needed_by[$1]:-}" ] || wanted+=("$1")
  needed_by[$1]="${needed_by[$1]:+${needed_by[$1]}, }$2"
}
if [ "$recipes" = all ]; then
  recipes=""
  for dir in "$root"/egs/*/; do [ ! -f "$dir/local/system_tools" ] || recipes+=" ${dir%/}"; done
fi
for dir in $recipes; do
  [ -d "$dir" ] || { log "--recipes: $dir is not a folder"; exit 1; }
  name=$(cd "$dir" && pwd); name=${name#"$root/"}
  if [ ! -f "$dir/local/system_tools" ]; then  # a recipe made before recipes declared their tools
    log "$name has no local/system_tools (the system tools its stages need): checking the engine's own (sclite)"
    need_tool sclite "$name"; continue
  fi
  while read -r line || [ -n "$line" ]; do
    line=${line%%#*}
    for tool in $line; do need_tool "$tool" "$name"; done
  done < "$dir/local/system_tools"
done
for tool in $tools; do need_tool "$tool" "--tools"; done

missing_tools() {
  missing=() packages=()
  local tool
  for tool in "${wanted[@]}"; do
    if ! have_tool "$tool"; then
      missing+=("$tool")
      read -ra pkgs <<< "${packages_of[$tool]}"
      packages+=("${pkgs[@]}")
    fi
  done
}
missing_tools
if [ ${#missing[@]} -gt 0 ]; then
  as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo)
  if [ "$install_system_packages" = auto ]; then  # install only where nobody has to type a password
    install_system_packages=false
    if [ ${#as_root[@]} -eq 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; then
      install_system_packages=true
    fi
  fi
  if [ "$install_system_packages" = true ]; then
    command -v apt-get >/dev/null || { log "missing: ${missing[*]}; no apt-get here: install Debian's ${packages[*]} by hand"; exit 1; }
    [ ${#as_root[@]} -eq 0 ] || command -v sudo >/dev/null || { log "installing ${packages[*]} needs root (or sudo)"; exit 1; }
    log "installing the missing system tools ${missing[*]}: Debian packages ${packages[*]} (apt-get${as_root[*]:+ through sudo}; --install_system_packages false stops instead)"
    "${as_root[@]}" apt-get update -qq >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >&2
    missing_tools
    [ ${#missing[@]} -eq 0 ] || { log "still missing after apt-get install: ${missing[*]}"; exit 1; }
  else
    for tool in "${missing[@]}"; do log "missing system tool: $tool (Debian package ${packages_of[$tool]}; needed by ${needed_by[$tool]})"; done
    log "install them with:"
    sudo=${as_root[*]:+sudo }
    log "  ${sudo}apt-get update && ${sudo}apt-get install -y ${packages[*]}"
    log "or let this script run it, through sudo (--install_system_packages true; make: INSTALL_SYSTEM_PACKAGES=true):"
    log "  $0 --recipes \"\" --tools \"${missing[*]}\" --install_system_packages true"
    exit 1
  fi
fi
[ "$venv" = true ] || exit 0

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

stamp="$venv_dir/.softpl-installed"
want=$(sha1sum < "$root/setup.py" | cut -d' ' -f1)
if [ -x "$venv_dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$venv_dir/bin/python" ]; then
  py=$(find_python) || { log "no Python >= 3.12 found (ESPnet 202611 needs it); install one, e.g. 'pyenv install 3.12'"; exit 1; }
  log "creating $venv_dir with $py"
  "$py" -m venv "$venv_dir"
fi
log "installing softpl and its pinned dependencies into $venv_dir (first time: a few minutes, torch is large)"
"$venv_dir/bin/python" -m pip install -q --upgrade pip >&2
"$venv_dir/bin/python" -m pip install -q -e "${root}[test]" >&2
echo "$want" > "$stamp"
log "environment ready: $("$venv_dir/bin/python" --version), $("$venv_dir/bin/python" -c 'import espnet, torch; print("espnet", espnet.__version__, "torch", torch.__version__)' 2>/dev/null)"
