#!/usr/bin/env bash
# Train the default model's LM on one GPU in a fixed time, export it (float16) and evaluate it quickly:
# a larger LM than the CPU recipe (configs/default/magnet_gpu.yaml), from a token cache made by
# `magnet tokenize`. No install step: the repository's src/ goes on PYTHONPATH, and the few packages a
# bare GPU machine lacks (soundfile, soxr and their needs) are installed from carried wheels if any.
#
#   OUT=out bash scripts/gpu_train_default.sh .gpu/cache/train --heldout .gpu/cache/heldout
#   bash scripts/gpu_train_default.sh --toy CACHE --out /tmp/toy      # the tiny CPU run the tests make
#   python scripts/gpu_train_default.py assemble OUT exported/gpu     # back here: a loadable model
#
# Options (--minutes 6, --text lut|sentence, --steps, --prompts, KEY=VALUE overrides): --help.
# Environment: PYTHON (default python3), WHEELS (default .gpu/wheels); .gpu/caches.tar.gz, if there and
# .gpu/cache is not, is unpacked into .gpu/ (run from the repository root). Prepare the inputs with
# scripts/gpu_prepare.sh; docs/training.md, "Training the default model on a GPU", has the procedure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"   # paths given stay relative to the caller's folder
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-.gpu/wheels}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
# the caches travel compressed (scripts/gpu_prepare.sh): unpack them where the command line expects them
if [ -f .gpu/caches.tar.gz ] && [ ! -d .gpu/cache ]; then tar xzf .gpu/caches.tar.gz -C .gpu; fi
if ! "$PY" -c "import soundfile, soxr" 2>/dev/null; then
  if compgen -G "$WHEELS/*.whl" >/dev/null; then
    site="$(mktemp -d /tmp/magnet-site.XXXXXX)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$WHEELS"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "error: $PY lacks soundfile/soxr and $WHEELS holds no wheels: run scripts/gpu_prepare.sh here first" >&2
    exit 2
  fi
fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/scripts/gpu_train_default.py" "$@"
