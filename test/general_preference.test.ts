// The general preference model judge (src/judge/general_preference.ts), its trainer (src/judge/train.ts) and
// `sppo train-judge` (run as a process, as a user runs it):
// the head's algebra (antisymmetric, Bradley-Terry at embed-dim 0), the judge against a direct computation on
// the tiny Llama fixture, and training that learns a preference cycle a Bradley-Terry model cannot express.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel } from '../src/models/registry.js';
import { loadJudge, preferenceMatrix } from '../src/judge/judge.js';
import {
  GeneralPreferenceJudge, preferenceLogit, preferenceLogits, responseSequence, savePreferenceHead,
} from '../src/judge/general_preference.js';
import { judgeAgreement, readComparisons, trainGeneralPreference } from '../src/judge/train.js';
import { sppoFails, sppoOk } from './helpers/cli.js';
import { hfTiny } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';
import { EPS32, EPS64, FWD32 } from './helpers/tolerances.js';

const llama = join(hfTiny, 'llama');
const skip = existsSync(join(llama, 'model.safetensors')) ? false : `no fixture at ${llama} (set SPPO_HF_FIXTURES)`;

test('preference logits: r_a - r_b + v_a^T J v_b, antisymmetric, Bradley-Terry without embeddings', () => {
  torch.tidy(() => {
    const g = new torch.Generator(1, 'cpu');
    const fa = torch.randn([5, 7], { generator: g });
    const fb = torch.randn([5, 7], { generator: g });
    const ab = Array.from(preferenceLogits(fa, fb).toTypedArray() as Float32Array);
    const ba = Array.from(preferenceLogits(fb, fa).toTypedArray() as Float32Array);
    const ra = fa.toArray() as number[][];
    const rb = fb.toArray() as number[][];
    ab.forEach((z, i) => {
      const [a, b] = [ra[i]!, rb[i]!];
      const want = a[0]! - b[0]! + (a[1]! * b[2]! - a[2]! * b[1]!) + (a[3]! * b[4]! - a[4]! * b[3]!) + (a[5]! * b[6]! - a[6]! * b[5]!);
      // 8 terms summed in any order: |error| <= 8 * eps * sum|terms| (+ one rounding of each product: 9).
      const sumAbs = Math.abs(a[0]!) + Math.abs(b[0]!) + [[1, 2], [3, 4], [5, 6]].reduce((t, [j, k]) => t + Math.abs(a[j]! * b[k]!) + Math.abs(a[k]! * b[j]!), 0);
      assert.ok(Math.abs(z + ba[i]!) <= 2 * 9 * EPS32 * sumAbs, `antisymmetric ${i}`);
      assert.ok(Math.abs(z - want) <= 9 * EPS32 * sumAbs, `row ${i}: ${z} vs ${want}`);
      assert.ok(Math.abs(preferenceLogit(a, b) - want) <= 9 * EPS64 * sumAbs);
    });
    assert.equal(preferenceLogit([0.5, 1, 0], [0.5, 0, 1]), 1, 'the skew-symmetric part alone');
    const bt = Array.from(preferenceLogits(fa.narrow(1, 0, 1), fb.narrow(1, 0, 1)).toTypedArray() as Float32Array);
    // One float32 subtraction: one rounding.
    bt.forEach((z, i) => assert.ok(Math.abs(z - (ra[i]![0]! - rb[i]![0]!)) <= EPS32 * Math.abs(ra[i]![0]! - rb[i]![0]!)));
  });
});

test('general preference judge: features of chat(prompt, response) at its last token; one query per pair', { skip }, async () => {
  const dir = tempDir('gpm');
  cpSync(llama, dir, { recursive: true });
  const causal = loadModel(llama);
  try {
    const g = new torch.Generator(3, 'cpu');
    const sw = torch.randn([1, 64], { generator: g }).mul(0.5);
    const sb = torch.tensor([0.25]);
    const emb = torch.randn([4, 64], { generator: g }).mul(0.3);
    const lw = torch.tensor([[0.5], [1], [2]]);
    const lb = torch.tensor([1, 5, 10]);
    const lo = torch.tensor([[0.7, -0.4, 1.1]]);
    savePreferenceHead(dir, { scoreWeight: sw, scoreBias: sb, likelihood: { weight: lw, bias: lb, out: lo }, embedding: emb });
    const w = [Array.from(sw.toTypedArray() as Float32Array), ...(emb.toArray() as number[][])];
    for (const t of [sw, sb, emb, lw, lb, lo]) t.dispose();
    const gl = (l: number): number => 0.7 * Math.tanh(0.5 * l + 1) - 0.4 * Math.tanh(l + 5) + 1.1 * Math.tanh(2 * l + 10);
    const judge = await loadJudge({ kind: 'pairwise', dir, batchSize: 2 });
    assert.ok(judge instanceof GeneralPreferenceJudge);
    assert.equal(judge.positionBiased, false);
    const feats = (prompt: string, response: string): number[] => {
      const { ids, start } = responseSequence(judge.tokenizer, judge.chat, prompt, response, 1000);
      assert.equal(ids.at(-1), judge.tokenizer.eosTokenId);
      assert.equal(judge.tokenizer.decode(ids.slice(start), { skipSpecialTokens: true }), response);
      assert.ok(judge.tokenizer.decode(ids.slice(0, start)).includes(prompt));
      return torch.tidy(() => {
        const input = torch.tensor(BigInt64Array.from(ids.map(BigInt)), { shape: [1, ids.length] });
        const h = causal.hidden({ inputIds: input });
        const row = Array.from(h.select(0, 0).select(0, ids.length - 1).toTypedArray() as Float32Array);
        // log p(response + EOS | prompt), token by token from the full forward pass.
        const lsm = causal.forward({ inputIds: input }).select(0, 0).logSoftmax(-1).toArray() as number[][];
        let l = 0;
        for (let j = start; j < ids.length; j++) l += lsm[j - 1]![ids[j]!]!;
        return w.map((wi, k) => row.reduce((a, x, i) => a + x * wi[i]!, k === 0 ? 0.25 + gl(l) : 0));
      });
    };
    const q = [{ prompt: 'Q?', a: 'yes', b: 'no' }, { prompt: 'Q?', a: 'no', b: 'yes' }, { prompt: 'Other', a: 'x', b: 'a longer answer' }];
    const logits = judge.logits(q);
    q.forEach((qq, i) => {
      const want = preferenceLogit(feats(qq.prompt, qq.a), feats(qq.prompt, qq.b));
      // The features are float32 forward passes (FWD32 of their scale, other batches); the logit is bilinear in
      // them (2 FWD32) plus a log-likelihood term; twice that again for cancellation among its terms: 4 FWD32.
      assert.ok(Math.abs(logits[i]! - want) <= 4 * FWD32 * Math.max(1, Math.abs(want)), `query ${i}: ${logits[i]} vs ${want}`);
    });
    // The same features, possibly from other batch rows: FWD32 of the logit's scale.
    assert.ok(Math.abs(logits[0]! + logits[1]!) <= FWD32 * Math.max(1, Math.abs(logits[0]!)), 'swapping A and B negates the logit');
    const m = await preferenceMatrix(judge, 'Q?', ['yes', 'no', 'maybe']);
    m.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v + m[j]![i]! - 1) < 1e-12)));
    judge.dispose?.();
  } finally {
    causal.dispose();
    removeDir(dir);
  }
});

test('general preference judge: a bad head file is refused with an error naming the file and the tensor', { skip }, async () => {
  const dir = tempDir('gpm-bad');
  cpSync(llama, dir, { recursive: true });
  try {
    const t = (shape: number[]) => torch.zeros(shape);
    const head = (o: Partial<Record<'sw' | 'emb' | 'lw', number[]>> = {}) => ({
      scoreWeight: t(o.sw ?? [1, 64]), scoreBias: t([1]), embedding: t(o.emb ?? [4, 64]),
      likelihood: { weight: t(o.lw ?? [3, 1]), bias: t([3]), out: t([1, 3]) },
    });
    savePreferenceHead(dir, head({ sw: [1, 32] }));
    await assert.rejects(loadJudge({ kind: 'pairwise', dir }), /preference_head\.safetensors: 'score\.weight' has shape \[1, 32\], expected \[1, 64\]/);
    savePreferenceHead(dir, head({ emb: [3, 64] }));
    await assert.rejects(loadJudge({ kind: 'pairwise', dir }), /'embedding\.weight' has shape \[3, 64\], expected \[2m, 64\]/);
    savePreferenceHead(dir, head({ lw: [3, 2] }));
    await assert.rejects(loadJudge({ kind: 'pairwise', dir }), /'likelihood\.weight' has shape \[3, 2\], expected \[J, 1\]/);
    torch.saveSafetensors(join(dir, 'preference_head.safetensors'), new Map([['score.weight', t([1, 64])]]));
    await assert.rejects(loadJudge({ kind: 'pairwise', dir }), /preference_head\.safetensors: missing tensor 'score\.bias'/);
  } finally {
    removeDir(dir);
  }
});

/** Comparisons of a cycle red > green > blue > red (p 0.9 each), under several prompts. */
function cycleData(dir: string): string {
  const path = join(dir, 'cycle.jsonl');
  const lines = [];
  for (const prompt of ['Pick a colour.', 'Your favourite?', 'Choose one.', 'Which?'])
    for (const [a, b] of [['red', 'green'], ['green', 'blue'], ['blue', 'red']]) lines.push({ prompt, a, b, p: 0.9 });
  writeFileSync(path, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return path;
}

test('sppo train-judge --head gpm learns a preference cycle; --embed-dim 0 (Bradley-Terry) cannot', { skip }, async () => {
  const dir = tempDir('gpm-train');
  try {
    const data = cycleData(dir);
    const comparisons = readComparisons(data);
    const common = { model: llama, data: comparisons, lr: 1e-3, headLr: 3e-2, epochs: 30, batchSize: 3, warmupRatio: 0 };
    const cyc = async (out: string): Promise<number[]> => {
      const judge = await loadJudge({ kind: 'pairwise', dir: out });
      try {
        return await judge.prefer([['red', 'green'], ['green', 'blue'], ['blue', 'red']].map(([a, b]) => ({ prompt: 'Which?', a: a!, b: b! })));
      } finally {
        judge.dispose?.();
      }
    };
    const r = await trainGeneralPreference({ ...common, out: join(dir, 'gpm'), embedDim: 4 });
    assert.equal(r.losses.length, r.steps);
    const p = await cyc(join(dir, 'gpm'));
    p.forEach((x, i) => assert.ok(x > 0.7, `cycle edge ${i}: P = ${x}`));
    assert.equal((await judgeAgreement(join(dir, 'gpm'), comparisons)).agreement, 1);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'preference_head.safetensors']) assert.ok(existsSync(join(dir, 'gpm', f)), f);

    await trainGeneralPreference({ ...common, out: join(dir, 'bt'), embedDim: 0 });
    const q = await cyc(join(dir, 'bt'));
    assert.ok(Math.min(...q) < 0.55, `a Bradley-Terry head cannot prefer every edge of a cycle: ${q.join(', ')}`);
  } finally {
    removeDir(dir);
  }
});

test('sppo train-judge --head joint: a reader of prompt, A and B together, trained in both orders', { skip }, async () => {
  const dir = tempDir('joint-train');
  try {
    const data = cycleData(dir);
    const out = join(dir, 'joint');
    sppoOk(['train-judge', '--model', llama, '--data', data, '--eval-data', data, '--out', out, '--head', 'joint', '--lr', '1e-3', '--head-lr', '3e-2',
      '--epochs', '20', '--batch-size', '6', '--warmup-ratio', '0']);
    assert.ok(existsSync(join(out, 'pairwise_head.safetensors')));
    const report = JSON.parse(readFileSync(join(out, 'judge_eval.json'), 'utf8'));
    assert.equal(report.head, 'joint');
    assert.equal(report.n, 12);
    const judge = await loadJudge({ kind: 'pairwise', dir: out });
    try {
      assert.equal(judge.positionBiased, true);
      // Both orders asked and combined, as the demo does: the cycle's edges are each preferred.
      const m = await preferenceMatrix(judge, 'Which?', ['red', 'green', 'blue']);
      assert.ok(m[0]![1]! > 0.6 && m[1]![2]! > 0.6 && m[2]![0]! > 0.6, JSON.stringify(m));
    } finally {
      judge.dispose?.();
    }
  } finally {
    removeDir(dir);
  }
});

test('sppo train-judge: option errors name the option', { skip }, async () => {
  const dir = tempDir('gpm-err');
  try {
    const data = cycleData(dir);
    const base = ['train-judge', '--model', llama, '--data', data, '--out', join(dir, 'o')];
    sppoFails([...base, '--embed-dim', '3'], 2, /--embed-dim must be even/);
    sppoFails([...base, '--head', 'bilinear'], 2, /--head must be gpm or joint, got 'bilinear'/);
    sppoFails([...base, '--template', '{prompt}{a}{b}'], 2, /--template applies to --head joint only/);
    sppoFails([...base, '--head', 'joint', '--embed-dim', '4'], 2, /--embed-dim applies to --head gpm only/);
    writeFileSync(join(dir, 'bad.jsonl'), '{"prompt": "p", "a": "x", "b": "y", "p": 1.5}\n');
    sppoFails(['train-judge', '--model', llama, '--data', join(dir, 'bad.jsonl'), '--out', join(dir, 'o')], 1, /bad\.jsonl:1: "p" must be a probability/);
    assert.throws(() => readComparisons(join(dir, 'bad.jsonl')), /bad\.jsonl:1: "p" must be a probability/);
    await assert.rejects(trainGeneralPreference({ model: llama, data: readComparisons(data), out: join(dir, 'o'), embedDim: 3 }), /embedDim must be an even integer/);
    assert.equal(existsSync(join(dir, 'o')), false, 'nothing written on bad input');
  } finally {
    removeDir(dir);
  }
});
