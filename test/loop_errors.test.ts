// Bad input to `sppo run`: a malformed prompts line, an unknown config field, a judge module that throws or
// answers outside [0, 1], a checkpoint with a missing tensor. Each stops the run with an error naming it, and
// the artifacts finished before are kept unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { runSppo } from '../src/sppo/loop.js';
import type { SppoConfigInput } from '../src/sppo/config.js';
import { SafetensorsFile, saveWeights } from '../src/torch/index.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const model = join(fixtureRoot, 'llama');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no llama fixture at ${model}`;

// options.mode: 'ok' (prefers longer responses), 'throw', or 'range' (answers 1.5).
const JUDGE = `export const name = 'test-judge';
export const positionBiased = false;
export default function ({ a, b }, options) {
  if (options?.mode === 'throw') throw new Error('the judge is broken (boom)');
  if (options?.mode === 'range') return 1.5;
  return a.length === b.length ? 0.5 : a.length > b.length ? 0.8 : 0.2;
}
`;

function configText(runDir: string, mode: string, extra = ''): string {
  return [
    `model: ${JSON.stringify(model)}`,
    'prompts: prompts.jsonl',
    `runDir: ${runDir}`,
    `judge: { kind: module, path: judge.mjs, options: { mode: ${mode} } }`,
    'iterations: 2',
    'seed: 1',
    'device: cpu',
    'promptsPerIteration: 8',
    'generation: { k: 3, temperature: 1, topP: 1, maxNewTokens: 8, batchSize: 4 }',
    'training: { beta: 0.1, lr: 0.001, optimizer: adamw, batchSize: 4, maxLength: 64, maxPromptLength: 48 }',
    'eval: { count: 4 }',
    extra,
  ].join('\n') + '\n';
}

function setup(prefix: string): string {
  const dir = tempDir(prefix);
  writeFileSync(join(dir, 'judge.mjs'), JUDGE);
  writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `Prompt number ${i}` })).join('\n') + '\n');
  return dir;
}

function snapshot(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name !== 'timings.jsonl' && name !== 'run.lock') out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

function assertKept(before: Map<string, Buffer>, dir: string): void {
  const after = snapshot(dir);
  for (const [name, buf] of before) {
    assert.ok(after.has(name), `${name} was removed`);
    assert.ok(buf.equals(after.get(name)!), `${name} was changed`);
  }
}

const quiet = { progress: false, log: () => {} };

test('an unknown config field stops `sppo run` with an error naming it, before touching the run directory', { skip }, () => {
  const dir = setup('err-config');
  try {
    writeFileSync(join(dir, 'bad.yaml'), configText('run', 'ok', 'trainng: { lr: 0.1 }'));
    const r = spawnSync(process.execPath, [cli, 'run', 'bad.yaml'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /bad\.yaml: invalid configuration/);
    assert.match(r.stderr, /trainng: unknown field/);
    assert.ok(!existsSync(join(dir, 'run')));
    // A wrong value names its nested field.
    writeFileSync(join(dir, 'bad.yaml'), configText('run', 'ok').replace('k: 3', 'k: "three"'));
    const r2 = spawnSync(process.execPath, [cli, 'run', 'bad.yaml'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /generation\.k: .*expected number/);
  } finally {
    removeDir(dir);
  }
});

for (const [mode, pattern] of [
  ['throw', /judge module .*judge\.mjs: the judge threw on query 0: the judge is broken \(boom\)/],
  ['range', /judge module .*judge\.mjs: query 0: returned 1\.5, expected a number in \[0, 1\]/],
] as const) {
  test(`a judge module that ${mode === 'throw' ? 'throws' : 'answers 1.5'} stops the run naming the judge and the prompt; generations are kept`, { skip }, async () => {
    const dir = setup(`err-judge-${mode}`);
    try {
      const cfg = parse(configText('run', mode)) as SppoConfigInput;
      await assert.rejects(runSppo(cfg, { baseDir: dir, ...quiet }), (e: Error) => {
        assert.match(e.message, pattern);
        assert.match(e.message, /iteration 1, prompt #\d+/);
        return true;
      });
      const run = join(dir, 'run');
      assert.ok(existsSync(join(run, 'iter-1/generations.jsonl')));
      assert.ok(existsSync(join(run, 'iter-0/eval-responses.jsonl')));
      assert.ok(!existsSync(join(run, 'iter-1/preferences.jsonl')));
      assert.ok(!existsSync(join(run, 'run.lock')), 'the lock is released on error');
      // With a working judge (given through the API's override), the run resumes from there.
      const before = snapshot(run);
      const fixed = { name: 'fixed', positionBiased: false, prefer: async (qs: { a: string; b: string }[]) => qs.map((q) => (q.a.length === q.b.length ? 0.5 : q.a.length > q.b.length ? 0.8 : 0.2)) };
      const res = await runSppo(cfg, { baseDir: dir, judge: fixed, ...quiet });
      assert.equal(res.iterations.length, 2);
      assertKept(new Map([...before].filter(([k]) => k.startsWith('iter-0') || k.endsWith('generations.jsonl'))), run);
    } finally {
      removeDir(dir);
    }
  });
}

test('a malformed prompts line and a checkpoint with a missing tensor stop the run naming them; finished artifacts are kept', { skip }, async () => {
  const dir = setup('err-resume');
  try {
    writeFileSync(join(dir, 'run.yaml'), configText('run', 'ok'));
    // Iteration 1 finishes; the run is killed after the first generation chunk of iteration 2.
    const r = spawnSync(process.execPath, [cli, 'run', 'run.yaml'], { cwd: dir, encoding: 'utf8', env: { ...process.env, SPPO_TEST_KILL_AT: '2:generate:1' } });
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    const run = join(dir, 'run');
    assert.ok(existsSync(join(run, 'iter-1/checkpoint/model.safetensors')));
    const cfg = parse(configText('run', 'ok')) as SppoConfigInput;

    // A malformed line in the prompts file.
    const prompts = readFileSync(join(dir, 'prompts.jsonl'), 'utf8');
    let before = snapshot(run);
    writeFileSync(join(dir, 'prompts.jsonl'), prompts.replace('{"prompt":"Prompt number 6"}', '{"prompt": "Prompt number 6"'));
    await assert.rejects(runSppo(cfg, { baseDir: dir, ...quiet }), /prompts\.jsonl:7: not valid JSON/);
    assertKept(before, run);
    writeFileSync(join(dir, 'prompts.jsonl'), prompts);

    // pi_1's folder loses a tensor: iteration 2 cannot load it.
    const ckpt = join(run, 'iter-1/checkpoint');
    const st = SafetensorsFile.open(join(ckpt, 'model.safetensors'));
    const all = new Map(st.names.map((n) => [n, st.load(n)] as const));
    all.delete('model.layers.1.mlp.up_proj.weight');
    saveWeights(ckpt, all);
    before = snapshot(run);
    await assert.rejects(runSppo(cfg, { baseDir: dir, ...quiet }), (e: Error) => {
      assert.match(e.message, /iteration 2 generate: cannot load the model .*iter-1\/checkpoint/);
      assert.match(e.message, /no tensor 'model\.layers\.1\.mlp\.up_proj\.weight'/);
      return true;
    });
    assertKept(before, run);
    assert.ok(existsSync(join(run, 'iter-2/partial/generate/00000.jsonl')), "iteration 2's finished chunk is kept");
    for (const f of ['generations.jsonl', 'preferences.jsonl', 'pairs.jsonl', 'train-metrics.jsonl', 'eval-responses.jsonl', 'eval.json']) assert.ok(existsSync(join(run, 'iter-1', f)), f);
  } finally {
    removeDir(dir);
  }
});

test('a model with learned positions (GPT-2): prompts that leave no room for maxNewTokens are skipped with the reason, and the run goes on', { skip: existsSync(join(fixtureRoot, 'gpt2', 'model.safetensors')) ? false : 'no gpt2 fixture' }, async () => {
  const dir = setup('err-gpt2-room');
  try {
    const gpt2 = join(fixtureRoot, 'gpt2');
    // Prompts from 5 to about 140 tokens: the model has 128 positions and generates 8 tokens, maxPromptLength is 200.
    writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `Prompt ${'word '.repeat(i * 2)}${i}` })).join('\n') + '\n');
    const cfg = parse(configText('run', 'ok').replace(JSON.stringify(model), JSON.stringify(gpt2)).replace('iterations: 2', 'iterations: 1')
      .replace('maxLength: 64, maxPromptLength: 48', 'maxLength: 256, maxPromptLength: 200')) as SppoConfigInput;
    const logs: string[] = [];
    const res = await runSppo(cfg, { baseDir: dir, log: (s) => logs.push(s), progress: false });
    assert.equal(res.iterations.length, 1);
    const lines = readFileSync(join(dir, 'run/iter-1/generations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt_ids: number[]; responses: unknown[]; skipped?: string });
    const room = 128 - 8;
    const fits = lines.filter((l) => l.prompt_ids.length <= room);
    const over = lines.filter((l) => l.prompt_ids.length > room);
    assert.ok(fits.length > 0 && over.length > 0, `prompt lengths ${lines.map((l) => l.prompt_ids.length)}`);
    for (const l of fits) assert.equal(l.responses.length, 3);
    for (const l of over) {
      assert.deepEqual(l.responses, []);
      assert.equal(l.skipped, `prompt has ${l.prompt_ids.length} tokens; with generation.maxNewTokens = 8 that passes the model's 128 positions (config.json n_positions)`);
    }
    assert.ok(logs.some((s) => /iteration 1 generate: \d+ prompt\(s\) skipped/.test(s)), logs.join('\n'));
  } finally {
    removeDir(dir);
  }
});
