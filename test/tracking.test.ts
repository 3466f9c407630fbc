// Experiment tracking (src/sppo/tracking.ts, src/util/tensorboard.ts): TensorBoard event files, read back here with
// the same record format (TensorBoard's own reader checks them in scripts/python-interop.mjs tensorboard), and an
// `sppo run` with report: [tensorboard] killed in iteration 2's training and resumed: every metric of the run's
// files is in the event files at its step, once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventWriter, eventFiles, readEventFile, type ScalarEvent } from '../src/util/tensorboard.js';
import { sppoCli } from './helpers/cli.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const model = join(fixtureRoot, 'llama');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no llama fixture at ${model}`;

function allEvents(dir: string): ScalarEvent[] {
  return eventFiles(dir).flatMap(readEventFile);
}

test('event files: scalars written and read back; a reopened folder skips steps already written; a torn record ends the file', () => {
  const dir = tempDir('tb');
  try {
    const w = new EventWriter(dir);
    assert.equal(w.scalars(1, { 'a/x': 0.5, 'a/y': -2, 'a/nan': NaN, 'a/none': null }), 2);
    assert.equal(w.scalars(2, { 'a/x': 0.25 }), 1);
    assert.equal(w.scalars(2, { 'a/x': 9 }), 0, 'a step already written is not written again');
    const w2 = new EventWriter(dir);
    assert.equal(w2.lastStep('a/x'), 2);
    assert.equal(w2.scalars(2, { 'a/x': 7, 'a/y': 3 }), 1, 'a/y has only step 1');
    w2.scalars(3, { 'a/x': 1e-7 });
    const ev = allEvents(dir);
    assert.deepEqual(ev.map((e) => [e.tag, e.step, e.value]), [['a/x', 1, 0.5], ['a/y', 1, -2], ['a/x', 2, 0.25], ['a/y', 2, 3], ['a/x', 3, Math.fround(1e-7)]]);
    assert.ok(ev.every((e) => Math.abs(e.wallTime - Date.now() / 1000) < 60));
    // A torn last record (a killed writer) and a flipped byte: reading stops at the first bad record.
    appendFileSync(w2.path, Buffer.from([1, 2, 3]));
    assert.equal(readEventFile(w2.path).length, 2);
    const b = readFileSync(w2.path);
    b[b.length - 10] ^= 0xff;
    writeFileSync(w2.path, b);
    assert.equal(readEventFile(w2.path).length, 1);
  } finally {
    removeDir(dir);
  }
});

const JUDGE = `export const name = 'likes-a';
export const positionBiased = false;
const count = (s) => s.split('a').length - 1;
export default function ({ a, b }) { return 1 / (1 + Math.exp(-(count(a) - count(b)))); }
`;

test('sppo run with report: [tensorboard], killed in iteration 2\'s training and resumed: every metric once, at its step', { skip, timeout: 300_000 }, () => {
  const dir = tempDir('tb-run');
  try {
    writeFileSync(join(dir, 'judge.mjs'), JUDGE);
    writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 20 }, (_, i) => JSON.stringify({ id: `q${i}`, prompt: `Say ${i} things about cats.` })).join('\n') + '\n');
    writeFileSync(join(dir, 'sppo.yaml'), [
      `model: ${JSON.stringify(model)}`, 'prompts: prompts.jsonl', 'runDir: run', 'judge: { kind: module, path: judge.mjs }', 'iterations: 2', 'seed: 1', 'device: cpu',
      'promptsPerIteration: 8', 'generation: { k: 2, temperature: 1, topP: 1, maxNewTokens: 8, batchSize: 8 }',
      'training: { beta: 0.1, lr: 0.001, optimizer: adamw, batchSize: 2, maxLength: 48, maxPromptLength: 32, warmupRatio: 0 }', 'eval: { count: 4 }',
    ].join('\n') + '\n');
    const killed = sppoCli(['run', 'sppo.yaml', '--report-to', 'tensorboard'], { cwd: dir, env: { SPPO_TEST_KILL_AT: '2:train:2' } });
    assert.equal(killed.status, null, `killed: ${killed.stderr}`);
    const tb = join(dir, 'run', 'tensorboard');
    const before = allEvents(tb);
    assert.ok(before.some((e) => e.tag === 'eval/winRate' && e.step === 1), 'iteration 1 evaluated before the kill');
    const r = sppoCli(['run', 'sppo.yaml', '--report-to', 'tensorboard'], { cwd: dir, env: { SPPO_TEST_KILL_AT: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /TensorBoard event files in .*run\/tensorboard/);
    assert.equal(eventFiles(tb).length, 2, 'one event file per process');

    const ev = allEvents(tb);
    const byTag = new Map<string, ScalarEvent[]>();
    for (const e of ev) byTag.set(e.tag, [...(byTag.get(e.tag) ?? []), e]);
    for (const [tag, es] of byTag) {
      const steps = es.map((e) => e.step);
      assert.deepEqual(steps, [...new Set(steps)].sort((a, b) => a - b), `${tag}: steps increase, no duplicate: ${steps}`);
    }
    // Training: one curve over both iterations, each step's metrics as train-metrics.jsonl has them.
    const m1 = readFileSync(join(dir, 'run/iter-1/train-metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const m2 = readFileSync(join(dir, 'run/iter-2/train-metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const steps = [...m1, ...m2];
    assert.ok(m1.length >= 2 && m2.length >= 2);
    for (const k of ['loss', 'a_w', 'a_l', 'margin', 'pair_accuracy', 'grad_norm', 'lr']) {
      const got = byTag.get(`train/${k}`)!;
      assert.deepEqual(got.map((e) => e.step), steps.map((_, i) => i + 1), `train/${k} steps`);
      got.forEach((e, i) => assert.equal(e.value, Math.fround(steps[i][k]), `train/${k} at step ${i + 1}`));
    }
    assert.ok(byTag.get('train/tokens_per_s')!.length >= m1.length, 'tokens/s from the live steps');
    // Per iteration: the evaluation, generation, pairs, stage times.
    for (const t of [1, 2]) {
      const evalJson = JSON.parse(readFileSync(join(dir, `run/iter-${t}/eval.json`), 'utf8'));
      for (const k of ['winRate', 'standardError', 'nWins', 'nLosses', 'nTies', 'avgLength', 'avgReferenceLength', 'n']) {
        if (typeof evalJson[k] !== 'number') continue;
        assert.equal(byTag.get(`eval/${k}`)!.find((e) => e.step === t)!.value, Math.fround(evalJson[k]), `eval/${k} at ${t}`);
      }
      for (const tag of ['generation/mean_response_tokens', 'generation/prompts', 'pairs/count', 'time/generate_s', 'time/judge_s', 'time/train_s', 'time/eval_s', 'time/generate_tokens']) {
        assert.ok(byTag.get(tag)?.some((e) => e.step === t), `${tag} at iteration ${t}`);
      }
    }
    assert.equal(byTag.get('pairs/count')!.find((e) => e.step === 1)!.value, readFileSync(join(dir, 'run/iter-1/pairs.jsonl'), 'utf8').trim().split('\n').length);
  } finally {
    removeDir(dir);
  }
});

test('sppo train --report-to tensorboard: each step\'s metrics in a run folder of its own under OUT/runs (or --logging-dir), as --metrics has them, with TRL\'s names beside; a second run is a second run', { skip }, () => {
  const dir = tempDir('tb-train');
  try {
    const pairs = join(dir, 'pairs.jsonl');
    writeFileSync(pairs, [
      { prompt: 'Q: 2+2?', chosen: ' 4.', rejected: ' five', chosen_win_rate: 0.8, rejected_win_rate: 0.2 },
      { prompt: 'Sky?', chosen: ' blue', rejected: ' green', chosen_win_rate: 0.7, rejected_win_rate: 0.3 },
      { prompt: 'Say hi.', chosen: ' Hi!', rejected: ' No.', chosen_win_rate: 0.6, rejected_win_rate: 0.4 },
      { prompt: 'Count: 1 2', chosen: ' 3', rejected: ' 9', chosen_win_rate: 0.9, rejected_win_rate: 0.1 },
    ].map((l) => JSON.stringify(l)).join('\n') + '\n');
    const base = ['train', '--model', model, '--pairs', pairs, '--beta', '0.1', '--lr', '1e-4', '--epochs', '2', '--batch-size', '2', '--device', 'cpu'];
    const r = sppoCli([...base, '--out', join(dir, 'out'), '--metrics', join(dir, 'm.jsonl'), '--report-to', 'tensorboard,wandb']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /wandb sync --sync-tensorboard .*out\/runs\/[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_/);
    const m = readFileSync(join(dir, 'm.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const runs = (): string[] => readdirSync(join(dir, 'out', 'runs')).sort();
    assert.equal(runs().length, 1);
    const events = allEvents(join(dir, 'out', 'runs', runs()[0]!));
    const loss = events.filter((e) => e.tag === 'train/loss');
    assert.deepEqual(loss.map((e) => [e.step, e.value]), m.map((x) => [x.step, Math.fround(x.loss)]));
    // TRL's names: rewards = beta times the log-ratios, accuracies, learning_rate.
    const tag = (t: string): number[] => events.filter((e) => e.tag === t).map((e) => e.value);
    assert.deepEqual(tag('train/rewards/chosen'), m.map((x) => Math.fround(0.1 * x.a_w)));
    assert.deepEqual(tag('train/rewards/margins'), m.map((x) => Math.fround(0.1 * x.margin)));
    assert.deepEqual(tag('train/rewards/accuracies'), m.map((x) => Math.fround(x.pair_accuracy)));
    assert.deepEqual(tag('train/learning_rate'), m.map((x) => Math.fround(x.lr)));
    // The same OUT again (another setting): a second run folder with all its steps, the first left as it was.
    const again = sppoCli([...base, '--lr', '2e-4', '--out', join(dir, 'out'), '--report-to', 'tensorboard']);
    assert.equal(again.status, 0, again.stderr);
    const after = runs();
    assert.equal(after.length, 2, `two run folders: ${after}`);
    for (const d of after) assert.equal(allEvents(join(dir, 'out', 'runs', d)).filter((e) => e.tag === 'train/loss').length, m.length, d);
    const r2 = sppoCli([...base, '--out', join(dir, 'out2'), '--report-to', 'tensorboard', '--logging-dir', join(dir, 'logs')]);
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal(allEvents(join(dir, 'logs')).filter((e) => e.tag === 'train/margin').length, m.length);
    const bad = sppoCli([...base, '--out', join(dir, 'out3'), '--report-to', 'mlflow']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--report-to must be tensorboard, wandb or none, got 'mlflow'/);
  } finally {
    removeDir(dir);
  }
});
