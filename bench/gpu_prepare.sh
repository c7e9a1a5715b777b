#!/usr/bin/env bash
# Prepare what bench/gpu.sh needs on a bare GPU machine that cannot reach a package index (run it here, where
# pip and the corpus tools work; both folders are git-ignored and travel with the working tree, ~30 MB):
#   .whl/                    ESPnet and the wheels it imports that a stock PyTorch image lacks (Python 3.12,
#                            manylinux x86-64), at the versions of this checkout's .venv;
#   .devtools/tools.tar.xz   espeak-ng, flite, sclite, the shared libraries they load (glibc aside),
#                            espeak-ng's data and the fortunes, for stages 1-9 of egs/synth_en.
# Usage: bench/gpu_prepare.sh   (then, on the GPU machine: bench/gpu.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=$root/.venv/bin/python
wheels=(espnet humanfriendly hydra-core omegaconf kaldiio librosa soundfile cffi pycparser torch-complex typeguard
        omniio soxr decorator pooch ConfigArgParse editdistance platformdirs)
pins=()
for name in "${wheels[@]}"; do
  pins+=("$name==$("$py" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
done
rm -rf "$root/.whl" && mkdir -p "$root/.whl"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 any; do
  platforms+=(--platform "$p")
done
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d "$root/.whl" "${pins[@]}"
# antlr4-python3-runtime (omegaconf's parser) is published as a source archive only: build its wheel here.
"$py" -m pip wheel -q --no-deps -w "$root/.whl" \
  "antlr4-python3-runtime==$("$py" -c "import importlib.metadata as m; print(m.version('antlr4-python3-runtime'))")"

stage=$(mktemp -d)/devtools
mkdir -p "$stage/bin" "$stage/lib" "$stage/share"
sclite=$(command -v sclite || echo /usr/lib/sctk/bin/sclite)
cp "$(command -v espeak-ng)" "$(command -v flite)" "$sclite" "$stage/bin/"
for bin in "$stage"/bin/*; do ldd "$bin"; done | awk '/=> \//{print $3}' \
  | grep -vE '/(libc|libm|libpthread|libdl|librt)\.so|ld-linux' | sort -u | xargs -I{} cp -L {} "$stage/lib/"
cp -r "$(dirname "$(find /usr/lib -maxdepth 3 -type d -name espeak-ng-data | head -1)")/espeak-ng-data" "$stage/share/"
cp -r /usr/share/games/fortunes "$stage/share/"
mkdir -p "$root/.devtools"
tar cJf "$root/.devtools/tools.tar.xz" -C "$(dirname "$stage")" devtools
rm -rf "$(dirname "$stage")"
du -sh "$root/.whl" "$root/.devtools"
