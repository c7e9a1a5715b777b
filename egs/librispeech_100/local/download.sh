#!/usr/bin/env bash
# Fetch a corpus archive and extract one folder of it, unless that folder is already there:
#   local/download.sh <url> <root> <folder in the archive>
#   e.g. local/download.sh https://www.openslr.org/resources/12/dev-clean.tar.gz "$LIBRISPEECH" LibriSpeech/dev-clean
# The archive is downloaded with wget (or curl) to <root>/<name>.part, resuming an interrupted download, and
# renamed when complete. It is extracted into a scratch folder under <root>, and the folder (plus the loose files
# beside it in the archive, e.g. LibriSpeech/LICENSE.TXT, where absent) is moved into place only at the end, so
# an interrupted run never leaves a half-extracted folder that a later run would take as present.
# The archive is deleted once its folder is in place.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 <url> <root> <folder in the archive>" >&2; exit 1; }
url=$1; root=$2; folder=$3
if [ -d "$root/$folder" ]; then
  echo "$0: $root/$folder is present: not downloading it"
  exit 0
fi
mkdir -p "$root"
archive=$root/$(basename "$url")
if [ ! -f "$archive" ]; then
  echo "$0: downloading $url -> $archive"
  if command -v wget >/dev/null; then
    wget --continue --output-document "$archive.part" "$url"
  elif command -v curl >/dev/null; then
    curl --fail --location --continue-at - --output "$archive.part" "$url"
  else
    echo "$0: neither wget nor curl is installed; install one (sudo apt-get install wget) or download $url" \
      "to $archive by hand" >&2
    exit 1
  fi
  mv "$archive.part" "$archive"
fi
scratch=$(mktemp -d "$root/.extract.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
echo "$0: extracting $archive"
tar -xzf "$archive" -C "$scratch"
[ -d "$scratch/$folder" ] || { echo "$0: $archive holds no folder $folder; delete the archive and retry" >&2; exit 1; }
parent=$(dirname "$folder")
mkdir -p "$root/$parent"
for file in "$scratch/$parent"/*; do
  if [ -f "$file" ] && [ ! -e "$root/$parent/$(basename "$file")" ]; then cp "$file" "$root/$parent/"; fi
done
mv "$scratch/$folder" "$root/$folder"
rm -f "$archive"
echo "$0: $root/$folder is in place"
