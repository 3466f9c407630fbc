// Float32 matmuls at Qwen2.5-0.5B's shapes (decoding: 8 x 896 @ 896 x 4864; a prefill / training slice:
// 128 x 896 @ 896 x 896) under the thread settings given in the environment, to see which threading layer is
// slow: run it under OMP_NUM_THREADS=1, OMP_NUM_THREADS=2, OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 and
// OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=2 (docs/generation.md, "Threads"). Needs the built dist/.
//   for e in "OMP_NUM_THREADS=1" "OMP_NUM_THREADS=2" "OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1" \
//            "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=2"; do echo -n "$e: "; env $e node scripts/blas-threads.mjs; done
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const torch = await import(pathToFileURL(join(root, 'dist', 'src', 'torch', 'index.js')).href);
const g = new torch.Generator(0, 'cpu');
const out = [`ATen threads ${torch.getNumThreads()}`];
for (const [m, k, n, it] of [[8, 896, 4864, 300], [128, 896, 896, 100]]) {
  const a = torch.randn([m, k], { generator: g });
  const b = torch.randn([k, n], { generator: g });
  for (let i = 0; i < 5; i++) torch.tidy(() => a.matmul(b));
  const t0 = performance.now();
  for (let i = 0; i < it; i++) torch.tidy(() => a.matmul(b));
  out.push(`${m}x${k}@${k}x${n}: ${((performance.now() - t0) / it).toFixed(3)} ms`);
  a.dispose();
  b.dispose();
}
console.log(out.join(' | '));
