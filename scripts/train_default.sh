#!/usr/bin/env bash
# Rebuild the default model (magnet-audio/synth-music) from nothing: the offline dataset, the codec,
# the MAGNeT LM, the export into the package and its evaluation. About 2 h on a 2-core CPU.
#
#   bash scripts/train_default.sh                 # everything, into data/synth-6h and runs/
#   STEP=lm bash scripts/train_default.sh         # start at a later step: data | codec | lm | export | eval
#
# Needs: python3 scripts/setup.py --test (the data and eval extras, FluidSynth and its soundfont).
# Each training step resumes where it stopped if interrupted (re-run the same command).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MAGNET="${MAGNET:-$ROOT/.venv/bin/magnet}"
DATA="${DATA:-data/synth-6h}"
RUNS="${RUNS:-runs}"
OUT="${OUT:-src/magnet_audio/pretrained/synth-music}"
STEP="${STEP:-data}"
steps=(data codec lm export eval)
start=-1
for i in "${!steps[@]}"; do [ "${steps[$i]}" = "$STEP" ] && start=$i; done
[ "$start" -ge 0 ] || { echo "STEP must be one of: ${steps[*]}" >&2; exit 2; }
at() { for i in "${!steps[@]}"; do [ "${steps[$i]}" = "$1" ] && [ "$i" -ge "$start" ] && return 0; done; return 1; }

if at data && [ ! -f "$DATA/train.jsonl" ]; then
  "$MAGNET" data synth "$DATA" --hours 6 --seed 0          # 2,052 train + 108 held-out 10 s clips
fi
if at codec; then
  resume=(); [ -d "$RUNS/default-codec/checkpoints" ] && resume=(--resume)
  "$MAGNET" train-codec configs/default/codec.yaml data.train="$DATA/train.jsonl" \
    run_dir="$RUNS/default-codec" "${resume[@]}"
fi
if at lm; then
  # The codec's tokens of the training clips, once (1 min), then 3,000 updates on one cosine (75 min)
  CACHE="$RUNS/default-cache/train"
  [ -f "$CACHE/cache.json" ] || "$MAGNET" tokenize "$DATA/train.jsonl" --codec "$RUNS/default-codec/export" \
    --out "$CACHE" --device cpu
  resume=(); [ -d "$RUNS/default-magnet/checkpoints" ] && resume=(--resume)
  "$MAGNET" train configs/default/magnet.yaml data.train="$CACHE" model.codec=null \
    run_dir="$RUNS/default-magnet" "${resume[@]}"
fi
if at export; then
  "$MAGNET" export "$RUNS/default-magnet" "$OUT" --codec "$RUNS/default-codec/export" --half --generation "$(cat configs/default/generation.json)"
  rm -f "$OUT/state_dict.bin" "$OUT/compression_state_dict.bin"  # ship our format alone (model.safetensors)
fi
if at eval; then  # the model card's tables: 24 held-out prompts (~15 min)
  head -24 "$DATA/heldout.jsonl" > "$RUNS/heldout24.jsonl"
  "$MAGNET" eval --model "$OUT" --prompts "$RUNS/heldout24.jsonl" --reference "$DATA/heldout" \
    --metrics musicality,adherence --batch 12 --seed 0 --out eval/default
fi
