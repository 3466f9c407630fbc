// Generation: seeds, sampling distributions (chi-square), per-sequence stopping, n samples per prompt,
// left padding, and the returned log-probs against a full forward over prompt + response.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type CausalLM } from '../src/models/index.js';
import { generate, leftPad, sampleNext, warpLogits, type Generation } from '../src/generate/index.js';
import { Generator, tensor, tidy } from '../src/torch/index.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { fixtureRoot, readExpected } from './text_helpers.js';
import { projectRoot } from './helpers/fixtures.js';
import { LOGPROB_BF16, LOGPROB32, reportError } from './helpers/tolerances.js';

const llamaDir = join(fixtureRoot, 'llama');
const noLlama = existsSync(join(llamaDir, 'model.safetensors')) ? false : `no llama fixture at ${llamaDir}`;

// ---------------------------------------------------------------- sampling from a fixed distribution
const LOGITS = [2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, -3.0];
const CHI2_999 = [0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32]; // chi-square quantile 0.999 by degrees of freedom

function expectedProbs(o: { temperature?: number; topP?: number; topK?: number }): number[] {
  const t = o.temperature ?? 1;
  let l = LOGITS.map((x) => x / t);
  if (o.topK) {
    const kth = [...l].sort((a, b) => b - a)[o.topK - 1]!;
    l = l.map((x) => (x < kth ? -Infinity : x));
  }
  const soft = (xs: number[]): number[] => {
    const m = Math.max(...xs);
    const e = xs.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  };
  if (o.topP !== undefined && o.topP < 1) {
    const p = soft(l);
    const order = p.map((_, i) => i).sort((a, b) => p[a]! - p[b]!); // ascending, as transformers
    let cum = 0;
    const drop = new Set<number>();
    order.forEach((i, j) => {
      cum += p[i]!;
      if (cum <= 1 - o.topP! && j < order.length - 1) drop.add(i);
    });
    l = l.map((x, i) => (drop.has(i) ? -Infinity : x));
  }
  return soft(l);
}

for (const o of [{ temperature: 1 }, { temperature: 0.7 }, { temperature: 1.5, topP: 0.8 }, { temperature: 1, topP: 0.6 }, { temperature: 1, topK: 3 }, { temperature: 0.8, topK: 5, topP: 0.9 }]) {
  test(`sampling frequencies pass a chi-square test: ${JSON.stringify(o)}`, () => {
    const n = 40000;
    const probs = expectedProbs(o);
    const counts = tidy(() => {
      const logits = tensor([LOGITS]).expand(n, LOGITS.length);
      const draws = sampleNext(logits, o, new Generator(1234));
      return (draws.toArray() as number[]).reduce((c, t) => (c[t]!++, c), new Array<number>(LOGITS.length).fill(0));
    });
    let chi2 = 0;
    let df = -1;
    probs.forEach((p, i) => {
      if (p === 0) {
        assert.equal(counts[i], 0, `token ${i} is filtered out, yet drawn ${counts[i]} times`);
        return;
      }
      chi2 += (counts[i]! - n * p) ** 2 / (n * p);
      df++;
    });
    assert.ok(df >= 1);
    assert.ok(chi2 < CHI2_999[df]!, `chi-square ${chi2.toFixed(2)} with ${df} degrees of freedom (counts ${counts}, expected ${probs.map((p) => (n * p).toFixed(0))})`);
  });
}

test('warped logits: top-k and top-p remove the tail, temperature scales', () => {
  tidy(() => {
    const l = tensor([LOGITS]);
    const k = warpLogits(l, { topK: 2 }).toArray() as number[][];
    assert.deepEqual(k[0]!.map((x) => Number.isFinite(x)), [true, true, false, false, false, false, false, false]);
    const t = warpLogits(l, { temperature: 2 }).toArray() as number[][];
    assert.ok(Math.abs(t[0]![0]! - 1.0) < 1e-6);
    assert.deepEqual(sampleNext(l, { temperature: 0 }).toArray(), [0]);
  });
});

// ---------------------------------------------------------------- generation with a model
function prompts(): number[][] {
  return readExpected(llamaDir).prompt_ids;
}

test('a fixed seed gives identical outputs twice; another seed others', { skip: noLlama }, () => {
  const model = loadModel(llamaDir);
  const tok = Tokenizer.fromFolder(llamaDir);
  const o = { temperature: 1, topP: 0.95, maxNewTokens: 16, n: 2, seed: 7, tokenizer: tok };
  const a = generate(model, prompts(), o);
  const b = generate(model, prompts(), o);
  assert.deepEqual(b, a);
  const c = generate(model, prompts(), { ...o, seed: 8 });
  assert.notDeepEqual(c.map((g) => g.tokens), a.map((g) => g.tokens));
  assert.equal(a.length, 6);
  assert.deepEqual(a.map((g) => [g.prompt, g.sample]), [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]);
  for (const g of a) {
    assert.equal(g.tokens.length, g.logprobs.length);
    assert.equal(g.text, tok.decode(g.tokens, { skipSpecialTokens: true }));
    assert.ok(g.logprobs.every((x) => x <= 0 && Number.isFinite(x)));
  }
  model.dispose();
});

test('batched, left-padded greedy generation equals one prompt at a time; n samples share the prefill', { skip: noLlama }, () => {
  const model = loadModel(llamaDir);
  const o = { temperature: 0, maxNewTokens: 8, eosTokenIds: [] as number[] };
  const batched = generate(model, prompts(), { ...o, n: 3 });
  prompts().forEach((p, i) => {
    const [single] = generate(model, [p], o);
    for (let s = 0; s < 3; s++) {
      const g = batched[i * 3 + s]!;
      assert.deepEqual(g.tokens, single!.tokens, `prompt ${i} sample ${s}`);
      // Batched with padding vs alone: float32 reduction order only (LOGPROB32, helpers/tolerances.ts).
      g.logprobs.forEach((x, j) => assert.ok(Math.abs(x - single!.logprobs[j]!) <= LOGPROB32, `${x} vs ${single!.logprobs[j]}`));
    }
  });
  model.dispose();
});

test('a sequence stops at EOS or a stop string while the others go on', { skip: noLlama }, () => {
  const model = loadModel(llamaDir);
  const tok = Tokenizer.fromFolder(llamaDir);
  const o = { temperature: 0, maxNewTokens: 10, tokenizer: tok };
  const free = generate(model, prompts(), { ...o, eosTokenIds: [] });
  // Greedy row 0 is 388 333 174 202 ...: make 202 the EOS; rows 1 and 2 never produce it.
  assert.equal(free[0]!.tokens[3], 202);
  const stopped = generate(model, prompts(), { ...o, eosTokenIds: [202] });
  assert.deepEqual(stopped[0]!.tokens, free[0]!.tokens.slice(0, 4));
  assert.equal(stopped[0]!.finishReason, 'eos');
  for (const i of [1, 2]) {
    assert.deepEqual(stopped[i]!.tokens, free[i]!.tokens);
    assert.equal(stopped[i]!.finishReason, 'length');
  }
  // min_new_tokens forbids the EOS before it.
  const late = generate(model, prompts(), { ...o, eosTokenIds: [202], minNewTokens: 5 });
  assert.ok(!late[0]!.tokens.slice(0, 5).includes(202));
  // Stop strings: row 2's greedy text contains "surrounded".
  const text2 = free[2]!.text;
  assert.ok(text2.includes('surrounded'), text2);
  const s = generate(model, prompts(), { ...o, eosTokenIds: [], stopStrings: ['surrounded'] });
  assert.equal(s[2]!.finishReason, 'stop');
  assert.equal(s[2]!.text, text2.slice(0, text2.indexOf('surrounded')));
  assert.ok(tok.decode(s[2]!.tokens, { skipSpecialTokens: true }).includes('surrounded'));
  assert.ok(s[2]!.tokens.length < free[2]!.tokens.length);
  assert.deepEqual(s[0]!.tokens, free[0]!.tokens);
  // Stop tokens.
  const st = generate(model, prompts(), { ...o, eosTokenIds: [], stopTokenIds: [174] });
  assert.equal(st[0]!.finishReason, 'stop');
  assert.deepEqual(st[0]!.tokens, free[0]!.tokens.slice(0, 3));
  model.dispose();
});

/** Max |generation log-prob - full-forward log-prob| over every generated token. */
function logprobGap(model: CausalLM, ps: number[][], gens: Generation[], n: number): number {
  return tidy(() => {
    const seqs = gens.map((g) => [...ps[g.prompt]!, ...g.tokens]);
    const { inputIds, attentionMask } = leftPad(seqs, 0, model.device);
    const lp = model.tokenLogprobs({ inputIds, attentionMask }).toArray() as number[][];
    const width = inputIds.size(1);
    let gap = 0;
    gens.forEach((g, r) => {
      const start = width - seqs[r]!.length + ps[g.prompt]!.length; // position of the first response token
      g.tokens.forEach((_, j) => {
        gap = Math.max(gap, Math.abs(lp[r]![start + j - 1]! - g.logprobs[j]!));
      });
    });
    void n;
    return gap;
  });
}

test('generation log-probs equal those of a full forward over prompt + response (float32 and bfloat16)', { skip: noLlama }, () => {
  const gaps: Record<string, number> = {};
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const model = loadModel(llamaDir, { dtype });
    const ps = prompts();
    const gens = generate(model, ps, { temperature: 0.7, topP: 0.9, maxNewTokens: 24, n: 2, seed: 3, eosTokenIds: [] });
    gaps[dtype] = logprobGap(model, ps, gens, 2);
    model.dispose();
  }
  console.log(`# max |generation log-prob - full-forward log-prob|: float32 ${gaps.float32!.toExponential(2)}, bfloat16 ${gaps.bfloat16!.toExponential(2)}`);
  // Incremental (KV cache) vs full forward in float32: reduction order only (LOGPROB32).
  reportError('generation vs full forward, float32', gaps.float32!, LOGPROB32);
  assert.ok(gaps.float32! <= LOGPROB32, `float32 gap ${gaps.float32}`);
  // Both in bfloat16 with the same weights (the cache changes reductions' order): LOGPROB_BF16.
  const bf16Limit = LOGPROB_BF16;
  reportError('generation vs full forward, bfloat16', gaps.bfloat16!, bf16Limit);
  assert.ok(gaps.bfloat16! < bf16Limit, `bfloat16 gap ${gaps.bfloat16}`);
});

// ---------------------------------------------------------------- the geometric mixture of two models (Nash-MD's opponent)
const qwenDir = join(fixtureRoot, 'qwen2');

/**
 * The mixture's log-probs from full forward passes over prompt + response (no cache): log_softmax((1 - c) z_pi +
 * c z_mu) at each response position, as TRL's GeometricMixtureWrapper computes them. Returns, per generation, the
 * reference log-prob of each generated token and how far below the step's best mixed score the token is.
 */
function mixtureReference(pi: CausalLM, mu: CausalLM, c: number, ps: number[][], gens: Generation[]): { logprobs: number[][]; belowBest: number[][] } {
  return tidy(() => {
    const seqs = gens.map((g) => [...ps[g.prompt]!, ...g.tokens]);
    const { inputIds, attentionMask } = leftPad(seqs, 0, pi.device);
    const mixed = pi.forward({ inputIds, attentionMask }).mul(1 - c).add(mu.forward({ inputIds, attentionMask }).mul(c)).logSoftmax(-1);
    const lp = mixed.toArray() as number[][][];
    const width = inputIds.size(1);
    const out = { logprobs: [] as number[][], belowBest: [] as number[][] };
    gens.forEach((g, r) => {
      const start = width - seqs[r]!.length + ps[g.prompt]!.length;
      const row = g.tokens.map((tok, j) => {
        const dist = lp[r]![start + j - 1]!;
        return { lp: dist[tok]!, below: Math.max(...dist) - dist[tok]! };
      });
      out.logprobs.push(row.map((x) => x.lp));
      out.belowBest.push(row.map((x) => x.below));
    });
    return out;
  });
}

test('mixture sampling draws from (1 - c) z_pi + c z_mu: greedy and sampled tokens and log-probs against full forward passes of both models; c = 0 and c = 1 are the models themselves', { skip: noLlama }, () => {
  const pi = loadModel(llamaDir);
  const mu = loadModel(qwenDir);
  const ps = prompts();
  const o = { maxNewTokens: 12, n: 2, eosTokenIds: [] as number[] };
  let gap = 0;
  for (const c of [0.1, 0.5]) {
    for (const sampling of [{ temperature: 0 }, { temperature: 0.7, topP: 0.9, seed: 5 }]) {
      const gens = generate(pi, ps, { ...o, ...sampling, mixture: { model: mu, coef: c } });
      const ref = mixtureReference(pi, mu, c, ps, gens);
      gens.forEach((g, r) => {
        g.logprobs.forEach((x, j) => (gap = Math.max(gap, Math.abs(x - ref.logprobs[r]![j]!))));
        // Greedy: each token is the mixture's best, up to the float32 error of the scores (a near tie may go either way).
        if (sampling.temperature === 0) g.tokens.forEach((_, j) => assert.ok(ref.belowBest[r]![j]! <= 2 * LOGPROB32, `c ${c}, row ${r}, step ${j}: the token is ${ref.belowBest[r]![j]} below the mixture's best`));
      });
    }
  }
  reportError('mixture generation vs full forwards, float32', gap, LOGPROB32);
  assert.ok(gap <= LOGPROB32, `mixture log-prob gap ${gap}`);
  // The mixture differs from both models: at c = 0.5 its greedy tokens are neither's.
  const greedy = (m: CausalLM, mix?: { model: CausalLM; coef: number }): number[][] => generate(m, ps, { ...o, temperature: 0, ...(mix ? { mixture: mix } : {}) }).map((g) => g.tokens);
  const half = greedy(pi, { model: mu, coef: 0.5 });
  assert.notDeepEqual(half, greedy(pi));
  assert.notDeepEqual(half, greedy(mu));
  // The ends: c = 0 is pi, c = 1 is mu (same tokens; same seed, same draws).
  assert.deepEqual(greedy(pi, { model: mu, coef: 0 }), greedy(pi));
  assert.deepEqual(greedy(pi, { model: mu, coef: 1 }), greedy(mu));
  const sampled = (m: CausalLM, mix?: { model: CausalLM; coef: number }): number[][] =>
    generate(m, ps, { ...o, temperature: 1, seed: 9, ...(mix ? { mixture: mix } : {}) }).map((g) => g.tokens);
  assert.deepEqual(sampled(pi, { model: mu, coef: 1 }), sampled(mu));
  assert.throws(() => generate(pi, ps, { ...o, mixture: { model: mu, coef: 1.5 } }), /mixture\.coef must be in \[0, 1\]/);
  pi.dispose();
  mu.dispose();
});

test('mixture sampling matches TRL 1.13\'s GeometricMixtureWrapper (test/fixtures/trl/mixture.json, scripts/trl-mixture-fixture.py): greedy tokens and log-probs, batched and left-padded here, one prompt at a time there', { skip: noLlama }, () => {
  const fx = JSON.parse(readFileSync(join(projectRoot, 'test', 'fixtures', 'trl', 'mixture.json'), 'utf8')) as {
    max_new_tokens: number;
    runs: { coef: number; generations: { prompt_ids: number[]; tokens: number[]; logprobs: number[] }[] }[];
  };
  const pi = loadModel(llamaDir);
  const mu = loadModel(qwenDir);
  try {
    let gap = 0;
    for (const run of fx.runs) {
      const gens = generate(pi, run.generations.map((g) => g.prompt_ids), { temperature: 0, maxNewTokens: fx.max_new_tokens, eosTokenIds: [], mixture: { model: mu, coef: run.coef } });
      run.generations.forEach((want, i) => {
        assert.deepEqual(gens[i]!.tokens, want.tokens, `coef ${run.coef}, prompt ${i}`);
        want.logprobs.forEach((x, j) => (gap = Math.max(gap, Math.abs(x - gens[i]!.logprobs[j]!))));
      });
    }
    // Two float32 implementations (PyTorch's, unpadded and without a cache; ours, batched with one): LOGPROB32.
    reportError('mixture generation vs TRL GeometricMixtureWrapper', gap, LOGPROB32);
    assert.ok(gap <= LOGPROB32, `log-prob gap against TRL ${gap}`);
  } finally {
    pi.dispose();
    mu.dispose();
  }
});
