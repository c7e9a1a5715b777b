#!/usr/bin/env bash
# Kaldi/ESPnet-style option parsing, sourced by scripts after they define their defaults:
#   --name value   sets the already-defined shell variable `name` (dashes in the name map to underscores);
#   --help         prints the output of the function `usage` when the script defines one (so the values shown
#                  are those set so far, a recipe's overrides included), else "$help_message", and exits 0.
# Unknown options are an error naming the option, so a typo never passes silently.
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      if declare -F usage >/dev/null; then usage; else printf '%s\n' "${help_message:-No help available.}"; fi
      exit 0 ;;
    --*=*)
      _name=${1%%=*}; _value=${1#*=}; shift; set -- "$_name" "$_value" "$@" ;;
    --*)
      _name=${1#--}; _name=${_name//-/_}
      if ! declare -p "$_name" >/dev/null 2>&1; then
        echo "$0: unknown option $1 (see $0 --help)" >&2; exit 1
      fi
      if [ $# -lt 2 ]; then
        echo "$0: option $1 needs a value" >&2; exit 1
      fi
      printf -v "$_name" '%s' "$2"
      shift 2 ;;
    *) break ;;
  esac
done
unset _name _value
true
