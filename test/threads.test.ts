// CPU threads (src/torch/threads.ts, src/torch/default_threads.ts, native/threads.cc): sppo starts with one thread
// per physical core unless OMP_NUM_THREADS is set, as PyTorch does, and keeps OpenBLAS to one threading layer:
// an OpenMP OpenBLAS follows ATen's count (also back up after 1), a pthreads OpenBLAS stays at 1 beside ATen's pool.
// Where the system libtorch is used and Debian's OpenMP OpenBLAS is installed, the addon runs on it (scripts/setup.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import { createRequire } from 'node:module';
import * as torch from '../src/torch/index.js';
import { defaultNumThreads } from '../src/torch/default_threads.js';
import { projectRoot } from './helpers/fixtures.js';

/** getNumThreads() and blasInfo() in a fresh process with `env` (OMP_NUM_THREADS removed unless given). */
function fresh(env: Record<string, string>): { threads: number; blas: torch.BlasInfo } {
  const base = { ...process.env };
  delete base.OMP_NUM_THREADS;
  delete base.OPENBLAS_NUM_THREADS;
  const code = `import(${JSON.stringify(join(projectRoot, 'dist', 'src', 'torch', 'index.js'))}).then((t) => console.log(JSON.stringify({ threads: t.getNumThreads(), blas: t.blasInfo() })))`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...base, ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as { threads: number; blas: torch.BlasInfo };
}

test('physical cores: at least 1, at most the CPUs this process may use', () => {
  const n = torch.physicalCores();
  assert.ok(Number.isInteger(n) && n >= 1, String(n));
  assert.ok(n <= (os.availableParallelism?.() ?? os.cpus().length), `${n} cores > ${os.availableParallelism()} CPUs`);
});

test('the default thread count: OMP_NUM_THREADS when set, else one per physical core', () => {
  assert.equal(defaultNumThreads({ OMP_NUM_THREADS: '3' }), null);
  assert.equal(defaultNumThreads({}), torch.physicalCores());
  assert.equal(defaultNumThreads({ OMP_NUM_THREADS: '' }), torch.physicalCores(), 'an empty OMP_NUM_THREADS is unset');
  assert.equal(fresh({}).threads, torch.physicalCores(), 'a fresh process starts with one thread per physical core');
  assert.equal(fresh({ OMP_NUM_THREADS: '1' }).threads, 1, 'OMP_NUM_THREADS=1 is kept');
  // Above the cores, the libtorch decides: Debian's keeps 3; PyTorch's wheels (MKL) cap it at the physical cores, as
  // `OMP_NUM_THREADS=3 python -c 'import torch; print(torch.get_num_threads())'` does there.
  const three = fresh({ OMP_NUM_THREADS: '3' });
  if (three.blas.library === 'openblas') assert.equal(three.threads, 3, 'OMP_NUM_THREADS=3 is kept');
  else assert.ok(three.threads >= Math.min(3, torch.physicalCores()) && three.threads <= 3, `OMP_NUM_THREADS=3 gave ${three.threads}`);
});

test('setNumThreads refuses a count below 1 with a RangeError, and keeps the old count', () => {
  const before = torch.getNumThreads();
  assert.throws(() => torch.setNumThreads(0), RangeError);
  assert.throws(() => torch.setNumThreads(1.5), RangeError);
  assert.equal(torch.getNumThreads(), before);
});

test('OpenBLAS is one threading layer: an OpenMP build follows ATen (back up after 1), a pthreads build stays at 1', (t) => {
  const info = torch.blasInfo();
  if (info.library !== 'openblas') return t.skip(`libtorch's BLAS is not OpenBLAS here`);
  const before = torch.getNumThreads();
  try {
    for (const n of [2, 1, 3, 2]) {
      torch.setNumThreads(n);
      assert.equal(torch.getNumThreads(), n);
      const b = torch.blasInfo();
      assert.equal(b.library, 'openblas');
      if (b.library === 'openblas') assert.equal(b.threads, b.threading === 'openmp' ? n : 1, `${b.threading} OpenBLAS after setNumThreads(${n})`);
    }
    // A matrix product is the same at 1 and 3 threads up to summation order (float32, k = 256: a few ulps of the sum).
    const g = new torch.Generator(0, 'cpu');
    const a = torch.randn([64, 256], { generator: g });
    const w = torch.randn([256, 64], { generator: g });
    torch.setNumThreads(1);
    const one = a.matmul(w);
    torch.setNumThreads(3);
    const three = a.matmul(w);
    const err = torch.tidy(() => one.sub(three).abs().max().item());
    assert.ok(err <= 256 * 16 * 2 ** -24 * 4, `|1 thread - 3 threads| = ${err}`);
    for (const x of [a, w, one, three]) x.dispose();
  } finally {
    torch.setNumThreads(before);
  }
});

test('OPENBLAS_NUM_THREADS set by the user is left to a pthreads OpenBLAS (sppo would set 1)', (t) => {
  const info = torch.blasInfo();
  // An OpenMP OpenBLAS follows OpenMP's count by itself; only the pthreads build has a count of its own.
  if (info.library !== 'openblas' || info.threading !== 'pthreads') return t.skip('needs a pthreads OpenBLAS');
  const r = fresh({ OPENBLAS_NUM_THREADS: '2', OMP_NUM_THREADS: '2' });
  assert.equal(r.threads, 2);
  assert.ok(r.blas.library === 'openblas' && r.blas.threads === 2, JSON.stringify(r.blas));
  const own = fresh({ OMP_NUM_THREADS: '2' }).blas;
  assert.ok(own.library === 'openblas' && own.threads === 1, `without it sppo keeps OpenBLAS at 1: ${JSON.stringify(own)}`);
});

test("the system libtorch runs on Debian's OpenMP OpenBLAS where it is installed (scripts/setup.mjs links it first)", (t) => {
  const triplet = `${os.arch() === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
  const openmp = `/usr/lib/${triplet}/openblas-openmp/libblas.so.3`;
  // The build this process loaded (the same rule as src/torch/native.ts: native/addon_path.cjs).
  const rule = createRequire(import.meta.url)(join(projectRoot, 'native', 'addon_path.cjs')) as { addonPath(root: string): { dir: string } };
  const built = join(rule.addonPath(projectRoot).dir, 'libtorch.json');
  const source = existsSync(built) ? (JSON.parse(readFileSync(built, 'utf8')) as { source?: string }).source : undefined;
  if (source !== 'system' || process.env.SPPO_NATIVE || process.env.SPPO_SYSTEM_BLAS === '1') return t.skip('not the system libtorch');
  if (/blas/.test(process.env.LD_LIBRARY_PATH ?? '')) return t.skip('LD_LIBRARY_PATH chooses the BLAS');
  if (!existsSync(openmp)) return t.skip(`${openmp} is not installed`);
  const b = fresh({}).blas;
  assert.ok(b.library === 'openblas' && b.threading === 'openmp', JSON.stringify(b));
  assert.ok(b.library === 'openblas' && b.threads === torch.physicalCores(), `OpenBLAS starts with ATen's count: ${JSON.stringify(b)}`);
});
