// `sppo run` end to end with the PairRM judge (judge: { kind: pairrm, dir }) on the tiny llama policy fixture and
// the PairRM-hf-layout fixture (test/helpers/pairrm_fixture.ts), in both modes: every prompt's K x K matrix is a
// preference matrix (diagonal 1/2, M + M^T = 1), the rank mode's matrices are those of one score per response
// (logit M[i][j] + logit M[j][k] = logit M[i][k], as P = sigmoid(s_i - s_j) makes them), and the run's evaluation
// is judged by PairRM too. And the judge stage with any judge that makes whole matrices: a chunk of prompts per
// call, its failures and bad matrices named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSppo } from '../src/sppo/loop.js';
import type { SppoConfigInput } from '../src/sppo/config.js';
import type { PreferenceOracle } from '../src/judge/oracle.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';
import { DEBERTA_FIXTURE, writePairRMFixture } from './helpers/pairrm_fixture.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const policy = join(fixtureRoot, 'llama');
const skip = !existsSync(join(policy, 'model.safetensors')) ? `no llama fixture at ${policy}` : !existsSync(join(DEBERTA_FIXTURE, 'model.safetensors')) ? `no deberta-v2 fixture at ${DEBERTA_FIXTURE}` : false;

const K = 4;
const PROMPTS = 6;

function writePrompts(path: string, n: number): void {
  const topics = ['the sea', 'cats', 'music', 'rain', 'bread', 'stars', 'numbers', 'dogs'];
  writeFileSync(path, Array.from({ length: n }, (_, i) => JSON.stringify({ id: `q${i}`, prompt: `say something about ${topics[i % topics.length]}` })).join('\n') + '\n');
}

function config(judge: Record<string, unknown>): SppoConfigInput {
  return {
    model: policy,
    prompts: 'prompts.jsonl',
    runDir: 'run',
    judge: judge as SppoConfigInput['judge'],
    iterations: 1,
    seed: 5,
    device: 'cpu',
    promptsPerIteration: PROMPTS,
    judgeChunk: 4,
    generation: { k: K, temperature: 1, topP: 1, maxNewTokens: 12, batchSize: 8 },
    training: { loss: 'sppo', beta: 0.1, lr: 0.001, optimizer: 'adamw', epochs: 1, batchSize: 3, maxLength: 56, maxPromptLength: 40, warmupRatio: 0 },
    eval: { count: 4 },
  } as SppoConfigInput;
}

const logit = (p: number): number => Math.log(p / (1 - p));

function checkPreferences(runDir: string, mode: 'pairwise' | 'rank'): void {
  const prefs = readFileSync(join(runDir, 'iter-1/preferences.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { matrix: number[][]; win_rates: number[] });
  assert.equal(prefs.length, PROMPTS);
  let offDiagonal = 0;
  let transitivity = 0;
  for (const { matrix: m, win_rates: wr } of prefs) {
    assert.equal(m.length, K);
    for (let i = 0; i < K; i++) {
      assert.equal(m[i]!.length, K);
      assert.equal(m[i]![i], 0.5);
      for (let j = 0; j < K; j++) {
        assert.ok(m[i]![j]! >= 0 && m[i]![j]! <= 1);
        assert.ok(Math.abs(m[i]![j]! + m[j]![i]! - 1) <= 1e-12, 'M + M^T = 1');
        if (i !== j) offDiagonal = Math.max(offDiagonal, Math.abs(m[i]![j]! - 0.5));
        for (let k = 0; k < K; k++) {
          if (i !== j && j !== k && i !== k) transitivity = Math.max(transitivity, Math.abs(logit(m[i]![j]!) + logit(m[j]![k]!) - logit(m[i]![k]!)));
        }
      }
    }
    assert.ok(Math.abs(wr.reduce((a, x) => a + x, 0) - K / 2) < 1e-9, 'win rates sum to K/2');
  }
  assert.ok(offDiagonal > 1e-3, `the judge told the responses apart (max |M - 1/2| = ${offDiagonal})`);
  // rank: logits of sigmoid(s_i - s_j) add up exactly (to float64 rounding of logits below ~10);
  // pairwise: each pair has its own logit, so they do not.
  if (mode === 'rank') assert.ok(transitivity <= 1e-9, `rank mode: logit M is a difference of scores (max deviation ${transitivity})`);
  else assert.ok(transitivity > 1e-6, `pairwise mode: logit M is not a difference of scores (max deviation ${transitivity})`);
}

test('sppo run with judge: { kind: pairrm, dir } (pairwise mode, CLI) runs end to end', { skip }, () => {
  const dir = tempDir('pairrm-run');
  try {
    const judgeDir = writePairRMFixture(join(dir, 'pairrm'));
    writePrompts(join(dir, 'prompts.jsonl'), 24);
    writeFileSync(join(dir, 'sppo.json'), JSON.stringify(config({ kind: 'pairrm', dir: 'pairrm', batchSize: 16 }), null, 2));
    const r = spawnSync(process.execPath, [cli, 'run', 'sppo.json'], { cwd: dir, encoding: 'utf8', env: { ...process.env, SPPO_TEST_KILL_AT: '' } });
    assert.equal(r.status, 0, r.stderr);
    const run = join(dir, 'run');
    for (const f of ['generations.jsonl', 'preferences.jsonl', 'pairs.jsonl', 'eval.json', 'checkpoint/model.safetensors']) assert.ok(existsSync(join(run, 'iter-1', f)), f);
    checkPreferences(run, 'pairwise');
    const ev = JSON.parse(readFileSync(join(run, 'iter-1/eval.json'), 'utf8')) as { n: number; judge: string; preferences: number[] };
    assert.equal(ev.n, 4);
    assert.equal(ev.judge, `pairrm:${judgeDir}`);
    assert.ok(ev.preferences.every((p) => p >= 0 && p <= 1));
  } finally {
    removeDir(dir);
  }
});

test('sppo run with judge: { kind: pairrm, dir, mode: rank } (library API) runs end to end', { skip }, async () => {
  const dir = tempDir('pairrm-rank');
  try {
    writePairRMFixture(join(dir, 'pairrm'), { layout: 4 });
    writePrompts(join(dir, 'prompts.jsonl'), 24);
    const res = await runSppo(config({ kind: 'pairrm', dir: 'pairrm', mode: 'rank', batchSize: 5 }), { baseDir: dir, progress: false, log: () => {} });
    assert.equal(res.iterations.length, 1);
    checkPreferences(join(dir, 'run'), 'rank');
  } finally {
    removeDir(dir);
  }
});

test('a judge with preferenceMatrices gets a chunk of prompts per call; its failure or a bad matrix stops the run naming the judge and the prompts', { skip }, async () => {
  const dir = tempDir('pairrm-chunks');
  try {
    writePrompts(join(dir, 'prompts.jsonl'), 24);
    const calls: number[] = [];
    const seen: string[] = [];
    // A judge that makes whole matrices: P(y_i > y_j) = sigmoid(|y_i| - |y_j|) (longer wins).
    const lengthJudge = (bad: 'throw' | 'asymmetric' | null): PreferenceOracle => ({
      name: 'length-matrices',
      positionBiased: false,
      async prefer(batch) {
        return batch.map((q) => 1 / (1 + Math.exp(q.b.length - q.a.length)));
      },
      async preferenceMatrices(items) {
        calls.push(items.length);
        seen.push(...items.map((it) => it.prompt));
        if (bad === 'throw') throw new Error('out of memory (boom)');
        return items.map((it) => it.responses.map((a, i) => it.responses.map((b, j) => (i === j ? 0.5 : bad === 'asymmetric' ? 0.9 : 1 / (1 + Math.exp(b.length - a.length))))));
      },
    });
    const cfg = { ...config({ kind: 'module', path: 'unused.mjs' }), eval: { count: 0 } } as SppoConfigInput;
    const res = await runSppo({ ...cfg, runDir: 'ok' }, { baseDir: dir, progress: false, log: () => {}, judge: lengthJudge(null) });
    assert.equal(res.iterations.length, 1);
    assert.deepEqual(calls, [4, 2], 'judgeChunk 4: 6 prompts in two calls');
    assert.ok(seen.every((p) => /^say something about [a-z ]+$/.test(p)), `judgePromptFormat plain: ${seen[0]}`);
    // judgePromptFormat: template: the judge sees the prompt as the policy's chat template renders it (rank.py's source).
    seen.length = 0;
    await runSppo({ ...cfg, runDir: 'tpl', judgePromptFormat: 'template' }, { baseDir: dir, progress: false, log: () => {}, judge: lengthJudge(null) });
    assert.equal(seen.length, PROMPTS);
    assert.ok(seen.every((p) => /^<\|im_start\|>user\nsay something about [a-z ]+<\|im_end\|>\n<\|im_start\|>assistant\n$/.test(p)), `judgePromptFormat template: ${JSON.stringify(seen[0])}`);
    const prefs = readFileSync(join(dir, 'ok/iter-1/preferences.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { matrix: number[][] });
    const gens = readFileSync(join(dir, 'ok/iter-1/generations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { responses: { text: string }[] });
    prefs.forEach((p, n) => assert.equal(p.matrix[0]![1], 1 / (1 + Math.exp(gens[n]!.responses[1]!.text.length - gens[n]!.responses[0]!.text.length))));
    await assert.rejects(runSppo({ ...cfg, runDir: 'boom' }, { baseDir: dir, progress: false, log: () => {}, judge: lengthJudge('throw') }),
      (e: Error) => e.name === 'JudgeStageError' && /iteration 1, prompt #\d+ \(id "q\d+"\) to prompt #\d+ \(id "q\d+"\): out of memory \(boom\)/.test(e.message));
    await assert.rejects(runSppo({ ...cfg, runDir: 'asym' }, { baseDir: dir, progress: false, log: () => {}, judge: lengthJudge('asymmetric') }),
      (e: Error) => e.name === 'JudgeStageError' && /length-matrices: M\[0\]\[1\] \+ M\[1\]\[0\] = 1\.8, expected 1 \(prompt 0 of the batch\)/.test(e.message));
  } finally {
    removeDir(dir);
  }
});
