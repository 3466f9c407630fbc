// `sppo demo --methods`: the last-iterate methods run through the demo with the same prompts, samples, judge and
// training budget as SPPO (shortened: 2 iterations of 8 prompts, the quick setting), each with its own settings and
// extra stages; the CLI's errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_LAST_ITERATE, demoJudgeSpec, lastIterateOf, methodTraining, QUICK_HYPER, DEMO_TRAINING, runDemo } from '../src/demo/run.js';
import { goldPreference } from '../src/demo/gold_judge.js';
import { loadModuleJudge } from '../src/judge/js_module_judge.js';
import { sppoFails } from './helpers/cli.js';
import { projectRoot } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';

const models = ['starter', 'proxy-judge'].map((d) => join(projectRoot, 'demo', d));
const skipModels = models.every((d) => existsSync(join(d, 'model.safetensors'))) ? false : `the demo's model folders are missing (${models.join(', ')})`;

test('methodTraining: tau = eta tau x beta and the magnet period per method; sppo unchanged', () => {
  const h = { lr: 1e-3, beta: 0.2 };
  assert.deepEqual(methodTraining('sppo', DEMO_TRAINING, h), { loss: 'sppo', ...DEMO_TRAINING, ...h });
  assert.equal(methodTraining('mpo', DEMO_TRAINING, h)!.tau, DEMO_LAST_ITERATE.mpo!.etaTau * 0.2);
  assert.equal(methodTraining('mpo', DEMO_TRAINING, h)!.magnetEvery, DEMO_LAST_ITERATE.mpo!.magnetEvery);
  assert.equal(methodTraining('nash-md', DEMO_TRAINING, h)!.tau, DEMO_LAST_ITERATE['nash-md']!.etaTau * 0.2);
  assert.equal(methodTraining('omwu', DEMO_TRAINING, h)!.tau, undefined);
});

test('lastIterateOf: an override replaces the default magnet for its method only; a method without a magnet refuses one', () => {
  const o = { 'nash-md': { etaTau: 0.5 } };
  assert.deepEqual(lastIterateOf('nash-md', o), { etaTau: 0.5 });
  assert.equal(methodTraining('nash-md', DEMO_TRAINING, { lr: 1e-3, beta: 0.2 }, lastIterateOf('nash-md', o))!.tau, 0.5 * 0.2);
  assert.deepEqual(lastIterateOf('mpo', o), DEMO_LAST_ITERATE.mpo);
  assert.equal(lastIterateOf('sppo', o), undefined);
  assert.throws(() => lastIterateOf('omwu', { omwu: { etaTau: 1 } }), /lastIterate\.omwu: omwu has no magnet settings/);
});

test('sppo demo --methods sppo,mpo,omwu,extragradient (shortened): same prompts and first samples, each method\'s stages and settings', { skip: skipModels, timeout: 600_000 }, async () => {
  const out = tempDir('demo-methods');
  try {
    const methods = ['sppo', 'mpo', 'omwu', 'extragradient'] as const;
    const r = await runDemo({ root: projectRoot, out, quick: true, fresh: true, progress: false, log: () => {}, methods: [...methods], iterations: 2, perIteration: 8, styleSamples: 2 });
    for (const m of methods) {
      assert.deepEqual(r.rows.filter((x) => x.method === m).map((x) => x.iteration), [0, 1, 2], m);
      for (const x of r.rows.filter((y) => y.method === m)) assert.ok(x.win_rate >= 0 && x.win_rate <= 1, `${m}: ${JSON.stringify(x)}`);
      const cfg = (JSON.parse(readFileSync(join(out, m, 'run.json'), 'utf8')) as { config: { training: Record<string, unknown> } }).config.training;
      assert.equal(cfg.loss, m);
      assert.equal(cfg.lr, QUICK_HYPER.lr);
      // The first iteration's samples are every method's (same prompts, seed and starter).
      assert.equal(readFileSync(join(out, m, 'iter-1/generations.jsonl'), 'utf8'), readFileSync(join(out, 'sppo/iter-1/generations.jsonl'), 'utf8'));
    }
    const mpo = (JSON.parse(readFileSync(join(out, 'mpo', 'run.json'), 'utf8')) as { config: { training: Record<string, number> } }).config.training;
    assert.ok(Math.abs(mpo.tau! - DEMO_LAST_ITERATE.mpo!.etaTau * QUICK_HYPER.beta) < 1e-15);
    assert.equal(mpo.magnetEvery, DEMO_LAST_ITERATE.mpo!.magnetEvery);
    assert.ok(existsSync(join(out, 'omwu/iter-2/prev-preferences.jsonl')) && !existsSync(join(out, 'omwu/iter-1/prev-preferences.jsonl')));
    for (const t of [1, 2]) assert.ok(existsSync(join(out, `extragradient/iter-${t}/lookahead-checkpoint/model.safetensors`)));
    // The report names every method, with its last-iterate settings.
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    for (const m of methods) assert.ok(html.includes(m), m);
    assert.ok(/eta tau 1, magnet every 2/.test(html), 'mpo settings in the report');
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { average_iterate: { rows: { method: string }[] } };
    assert.deepEqual([...new Set(summary.average_iterate.rows.map((x) => x.method))], [...methods]);
  } finally {
    removeDir(out);
  }
});

test('the gold judge as a judge module (sppo demo --judge gold) gives goldPreference, one query per pair', async () => {
  const spec = demoJudgeSpec('gold', 'unused');
  assert.equal(spec.kind, 'module');
  const j = await loadModuleJudge((spec as { path: string }).path);
  try {
    assert.equal(j.positionBiased, false);
    const answers = ['8', 'It is 8.', 'Answer: 8', '9', 'It is 9.', 'Answer: 9', '8.', 'Answer 8'];
    const qs = answers.flatMap((a) => answers.map((b) => ({ prompt: 'Add 3+5.', a, b })));
    const got = await j.prefer(qs);
    qs.forEach((q, i) => assert.equal(got[i], goldPreference(q.prompt, q.a, q.b), `${q.a} vs ${q.b}`));
    // Not a constant: correctness, the cycle and 'other' each move it.
    const distinct = new Set(got.map((p) => p.toFixed(3))).size;
    assert.ok(distinct > 5, `${distinct} distinct verdicts`);
  } finally {
    j.dispose?.();
  }
  assert.equal(demoJudgeSpec('proxy', '/x/proxy-judge').kind, 'pairwise');
});

test('sppo demo --judge gold (shortened): the loop\'s preference matrices are the gold judge\'s', { skip: skipModels, timeout: 300_000 }, async () => {
  const out = tempDir('demo-gold-judge');
  try {
    await runDemo({ root: projectRoot, out, quick: true, fresh: true, progress: false, log: () => {}, judge: 'gold', iterations: 1, perIteration: 8, styleSamples: 2 });
    const run = JSON.parse(readFileSync(join(out, 'sppo', 'run.json'), 'utf8')) as { config: { judge: { kind: string } } };
    assert.equal(run.config.judge.kind, 'module');
    const prompts = readFileSync(join(out, 'prompts.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { prompt: string }).prompt);
    const gens = new Map(readFileSync(join(out, 'sppo/iter-1/generations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; responses: { text: string }[] }).map((g) => [g.index, g]));
    const prefs = readFileSync(join(out, 'sppo/iter-1/preferences.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; matrix: number[][] });
    assert.equal(prefs.length, 8);
    for (const p of prefs) {
      const r = gens.get(p.index)!.responses.map((x) => x.text);
      p.matrix.forEach((row, i) => row.forEach((v, k) => { if (i !== k) assert.ok(Math.abs(v - goldPreference(prompts[p.index]!, r[i]!, r[k]!)) < 1e-12, `prompt ${p.index}, ${i} vs ${k}`); }));
    }
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { settings: { judge: string } };
    assert.equal(summary.settings.judge, 'gold');
    assert.ok(readFileSync(join(out, 'report.html'), 'utf8').includes('the gold judge itself'));
  } finally {
    removeDir(out);
  }
});

test('sppo demo --methods: unknown methods and --baselines together are usage errors', () => {
  sppoFails(['demo', '--judge', 'oracle'], 2, /--judge: expected proxy or gold, got 'oracle'/);
  sppoFails(['demo', '--judge', 'gold', '--proxy', 'demo/proxy-judge'], 2, /--judge gold and --proxy: give one/);
  sppoFails(['demo', '--methods', 'sppo,ppo'], 2, /--methods: unknown method 'ppo'/);
  sppoFails(['demo', '--methods', 'sppo', '--baselines'], 2, /give one/);
  sppoFails(['demo', 'search', '--methods', 'kto'], 2, /unknown method 'kto'/);
});
