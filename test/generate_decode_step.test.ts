// The graph-ready decoding step (src/generate/decode_step.ts) on the CPU: for every hf-tiny architecture it
// gives the same tokens as the op-by-op loop for the same seed, and its log-probs to rounding (left padding, n > 1, EOS and
// stop ids, minNewTokens, greedy, temperature / top-k / top-p); the exponential race equals libtorch's
// multinomial; CUDA graphs say they are unavailable on the CPU. With SPPO_DEVICE=cuda: graph-replayed
// decoding gives the op-by-op tokens and captures one graph per bucket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type CausalLM } from '../src/models/index.js';
import { decodeGraphCount, decodeMode, generate, generateTensors, leftPad, releaseDecodeGraphs, sampleNext, warpLogits, type GenerateOptions } from '../src/generate/index.js';
import { arange, CudaGraph, emptyLike, full, Generator, multinomial, randn, scaledDotProductAttention, tidy } from '../src/torch/index.js';
import { repeatKv, sdpaGroupedStep, stepMask } from '../src/nn/attention.js';
import { fixtureRoot, readExpected } from './text_helpers.js';
import { EPS32, LOGPROB_BF16, LOGPROB32, reportError } from './helpers/tolerances.js';
import { cudaSkipReason } from './helpers/cuda.js';

const ARCHS = ['llama', 'mistral', 'qwen2', 'gemma2', 'gpt2'];
const gpu = process.env.SPPO_DEVICE === 'cuda';

// ---------------------------------------------------------------- the exponential race
test('sampling by the exponential race draws the tokens of multinomial(probs, 1) for the same generator state', () => {
  tidy(() => {
    for (const [rows, vocab, seed] of [[64, 49152, 1], [7, 5, 2], [300, 512, 3]] as const) {
      const logits = randn([rows, vocab], { generator: new Generator(100 + seed) }).mul(3);
      for (const o of [{ temperature: 1 }, { temperature: 0.7, topP: 0.9 }, { temperature: 1.3, topK: 20 }]) {
        const probs = warpLogits(logits, o).softmax(-1);
        const viaMultinomial = multinomial(probs, 1, { generator: new Generator(seed) }).squeeze(1);
        const race = sampleNext(logits, o, new Generator(seed));
        assert.ok(race.equal(viaMultinomial), `${rows} x ${vocab} ${JSON.stringify(o)}: the race and multinomial drew different tokens`);
        // And the composition is what it says: argmax(probs / Exp(1)).
        const q = emptyLike(probs).exponential_(1, new Generator(seed));
        assert.ok(probs.div(q).argmax(-1).equal(race));
      }
    }
  });
});

test('grouped-query decoding step through scaled_dot_product_attention (GPU path): the same as with repeated keys and values', () => {
  tidy(() => {
    const g = new Generator(3);
    const [b, hkv, nRep, lk, d] = [3, 2, 3, 11, 8];
    const q = randn([b, hkv * nRep, 1, d], { generator: g });
    const k = randn([b, hkv, lk, d], { generator: g });
    const v = randn([b, hkv, lk, d], { generator: g });
    const valid = randn([b, lk], { generator: g }).gt(-0.5);
    const mask = stepMask(valid, arange(0, lk), full([1], 7, { dtype: 'int64' }), 'float32', 4);
    const grouped = sdpaGroupedStep(q, k, v, mask, 0.3);
    const repeated = scaledDotProductAttention(q, repeatKv(k, nRep), repeatKv(v, nRep), { mask, scale: 0.3 });
    assert.deepEqual(grouped.shape, [b, hkv * nRep, 1, d]);
    // The same dot products, softmax and weighted sum, at most in another kernel order. A score sums D
    // products of size <= max|q| max|k|: off by <= D * EPS32 * D max|q| max|k|, which moves each softmax
    // weight by that relative amount (twice: numerator and sum); the output's sum over Lk keys adds
    // Lk * EPS32; all times max|v|.
    const mx = (t: typeof q): number => t.abs().max().item();
    const scoreErr = d * EPS32 * d * mx(q) * mx(k) * 0.3;
    const limit = (2 * scoreErr + lk * EPS32) * mx(v);
    const err = grouped.sub(repeated).abs().max().item();
    reportError('grouped vs repeated sdpa step', err, limit);
    assert.ok(err <= limit, `max |grouped - repeated| = ${err} > ${limit}`);
  });
});

// ---------------------------------------------------------------- static step = op-by-op loop
function fixture(arch: string): string | false {
  const dir = join(fixtureRoot, arch);
  return existsSync(join(dir, 'model.safetensors')) ? dir : false;
}

interface Case {
  name: string;
  opts: GenerateOptions;
}

/** Prompts of different lengths (left padding), some tokens of each other's to vary. */
function promptsOf(dir: string): number[][] {
  const ps = readExpected(dir).prompt_ids;
  return [...ps, ps[0]!.slice(0, 3)];
}

/**
 * Runs both loops and compares them: the same tokens and finish reasons, log-probs equal to rounding. The static
 * step attends over the cache's whole capacity, where the positions not written yet enter only as exact zeros
 * (exp(finfo.min - max) = 0, 0 * v = 0); but a sum over more elements may be grouped otherwise by a vectorised or
 * BLAS kernel (its lanes and tails depend on the length), so the two agree to rounding (LOGPROB32, or LOGPROB_BF16
 * for bfloat16), and bit for bit only where the kernels happen to group alike. Returns the op-by-op generations.
 */
function compareLoops(model: CausalLM, prompts: number[][], opts: GenerateOptions, what: string, limit = LOGPROB32): ReturnType<typeof generate> {
  const loop = generate(model, prompts, { ...opts, graph: 'off' });
  const stat = generate(model, prompts, { ...opts, graph: 'on' });
  assert.equal(stat.length, loop.length);
  loop.forEach((g, i) => {
    const s = stat[i]!;
    assert.deepEqual(s.tokens, g.tokens, `${what}: row ${i} tokens`);
    assert.equal(s.finishReason, g.finishReason, `${what}: row ${i} finish reason`);
    assert.equal(s.logprobs.length, g.logprobs.length, `${what}: row ${i} log-probs`);
    let worst = 0;
    g.logprobs.forEach((lp, j) => (worst = Math.max(worst, Math.abs(s.logprobs[j]! - lp))));
    reportError(`static step vs loop, ${what}, row ${i}`, worst, limit);
    assert.ok(worst <= limit, `${what}: row ${i} log-probs differ by ${worst} > ${limit}`);
  });
  return loop;
}

for (const arch of ARCHS) {
  const dir = fixture(arch);
  test(`static decoding step = op-by-op loop (same tokens, log-probs to rounding): ${arch}`, { skip: dir ? false : `no ${arch} fixture under ${fixtureRoot}` }, () => {
    const model = loadModel(dir as string, { device: 'cpu' }); // on the CPU (the GPU test below: graphs)
    try {
      const prompts = promptsOf(dir as string);
      const greedyFree = compareLoops(model, prompts, { temperature: 0, maxNewTokens: 12, eosTokenIds: [] }, 'greedy');
      // EOS: a token that row 0 draws greedily at step 3 ends it there; a stop id another row's token at step 2.
      const eosId = greedyFree[0]!.tokens[3]!;
      const stopId = greedyFree[1]!.tokens[2]!;
      const cases: Case[] = [
        { name: 'greedy with EOS and a stop id', opts: { temperature: 0, maxNewTokens: 12, eosTokenIds: [eosId], stopTokenIds: [stopId] } },
        { name: 'greedy, minNewTokens 5', opts: { temperature: 0, maxNewTokens: 12, eosTokenIds: [eosId], stopTokenIds: [stopId], minNewTokens: 5 } },
        { name: 'sampling, n = 3', opts: { temperature: 1, maxNewTokens: 10, n: 3, seed: 11, eosTokenIds: [] } },
        { name: 'temperature 0.7, top-p 0.9, n = 2, EOS', opts: { temperature: 0.7, topP: 0.9, maxNewTokens: 16, n: 2, seed: 5, eosTokenIds: [eosId, stopId] } },
        { name: 'top-k 8, top-p 0.8, minNewTokens 4', opts: { temperature: 1.2, topK: 8, topP: 0.8, maxNewTokens: 10, n: 2, seed: 9, eosTokenIds: [eosId], minNewTokens: 4 } },
      ];
      for (const c of cases) {
        const gens = compareLoops(model, prompts, c.opts, c.name);
        if (c.name.startsWith('greedy with EOS')) {
          // Row 0 ends at its first end token (by step 3), with the reason of that token.
          const free0 = greedyFree[0]!.tokens;
          const at = free0.findIndex((t) => t === eosId || t === stopId);
          assert.equal(gens[0]!.tokens.length, at + 1);
          assert.equal(gens[0]!.finishReason, free0[at] === eosId ? 'eos' : 'stop');
        }
        const ends = new Set([...(c.opts.eosTokenIds ?? []), ...(c.opts.stopTokenIds ?? [])]);
        if (c.opts.minNewTokens) for (const g of gens) assert.ok(!g.tokens.slice(0, c.opts.minNewTokens).some((t) => ends.has(t)), `minNewTokens: ${g.tokens}`);
      }
      // bfloat16 weights and activations: the same tokens, log-probs to bfloat16 rounding.
      const half = loadModel(dir as string, { device: 'cpu', dtype: 'bfloat16' });
      try {
        compareLoops(half, prompts, { temperature: 0.8, topP: 0.9, maxNewTokens: 12, n: 2, seed: 3, eosTokenIds: [eosId] }, 'bfloat16 sampling', LOGPROB_BF16);
      } finally {
        half.dispose();
      }
    } finally {
      model.dispose();
    }
  });
}

test('the static step also serves generateTensors: same tensors and lengths as the loop (all rows stop early)', { skip: fixture('llama') ? false : 'no llama fixture' }, () => {
  const dir = fixture('llama') as string;
  const model = loadModel(dir, { device: 'cpu' });
  try {
    const prompts = promptsOf(dir);
    const free = generate(model, prompts, { temperature: 0, maxNewTokens: 6, eosTokenIds: [] });
    const { inputIds, attentionMask } = leftPad(prompts, 0);
    // Every row ends by step 5 (its own 5th token is an end token), so both loops stop before maxNewTokens.
    const opts: GenerateOptions = { temperature: 0, maxNewTokens: 40, eosTokenIds: free.map((g) => g.tokens[4]!) };
    const a = generateTensors(model, inputIds, attentionMask, { ...opts, graph: 'off' });
    const b = generateTensors(model, inputIds, attentionMask, { ...opts, graph: 'on' });
    assert.deepEqual(b.tokens.shape, a.tokens.shape);
    assert.ok(a.tokens.size(1) < 40);
    assert.ok(b.tokens.equal(a.tokens));
    const lpDiff = tidy(() => b.logprobs.sub(a.logprobs).abs().max().item() as number);
    assert.ok(lpDiff <= LOGPROB32, `log-probs differ by ${lpDiff}`);
    assert.deepEqual(b.lengths, a.lengths);
    assert.deepEqual(b.finishReasons, a.finishReasons);
    for (const t of [inputIds, attentionMask, a.tokens, a.logprobs, b.tokens, b.logprobs]) t.dispose();
  } finally {
    model.dispose();
  }
});

test('decode modes: stop strings and graph off take the op-by-op loop; on the CPU, on = the static step, auto = the loop', () => {
  assert.equal(decodeMode({ graph: 'on', stopStrings: ['\n'] }, 'cpu'), 'loop');
  assert.equal(decodeMode({ graph: 'off' }, 'cpu'), 'loop');
  assert.equal(decodeMode({ graph: 'on' }, 'cpu'), 'static');
  assert.equal(decodeMode({}, 'cpu'), 'loop');
  assert.throws(() => decodeMode({ graph: 'yes' as never }, 'cpu'), /graph must be 'auto', 'on' or 'off'/);
});

test('CUDA graphs: unavailable without CUDA, with the reason', { skip: gpu ? 'runs on the CPU only' : false }, () => {
  if (CudaGraph.isAvailable()) return; // a CUDA build on a GPU machine without SPPO_DEVICE=cuda
  assert.match(CudaGraph.unavailableReason()!, /CUDA/);
  assert.throws(() => new CudaGraph('cuda'), /CUDA graphs are unavailable/);
});

// ---------------------------------------------------------------- on a GPU
test('cuda: graph-replayed decoding gives the op-by-op tokens for the same seed; one capture per bucket', { skip: cudaSkipReason() }, () => {
  assert.ok(CudaGraph.isAvailable(), `CUDA graphs unavailable: ${CudaGraph.unavailableReason()}`);
  const samplingOk = CudaGraph.supportsGenerators();
  for (const arch of ['llama', 'gemma2', 'gpt2']) {
    const dir = fixture(arch);
    assert.ok(dir, `no ${arch} fixture under ${fixtureRoot}`);
    const model = loadModel(dir, { device: 'cuda' });
    try {
      // Prompts of at most 16 tokens, the longest exactly 16: the graph path's prompt bucket, so both loops
      // see the same padding.
      const base = promptsOf(dir);
      const prompts = base.map((p, i) => (i === 0 ? [...p, ...p, ...p, ...p, ...p, ...p].slice(0, 16) : p.slice(0, 16)));
      const cases: GenerateOptions[] = [
        { temperature: 0, maxNewTokens: 20, eosTokenIds: [] },
        { temperature: 0, maxNewTokens: 1, eosTokenIds: [] }, // fewer steps than the capture's warm-up calls
        ...(samplingOk && arch === 'llama' ? [{ temperature: 0.7, topP: 0.9, topK: 50, maxNewTokens: 20, n: 2, seed: 4, eosTokenIds: [], minNewTokens: 3 }] : []),
      ];
      for (const o of cases) {
        const before = CudaGraph.captureCount;
        const loop = generate(model, prompts, { ...o, graph: 'off' });
        const first = generate(model, prompts, { ...o, graph: 'on' });
        const again = generate(model, prompts, { ...o, graph: 'on' });
        assert.equal(CudaGraph.captureCount - before, 1, `${arch}: one capture for the bucket, replayed by the second call`);
        loop.forEach((g, i) => {
          assert.deepEqual(first[i]!.tokens, g.tokens, `${arch} ${JSON.stringify(o)} row ${i}`);
          assert.deepEqual(again[i]!.tokens, g.tokens, `${arch} ${JSON.stringify(o)} row ${i}, second batch`);
          // Attention over the full capacity on the GPU: the fused kernels may sum in another order, so the
          // log-probs of the same tokens agree to float32 reduction order (LOGPROB32, helpers/tolerances.ts).
          g.logprobs.forEach((x, j) => assert.ok(Math.abs(first[i]!.logprobs[j]! - x) <= LOGPROB32, `${x} vs ${first[i]!.logprobs[j]}`));
        });
      }
      assert.ok(decodeGraphCount(model) >= 1);
      releaseDecodeGraphs(model);
      assert.equal(decodeGraphCount(model), 0);
    } finally {
      model.dispose();
    }
  }
});
