#!/usr/bin/env bash
# Make a recipe for a new corpus: copy egs/TEMPLATE to egs/NAME and write the corpus inputs into its run.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

labeled_manifest=""  # TSV manifest of the labeled training set
unlabeled=""         # folder of unlabeled audio (searched recursively) or a file listing audio paths
dev_manifest=""      # TSV manifest of the validation set
test_manifests=""    # TSV manifests of the test sets, space separated
egs_dir=$root/egs    # where the recipe folder is made
help_message=$(cat <<HELP
Usage: utils/new_recipe.sh NAME [options]

Copies egs/TEMPLATE (run.sh, cmd.sh, local/, conf/) to <egs_dir>/NAME and writes the inputs given into the corpus
inputs of its run.sh (the rest stay placeholders, to edit by hand), so that 'cd egs/NAME && ./run.sh' runs
every stage. Refuses when <egs_dir>/NAME exists. A manifest is a TSV file, one utterance per line:
audio_path<TAB>transcript[<TAB>speaker], relative paths read from the manifest's folder (see
'python -m softpl.bin.import_manifest --help'). Each test set is named by its manifest's file stem, and dev
and the test sets are decoded and scored. Paths are written absolute; they may not hold white space,
commas, quotes, \$, \` or backslashes.

Options:
  --labeled_manifest FILE   labeled training set            -> data/train_labeled
  --unlabeled FILE_OR_DIR   unlabeled audio: a folder or a file listing audio paths -> data/train_unlabeled
  --dev_manifest FILE       validation set                  -> data/dev
  --test_manifests "F1 F2"  test sets                       -> data/<stem of each file>
  --egs_dir DIR             where the recipe is made (default: ${egs_dir}); outside the repository the
                            recipe's run.sh records the repository's path to find the stage engine

Example:
  utils/new_recipe.sh my_corpus --labeled_manifest /corpus/train.tsv --unlabeled /corpus/unlabeled \\
      --dev_manifest /corpus/dev.tsv --test_manifests "/corpus/test_clean.tsv /corpus/test_noisy.tsv"
HELP
)
name=""
if [ $# -gt 0 ] && [[ $1 != -* ]]; then name=$1; shift; fi
. "$root/utils/parse_options.sh"
if [ -z "$name" ] && [ $# -gt 0 ]; then name=$1; shift; fi
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1; }

die() { echo "$0: $*" >&2; exit 1; }
[ -n "$name" ] || die "give the recipe's name (see --help)"
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "recipe name '$name': use letters, digits, '_', '.', '-'"
[ "$name" != TEMPLATE ] || die "the recipe cannot be named TEMPLATE"
recipe=$egs_dir/$name
[ ! -e "$recipe" ] || die "$recipe exists; choose another name or remove it first"

# absolute <option> <path> <-f|-e>: the path made absolute, after checking it exists and can be carried.
absolute() {
  local path
  [ -e "$2" ] || die "--$1 $2: not found"
  [ "$3" != -f ] || [ -f "$2" ] || die "--$1 $2: not a file"
  path=$(realpath "$2")
  [[ $path != *[[:space:],\"\'\$\`\\]* ]] || die "--$1 '$path': the path holds white space, a comma, a quote, \$, \` or \\; move or link the data to a plain path"
  echo "$path"
}
declare -A inputs=()  # run.sh variable -> value
[ -z "$labeled_manifest" ] || inputs[labeled_manifest]=$(absolute labeled_manifest "$labeled_manifest" -f)
[ -z "$unlabeled" ] || inputs[unlabeled_audio]=$(absolute unlabeled "$unlabeled" -e)
[ -z "$dev_manifest" ] || inputs[dev_manifest]=$(absolute dev_manifest "$dev_manifest" -f)
if [ -n "$test_manifests" ]; then
  fixed="by a set of the recipe"
  declare -A stem_of=([train_labeled]=$fixed [train_unlabeled]=$fixed [dev]=$fixed)
  tests=()
  for manifest in $test_manifests; do
    path=$(absolute test_manifests "$manifest" -f)
    stem=$(basename "${path%.*}")
    [[ $stem =~ ^[A-Za-z0-9_.-]+$ ]] || die "test manifest $manifest: its stem '$stem' names the test set; use letters, digits, '_', '.', '-'"
    [ -z "${stem_of[$stem]:-}" ] || die "test manifest $manifest: its set name '$stem' is taken ${stem_of[$stem]}; rename the file"
    stem_of[$stem]="by $manifest"
    tests+=("$path")
  done
  inputs[test_manifests]=${tests[*]}
fi

# The recipe is built in a hidden folder and renamed at the end: a failure leaves no half-made recipe.
mkdir -p "$egs_dir"
work=$(mktemp -d "$egs_dir/.$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
cp -r "$root/egs/TEMPLATE/run.sh" "$root/egs/TEMPLATE/cmd.sh" "$root/egs/TEMPLATE/local" "$root/egs/TEMPLATE/conf" "$work/"

# set_line <prefix> <line>: replace the line of the new run.sh that starts with <prefix>.
set_line() {
  local line found=false
  while IFS= read -r line; do
    if [[ $line == "$1"* ]]; then printf '%s\n' "$2"; found=true; else printf '%s\n' "$line"; fi
  done < "$work/run.sh" > "$work/run.sh.tmp"
  $found || die "egs/TEMPLATE/run.sh has no line starting with '$1'"
  mv "$work/run.sh.tmp" "$work/run.sh"
}
for variable in "${!inputs[@]}"; do
  set_line "$variable=" "$variable=\"${inputs[$variable]}\""
done
set_line "# egs/TEMPLATE:" "# egs/$name: made from egs/TEMPLATE by utils/new_recipe.sh; the corpus inputs are below."
if [ "$(cd "$egs_dir" && pwd)" != "$root/egs" ]; then
  set_line "export SOFTPL_ROOT=" "export SOFTPL_ROOT=\${SOFTPL_ROOT:-$root}  # the repository: stage engine, utils, .venv"
fi
chmod +x "$work/run.sh"
mv "$work" "$recipe"

echo "made $recipe from egs/TEMPLATE"
for variable in labeled_manifest unlabeled_audio dev_manifest test_manifests; do
  [ -n "${inputs[$variable]:-}" ] || echo "  still a placeholder, edit it in $recipe/run.sh: $variable"
done
echo "next: cd $recipe && ./run.sh     (./run.sh --help lists stages and options)"
