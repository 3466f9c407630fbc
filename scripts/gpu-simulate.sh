#!/usr/bin/env bash
# Rehearses scripts/gpu-check.sh on this CPU machine before device time is spent on it: the tree is copied as the
# device tool copies it (tracked files, plus the carried .gpu and dist; no node_modules, no build), the addon is
# built from scratch the way the GPU machine builds it (LIBTORCH_USE_PYTORCH=1, against the libtorch inside
# Debian's python3-torch), and every bench part runs small (SPPO_BENCH_DRYRUN=1). The tests on cuda cannot run
# here: pass SPPO_GPU_TESTS to try some (they fail for want of CUDA; what matters is that they load).
# Usage: scripts/gpu-simulate.sh (after scripts/gpu-prepare.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu ] || { echo "run scripts/gpu-prepare.sh first"; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "needs Debian's python3-torch (/usr/bin/python3 with torch)"; exit 1; }
sim=$(mktemp -d)
trap 'rm -rf "$sim"' EXIT
git archive HEAD | tar -x -C "$sim"
cp -a .gpu dist "$sim/"
mkdir -p "$sim/.bin" && ln -s /usr/bin/python3 "$sim/.bin/python3"
cd "$sim"
skip_tests=1
[ -n "${SPPO_GPU_TESTS:-}" ] && skip_tests=0
PATH=$sim/.bin:$PATH OUT=${OUT:-/tmp/sppo-gpu-sim} SPPO_BENCH_DRYRUN=1 SPPO_GPU_T_BUILD=${SPPO_GPU_T_BUILD:-600} \
  SPPO_GPU_DEADLINE=${SPPO_GPU_DEADLINE:-1500} SPPO_GPU_SKIP_TESTS=$skip_tests \
  bash scripts/gpu-check.sh
