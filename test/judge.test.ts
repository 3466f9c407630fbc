// Judges: module judges (single, async, batched; validation errors naming the file and query), the preference
// matrix (M + M^T = 1, position bias cancelled), a reward model folder built from the tiny Llama fixture against a
// direct computation with the causal model's hidden states, and a pairwise judge.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel } from '../src/models/registry.js';
import { loadRewardModel } from '../src/models/sequence_classification.js';
import { JudgeError, loadJudge, parseJudgeSpec, preferenceMatrix, type PreferenceOracle, type PreferenceQuery } from '../src/judge/judge.js';
import { PairwiseJudge, savePairwiseHead } from '../src/judge/pairwise_head.js';
import { RewardModelJudge } from '../src/judge/reward_model.js';
import { winRates } from '../src/sppo/winrates.js';
import { hfExtra, hfTiny } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';
import { FWD32 } from './helpers/tolerances.js';

const llama = join(hfTiny, 'llama');
const skip = existsSync(join(llama, 'model.safetensors')) ? false : `no fixture at ${llama} (set SPPO_HF_FIXTURES)`;

function writeModule(dir: string, name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
}

function checkMatrix(m: number[][]): void {
  m.forEach((row, i) => {
    assert.equal(row[i], 0.5);
    row.forEach((v, j) => assert.equal(v + m[j]![i]!, 1, `M[${i}][${j}] + M[${j}][${i}]`));
  });
}

test('module judge: default export, unbiased; the matrix holds the answers and M + M^T = 1', async () => {
  const dir = tempDir('judge');
  try {
    // P(a > b) from lengths: longer wins, logistic in the difference.
    const p = writeModule(dir, 'len.mjs', `export const positionBiased = false;
export default ({ a, b }) => 1 / (1 + Math.exp(-(a.length - b.length)));`);
    const judge = await loadJudge(parseJudgeSpec(p));
    assert.equal(judge.positionBiased, false);
    const responses = ['a', 'abc', 'ab', 'abcd'];
    const m = await preferenceMatrix(judge, 'x', responses);
    checkMatrix(m);
    const s = (x: number): number => 1 / (1 + Math.exp(-x));
    assert.ok(Math.abs(m[1]![0]! - s(2)) < 1e-15);
    assert.ok(Math.abs(m[0]![3]! - (1 - s(3))) < 1e-15);
    const w = winRates(m);
    assert.ok(w[3]! > w[1]! && w[1]! > w[2]! && w[2]! > w[0]!);
  } finally {
    removeDir(dir);
  }
});

test('module judge: a position-biased judge is asked both orders and its bias cancels', async () => {
  const dir = tempDir('judge');
  try {
    // The true preference s(a, b) = 0.3 + 0.1 * (len a - len b) (antisymmetric around 1/2), plus +0.15 for the first position.
    const p = writeModule(dir, 'biased.mjs', `export const calls = [];
export async function prefer(q) { calls.push(q); return 0.5 + 0.1 * (q.a.length - q.b.length) + 0.15; }`);
    const judge = await loadJudge({ kind: 'module', path: p });
    assert.equal(judge.positionBiased, true, 'module judges are position-biased unless they say otherwise');
    const m = await preferenceMatrix(judge, 'x', ['a', 'ab', 'abc']);
    checkMatrix(m);
    assert.ok(Math.abs(m[0]![1]! - 0.4) < 1e-12, String(m[0]![1]));
    assert.ok(Math.abs(m[2]![0]! - 0.7) < 1e-12, String(m[2]![0]));
    const mod = await import(p);
    assert.equal(mod.calls.length, 6, 'three pairs in both orders');
  } finally {
    removeDir(dir);
  }
});

test('module judge: batched preferBatch with options', async () => {
  const dir = tempDir('judge');
  try {
    const p = writeModule(dir, 'batch.mjs', `export const positionBiased = false;
export async function preferBatch(qs, opts) { return qs.map((q) => (q.a === opts.best ? 0.9 : q.b === opts.best ? 0.1 : 0.5)); }`);
    const judge = await loadJudge({ kind: 'module', path: p, options: { best: 'y' } });
    const m = await preferenceMatrix(judge, 'x', ['x1', 'y', 'x2']);
    // (x1, y) -> 0.1 and (y, x2) -> 0.9 asked once each; the lower triangle is 1 - the upper one.
    assert.deepEqual(m, [[0.5, 0.1, 0.5], [1 - 0.1, 0.5, 0.9], [0.5, 1 - 0.9, 0.5]]);
  } finally {
    removeDir(dir);
  }
});

test('module judge errors name the module file and the query', async () => {
  const dir = tempDir('judge');
  try {
    const q: PreferenceQuery[] = [{ prompt: 'p', a: 'x', b: 'y' }, { prompt: 'p', a: 'y', b: 'x' }];
    const bad = writeModule(dir, 'bad.mjs', `export default (q) => (q.a === 'y' ? 1.5 : 0.5);`);
    await assert.rejects((await loadJudge({ kind: 'module', path: bad })).prefer(q), (e: Error) => {
      assert.ok(e instanceof JudgeError);
      assert.match(e.message, /bad\.mjs: query 1: returned 1\.5, expected a number in \[0, 1\]/);
      return true;
    });
    const nan = writeModule(dir, 'nan.mjs', `export default () => NaN;`);
    await assert.rejects((await loadJudge({ kind: 'module', path: nan })).prefer(q), /nan\.mjs: query 0: returned NaN/);
    const str = writeModule(dir, 'str.mjs', `export default () => '0.5';`);
    await assert.rejects((await loadJudge({ kind: 'module', path: str })).prefer(q), /str\.mjs: query 0: returned "0.5"/);
    const thrower = writeModule(dir, 'thrower.mjs', `export default () => { throw new Error('no API key'); };`);
    await assert.rejects((await loadJudge({ kind: 'module', path: thrower })).prefer(q), /thrower\.mjs: the judge threw on query 0: no API key/);
    const short = writeModule(dir, 'short.mjs', `export const preferBatch = () => [0.5];`);
    await assert.rejects((await loadJudge({ kind: 'module', path: short })).prefer(q), /short\.mjs: preferBatch returned 1 values for 2 queries/);
    const none = writeModule(dir, 'none.mjs', `export const x = 1;`);
    await assert.rejects(loadJudge({ kind: 'module', path: none }), /none\.mjs: exports no judge function/);
    const syntax = writeModule(dir, 'syntax.mjs', `export default (q) => {`);
    await assert.rejects(loadJudge({ kind: 'module', path: syntax }), /syntax\.mjs: cannot load it/);
    await assert.rejects(loadJudge({ kind: 'module', path: join(dir, 'missing.mjs') }), /missing\.mjs does not exist/);
    // preferenceMatrix checks any judge's answers.
    const liar: PreferenceOracle = { name: 'liar', positionBiased: false, prefer: async (b) => b.map(() => -0.1) };
    await assert.rejects(preferenceMatrix(liar, 'p', ['a', 'b']), /liar: query 0: returned -0\.1/);
  } finally {
    removeDir(dir);
  }
});

test('parseJudgeSpec', () => {
  assert.deepEqual(parseJudgeSpec('./j.mjs'), { kind: 'module', path: './j.mjs' });
  assert.deepEqual(parseJudgeSpec('reward-model:/m', { device: 'cpu' }), { kind: 'reward-model', dir: '/m', device: 'cpu' });
  assert.deepEqual(parseJudgeSpec('pairwise:/p'), { kind: 'pairwise', dir: '/p' });
  assert.deepEqual(parseJudgeSpec('module:/x/judge'), { kind: 'module', path: '/x/judge' });
  assert.throws(() => parseJudgeSpec('/some/dir'), /expected a \.mjs/);
});

/** A tiny reward model: the Llama fixture's weights plus a random score.weight, as LlamaForSequenceClassification. */
function rewardFolder(): { dir: string; score: Float32Array } {
  const dir = tempDir('rm');
  cpSync(llama, dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  cfg.architectures = ['LlamaForSequenceClassification'];
  cfg.id2label = { 0: 'LABEL_0' };
  cfg.label2id = { LABEL_0: 0 };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  const tensors = torch.loadSafetensors(join(llama, 'model.safetensors')).tensors;
  tensors.get('lm_head.weight')?.dispose();
  tensors.delete('lm_head.weight');
  const score = torch.randn([1, cfg.hidden_size], { generator: new torch.Generator(7) }).mul(0.3);
  tensors.set('score.weight', score);
  torch.saveSafetensors(join(dir, 'model.safetensors'), tensors);
  const s = Float32Array.from(score.toTypedArray() as Float32Array);
  for (const t of tensors.values()) t.dispose();
  return { dir, score: s };
}

function direct(causal: ReturnType<typeof loadModel>, ids: number[], at: number, w: Float32Array, bias = 0): number {
  return torch.tidy(() => {
    const h = causal.hidden({ inputIds: torch.tensor(BigInt64Array.from(ids.map(BigInt)), { shape: [1, ids.length] }) });
    const row = Array.from(h.select(0, 0).select(0, at).toTypedArray() as Float32Array);
    return row.reduce((a, x, i) => a + x * w[i]!, bias);
  });
}

test('reward model: rewards are the score of the last non-pad token (as transformers), P = sigmoid(r_a - r_b)', { skip }, async () => {
  const { dir, score } = rewardFolder();
  const causal = loadModel(llama);
  try {
    const rm = loadRewardModel(dir);
    assert.equal(rm.numLabels, 1);
    const seqs = [[1, 20, 30, 40, 50], [1, 60, 70], [1, 80, 90, 100, 0, 0], [5]];
    const batched = rm.score(seqs).map((r) => r[0]!);
    // pad_token_id is 0: the third sequence is pooled at its token 100 (index 3), the others at their last token.
    const want = [direct(causal, seqs[0]!, 4, score), direct(causal, seqs[1]!, 2, score), direct(causal, seqs[2]!, 3, score), direct(causal, seqs[3]!, 0, score)];
    // A reward is a float32 forward pass plus a d-long dot product: FWD32 relative to max(1, |reward|).
    batched.forEach((r, i) => assert.ok(Math.abs(r - want[i]!) <= FWD32 * Math.max(1, Math.abs(want[i]!)), `sequence ${i}: ${r} vs ${want[i]}`));
    rm.dispose();

    const judge = await loadJudge({ kind: 'reward-model', dir, batchSize: 2 });
    assert.ok(judge instanceof RewardModelJudge);
    assert.equal(judge.positionBiased, false);
    const responses = ['Hello there.', 'No.', 'A longer answer, with words.'];
    const r = judge.rewards('Say hi', responses);
    responses.forEach((resp, i) => {
      const ids = judge.encode('Say hi', resp);
      const d = direct(causal, ids, ids.length - 1 - trailingPads(ids), score);
      assert.ok(Math.abs(r[i]! - d) <= FWD32 * Math.max(1, Math.abs(d)), `${r[i]} vs ${d}`);
    });
    const m = await preferenceMatrix(judge, 'Say hi', responses);
    checkMatrix(m);
    const sig = (x: number): number => 1 / (1 + Math.exp(-x));
    // The matrix's rewards are recomputed (other batches): each within FWD32 * max(1, |r|), and sigmoid's slope is
    // at most 1/4, so P moves by at most FWD32 / 2 * max(1, |r|).
    const rmax = Math.max(1, ...r.map(Math.abs));
    assert.ok(Math.abs(m[0]![1]! - sig(r[0]! - r[1]!)) <= FWD32 / 2 * rmax);
    assert.ok(Math.abs(m[2]![1]! - sig(r[2]! - r[1]!)) <= FWD32 / 2 * rmax);
    judge.dispose?.();
  } finally {
    causal.dispose();
    removeDir(dir);
  }
});

test('a Qwen3 reward model in transformers\' Qwen3ForSequenceClassification layout (Skywork-Reward-V2\'s) gives transformers\' rewards, right- and left-padded rows pooled at their last token', () => {
  const dir = join(hfExtra, 'qwen3-rm');
  const { tensors } = torch.loadSafetensors(join(dir, 'expected.safetensors'));
  const rm = loadRewardModel(dir);
  try {
    const rows = (tensors.get('input_ids')!.toArray() as number[][]);
    const want = (tensors.get('rewards')!.toArray() as number[][]).map((r) => r[0]!);
    // As transformers pools: the rightmost token that is not the pad id (left padding stays in the sequence).
    const seqs = rows.map((r) => r.slice(0, r.length - trailingPads(r)));
    const got = rm.score(seqs).map((r) => r[0]!);
    got.forEach((r, i) => assert.ok(Math.abs(r - want[i]!) <= FWD32 * Math.max(1, Math.abs(want[i]!)), `row ${i}: ${r} vs transformers' ${want[i]}`));
    // The score head matters: the rewards differ between the rows by far more than the bound.
    assert.ok(Math.max(...want) - Math.min(...want) > 100 * FWD32);
  } finally {
    rm.dispose();
    for (const t of tensors.values()) t.dispose();
  }
});

function trailingPads(ids: number[]): number {
  let n = 0;
  for (let i = ids.length - 1; i > 0 && ids[i] === 0; i--) n++;
  return n;
}

test('reward model: a causal-LM folder is refused with a clear error', { skip }, () => {
  assert.throws(() => loadRewardModel(llama), /LlamaForCausalLM' is not a supported sequence-classification model/);
});

test('pairwise judge: a head on the last hidden state of the prompt + A + B text, both orders combined', { skip }, async () => {
  const dir = tempDir('pw');
  cpSync(llama, dir, { recursive: true });
  const causal = loadModel(llama);
  try {
    const w = torch.randn([1, 64], { generator: new torch.Generator(3) }).mul(0.5);
    const b = torch.tensor([0.25]);
    savePairwiseHead(dir, w, b);
    const wv = Float32Array.from(w.toTypedArray() as Float32Array);
    w.dispose();
    b.dispose();
    const judge = await loadJudge({ kind: 'pairwise', dir, batchSize: 3 });
    assert.ok(judge instanceof PairwiseJudge);
    assert.equal(judge.positionBiased, true);
    const q: PreferenceQuery[] = [{ prompt: 'Q?', a: 'yes', b: 'no' }, { prompt: 'Q?', a: 'no', b: 'yes' }, { prompt: 'Other {b}', a: 'x {b}', b: 'y' }];
    const logits = judge.logits(q);
    q.forEach((qq, i) => {
      const ids = judge.encode(qq);
      assert.ok(Math.abs(logits[i]! - direct(causal, ids, ids.length - 1, wv, 0.25)) < 1e-4, `query ${i}`);
    });
    assert.ok(judge.tokenizer.decode(judge.encode(q[2]!), { skipSpecialTokens: true }).includes('x {b}'), 'placeholders inside responses are left alone');
    const m = await preferenceMatrix(judge, 'Q?', ['yes', 'no', 'maybe']);
    checkMatrix(m);
    const sig = (x: number): number => 1 / (1 + Math.exp(-x));
    assert.ok(Math.abs(m[0]![1]! - (sig(logits[0]!) + 1 - sig(logits[1]!)) / 2) < 1e-6);
    judge.dispose?.();
    await assert.rejects(loadJudge({ kind: 'pairwise', dir: llama }), /no pairwise head/);
  } finally {
    causal.dispose();
    removeDir(dir);
  }
});
