#!/usr/bin/env bash
# Gathers, on the CPU machine, what scripts/gpu-check.sh needs on a bare GPU machine (no npm registry
# there): Node.js, the Node-API headers, the HF baseline script, the hf-tiny fixtures and the runtime npm
# packages that the tests, the bench and `sppo run` load, into .gpu/ (git-ignored). The TypeScript is
# compiled here (dist/) and travels too: carry .gpu and dist (under 64 MiB together; the size is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SPPO_SHARED:-../shared}
node scripts/setup.mjs
mkdir -p .gpu/node_modules
cp "$shared/device/node-v20.20.2-linux-x64.xz" .gpu/
rm -rf .gpu/node-api-include && cp -r "$shared/device/node-api-include" .gpu/
cp "$shared/device/hf_baseline.py" .gpu/
rm -rf .gpu/hf-tiny && cp -r "$shared/fixtures/hf-tiny" .gpu/hf-tiny
# node-addon-api: the build; @huggingface: tokenizers and chat templates; cli-progress and its dependencies:
# progress bars; zod, yaml, hyparquet: `sppo run` (the bench's run part: its config and prompts).
for p in node-addon-api @huggingface cli-progress string-width emoji-regex is-fullwidth-code-point strip-ansi ansi-regex zod yaml hyparquet; do
  rm -rf ".gpu/node_modules/$p" && cp -r "node_modules/$p" ".gpu/node_modules/$p"
done
du -sh .gpu dist
du -scm .gpu dist | tail -1 | awk '{ if ($1 > 60) { print "gpu-prepare: .gpu + dist are " $1 " MiB, over the 64 MiB a device run carries"; exit 1 } }'
