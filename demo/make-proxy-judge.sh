#!/bin/sh
# Reproduces demo/proxy-judge/: the demo's proxy preference model (the PairRM stand-in), a general preference
# model (sppo train-judge --head gpm) initialised from the starter and trained on the gold judge's verdicts on
# the starter's own samples (8 per prompt, on 1,280 prompts of their own stream: never the held-out prompts
# nor the SPPO iterations'), plus each styled sample against the same answer in the two other styles
# (--style-pairs), three epochs. Its agreement is measured on the held-out prompts' comparisons of the samples alone (the
# same comparisons as the judge made without --style-pairs).
# Usage: sh demo/make-proxy-judge.sh [OUT_DIR]   (after demo/make-starter.sh or with the committed starter)
set -eu
OUT=${1:-demo/proxy-judge}
WORK=${WORK:-runs/make-proxy-judge}
node dist/src/cli/main.js demo judge-data --model demo/starter --dir "$WORK/style-pairs" --prompts 1280 --k 8 --seed 0 --style-pairs
node dist/src/cli/main.js demo judge-data --model demo/starter --dir "$WORK/samples" --prompts 1280 --k 8 --seed 0
node dist/src/cli/main.js train-judge --model demo/starter --data "$WORK/style-pairs/judge-train.jsonl" \
  --eval-data "$WORK/samples/judge-heldout.jsonl" --out "$OUT" --head gpm --embed-dim 8 --lr 1e-4 --head-lr 1e-2 \
  --epochs 3 --batch-size 32 --seed 0
