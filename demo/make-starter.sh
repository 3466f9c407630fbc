#!/bin/sh
# Reproduces demo/starter/: the demo's starter policy, trained from random weights by `sppo sft` on
# mixed-quality demonstrations, in seven runs that each continue from the previous one with a new warmup +
# cosine cycle over fresh demonstrations: 48,000 (seed 1), 48,000 (seed 2), 48,000 (seed 3), 96,000 (seed 4),
# 96,000 (seed 5), 96,000 (seed 6), with styles drawn 20/45/30/5 % terse/sentence/formatted/other, then 24,000
# (seed 7) with styles drawn at the gold style game's equilibrium, 32.5/40/27.5/0 % (docs/demo.md, "The starter
# policy": why); 456,000 demonstrations, 7,056 steps of 64 in all. See demo/starter/RECIPE.md for the measured
# time and quality.
# Usage: sh demo/make-starter.sh [OUT_DIR]   (run from the repository root after `npm run build`)
# SIX_RUN_STARTER=DIR skips runs a-f and starts run g from DIR (the six-run starter, committed as demo/starter
# before run g was added: `git show f789a72:demo/starter/...`), 6 minutes instead of 75.
set -eu
OUT=${1:-demo/starter}
WORK=${WORK:-runs/make-starter}
SFT="--lr 2e-3 --epochs 1 --batch-size 64 --warmup-ratio 0.03 --schedule cosine --weight-decay 0.01 --max-grad-norm 1 --eval-fraction 0.01 --device cpu"
sppo() { node dist/src/cli/main.js "$@"; }
if [ -n "${SIX_RUN_STARTER:-}" ]; then
  F="$SIX_RUN_STARTER"
else
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
  sppo sft --model "$WORK/e/starter" --data "$WORK/f/sft.jsonl" --out "$WORK/f/starter" --seed 5 $SFT --metrics "$WORK/f/sft-metrics.jsonl"
  F="$WORK/f/starter"
fi
sppo demo starter-inputs --dir "$WORK/g" --examples 24000 --seed 7 --styles 0.325,0.4,0.275,0
sppo sft --model "$F" --data "$WORK/g/sft.jsonl" --out "$OUT" --seed 6 $SFT --metrics "$WORK/g/sft-metrics.jsonl"
sppo demo policy-eval --model "$OUT" --k 5 --json "$WORK/policy-eval.json"
