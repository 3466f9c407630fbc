#!/bin/sh
# Reproduces demo/starter/: the demo's starter policy, trained from random weights by `sppo sft` on
# mixed-quality demonstrations, in two runs of one epoch over 48,000 fresh demonstrations each (the second
# continues from the first with a new warmup + cosine cycle). See demo/starter/RECIPE.md for the measured
# time and quality.
# Usage: sh demo/make-starter.sh [OUT_DIR]   (run from the repository root after `npm run build`)
set -eu
OUT=${1:-demo/starter}
WORK=${WORK:-runs/make-starter}
SFT="--lr 2e-3 --epochs 1 --batch-size 64 --warmup-ratio 0.03 --schedule cosine --weight-decay 0.01 --max-grad-norm 1 --eval-fraction 0.01 --device cpu"
node dist/src/cli/main.js demo starter-inputs --dir "$WORK/a" --examples 48000 --seed 1
node dist/src/cli/main.js sft --init "$WORK/a/config.json" --tokenizer "$WORK/a/tokenizer" --data "$WORK/a/sft.jsonl" \
  --out "$WORK/a/starter" --seed 0 $SFT --metrics "$WORK/a/sft-metrics.jsonl"
node dist/src/cli/main.js demo starter-inputs --dir "$WORK/b" --examples 48000 --seed 2
node dist/src/cli/main.js sft --model "$WORK/a/starter" --data "$WORK/b/sft.jsonl" \
  --out "$OUT" --seed 1 $SFT --metrics "$WORK/b/sft-metrics.jsonl"
node dist/src/cli/main.js demo policy-eval --model "$OUT" --k 5 --json "$WORK/policy-eval.json"
