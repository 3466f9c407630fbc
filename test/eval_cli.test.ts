// Evaluation against a reference: win rate with ties counting half, its standard error, the length-controlled
// win rate and average lengths; AlpacaEval's output layout; position-biased judges; `sppo eval` end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluate, judgeAgainstReference, pairByInstruction, readOutputsFile, type PairwiseJudge } from '../src/eval/evaluate.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const DATA = join(fixtureRoot, '..', '..', 'data');
const ALPACA_REF = join(DATA, 'alpaca_eval2_ref_gpt4_1106_preview_outputs.json');
const model = join(fixtureRoot, 'llama');

const LONGER = `export const name = 'longer-wins';
export const positionBiased = false;
export default ({ a, b }) => (a.length === b.length ? 0.5 : a.length > b.length ? 1 : 0);
`;

test('win rate (ties half), standard error and lengths of a judged comparison', async () => {
  const judge: PairwiseJudge = { name: 'longer', positionBiased: false, prefer: async (qs) => qs.map((q) => (q.a.length === q.b.length ? 0.5 : q.a.length > q.b.length ? 1 : 0)) };
  const items = [
    { prompt: 'p1', output: 'long answer', reference: 'short' },
    { prompt: 'p2', output: 'same', reference: 'same' },
    { prompt: 'p3', output: 'x', reference: 'longer ref' },
    { prompt: 'p4', output: 'longer one', reference: 'ref' },
  ];
  const r = await evaluate(judge, items, { batchSize: 3 });
  assert.deepEqual(r.preferences, [1, 0.5, 0, 1]);
  assert.equal(r.winRate, 2.5 / 4);
  const sd = Math.sqrt([1, 0.5, 0, 1].reduce((a, p) => a + (p - 0.625) ** 2, 0) / 3);
  assert.ok(Math.abs(r.standardError - sd / 2) < 1e-12);
  assert.deepEqual([r.nWins, r.nLosses, r.nTies], [2, 1, 1]);
  assert.equal(r.avgLength, (11 + 4 + 1 + 10) / 4);
  assert.equal(r.avgReferenceLength, (5 + 4 + 10 + 3) / 4);
  assert.ok(Number.isNaN(r.lcWinRate) || (r.lcWinRate >= 0 && r.lcWinRate <= 1));
});

test('a position-biased judge is asked in both orders and combined; bad answers name the judge and the item', async () => {
  const calls: string[][] = [];
  // Likes whatever is shown first by +0.2, otherwise prefers the output 'good'.
  const biased: PairwiseJudge = {
    name: 'biased',
    positionBiased: true,
    prefer: async (qs) => {
      calls.push(qs.map((q) => `${q.a}|${q.b}`));
      return qs.map((q) => Math.min(1, (q.a === 'good' ? 0.7 : q.b === 'good' ? 0.1 : 0.3) + 0.2));
    },
  };
  const p = await judgeAgainstReference(biased, [{ prompt: 'x', output: 'good', reference: 'bad' }, { prompt: 'y', output: 'bad', reference: 'bad2' }]);
  assert.deepEqual(calls, [['good|bad', 'bad|bad2'], ['bad|good', 'bad2|bad']]);
  // (0.9 + 1 - 0.3) / 2 = 0.8 and (0.5 + 1 - 0.5) / 2 = 0.5: the bias cancels.
  assert.ok(Math.abs(p[0]! - 0.8) < 1e-12 && Math.abs(p[1]! - 0.5) < 1e-12);
  const broken: PairwiseJudge = { name: 'broken', positionBiased: false, prefer: async (qs) => qs.map((_, i) => (i === 1 ? 2 : 0.5)) };
  await assert.rejects(judgeAgainstReference(broken, [{ prompt: 'a', output: 'b', reference: 'c' }, { prompt: 'd', output: 'e', reference: 'f' }]), /judge 'broken': returned 2 for item 1, not a probability/);
  const throws: PairwiseJudge = { name: 'thrower', positionBiased: false, prefer: async () => { throw new Error('no network'); } };
  await assert.rejects(judgeAgainstReference(throws, [{ prompt: 'a', output: 'b', reference: 'c' }]), /judge 'thrower' failed on items 0\.\.0: no network/);
});

test("AlpacaEval's reference outputs read and pair by instruction", { skip: existsSync(ALPACA_REF) ? false : `no ${ALPACA_REF}` }, () => {
  const ref = readOutputsFile(ALPACA_REF);
  assert.equal(ref.length, 805);
  assert.equal(ref[0]!.generator, 'gpt4_1106_preview');
  assert.equal(ref[0]!.instruction, 'What are the names of some famous actors that started their careers on Broadway?');
  const items = pairByInstruction([{ instruction: ref[3]!.instruction, output: 'mine' }], ref);
  assert.deepEqual(items, [{ prompt: ref[3]!.instruction, output: 'mine', reference: ref[3]!.output }]);
  // An output made in memory is named by its place; the references read from a file name that file.
  assert.throws(() => pairByInstruction([{ instruction: 'not an AlpacaEval instruction', output: 'x' }], ref), (e: Error) => e.message === `output 1: no reference output in ${ALPACA_REF} for the instruction "not an AlpacaEval instruction"`);
});

test('sppo eval: model outputs against AlpacaEval reference outputs (files), with a module judge', { skip: existsSync(ALPACA_REF) ? false : `no ${ALPACA_REF}` }, () => {
  const dir = tempDir('eval-cli');
  try {
    const ref = JSON.parse(readFileSync(ALPACA_REF, 'utf8')) as { instruction: string; output: string }[];
    // 20 outputs: 10 longer than the reference, 6 shorter, 4 identical (ties).
    const outputs = ref.slice(0, 20).map((r, i) => ({
      instruction: r.instruction,
      output: i < 10 ? `${r.output} And more.` : i < 16 ? r.output.slice(0, 10) : r.output,
      generator: 'test-model',
    }));
    writeFileSync(join(dir, 'outputs.json'), JSON.stringify(outputs));
    writeFileSync(join(dir, 'judge.mjs'), LONGER);
    const r = spawnSync(process.execPath, [cli, 'eval', '--judge', 'judge.mjs', '--outputs', 'outputs.json', '--reference', ALPACA_REF, '--out', 'report.json'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    assert.equal(rep.n, 20);
    assert.equal(rep.winRate, 12 / 20);
    assert.deepEqual([rep.nWins, rep.nLosses, rep.nTies], [10, 6, 4]);
    const prefs = [...Array(10).fill(1), ...Array(6).fill(0), ...Array(4).fill(0.5)];
    const sd = Math.sqrt(prefs.reduce((a, p) => a + (p - 0.6) ** 2, 0) / 19);
    assert.ok(Math.abs(rep.standardError - sd / Math.sqrt(20)) < 1e-12);
    assert.ok(rep.avgLength > 0 && rep.avgReferenceLength > 0);
    assert.ok(rep.lcWinRate === null || (rep.lcWinRate >= 0 && rep.lcWinRate <= 1));
    assert.match(r.stderr, /win rate 60\.0%/);
    // Usage errors.
    const bad = spawnSync(process.execPath, [cli, 'eval', '--outputs', 'outputs.json', '--reference', ALPACA_REF], { cwd: dir, encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--judge is required/);
  } finally {
    removeDir(dir);
  }
});

test('sppo eval: a model against itself with the same seeds ties everywhere (win rate 1/2, SE 0)', { skip: existsSync(join(model, 'model.safetensors')) ? false : 'no llama fixture' }, () => {
  const dir = tempDir('eval-self');
  try {
    writeFileSync(join(dir, 'judge.mjs'), LONGER);
    writeFileSync(join(dir, 'p.jsonl'), Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `Say ${i}` })).join('\n') + '\n');
    const r = spawnSync(process.execPath, [cli, 'eval', '--judge', 'judge.mjs', '--model', model, '--reference-model', model, '--prompts', 'p.jsonl', '--max-new-tokens', '8', '--temperature', '1', '--batch-size', '4', '--device', 'cpu', '--save-outputs', 'out.jsonl'], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.n, 6);
    assert.equal(rep.winRate, 0.5);
    assert.equal(rep.standardError, 0);
    assert.equal(rep.nTies, 6);
    const saved = readOutputsFile(join(dir, 'out.jsonl'));
    assert.equal(saved.length, 6);
    assert.equal(saved[2]!.instruction, 'Say 2');
  } finally {
    removeDir(dir);
  }
});
