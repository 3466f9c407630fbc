// PairRM (src/models/pairrm.ts, src/judge/pairrm.ts) on a PairRM-hf-layout fixture written by
// test/helpers/pairrm_fixture.ts (the hf-tiny deberta-v2 encoder + a random head + a hand-built tokenizer).
// No transformers run is at hand for PairRM here, so the expected values are derived independently:
//   - the token ids of a pair are written down by hand from the fixture's fixed vocabulary;
//   - the hidden states come from DebertaV2Model on the original deberta-v2 fixture (conformance-checked against
//     transformers in conformance_deberta.test.ts), run on those ids one sequence at a time;
//   - the head (Linear, tanh, Linear), the two orders and llm-blender's rank scores are computed here in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDebertaV2Model, type DebertaV2Model } from '../src/models/deberta_v2.js';
import { PairRMJudge, matrixFromLogits, PAIRRM_CANDIDATE_MAX_LENGTH, PAIRRM_SOURCE_MAX_LENGTH } from '../src/judge/pairrm.js';
import { judgeSpecSchema } from '../src/judge/spec.js';
import { loadJudge, parseJudgeSpec, preferenceMatrices, preferenceMatrix } from '../src/judge/judge.js';
import { sigmoid } from '../src/judge/oracle.js';
import { SafetensorsFile, saveSafetensors, tensor, tidy, type Tensor } from '../src/torch/index.js';
import { DEBERTA_FIXTURE, fixtureWordId as w, PAIRRM_IDS, SPECIAL, writePairRMFixture } from './helpers/pairrm_fixture.js';
import { removeDir, tempDir } from './text_helpers.js';
import { sppoFails, sppoOk } from './helpers/cli.js';
import { FWD32 } from './helpers/tolerances.js';

const skip = existsSync(join(DEBERTA_FIXTURE, 'model.safetensors')) ? false : `no deberta-v2 fixture at ${DEBERTA_FIXTURE}`;
const { cls: CLS, sep: SEP } = SPECIAL;
const { source: SRC, cand1: C1, cand2: C2 } = PAIRRM_IDS;

/** Hand-built ids of a part: [CLS] prefix word... [SEP] (texts of fixture words only, no truncation). */
const part = (prefix: number, text: string): number[] => [CLS, prefix, ...text.split(' ').map(w), SEP];
const pairIds = (x: string, a: string, b: string): { ids: number[]; pos: [number, number, number] } => {
  const s = part(SRC, x);
  const p1 = part(C1, a);
  const p2 = part(C2, b);
  return { ids: [...s, ...p1, ...p2], pos: [1, s.length + 1, s.length + p1.length + 1] };
};

/** The reference: encoder hidden states of one unpadded sequence, head in float64. */
class Reference {
  readonly w1: number[][];
  readonly b1: number[];
  readonly w2: number[];
  readonly b2: number;
  /** Largest |head output| seen (for the tolerance). */
  maxHead = 0;
  constructor(readonly encoder: DebertaV2Model, fixtureDir: string) {
    const f = SafetensorsFile.open(join(fixtureDir, 'model.safetensors'));
    const arr = (n: string): unknown => tidy(() => f.load(n).toArray());
    this.w1 = arr('head_layer.1.weight') as number[][];
    this.b1 = arr('head_layer.1.bias') as number[];
    this.w2 = (arr('head_layer.4.weight') as number[][])[0]!;
    this.b2 = (arr('head_layer.4.bias') as number[])[0]!;
  }
  head(x: number[]): number {
    let out = this.b2;
    this.w1.forEach((row, k) => {
      let z = this.b1[k]!;
      row.forEach((v, m) => (z += v * x[m]!));
      out += this.w2[k]! * Math.tanh(z);
    });
    this.maxHead = Math.max(this.maxHead, Math.abs(out));
    return out;
  }
  /** C(a, b) of one prompt and ordered pair. */
  logit(x: string, a: string, b: string): number {
    const { ids, pos } = pairIds(x, a, b);
    const h = tidy(() => {
      const t = this.encoder.forward({ inputIds: tensor(BigInt64Array.from(ids.map(BigInt)), { shape: [1, ids.length] }) });
      return t.select(0, 0).toArray() as number[][];
    });
    const [s, c1, c2] = pos.map((p) => h[p]!);
    return this.head([...s!, ...c1!]) - this.head([...s!, ...c2!]);
  }
  logits(x: string, rs: string[]): number[][] {
    return rs.map((a, i) => rs.map((b, j) => (i === j ? 0 : this.logit(x, a, b))));
  }
}

const ITEMS = [
  { prompt: 'say something about the sea', responses: ['the sea is nice', 'i like the sea and the stars', 'no', 'what sea'] },
  { prompt: 'hello', responses: ['hello world', 'hello you', 'one two one two one'] },
];

function withFixture(fn: (dir: string) => Promise<void> | void, layout: 4 | 5 = 5): () => Promise<void> {
  return async () => {
    const dir = writePairRMFixture(tempDir('pairrm'), { layout });
    try {
      await fn(dir);
    } finally {
      removeDir(dir);
    }
  };
}

test('pairrm: a pair is joined as llm-blender joins it ([CLS] <|source|> x [SEP] [CLS] <|candidate1|> a [SEP] [CLS] <|candidate2|> b [SEP])', { skip }, withFixture((dir) => {
  const judge = PairRMJudge.load(dir);
  try {
    const seq = judge.encodePair('say hello', 'the cat is good', 'the dog is bad');
    assert.deepEqual(seq.ids, [
      CLS, SRC, w('say'), w('hello'), SEP,
      CLS, C1, w('the'), w('cat'), w('is'), w('good'), SEP,
      CLS, C2, w('the'), w('dog'), w('is'), w('bad'), SEP,
    ]);
    assert.deepEqual([seq.source, seq.cand1, seq.cand2], [1, 6, 13]);
    // The sep token's text inside a text is a space, as in llm-blender's collator: no [SEP] inside a part.
    const s = judge.encodePair('a [SEP] b', 'yes', 'no');
    assert.equal(s.ids.filter((t) => t === SEP).length, 3);
  } finally {
    judge.dispose();
  }
}));

test('pairrm: over-long prompts and responses are truncated as llm-blender truncates them', { skip }, withFixture(async (dir) => {
  const small = PairRMJudge.load(dir, { sourceMaxLength: 8, candidateMaxLength: 6 });
  try {
    // Source: at most 8 ids with [CLS] and [SEP]: the first 5 words after <|source|>.
    // Candidates: (8 + 2 * 6 - 8) / 2 = 6 ids each: the first 3 words after the prefix.
    const seq = small.encodePair('one two one two one two one two', 'yes no yes no yes', 'two');
    assert.deepEqual(seq.ids, [
      CLS, SRC, w('one'), w('two'), w('one'), w('two'), w('one'), SEP,
      CLS, C1, w('yes'), w('no'), w('yes'), SEP,
      CLS, C2, w('two'), SEP,
    ]);
    // A short source leaves its unused budget to the candidates: source of 4 ids, candidates (8 + 12 - 4) / 2 = 8
    // ids: [CLS] <|candidate1|>, 5 words, [SEP].
    const short = small.encodePair('hello', 'one two one two one two one two', 'no');
    assert.deepEqual(short.ids.slice(4, 12), [CLS, C1, w('one'), w('two'), w('one'), w('two'), w('one'), SEP]);
  } finally {
    small.dispose();
  }
  // The published lengths (1224 + 2 x 412 = 2048): a 3000-word prompt and 1500-word responses fit, and the
  // model runs on them (relative positions: no position table to overflow).
  const judge = PairRMJudge.load(dir);
  try {
    assert.equal(judge.sourceMaxLength, PAIRRM_SOURCE_MAX_LENGTH);
    assert.equal(judge.candidateMaxLength, PAIRRM_CANDIDATE_MAX_LENGTH);
    const long = (n: number, word: string): string => Array.from({ length: n }, () => word).join(' ');
    const q = { prompt: long(3000, 'sea'), a: long(1500, 'yes'), b: long(1500, 'no') };
    const seq = judge.encodePair(q.prompt, q.a, q.b);
    assert.equal(seq.ids.length, 1224 + 412 + 412);
    assert.equal(seq.cand1, 1224 + 1);
    assert.equal(seq.cand2, 1224 + 412 + 1);
    const [p] = await judge.prefer([q]);
    assert.ok(p! > 0 && p! < 1, `P = ${p}`);
  } finally {
    judge.dispose();
  }
}));

test('pairrm: probabilities of both modes match the independently computed head, orders and rank scores', { skip }, withFixture(async (dir) => {
  const encoder = loadDebertaV2Model(DEBERTA_FIXTURE, { dtype: 'float32' });
  const ref = new Reference(encoder, dir);
  const pair = PairRMJudge.load(dir, { batchSize: 5 });
  const rank = PairRMJudge.load(dir, { batchSize: 3, mode: 'rank' });
  try {
    const want = ITEMS.map((it) => ref.logits(it.prompt, it.responses));
    // Each head output is within FWD32 (relative to the largest |head output|) of the float64 head on the reference
    // hidden states (float32 reduction order, batched with padding against unbatched): a logit C is a difference of two
    // head outputs, and P = sigmoid(C(i,j) - C(j,i)) moves by at most 1/4 of its argument's error.
    const tolC = 2 * FWD32 * Math.max(1, ref.maxHead);
    const tolP = (2 * tolC) / 4;
    const gotC = pair.logitMatrices(ITEMS);
    gotC.forEach((c, n) => c.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - want[n]![i]![j]!) <= tolC, `C[${n}][${i}][${j}] = ${v}, want ${want[n]![i]![j]}`))));

    const pm = await preferenceMatrices(pair, ITEMS);
    const rm = await preferenceMatrices(rank, ITEMS);
    ITEMS.forEach((it, n) => {
      const c = want[n]!;
      const k = it.responses.length;
      const s = c.map((row, i) => row.reduce((acc, v, j) => acc + v - c[j]![i]!, 0) / k); // llm-blender's max_logits scores
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          const wp = i === j ? 0.5 : sigmoid(c[i]![j]! - c[j]![i]!);
          const wr = i === j ? 0.5 : 1 / (1 + Math.exp(s[j]! - s[i]!)); // compute_prob.py
          assert.ok(Math.abs(pm[n]![i]![j]! - wp) <= tolP, `pairwise M[${n}][${i}][${j}] = ${pm[n]![i]![j]}, want ${wp}`);
          // s_i - s_j sums at most 4(K - 1) logits over K: its error is below 4 tolC, P's below tolC.
          assert.ok(Math.abs(rm[n]![i]![j]! - wr) <= tolC, `rank M[${n}][${i}][${j}] = ${rm[n]![i]![j]}, want ${wr}`);
          assert.ok(Math.abs(pm[n]![i]![j]! + pm[n]![j]![i]! - 1) <= 1e-15 && Math.abs(rm[n]![i]![j]! + rm[n]![j]![i]! - 1) <= 1e-15, 'M + M^T = 1');
        }
      }
    });
    // With K > 2 the modes differ (a rank probability depends on the other responses) ...
    const diff = Math.max(...pm.flatMap((m, n) => m.flatMap((row, i) => row.map((v, j) => Math.abs(v - rm[n]![i]![j]!)))));
    assert.ok(diff > 100 * tolP, `pairwise and rank matrices differ (max ${diff})`);
    // ... and with K = 2 they agree, and prefer() is that K = 2 case for each query.
    const two = { prompt: ITEMS[0]!.prompt, responses: ITEMS[0]!.responses.slice(0, 2) };
    const [p2] = await preferenceMatrices(pair, [two]);
    const [r2] = await preferenceMatrices(rank, [two]);
    assert.ok(Math.abs(p2![0]![1]! - r2![0]![1]!) <= 1e-12);
    const [q] = await rank.prefer([{ prompt: two.prompt, a: two.responses[0]!, b: two.responses[1]! }]);
    assert.ok(Math.abs(q! - p2![0]![1]!) <= tolP);
    // One prompt at a time (preferenceMatrix) gives the batched matrices.
    const single = await preferenceMatrix(pair, ITEMS[1]!.prompt, ITEMS[1]!.responses);
    single.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - pm[1]![i]![j]!) <= tolP)));
    // matrixFromLogits on a hand-made C: pairwise sigmoid(C01 - C10) = sigmoid(1 - (-1)) = sigmoid(2).
    assert.equal(matrixFromLogits([[0, 1], [-1, 0]], 'pairwise')[0]![1], sigmoid(2));
    // rank, K = 3, C = [[0,1,0],[0,0,0],[0,0,0]]: s = [1/3, -1/3, 0]; M[0][2] = sigmoid(1/3).
    assert.ok(Math.abs(matrixFromLogits([[0, 1, 0], [0, 0, 0], [0, 0, 0]], 'rank')[0]![2]! - sigmoid(1 / 3)) <= 1e-15);
  } finally {
    pair.dispose();
    rank.dispose();
    encoder.dispose();
  }
}));

test('pairrm: the transformers 4 layout of the folder gives the same matrices', { skip }, async () => {
  const d5 = writePairRMFixture(tempDir('pairrm5'));
  const d4 = writePairRMFixture(tempDir('pairrm4'), { layout: 4 });
  const j5 = PairRMJudge.load(d5);
  const j4 = PairRMJudge.load(d4);
  try {
    const [a] = await j5.preferenceMatrices([ITEMS[0]!]);
    const [b] = await j4.preferenceMatrices([ITEMS[0]!]);
    assert.deepEqual(a, b);
  } finally {
    j5.dispose();
    j4.dispose();
    removeDir(d5);
    removeDir(d4);
  }
});

test('pairrm: folders that are not PairRM are refused, naming the file and what is missing', { skip }, withFixture((dir) => {
  const cfgPath = join(dir, 'config.json');
  const cfg = readFileSync(cfgPath, 'utf8');
  const tok = readFileSync(join(dir, 'tokenizer.json'), 'utf8');
  const editConfig = (f: (c: Record<string, unknown>) => void): void => {
    const c = JSON.parse(cfg) as Record<string, unknown>;
    f(c);
    writeFileSync(cfgPath, JSON.stringify(c));
  };
  // Wrong architecture.
  editConfig((c) => (c.architectures = ['DebertaV2Model']));
  assert.throws(() => PairRMJudge.load(dir), (e: Error) => e.message.includes(cfgPath) && /not \["DebertaV2PairRM"\]/.test(e.message));
  // A PairRM field missing.
  editConfig((c) => delete c.cand1_prefix_id);
  assert.throws(() => PairRMJudge.load(dir), (e: Error) => e.message.includes(cfgPath) && /"cand1_prefix_id"/.test(e.message));
  writeFileSync(cfgPath, cfg);
  // A special token missing from the tokenizer.
  const t = JSON.parse(tok) as { added_tokens: { content: string }[]; model: { vocab: [string, number][] } };
  t.added_tokens = t.added_tokens.filter((a) => a.content !== '<|candidate2|>');
  t.model.vocab = t.model.vocab.map(([p, s]) => (p === '<|candidate2|>' ? ['[unused510]', s] : [p, s]));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(t));
  assert.throws(() => PairRMJudge.load(dir), (e: Error) => e.message.includes(join(dir, 'tokenizer.json')) && /no token '<\|candidate2\|>'/.test(e.message));
  writeFileSync(join(dir, 'tokenizer.json'), tok);
  // The config's id and the tokenizer's disagree.
  editConfig((c) => (c.source_prefix_id = 7));
  assert.throws(() => PairRMJudge.load(dir), /'<\|source\|>' is id 508, but config\.json's source_prefix_id is 7/);
  writeFileSync(cfgPath, cfg);
  // No tokenizer.json.
  rmSync(join(dir, 'tokenizer.json'));
  assert.throws(() => PairRMJudge.load(dir), /tokenizer\.json: file not found/);
  writeFileSync(join(dir, 'tokenizer.json'), tok);
  // Head weights missing.
  const f = SafetensorsFile.open(join(dir, 'model.safetensors'));
  const kept = new Map<string, Tensor>();
  for (const n of f.entries.keys()) if (!n.startsWith('head_layer.4.')) kept.set(n, f.load(n));
  saveSafetensors(join(dir, 'model.safetensors'), kept);
  for (const x of kept.values()) x.dispose();
  assert.throws(() => PairRMJudge.load(dir), (e: Error) => e.message.includes('model.safetensors') && /no PairRM head: missing head_layer\.4\.weight, head_layer\.4\.bias/.test(e.message));
  // The judge loads again once the folder is whole.
  writePairRMFixture(dir);
  PairRMJudge.load(dir).dispose();
}));

test('pairrm: --judge pairrm:DIR / pairrm-rank:DIR and the judge: config object', { skip }, withFixture(async (dir) => {
  assert.deepEqual(parseJudgeSpec(`pairrm:${dir}`, { batchSize: 4 }), { kind: 'pairrm', dir, mode: 'pairwise', batchSize: 4 });
  assert.deepEqual(parseJudgeSpec(`pairrm-rank:${dir}`), { kind: 'pairrm', dir, mode: 'rank' });
  assert.ok(judgeSpecSchema.safeParse({ kind: 'pairrm', dir, batchSize: 16, dtype: 'bfloat16', device: 'cuda:0', mode: 'rank' }).success);
  const bad = judgeSpecSchema.safeParse({ kind: 'pairrm', dir, mode: 'tournament' });
  assert.ok(!bad.success && JSON.stringify(bad.error.issues).includes('mode'));
  const judge = await loadJudge({ kind: 'pairrm', dir, mode: 'rank', batchSize: 2 });
  try {
    assert.equal(judge.name, `pairrm-rank:${dir}`);
    assert.equal(judge.positionBiased, false);
    const [m] = await preferenceMatrices(judge, [ITEMS[1]!]);
    assert.equal(m!.length, 3);
  } finally {
    judge.dispose?.();
  }
}));

test('sppo judge --judge pairrm:DIR / pairrm-rank:DIR: the matrices of the library, 16 prompts a call; a bad folder is an error naming it', { skip }, withFixture(async (dir) => {
  const gens = join(dir, 'gens.jsonl');
  writeFileSync(gens, ITEMS.map((it, i) => JSON.stringify({ prompt_id: `p${i}`, prompt: it.prompt, responses: it.responses })).join('\n') + '\n');
  for (const mode of ['pairwise', 'rank'] as const) {
    const out = join(dir, `prefs-${mode}.jsonl`);
    sppoOk(['judge', '--judge', `${mode === 'rank' ? 'pairrm-rank' : 'pairrm'}:${dir}`, '--generations', gens, '--out', out, '--device', 'cpu', '--batch-size', '7']);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { matrix: number[][] });
    const judge = PairRMJudge.load(dir, { mode });
    try {
      const want = await judge.preferenceMatrices(ITEMS);
      // Another batch size pads the sequences differently: float32 reduction order only, FWD32 relative to the
      // largest |C| per logit, two logits in each P's argument (rank: the bound of the test above), P moving by 1/4 of it.
      const maxC = Math.max(1, ...judge.logitMatrices(ITEMS).flat(2).map(Math.abs));
      const tol = (4 * 2 * FWD32 * maxC) / 4;
      lines.forEach((l, n) => l.matrix.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - want[n]![i]![j]!) <= tol, `${mode} M[${n}][${i}][${j}]`))));
    } finally {
      judge.dispose();
    }
  }
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  cfg.architectures = ['DebertaV2ForSequenceClassification'];
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  sppoFails(['judge', '--judge', `pairrm:${dir}`, '--generations', gens, '--out', join(dir, 'x.jsonl'), '--device', 'cpu'], 1, /config\.json: architectures is \["DebertaV2ForSequenceClassification"\], not \["DebertaV2PairRM"\]/);
}));
