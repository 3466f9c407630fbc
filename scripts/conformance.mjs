// Runs the conformance tests (every model folder of $SPPO_HF_FIXTURES, default ../shared/fixtures/hf-tiny,
// in transformers 5 and 4 layouts) against the compiled build: `npm run conformance`.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const dir = 'dist/test';
const files = existsSync(dir) ? readdirSync(dir).filter((f) => /^conformance.*\.test\.js$/.test(f)).map((f) => join(dir, f)).sort() : [];
if (files.length === 0) {
  console.error(`no conformance tests in ${dir}: build first (node scripts/setup.mjs)`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
