#!/usr/bin/env bash
# On the GPU machine, in one call of about 9 minutes on an H100/H200: build the addon against PyTorch's CUDA
# libtorch, run the tests with tensors on cuda, then `npm run bench -- --gpu` part by part (bench/gpu.ts: matmul;
# generation at the 135M / 360M / 1.5B shapes, graph on and off; the transformers peers, hf_baseline.py as
# shipped and bench/peer_gpu.py; trainer tok/s at 16 x 512, packed / padded, masters / pure bf16; one sppo run
# iteration at the 135M shape), each part under its own timeout, its results written to $OUT as they come, and
# the summary table with the ratios at the end. Prepare with scripts/gpu-prepare.sh on the CPU machine; carry
# .gpu and dist. SPPO_GPU_EXTRA=1 adds the LoRA / PairRM figures of issues 15 and 12 (after the rest).
# Per-part limits (seconds), each overridable: SPPO_GPU_T_BUILD, _TESTS, _MATMUL, _GEN, _PEER, _TRAIN, _RUN.
# SPPO_GPU_SKIP_TESTS=1 / SPPO_GPU_SKIP_BENCH=1 leave those out; SPPO_GPU_PARTS picks bench parts (default all).
# SPPO_GPU_DEADLINE (seconds, default 560): the whole script's budget, under the device tool's 600 s per command;
# each part's limit is cut to what is left of it (a part with under 15 s left is skipped, saying so).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sppo-gpu}
export OUT
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }
deadline=${SPPO_GPU_DEADLINE:-560}
# limit WANTED: WANTED seconds, or what is left before the deadline (less 10 s for the summary), if smaller.
limit() { local left=$(( deadline - ($(date +%s) - start) - 10 )); echo $(( $1 < left ? $1 : left )); }
xz -dc .gpu/node-v20.20.2-linux-x64.xz > /tmp/node && chmod +x /tmp/node
[ -e node_modules ] || ln -s .gpu/node_modules node_modules
export LIBTORCH_USE_PYTORCH=1 NODE_API_INCLUDE=$PWD/.gpu/node-api-include SPPO_SKIP_NPM=1 SPPO_HF_FIXTURES=$PWD/.gpu/hf-tiny
export SPPO_HF_BASELINE=$PWD/.gpu/hf_baseline.py
nvidia-smi -L; python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
stamp "== build"
timeout -k 5 "${SPPO_GPU_T_BUILD:-120}" /tmp/node scripts/setup.mjs native || { stamp "build failed"; exit 1; }
/tmp/node -e "import('./dist/src/torch/index.js').then(t => console.log('libtorch', t.libtorchVersion(), 'cuda', t.cuda.isAvailable(), t.cuda.deviceCount(), 'varlen flash', t.hasVarlenFlashAttention(), t.hasVarlenFlashAttention({ slidingWindow: true })))"
if [ "${SPPO_GPU_SKIP_TESTS:-0}" != 1 ]; then
  stamp "== tests on cuda"
  # conformance is the CPU reference (float32, eager attention); on cuda the fused attention kernel gives
  # other values at padded query rows, which nothing uses, so it is left out here.
  SPPO_DEVICE=cuda timeout -k 5 "$(limit "${SPPO_GPU_T_TESTS:-120}")" /tmp/node scripts/run-tests.mjs ${SPPO_GPU_TESTS:-torch_optim torch_ops torch_autograd models packing generate losses trainer lora serve_engine /distributed.test} > "$OUT/tests.log" 2>&1
  grep -E "^# (tests|pass|fail)|^not ok" "$OUT/tests.log"; grep -E "^not ok" -A6 "$OUT/tests.log" | grep -E "error|Error" | head -20
fi
[ "${SPPO_GPU_SKIP_BENCH:-0}" = 1 ] && exit 0
part() {  # part NAME LIMIT: one part of bench/gpu.ts in its own process; its JSON is written as it goes
  local l; l=$(limit "$2")
  if [ "$l" -lt 15 ]; then stamp "== bench $1 skipped: the ${deadline} s budget is spent"; return; fi
  stamp "== bench $1 (limit $l s)"
  timeout -k 10 "$l" /tmp/node dist/bench/gpu.js --part "$1" --out "$OUT" || stamp "bench $1 failed or timed out (what it measured is in $OUT/gpu-$1.json)"
}
for p in ${SPPO_GPU_PARTS:-matmul gen peer train run}; do
  case $p in
    matmul) part matmul "${SPPO_GPU_T_MATMUL:-20}" ;;
    gen) part gen "${SPPO_GPU_T_GEN:-100}" ;;
    peer) part peer "${SPPO_GPU_T_PEER:-140}" ;;
    train) part train "${SPPO_GPU_T_TRAIN:-75}" ;;
    # The sppo run child gets the part's limit less 15 s, so that it is stopped (not orphaned) and the part reports.
    run) SPPO_GPU_RUN_TIMEOUT_MS=$(( ($(limit "${SPPO_GPU_T_RUN:-90}") - 15) * 1000 )) part run "${SPPO_GPU_T_RUN:-90}" ;;
  esac
done
stamp "== summary"
/tmp/node dist/bench/gpu.js --part summary --out "$OUT"
if [ "${SPPO_GPU_EXTRA:-0}" = 1 ]; then
  # Best as a second call (SPPO_GPU_SKIP_TESTS=1 SPPO_GPU_PARTS=none SPPO_GPU_EXTRA=1): the first fills its budget.
  # Issues 15 and 12: one SPPO step of a Llama-3-8B-shaped model (LoRA, then full with float32 master weights),
  # and PairRM-sized judging, bf16.
  stamp "== LoRA / full step, Llama-3-8B shape"
  timeout 240 /tmp/node dist/bench/lora.js --step Meta-Llama-3-8B-Instruct --device cuda --dtype bfloat16 || echo "lora step failed"
  stamp "== PairRM-sized judge"
  SPPO_DEVICE=cuda timeout 120 /tmp/node dist/bench/bench.js pairrm-large || echo "pairrm bench failed"
fi
stamp "done"
