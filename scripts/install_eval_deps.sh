#!/usr/bin/env bash
# Install what `magnet eval` and `magnet bench generate` use beyond the core package:
#   - the `eval` extra (matplotlib for the bench plot, scipy, librosa, onnxruntime, ...)
#   - basic-pitch 0.4.0 (ONNX model in the wheel) and musicnn 0.1.0 (TF checkpoints in the wheel),
#     both with --no-deps because their metadata pins numpy < 1.17 / tensorflow < 2.15.1
#   - with --musicnn (default) also the `eval-musicnn` extra: TensorFlow 2.21 + tf-keras (~2 GB)
#
#     bash scripts/install_eval_deps.sh               # everything (offline FAD/KL work afterwards)
#     bash scripts/install_eval_deps.sh --no-musicnn  # skip TensorFlow: basic-pitch FAD only
#
# Uses ./.venv/bin/python when present, else `python3`. Idempotent. Nothing here downloads model
# weights at run time: VGGish, PaSST and CLAP weights are separate (docs/evaluation.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
EXTRAS="eval,eval-musicnn"
WHEELS=(basic-pitch==0.4.0 musicnn==0.1.0)
if [ "${1:-}" = "--no-musicnn" ]; then
  EXTRAS="eval"
  WHEELS=(basic-pitch==0.4.0)
fi
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)
echo "[install_eval_deps] $PY: magnet-audio[$EXTRAS]" >&2
"${PIP[@]}" -e "$ROOT[$EXTRAS]"
echo "[install_eval_deps] $PY: ${WHEELS[*]} (--no-deps)" >&2
"${PIP[@]}" --no-deps "${WHEELS[@]}"
"$PY" - <<'PYEOF'
import importlib.util as u
for name in ("matplotlib", "onnxruntime", "basic_pitch", "tensorflow", "musicnn"):
    print(f"[install_eval_deps] {name:12s} {'ok' if u.find_spec(name) else 'not installed'}")
PYEOF
