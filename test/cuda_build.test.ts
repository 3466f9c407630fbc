// The addon's compile-time paths (torch.buildFeatures()): a build against a CUDA libtorch (`npm run check:cuda`:
// PyTorch 2.14 with CUDA 13, on a machine without a GPU) has every CUDA-only path compiled in: the caching
// allocator's statistics, CUDA graphs, the fused CUDA AdamW, c10d's NCCL group; a CPU build has none of them. Without
// a visible GPU the CUDA build still runs the CPU suite, says so, and refuses CUDA tensors with a JavaScript error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const f = torch.buildFeatures();
const version = torch.libtorchVersion();
const [major, minor] = version.split('.').map(Number) as [number, number];

test(`the addon's compile-time paths match its libtorch (${version}${f.cuda ? ', CUDA' : ''})`, () => {
  console.log(`# libtorch ${version}: ${JSON.stringify(f)}`);
  assert.deepEqual(Object.keys(f).sort(), ['cuda', 'cudaGraphs', 'cudaMemoryStats', 'fusedAdamwCuda', 'gloo', 'nccl']);
  if (!f.cuda) {
    for (const k of ['cudaGraphs', 'cudaMemoryStats', 'fusedAdamwCuda', 'nccl'] as const) assert.equal(f[k], false, k);
    assert.equal(torch.cuda.isAvailable(), false);
    return;
  }
  // A CUDA build: nothing CUDA-only may be left out (the set-up finds the CUDA runtime's and NCCL's headers in the
  // CUDA toolkit or in PyTorch's nvidia wheels).
  assert.equal(f.cudaMemoryStats, true, 'the CUDA runtime headers were not found: no allocator statistics');
  assert.equal(f.cudaGraphs, true, 'no CUDA graphs');
  assert.equal(f.nccl, true, 'no NCCL process group');
  assert.equal(f.fusedAdamwCuda, major > 2 || (major === 2 && minor >= 1), 'fused AdamW on CUDA (PyTorch >= 2.1)');
  if (major >= 2) assert.ok(torch.hasVarlenFlashAttention(), "PyTorch 2.x's variable-length flash attention");
});

test('the build records the libtorch it was built against', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const { addonPath } = createRequire(import.meta.url)(join(root, 'native', 'addon_path.cjs')) as { addonPath(r: string): { dir: string } };
  const info = JSON.parse(readFileSync(join(addonPath(root).dir, 'libtorch.json'), 'utf8')) as { cuda: boolean; source: string };
  assert.equal(info.cuda, f.cuda, info.source);
});

test('without a visible GPU: cuda is unavailable and a CUDA tensor is a JavaScript error, not a crash', { skip: torch.cuda.isAvailable() ? 'a GPU is visible' : false }, () => {
  assert.equal(torch.cuda.isAvailable(), false);
  assert.equal(torch.cuda.deviceCount(), 0);
  assert.equal(torch.cuda.memoryStats(0), null);
  assert.throws(() => torch.zeros([2], { device: 'cuda' }), /cuda|CUDA/);
  // Graphs say why they are unavailable.
  assert.match(String(torch.CudaGraph.unavailableReason()), f.cuda ? /no CUDA device is visible/ : /without CUDA/);
});
