#!/bin/sh
# Reproduces demo/starter/: the demo's starter policy, trained from random weights by `sppo sft` on
# mixed-quality demonstrations (see demo/starter/RECIPE.md for the measured time).
# Usage: sh demo/make-starter.sh [OUT_DIR]   (run from the repository root after `npm run build`)
set -eu
OUT=${1:-demo/starter}
WORK=${WORK:-runs/make-starter}
node dist/src/cli/main.js demo starter-inputs --dir "$WORK" --examples 24000 --seed 1
node dist/src/cli/main.js sft --init "$WORK/config.json" --tokenizer "$WORK/tokenizer" --data "$WORK/sft.jsonl" \
  --out "$OUT" --seed 0 --lr 3e-3 --epochs 1 --batch-size 32 --warmup-ratio 0.03 --schedule cosine \
  --weight-decay 0.01 --max-grad-norm 1 --eval-fraction 0.01 --metrics "$WORK/sft-metrics.jsonl" --device cpu
