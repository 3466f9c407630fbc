#!/usr/bin/env bash
# Syntax-checks the addon's CUDA-only code on a machine without a GPU (g++ -fsyntax-only -DSPPO_CUDA=1, with the
# CUDA headers of /usr/local/cuda/include and the libtorch headers the build finds, e.g. Debian's 1.13). The code
# for PyTorch >= 2.1 only (native/optim.cc's aten::_fused_adamw_ call) is checked a second time against that
# function's PyTorch 2.x declaration (written below from its native_functions.yaml schema), since 1.13's headers
# do not declare it. Usage: scripts/check-cuda-syntax.sh [FILE.cc ...] (default: every native/*.cc).
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=${CUDA_HOME:-/usr/local/cuda}/include
[ -e "$cuda/cuda_runtime_api.h" ] || { echo "no CUDA headers at $cuda (set CUDA_HOME)"; exit 1; }
napi=$(node -e "console.log(require('path').dirname(require.resolve('node-addon-api')))")
nodeinc=${NODE_API_INCLUDE:-$(node -e "const p=require('path');console.log(p.join(p.dirname(process.execPath),'..','include','node'))")}
inc=$(node -e "const j=require('./build/native/libtorch.json');console.log(j.include.map(d=>'-I'+d).join(' '))" 2>/dev/null || echo "-I/usr/include -I/usr/include/torch/csrc/api/include")
flags="-std=c++17 -fPIC -w -D_GLIBCXX_USE_CXX11_ABI=1 -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED -DSPPO_CUDA=1 -I$nodeinc -I$napi $inc -I$cuda -I$PWD/native"
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(native/*.cc)
for f in "${files[@]}"; do
  g++ -fsyntax-only $flags "$f" && echo "ok  $f (SPPO_CUDA)"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/fused_adamw_decl.h" <<'H'
#include <ATen/ATen.h>
namespace at {
// aten::_fused_adamw_(Tensor(a!)[] self, Tensor(b!)[] grads, Tensor(c!)[] exp_avgs, Tensor(d!)[] exp_avg_sqs,
//   Tensor(e!)[] max_exp_avg_sqs, Tensor[] state_steps, *, float lr, float beta1, float beta2, float weight_decay,
//   float eps, bool amsgrad, bool maximize, Tensor? grad_scale=None, Tensor? found_inf=None) -> ()
void _fused_adamw_(at::TensorList self, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
                   at::TensorList max_exp_avg_sqs, at::TensorList state_steps, double lr, double beta1, double beta2,
                   double weight_decay, double eps, bool amsgrad, bool maximize,
                   const c10::optional<at::Tensor>& grad_scale = {}, const c10::optional<at::Tensor>& found_inf = {});
}
H
if ! grep -q "_fused_adamw_" $(echo "$inc" | sed 's/-I//g' | awk '{print $1}')/ATen/Functions.h 2>/dev/null; then
  sed -e 's/^#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)$/#if 1/' native/optim.cc > "$tmp/optim.cc"
  g++ -fsyntax-only $flags -include "$tmp/fused_adamw_decl.h" "$tmp/optim.cc" && echo "ok  native/optim.cc (SPPO_CUDA, the PyTorch >= 2.1 branch against _fused_adamw_'s 2.x declaration)"
fi
