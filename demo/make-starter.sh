#!/bin/sh
# Reproduces demo/starter/: the demo's starter policy, trained from random weights by `sppo sft` on
# mixed-quality demonstrations, in six runs that each continue from the previous one with a new warmup +
# cosine cycle over fresh demonstrations: 48,000 (seed 1), 48,000 (seed 2), 48,000 (seed 3), 96,000 (seed 4),
# 96,000 (seed 5), then 96,000 (seed 6); 432,000 demonstrations, 6,684 steps of 64 in all. See demo/starter/RECIPE.md for the
# measured time and quality.
# Usage: sh demo/make-starter.sh [OUT_DIR]   (run from the repository root after `npm run build`)
set -eu
OUT=${1:-demo/starter}
WORK=${WORK:-runs/make-starter}
SFT="--lr 2e-3 --epochs 1 --batch-size 64 --warmup-ratio 0.03 --schedule cosine --weight-decay 0.01 --max-grad-norm 1 --eval-fraction 0.01 --device cpu"
sppo() { node dist/src/cli/main.js "$@"; }
sppo demo starter-inputs --dir "$WORK/a" --examples 48000 --seed 1
sppo sft --init "$WORK/a/config.json" --tokenizer "$WORK/a/tokenizer" --data "$WORK/a/sft.jsonl" \
  --out "$WORK/a/starter" --seed 0 $SFT --metrics "$WORK/a/sft-metrics.jsonl"
sppo demo starter-inputs --dir "$WORK/b" --examples 48000 --seed 2
sppo sft --model "$WORK/a/starter" --data "$WORK/b/sft.jsonl" --out "$WORK/b/starter" --seed 1 $SFT --metrics "$WORK/b/sft-metrics.jsonl"
sppo demo starter-inputs --dir "$WORK/c" --examples 48000 --seed 3
sppo sft --model "$WORK/b/starter" --data "$WORK/c/sft.jsonl" --out "$WORK/c/starter" --seed 2 $SFT --metrics "$WORK/c/sft-metrics.jsonl"
sppo demo starter-inputs --dir "$WORK/d" --examples 96000 --seed 4
sppo sft --model "$WORK/c/starter" --data "$WORK/d/sft.jsonl" --out "$WORK/d/starter" --seed 3 $SFT --metrics "$WORK/d/sft-metrics.jsonl"
sppo demo starter-inputs --dir "$WORK/e" --examples 96000 --seed 5
sppo sft --model "$WORK/d/starter" --data "$WORK/e/sft.jsonl" --out "$WORK/e/starter" --seed 4 $SFT --metrics "$WORK/e/sft-metrics.jsonl"
sppo demo starter-inputs --dir "$WORK/f" --examples 96000 --seed 6
sppo sft --model "$WORK/e/starter" --data "$WORK/f/sft.jsonl" --out "$OUT" --seed 5 $SFT --metrics "$WORK/f/sft-metrics.jsonl"
sppo demo policy-eval --model "$OUT" --k 5 --json "$WORK/policy-eval.json"
