// Resuming `sppo run` after SIGKILL: a run killed in the middle of generation, of judging, of training and of
// the evaluation's generation, then rerun, ends with the same bytes in every artifact as an uninterrupted run
// with the same seed, on the same machine with the same thread count (every process here inherits this one's
// environment): what the loop promises for a resumed run there (docs/sppo-loop.md; across thread counts, ranks or
// CPUs the floats are equal to rounding instead, test/run_distributed.test.ts). Only timings.jsonl (a log of stage
// durations) is left out of the comparison.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const model = join(fixtureRoot, 'llama');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no llama fixture at ${model}`;

const JUDGE = `export const name = 'likes-token';
export const positionBiased = true;
const count = (s, t) => s.split(t).length - 1;
export default function ({ a, b }) {
  return 1 / (1 + Math.exp(-(count(a, 'an') - count(b, 'an')) - 0.1 * (a.length - b.length) / 16));
}
`;

function config(runDir: string): string {
  return [
    `model: ${JSON.stringify(model)}`,
    'prompts: prompts.jsonl',
    `runDir: ${runDir}`,
    'judge: { kind: module, path: judge.mjs }',
    'iterations: 2',
    'seed: 5',
    'device: cpu',
    'promptsPerIteration: 12',
    'judgeChunk: 4',
    'generation: { k: 4, temperature: 1, topP: 1, maxNewTokens: 12, batchSize: 4 }',
    'training: { loss: sppo, beta: 0.1, lr: 0.003, optimizer: adamw, epochs: 2, batchSize: 4, maxLength: 64, maxPromptLength: 48, warmupRatio: 0.1 }',
    'eval: { count: 8, batchSize: 4 }',
  ].join('\n') + '\n';
}

function runCli(cwd: string, cfg: string, killAt = ''): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'run', cfg], { cwd, encoding: 'utf8', env: { ...process.env, SPPO_TEST_KILL_AT: killAt } });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name !== 'timings.jsonl') out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

test('a run killed (SIGKILL) during generation, judging, training and evaluation resumes to identical artifacts', { skip }, () => {
  const dir = tempDir('resume');
  try {
    writeFileSync(join(dir, 'judge.mjs'), JUDGE);
    writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `Prompt ${i}: tell me about ${['tea', 'maps', 'wind', 'glass'][i % 4]}` })).join('\n') + '\n');
    writeFileSync(join(dir, 'a.yaml'), config('run-a'));
    writeFileSync(join(dir, 'b.yaml'), config('run-b'));

    const a = runCli(dir, 'a.yaml');
    assert.equal(a.status, 0, a.stderr);
    const b = join(dir, 'run-b');

    // Killed after 2 of the 3 generation chunks of iteration 1.
    let r = runCli(dir, 'b.yaml', '1:generate:2');
    assert.equal(r.signal, 'SIGKILL', `expected the kill, got status ${r.status}: ${r.stderr}`);
    assert.deepEqual(readdirSync(join(b, 'iter-1/partial/generate')).sort(), ['00000.jsonl', '00001.jsonl']);
    assert.ok(!existsSync(join(b, 'iter-1/generations.jsonl')));

    // Killed after the first judging chunk.
    r = runCli(dir, 'b.yaml', '1:judge:1');
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    assert.ok(existsSync(join(b, 'iter-1/generations.jsonl')));
    assert.ok(!existsSync(join(b, 'iter-1/partial/generate')), 'generation chunks dropped once the stage is done');
    assert.deepEqual(readdirSync(join(b, 'iter-1/partial/judge')), ['00000.jsonl']);
    assert.ok(!existsSync(join(b, 'iter-1/preferences.jsonl')));

    // Killed at the 2nd optimizer step of iteration 1.
    r = runCli(dir, 'b.yaml', '1:train:2');
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    assert.ok(existsSync(join(b, 'iter-1/preferences.jsonl')) && existsSync(join(b, 'iter-1/pairs.jsonl')));
    assert.ok(!existsSync(join(b, 'iter-1/checkpoint')) && !existsSync(join(b, 'iter-1/train-metrics.jsonl')));

    // Killed in the middle of iteration 2's evaluation responses.
    r = runCli(dir, 'b.yaml', '2:eval-generate:1');
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    assert.ok(existsSync(join(b, 'iter-2/checkpoint/model.safetensors')));
    assert.ok(!existsSync(join(b, 'iter-2/eval-responses.jsonl')));

    r = runCli(dir, 'b.yaml');
    assert.equal(r.status, 0, r.stderr);

    const fa = files(join(dir, 'run-a'));
    const fb = files(b);
    assert.deepEqual([...fb.keys()], [...fa.keys()]);
    for (const [name, buf] of fa) assert.ok(buf.equals(fb.get(name)!), `${name} differs between the uninterrupted and the resumed run`);
    for (const must of ['run.json', 'splits.json', 'summary.json', 'iter-0/eval-responses.jsonl', 'iter-2/checkpoint/model.safetensors', 'iter-2/train-metrics.jsonl', 'iter-2/eval.json']) {
      assert.ok(fa.has(must), must);
    }
    assert.ok(![...fa.keys()].some((k) => /\.tmp-\d+|partial|run\.lock/.test(k)), 'no leftovers');

    // A finished run reruns as a no-op.
    r = runCli(dir, 'b.yaml');
    assert.equal(r.status, 0, r.stderr);
    const again = files(b);
    for (const [name, buf] of fa) assert.ok(buf.equals(again.get(name)!), name);
  } finally {
    removeDir(dir);
  }
});
