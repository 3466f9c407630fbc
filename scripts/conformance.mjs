// Runs the conformance tests (every model folder of $SPPO_HF_FIXTURES, default ../shared/fixtures/hf-tiny,
// in transformers 5 and 4 layouts; the real tokenizers and templates of test/text_real.test.ts) against the compiled
// build: `npm run conformance`.
// `npm run conformance -- --check-fixtures` first recomputes test/fixtures/text-conformance/ with transformers
// ($SPPO_TRANSFORMERS_PYTHON, else .venv/transformers-5.17/bin/python) and fails when they differ from the committed
// ones; without that python it says so in one line and goes on. With --if-available it first makes that venv
// (python3 -m venv, pip install transformers==5.17.0 tokenizers jinja2 from the configured index or wheelhouse), and says
// in one line when it cannot; --fixtures-only stops after the check (CI's step).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { pythonVenv } from './venv.mjs';

if (process.argv.includes('--check-fixtures')) {
  let python = process.env.SPPO_TRANSFORMERS_PYTHON ?? '.venv/transformers-5.17/bin/python';
  let why;
  if (!process.env.SPPO_TRANSFORMERS_PYTHON && process.argv.includes('--if-available')) {
    python = pythonVenv('transformers-5.17', [['transformers==5.17.0', 'tokenizers', 'jinja2']], { fail: (w) => (why = w) }) ?? python;
  }
  if (!existsSync(python)) {
    console.log(`text fixtures not recomputed: ${why ?? `no ${python} (python3 -m venv it, pip install transformers==5.17.0 tokenizers jinja2; or set SPPO_TRANSFORMERS_PYTHON)`}`);
  } else {
    const tmp = mkdtempSync(join(tmpdir(), 'sppo-text-fixtures-'));
    try {
      const models = join(tmp, 'models');
      const out = join(tmp, 'out');
      for (const [cmd, args] of [[process.execPath, ['scripts/text-conformance-models.mjs', models]], [python, ['scripts/text-conformance-fixtures.py', models, '../shared/data', out]]]) {
        const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
        if (r.status !== 0) process.exit(r.status ?? 1);
      }
      const committed = 'test/fixtures/text-conformance';
      const differ = readdirSync(out).filter((f) => !existsSync(join(committed, f)) || readFileSync(join(out, f), 'utf8') !== readFileSync(join(committed, f), 'utf8'));
      if (differ.length > 0) {
        console.error(`text fixtures recomputed by transformers differ from ${committed}: ${differ.join(', ')}`);
        process.exit(1);
      }
      console.log(`text fixtures: ${readdirSync(out).length} files recomputed by transformers, equal to ${committed}`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}

if (process.argv.includes('--fixtures-only')) process.exit(0);

const dir = 'dist/test';
const files = existsSync(dir) ? readdirSync(dir).filter((f) => /^(conformance.*|text_real)\.test\.js$/.test(f)).map((f) => join(dir, f)).sort() : [];
if (files.length === 0) {
  console.error(`no conformance tests in ${dir}: build first (node scripts/setup.mjs)`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
