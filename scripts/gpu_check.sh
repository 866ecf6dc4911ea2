#!/usr/bin/env bash
# The one-shot GPU check of issue 27: the CUDA-marked tests, then exact MAGNeT, fast mode and the
# same-size autoregressive MusicGen at MAGNeT-small and -medium size (random weights, 10 s clips,
# batch 1, 4, 16, 64): latency, throughput, peak memory, the paper's Figure 2. About 8 minutes on one
# GPU; no install step, no downloads. Writes gpu_check.json, gpu_check.png and the per-phase files to
# $OUT (default ./gpu_check_out); see src/magnet_audio/evaluation/gpu_check.py.
#
#   scripts/gpu_check.sh                 # on a CUDA machine
#   scripts/gpu_check.sh --toy           # CPU smoke run at a tiny size (also MAGNET_GPU_CHECK_TOY=1)
#   PYTHON=/path/to/python scripts/gpu_check.sh --out results/
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$(command -v python || command -v python3)}"
if [ -z "$python" ]; then
    echo "error: no python on PATH (set PYTHON=/path/to/python)" >&2
    exit 2
fi
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # the GPU machine has no internet
cd "$repo" || exit 2
exec "$python" -m magnet_audio.evaluation.gpu_check "$@"
