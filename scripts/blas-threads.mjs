// Threads and BLAS (docs/threads.md): which BLAS libtorch runs on, ATen's and OpenBLAS's thread counts, and the time
// of float32 matmuls at Qwen2.5-0.5B's shapes (decoding: 8 x 896 @ 896 x 4864; a prefill / training slice:
// 128 x 896 @ 896 x 896) and, with --generate, of sppo's generate at that model's shape (494M parameters, random
// weights; batch 8, 64-token prompts, 32 new tokens, temperature 0.7, top-p 0.9; 1 warm-up + 2 timed calls), under
// whatever the environment sets. Needs the built dist/. docs/threads.md's table:
//   P=/usr/lib/x86_64-linux-gnu/openblas-pthread
//   for e in "OMP_NUM_THREADS=1" "OMP_NUM_THREADS=2" "OMP_NUM_THREADS=2 LD_LIBRARY_PATH=$P" \
//            "OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 LD_LIBRARY_PATH=$P"; do
//     echo "$e: $(env $e node scripts/blas-threads.mjs --generate)"; done
// (LD_LIBRARY_PATH=$P swaps in Debian's pthreads OpenBLAS: it is searched before the addon's run path.)
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const load = (p) => import(pathToFileURL(join(root, 'dist', p)).href);
const torch = await load('src/torch/index.js');
const g = new torch.Generator(0, 'cpu');
const b = torch.blasInfo();
const out = [`ATen threads ${torch.getNumThreads()}, BLAS ${b.library === 'openblas' ? `OpenBLAS (${b.threading}) ${b.threads} threads` : 'not OpenBLAS'}`];
for (const [m, k, n, it] of [[8, 896, 4864, 300], [128, 896, 896, 100]]) {
  const a = torch.randn([m, k], { generator: g });
  const w = torch.randn([k, n], { generator: g });
  for (let i = 0; i < 5; i++) torch.tidy(() => a.matmul(w));
  const t0 = performance.now();
  for (let i = 0; i < it; i++) torch.tidy(() => a.matmul(w));
  out.push(`${m}x${k}@${k}x${n}: ${((performance.now() - t0) / it).toFixed(3)} ms`);
  a.dispose();
  w.dispose();
}
if (process.argv.includes('--generate')) {
  const models = await load('src/models/index.js');
  const { generate } = await load('src/generate/index.js');
  const { qwen05bConfig } = await load('bench/hf_peers.js');
  const model = models.createModel(models.parseConfig(qwen05bConfig()));
  model.initWeights({ std: 0.02, seed: 0 });
  let s = 1;
  const prompts = Array.from({ length: 8 }, () => Array.from({ length: 64 }, () => 3 + ((s = (s * 48271) % 2147483647) % 150000)));
  const call = (seed) => {
    const t0 = performance.now();
    generate(model, prompts, { temperature: 0.7, topP: 0.9, maxNewTokens: 32, eosTokenIds: [], seed });
    return (performance.now() - t0) / 1000;
  };
  call(0);
  out.push(`generate (0.5B shape, b8 64+32): ${[call(1), call(2)].map((x) => x.toFixed(2)).join(', ')} s`);
  model.dispose();
}
console.log(out.join(' | '));
