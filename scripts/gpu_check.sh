#!/usr/bin/env bash
# The one-shot GPU check of issue 27: the CUDA-marked tests, then exact MAGNeT, fast mode and the
# same-size autoregressive MusicGen at MAGNeT-small and -medium size (random weights, 10 s clips,
# batch 1, 4, 16, 64): latency, throughput, peak memory, the paper's Figure 2. About 8 minutes on one
# GPU; no install step, no downloads. Writes gpu_check.json, gpu_check.png and the per-phase files to
# $OUT (default ./gpu_check_out); see src/magnet_audio/evaluation/gpu_check.py.
#
#   scripts/gpu_check.sh                 # on a CUDA machine
#   scripts/gpu_check.sh --toy           # CPU smoke run at a tiny size (also MAGNET_GPU_CHECK_TOY=1)
#   scripts/gpu_check.sh --sizes small --total 200 --skip-tests   # a shorter rerun
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

# magnet_audio imports soundfile and soxr at start-up (audio files, resampling), which the check does
# not use and a machine without installs may lack: such a module gets a stand-in that fails only
# when used. MAGNET_GPU_CHECK_STAND_INS=soundfile,soxr forces them (to test this path).
stand_ins="${MAGNET_GPU_CHECK_STAND_INS:-}"
for mod in soundfile soxr; do
    case ",$stand_ins," in *",$mod,"*) continue ;; esac
    "$python" -c "import $mod" >/dev/null 2>&1 || stand_ins="${stand_ins:+$stand_ins,}$mod"
done
shims=""
if [ -n "$stand_ins" ]; then
    shims="$(mktemp -d)"
    for mod in ${stand_ins//,/ }; do
        cat > "$shims/$mod.py" <<PY
"""Stand-in written by scripts/gpu_check.sh: $mod is not installed in this Python."""
STAND_IN = True


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(f"$mod is not installed in this Python (scripts/gpu_check.sh put a stand-in in its "
                      f"place): $mod.{name} is unavailable")
PY
    done
    export PYTHONPATH="$shims:$PYTHONPATH"
    echo "note: stand-ins for $stand_ins (not installed here); audio file I/O is not part of the check" >&2
fi
export MAGNET_GPU_CHECK_STAND_INS="$stand_ins"

"$python" -m magnet_audio.evaluation.gpu_check "$@"
rc=$?
[ -n "$shims" ] && rm -rf "$shims"
exit $rc
