// The run configuration: defaults, JSON and YAML files, errors naming the field, paths relative to the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfigFile, parseConfig, refLogprobSource } from '../src/sppo/config.js';
import { removeDir, tempDir } from './text_helpers.js';

const minimal = { model: '/m', prompts: '/p.jsonl', runDir: '/r', judge: { kind: 'module', path: '/j.mjs' } };

function fails(input: unknown, field: RegExp, fieldName: string): void {
  assert.throws(
    () => parseConfig(input),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, field);
      assert.ok(e.fields.includes(fieldName), `fields ${JSON.stringify(e.fields)} should include ${fieldName}`);
      return true;
    },
  );
}

test('defaults: the paper-scale settings (K = 5, RMSprop, lr 5e-7, beta 1e-3, 3 iterations)', () => {
  const c = parseConfig(minimal);
  assert.equal(c.iterations, 3);
  assert.equal(c.seed, 0);
  assert.deepEqual(c.generation, { k: 5, temperature: 0.7, topP: 0.9, topK: 0, maxNewTokens: 1024, minNewTokens: 0, stop: [], batchSize: 8, graph: 'auto' });
  assert.equal(c.training.loss, 'sppo');
  assert.equal(c.training.beta, 0.001);
  assert.equal(c.training.lr, 5e-7);
  assert.equal(c.training.optimizer, 'rmsprop');
  assert.equal(c.training.warmupRatio, 0.1);
  assert.equal(c.eval.count, 100);
  assert.equal(c.judgeChunk, 16);
  assert.equal(c.refLogprobs, undefined);
  assert.equal(refLogprobSource(c, 'float32'), 'generation');
  assert.equal(refLogprobSource(c, 'bfloat16'), 'recompute');
  assert.equal(refLogprobSource({ ...c, refLogprobs: 'recompute' }, 'float32'), 'recompute');
});

test('errors name the field: unknown fields (top level and nested), wrong types, ranges, judge kinds', () => {
  fails({ ...minimal, learningRate: 1 }, /learningRate: unknown field/, 'learningRate');
  fails({ ...minimal, training: { lr: 1e-6, betta: 0.1 } }, /training\.betta: unknown field/, 'training.betta');
  fails({ ...minimal, generation: { k: 1 } }, /generation\.k: .*>=2/, 'generation.k');
  fails({ ...minimal, generation: { graph: 'always' } }, /generation\.graph/, 'generation.graph');
  fails({ ...minimal, training: { loss: 'kto' } }, /training\.loss: /, 'training.loss');
  fails({ ...minimal, iterations: 'two' }, /iterations: .*expected number/, 'iterations');
  fails({ ...minimal, judge: { kind: 'oracle', path: 'x' } }, /judge\.kind: .*'module' \| 'reward-model' \| 'pairwise'/, 'judge.kind');
  fails({ ...minimal, judge: { kind: 'module', path: 'x', dir: 'y' } }, /judge\.dir: unknown field/, 'judge.dir');
  fails({ ...minimal, device: 'tpu' }, /device: expected cpu, cuda or cuda:N/, 'device');
  fails({ ...minimal, refLogprobs: 'exact' }, /refLogprobs: /, 'refLogprobs');
  fails({ ...minimal, pairs: 'all' }, /pairs: .*"best-worst"\|"ranked"/, 'pairs');
  assert.equal(parseConfig(minimal).pairs, undefined, 'pairs: absent (best-worst) unless given');
  assert.equal(parseConfig({ ...minimal, pairs: 'ranked' }).pairs, 'ranked');
  const { model: _m, ...noModel } = minimal;
  fails(noModel, /model: /, 'model');
  fails({ ...minimal, generation: { maxNewTokens: 600 }, training: { maxLength: 1024, maxPromptLength: 512 } }, /training\.maxLength: must be at least/, 'training.maxLength');
});

test('JSON and YAML files; relative paths resolve against the file; bad files are named', () => {
  const dir = tempDir('config');
  try {
    const yaml = join(dir, 'run.yaml');
    writeFileSync(yaml, ['model: models/pi0', 'prompts: data/p.parquet', 'runDir: runs/a', 'judge: {kind: module, path: ./judge.mjs, options: {token: x}}', 'evalJudge: {kind: reward-model, dir: rm, batchSize: 4}', 'training: {loss: ipo, beta: 0.1}', 'eval: {prompts: data/eval.jsonl, count: 5}'].join('\n'));
    // A relative model folder that exists resolves against the file; one that does not is a Hub name (org/name),
    // kept as it is for src/hub to resolve, as transformers' from_pretrained reads its argument.
    assert.equal(loadConfigFile(yaml).model, 'models/pi0');
    mkdirSync(join(dir, 'models/pi0'), { recursive: true });
    mkdirSync(join(dir, 'rm'));
    const c = loadConfigFile(yaml);
    assert.equal(c.model, join(dir, 'models/pi0'));
    assert.equal(c.prompts, join(dir, 'data/p.parquet'));
    assert.equal(c.runDir, join(dir, 'runs/a'));
    assert.deepEqual(c.judge, { kind: 'module', path: join(dir, 'judge.mjs'), options: { token: 'x' } });
    assert.deepEqual(c.evalJudge, { kind: 'reward-model', dir: join(dir, 'rm'), batchSize: 4 });
    assert.equal(c.eval.prompts, join(dir, 'data/eval.jsonl'));
    assert.equal(c.training.loss, 'ipo');
    assert.equal(c.training.lr, 5e-7);

    const json = join(dir, 'run.json');
    writeFileSync(json, JSON.stringify({ ...minimal, generation: { k: 3, temprature: 1 } }));
    assert.throws(() => loadConfigFile(json), (e: Error) => e instanceof ConfigError && e.message.includes(json) && /generation\.temprature: unknown field/.test(e.message));
    writeFileSync(json, '{"model": ');
    assert.throws(() => loadConfigFile(json), /run\.json: not valid JSON/);
    writeFileSync(yaml, '- a\n- b\n');
    assert.throws(() => loadConfigFile(yaml), /run\.yaml: expected a mapping/);
    assert.throws(() => loadConfigFile(join(dir, 'nope.yaml')), /nope\.yaml: no such config file/);
  } finally {
    removeDir(dir);
  }
});

test('label smoothing is for dpo only: rejected at parse time, naming the field, before a run generates anything', async () => {
  fails({ ...minimal, training: { loss: 'sppo', labelSmoothing: 0.1 } }, /training\.labelSmoothing: applies to loss dpo only/, 'training.labelSmoothing');
  fails({ ...minimal, training: { loss: 'ipo', labelSmoothing: 0.2 } }, /training\.labelSmoothing/, 'training.labelSmoothing');
  // [0, 0.5): at 0.5 the cDPO target says nothing.
  fails({ ...minimal, training: { loss: 'dpo', labelSmoothing: 0.5 } }, /training\.labelSmoothing/, 'training.labelSmoothing');
  assert.equal(parseConfig({ ...minimal, training: { loss: 'dpo', labelSmoothing: 0.1 } }).training.labelSmoothing, 0.1);
  assert.equal(parseConfig({ ...minimal, training: { loss: 'sppo', labelSmoothing: 0 } }).training.labelSmoothing, 0);
  // runSppo fails with the configuration error before it opens the run directory (no generation, no judge).
  const { runSppo } = await import('../src/sppo/loop.js');
  const dir = tempDir('sppo-config-');
  try {
    const runDir = join(dir, 'run');
    await assert.rejects(
      runSppo({ ...minimal, judge: { kind: 'module', path: '/j.mjs' }, runDir, training: { loss: 'sppo', labelSmoothing: 0.1 } }, { log: () => {} }),
      (e: unknown) => e instanceof ConfigError && e.fields.includes('training.labelSmoothing'),
    );
    assert.equal(existsSync(runDir), false, 'the run directory was created');
  } finally {
    removeDir(dir);
  }
});

test('training.lora: defaults (dropout 0, all-linear, no rsLoRA), off when absent; errors name the field', () => {
  assert.equal(parseConfig(minimal).training.lora, undefined);
  const c = parseConfig({ ...minimal, training: { lora: { r: 16, alpha: 32 } } });
  assert.deepEqual(c.training.lora, { r: 16, alpha: 32, dropout: 0, targetModules: 'all-linear', rslora: false });
  const d = parseConfig({ ...minimal, training: { lora: { r: 8, alpha: 8, dropout: 0.05, targetModules: ['q_proj', 'v_proj'], rslora: true } } });
  assert.deepEqual(d.training.lora?.targetModules, ['q_proj', 'v_proj']);
  fails({ ...minimal, training: { lora: { alpha: 16 } } }, /training\.lora\.r: /, 'training.lora.r');
  fails({ ...minimal, training: { lora: { r: 0, alpha: 16 } } }, /training\.lora\.r: .*>=1/, 'training.lora.r');
  fails({ ...minimal, training: { lora: { r: 4, alpha: 16, dropout: 1 } } }, /training\.lora\.dropout: /, 'training.lora.dropout');
  fails({ ...minimal, training: { lora: { r: 4, alpha: 16, targetModules: [] } } }, /training\.lora\.targetModules: /, 'training.lora.targetModules');
  fails({ ...minimal, training: { lora: { r: 4, alpha: 16, rank: 3 } } }, /training\.lora\.rank: unknown field/, 'training.lora.rank');
});
