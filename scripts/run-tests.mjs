// Runs the compiled tests with Node's built-in test runner.
//   npm test                       all of them
//   npm test -- game tensor        the files whose names contain one of the words
//   npm test -- --kernels [words]  the numerics-sensitive files again under ATen's other CPU kernels:
//                                  ATEN_CPU_CAPABILITY=default, and avx2 where the CPU has AVX-512 (CI runs
//                                  this after the whole suite, so every machine also checks the kernels
//                                  another CPU would pick; OpenBLAS picks its own by CPU and is left alone)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

// Test files whose results depend on floating-point kernels (everything but I/O, CLI and packaging).
const NUMERIC = ['torch_', 'models', 'conformance', 'generate', 'trainer', 'losses', 'sft', 'judge', 'general_preference', 'winrates', 'pairs', 'eval_', 'loop'];

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

function select(words) {
  const files = walk('dist/test').sort().filter((f) => words.length === 0 || words.some((w) => f.includes(w)));
  if (files.length === 0) {
    console.error(`no test files match ${words.join(' ')}`);
    process.exit(1);
  }
  return files;
}

function run(files, env = process.env) {
  return spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit', env }).status ?? 1;
}

const args = process.argv.slice(2);
if (args[0] !== '--kernels') process.exit(run(select(args)));

const files = select(args.length > 1 ? args.slice(1) : NUMERIC);
const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? [];
const capabilities = ['default', ...(flags.includes('avx512f') ? ['avx2'] : [])];
let status = 0;
for (const cap of capabilities) {
  console.log(`\n# ATEN_CPU_CAPABILITY=${cap}: ${files.length} test files`);
  const s = run(files, { ...process.env, ATEN_CPU_CAPABILITY: cap });
  if (s !== 0) console.log(`# ATEN_CPU_CAPABILITY=${cap}: failed (exit ${s})`);
  status ||= s;
}
process.exit(status);
