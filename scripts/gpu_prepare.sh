#!/usr/bin/env bash
# Here, on the CPU: make what scripts/gpu_train_default.sh needs beside the repository, in .gpu/ (ignored
# by git; name it in the device `run` tool's `carry`), and check that it may travel.
#
#   bash scripts/gpu_prepare.sh [DATA]     # DATA: the synth dataset folder (default data/synth-6h)
#
#   .gpu/cache/train, .gpu/cache/heldout   token caches of DATA/train.jsonl and DATA/heldout.jsonl, made with
#                                          the default model's codec (resumable: re-run to finish)
#   .gpu/caches.tar.gz                     both, compressed (what travels; gpu_train_default.sh unpacks it)
#   .gpu/wheels/                           soundfile, soxr, cffi and pycparser for the GPU machine's Python
#                                          3.12, which lacks them (magnet_audio reads and writes audio with them)
#
# Then prints what travels (the repository's tracked files + .gpu) against the 64 MiB the machine accepts.
# Environment: PYTHON (default .venv/bin/python if present, else python3), CODEC (the codec to tokenize with).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${1:-data/synth-6h}"
if [ -z "${PYTHON:-}" ]; then PYTHON=python3; [ -x .venv/bin/python ] && PYTHON=.venv/bin/python; fi
CODEC="${CODEC:-src/magnet_audio/pretrained/synth-music}"
for split in train heldout; do
  [ -f "$DATA/$split.jsonl" ] || { echo "error: $DATA/$split.jsonl not found (make the data with magnet data synth)" >&2; exit 2; }
done
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
for split in train heldout; do
  "$PYTHON" -m magnet_audio.cli tokenize "$DATA/$split.jsonl" --codec "$CODEC" --out ".gpu/cache/$split" --device cpu --quiet
done
tar czf .gpu/caches.tar.gz -C .gpu cache    # 2.5x smaller to carry; gpu_train_default.sh unpacks it
mkdir -p .gpu/wheels
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/wheels soundfile==0.14.0 soxr==1.1.0 cffi==2.1.1 pycparser==3.12
tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
extra=$(find .gpu/caches.tar.gz .gpu/wheels -type f -print0 | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "travels: tracked files $(mib "$tree") + .gpu/caches.tar.gz and .gpu/wheels $(mib "$extra") = $(mib $((tree + extra))) of 64 MiB"
echo "carry: [\".gpu/caches.tar.gz\", \".gpu/wheels\"]"
if [ $((tree + extra)) -gt $((64 * 1048576)) ]; then
  echo "error: more than the 64 MiB the GPU machine accepts" >&2
  exit 1
fi
