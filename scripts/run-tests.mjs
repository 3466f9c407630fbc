// Runs the compiled tests with Node's built-in test runner.
// `npm test` runs them all; `npm test -- game tensor` runs the files whose names contain a word.
// `node scripts/run-tests.mjs --kernels` (`npm run test:kernels`) runs the floating-point test files again
// under ATen's other CPU kernels: ATEN_CPU_CAPABILITY=default, and =avx2 when this CPU has AVX-512 (so the
// AVX2 kernels of an AVX2-only machine are exercised too). Words narrow the files as above.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// The test files whose results depend on floating-point kernels.
const NUMERIC = ['torch_ops', 'torch_autograd', 'torch_gradcheck', 'torch_optim', 'models', 'conformance', 'generate', 'trainer', 'losses', 'sft', 'judge', 'general_preference', 'loop', 'pairrm', 'lora', 'ddp', 'packing'];

function cpuFlags() {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    return new Set((line ?? '').split(':')[1]?.trim().split(/\s+/) ?? []);
  } catch {
    return new Set();
  }
}

function run(files, env) {
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status ?? 1;
}

const args = process.argv.slice(2);
const kernels = args.includes('--kernels');
const words = args.filter((a) => a !== '--kernels');
let files = walk('dist/test').sort().filter((f) => words.length === 0 || words.some((w) => f.includes(w)));
if (kernels) files = files.filter((f) => NUMERIC.some((w) => f.split('/').pop().startsWith(w)));
if (files.length === 0) {
  console.error(`no test files match ${words.join(' ')}`);
  process.exit(1);
}
if (!kernels) process.exit(run(files, {}));

const capabilities = ['default'];
if (cpuFlags().has('avx512f')) capabilities.push('avx2');
let failed = [];
for (const cap of capabilities) {
  console.log(`\n== ATEN_CPU_CAPABILITY=${cap}: ${files.length} files`);
  if (run(files, { ATEN_CPU_CAPABILITY: cap }) !== 0) failed.push(cap);
}
console.log(failed.length ? `\nfailed under ATEN_CPU_CAPABILITY=${failed.join(', ')}` : `\npassed under ATEN_CPU_CAPABILITY=${capabilities.join(', ')}`);
process.exit(failed.length ? 1 : 0);
