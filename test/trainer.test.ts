// The SPPO trainer on the tiny Llama fixture: the sequence log-prob it uses (response tokens only) against
// the fixture and an independent computation, a few steps of each loss reduce the loss, lr 0 leaves the
// log-ratios at 0, reference log-probs from the examples, gradient accumulation, held-out split, metrics
// file, and a NaN / infinity stopping training with the last good checkpoint kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel } from '../src/models/registry.js';
import { LOSS_TYPES } from '../src/sppo/losses.js';
import { exampleLogprobs, frozenCopy, pairLogprobs, train, TrainingDivergedError, type TrainExample, type TrainOptions } from '../src/sppo/trainer.js';
import { truncatePair } from '../src/sppo/logprobs.js';
import { createRng } from '../src/sppo/rng.js';
import { hfTiny } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';
import { LOGPROB32 } from './helpers/tolerances.js';

const dir = join(hfTiny, 'llama');
const skip = existsSync(join(dir, 'model.safetensors')) ? false : `no fixture at ${dir} (set SPPO_HF_FIXTURES)`;

function ids(rng: ReturnType<typeof createRng>, n: number): number[] {
  return Array.from({ length: n }, () => 4 + rng.int(500));
}

function examples(n: number, seed = 1): TrainExample[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, (_, i) => ({
    promptIds: ids(rng, 3 + (i % 3)),
    chosenIds: ids(rng, 4 + (i % 2)),
    rejectedIds: ids(rng, 3 + ((i + 1) % 3)),
    chosenWinRate: 0.7 + 0.05 * (i % 3),
    rejectedWinRate: 0.3 - 0.05 * (i % 2),
    chosenOverRejected: 0.8,
  }));
}

function base(over: Partial<TrainOptions>): TrainOptions {
  return {
    policy: dir, examples: examples(4), loss: 'sppo', beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 4, gradAccum: 1,
    optimizer: 'rmsprop', warmupRatio: 0, schedule: 'constant', maxLength: 64, maxPromptLength: 32, maxGradNorm: 1,
    dtype: 'float32', device: 'cpu', seed: 0, ...over,
  };
}

const params = (m: { namedParameters(): [string, torch.Tensor][] }): Map<string, Float32Array> =>
  new Map(m.namedParameters().map(([n, t]) => [n, Float32Array.from(t.toTypedArray() as Float32Array)]));

test('the response log-prob is the sum of the response tokens log-probs (fixture seq_logprob_sum)', { skip }, () => {
  const model = loadModel(dir);
  try {
    const ex = torch.SafetensorsFile.open(join(dir, 'expected.safetensors'));
    const row = torch.tidy(() => {
      const inputIds = ex.load('input_ids');
      const mask = ex.load('attention_mask');
      return {
        ids: Array.from(inputIds.select(0, 2).toTypedArray() as BigInt64Array, Number),
        mask: Array.from(mask.select(0, 2).toTypedArray() as BigInt64Array, Number),
        lp: Array.from(ex.load('token_logprobs').select(0, 2).toTypedArray() as Float32Array),
        total: ex.load('seq_logprob_sum').item(),
      };
    });
    const first = row.mask.indexOf(1);
    const tokens = row.ids.slice(first);
    // seq_logprob_sum sums log p(x[t+1] | x<=t) over the row; the term predicting the first real token from
    // padding alone is not a response-token term: with the first token as the prompt, the rest is the response.
    const expected = row.total - row.lp[first - 1]!;
    const got = exampleLogprobs(model, { promptIds: tokens.slice(0, 1), chosenIds: tokens.slice(1), rejectedIds: tokens.slice(1) }, 1024, 512);
    // Against PyTorch's float32 kernels, a sum of the row's n token log-probs: n * LOGPROB32 (helpers/tolerances.ts).
    assert.ok(Math.abs(got.chosen - expected) <= tokens.length * LOGPROB32, `${got.chosen} vs fixture ${expected}`);
    // An independent computation: tokenLogprobs of the unpadded sequence, summed over the response positions only.
    const k = 7;
    const independent = torch.tidy(() => {
      const lp = model.tokenLogprobs({ inputIds: torch.tensor(BigInt64Array.from(tokens.map(BigInt)), { shape: [1, tokens.length] }) });
      return lp.narrow(1, k - 1, tokens.length - k).sum().item();
    });
    const split = exampleLogprobs(model, { promptIds: tokens.slice(0, k), chosenIds: tokens.slice(k), rejectedIds: tokens.slice(k, k + 3) }, 1024, 512);
    assert.ok(Math.abs(split.chosen - independent) <= tokens.length * LOGPROB32, `${split.chosen} vs ${independent}`);
    // Padding in a batch of pairs of different lengths changes nothing.
    const pairs = examples(3).map((e) => truncatePair(e.promptIds, e.chosenIds, e.rejectedIds, 64, 32));
    const batched = pairLogprobs(model, pairs, 3);
    const single = pairs.map((p) => pairLogprobs(model, [p], 1)[0]!);
    batched.forEach((b, i) => {
      // Padded in a batch vs alone: float32 reduction order only, a sum of n response log-probs: n * LOGPROB32.
      const n = Math.max(pairs[i]!.chosenIds.length, pairs[i]!.rejectedIds.length);
      assert.ok(Math.abs(b[0] - single[i]![0]) <= n * LOGPROB32 && Math.abs(b[1] - single[i]![1]) <= n * LOGPROB32, `pair ${i}: ${b} vs ${single[i]}`);
    });
  } finally {
    model.dispose();
  }
});

test('truncation: prompt from the left, responses from the right', () => {
  const t = truncatePair([1, 2, 3, 4, 5, 6], [10, 11, 12, 13], [20, 21], 8, 3);
  assert.deepEqual(t.promptIds, [4, 5, 6]);
  assert.deepEqual(t.chosenIds, [10, 11, 12, 13]);
  const u = truncatePair([1, 2, 3, 4, 5, 6], [10, 11, 12, 13, 14, 15, 16], [20, 21], 8, 3);
  assert.deepEqual(u.promptIds, [4, 5, 6]);
  assert.deepEqual(u.chosenIds, [10, 11, 12, 13, 14]);
  assert.deepEqual(u.rejectedIds, [20, 21]);
  // Short enough: untouched.
  assert.deepEqual(truncatePair([1, 2], [3], [4], 8, 1).promptIds, [1, 2]);
  assert.throws(() => truncatePair([1], [2], [3], 8, 8), /maxPromptLength/);
});

test('lr 0: the log-ratios stay 0 and the weights do not move', { skip }, async () => {
  const policy = loadModel(dir);
  const before = params(policy);
  try {
    const r = await train(base({ policy, lr: 0, epochs: 3, batchSize: 2 }));
    assert.equal(r.metrics.length, 6);
    for (const m of r.metrics) {
      // Policy and reference are the same weights, their sequence log-probs (<= 8 response tokens here)
      // computed in other batches: within 8 * LOGPROB32; a wrong reference or shift is off by nats.
      assert.ok(Math.abs(m.a_w) <= 8 * LOGPROB32 && Math.abs(m.a_l) <= 8 * LOGPROB32, `step ${m.step}: a_w ${m.a_w}, a_l ${m.a_l}`);
      assert.equal(m.lr, 0);
      assert.ok(m.grad_norm > 0 && Number.isFinite(m.tokens_per_s));
    }
    const after = params(r.model);
    for (const [n, v] of before) assert.deepEqual(after.get(n), v, n);
  } finally {
    policy.dispose();
  }
});

for (const loss of LOSS_TYPES) {
  test(`a few steps of ${loss} reduce the loss`, { skip }, async () => {
    // The last-iterate losses' inputs: the fixture itself as the magnet, previous-policy win rates for omwu.
    const extra: Partial<TrainOptions> =
      loss === 'mpo' || loss === 'nash-md' ? { tau: 0.5, magnet: dir } : loss === 'omwu' ? { examples: examples(4).map((e) => ({ ...e, chosenPrevWinRate: 0.4, rejectedPrevWinRate: 0.6 })) } : {};
    const r = await train(base({ loss, epochs: 6, lr: 1e-5, ...extra }));
    try {
      const first = r.metrics[0]!;
      const last = r.metrics.at(-1)!;
      assert.ok(last.loss < first.loss * 0.9, `${loss}: ${first.loss} -> ${last.loss}`);
      if (loss !== 'sppo_single') assert.ok(last.margin > first.margin, `${loss}: margin ${first.margin} -> ${last.margin}`);
    } finally {
      r.model.dispose();
    }
  });
}

test('reference log-probs given with the examples are used (and ignored when truncation changes the example)', { skip }, async () => {
  const model = loadModel(dir);
  try {
    const exs = examples(2);
    const truth = pairLogprobs(model, exs, 2);
    const given = exs.map((e, i) => ({ ...e, chosenRefLogprob: truth[i]![0] + 1, rejectedRefLogprob: truth[i]![1] - 2 }));
    const r = await train(base({ policy: model, examples: given, lr: 0, batchSize: 2 }));
    // As in the lr 0 test: the same log-probs in other batches, 8 * LOGPROB32.
    assert.ok(Math.abs(r.metrics[0]!.a_w + 1) <= 8 * LOGPROB32, `a_w ${r.metrics[0]!.a_w}`);
    assert.ok(Math.abs(r.metrics[0]!.a_l - 2) <= 8 * LOGPROB32, `a_l ${r.metrics[0]!.a_l}`);
    // maxLength short enough to truncate every example: the given values no longer apply.
    const r2 = await train(base({ policy: model, examples: given, lr: 0, batchSize: 2, maxLength: 6, maxPromptLength: 2 }));
    assert.ok(Math.abs(r2.metrics[0]!.a_w) <= 8 * LOGPROB32 && Math.abs(r2.metrics[0]!.a_l) <= 8 * LOGPROB32);
  } finally {
    model.dispose();
  }
});

// The accumulated gradients of each step (before clipping), by parameter name.
function gradsOf(over: Partial<TrainOptions>): { opts: TrainOptions; grads: Map<string, Float32Array>[] } {
  const grads: Map<string, Float32Array>[] = [];
  const opts = base({
    ...over,
    onGradients: (named) => {
      grads.push(new Map(named.map(([n, t]) => [n, Float32Array.from(t.grad!.toTypedArray() as Float32Array)])));
    },
  });
  return { opts, grads };
}

// Largest |a - b| over all gradient entries, relative to the largest |a| of the same parameter tensor.
function gradError(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [n, v] of a) {
    const w = b.get(n)!;
    let scale = 0;
    for (let i = 0; i < v.length; i++) scale = Math.max(scale, Math.abs(v[i]!));
    for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i]! - w[i]!) / Math.max(scale, 1e-30));
  }
  return worst;
}

// Two float32 computations of the same gradients that differ only in batching (padding, kernel blocking) or
// in recomputation differ by reduction order: each entry is a sum through the network, whose longest
// reductions are the vocabulary (V = 512, log-softmax), the tokens of the batch (~80 positions, weight
// gradients) and the hidden / MLP widths (64 / 176), over L = 2 layers forward and back. A sum of K terms
// in another order differs by at most ~K * eps32 * sum|terms| (eps32 = 2^-24), and the sum|terms| of an
// entry is within a small factor of the largest |entry| of its tensor; we take K = 2048 (V + tokens + widths,
// rounded up, times the depth factor 2). Limit: 2048 * 2^-24 = 1.2e-4 of the tensor's largest |gradient|.
// An AdamW / RMSprop first step is ~lr * sign(g), so the updated weights are not compared: an entry near 0
// flips its update under any rounding. A missing 1/N scale or a dropped micro-batch is an O(1) error.
const GRAD_RTOL = 2048 * 2 ** -24;

test('gradient accumulation: 2 x 2 equals one batch of 4 (accumulated gradients)', { skip }, async () => {
  const ga = gradsOf({ batchSize: 4, gradAccum: 1, optimizer: 'adamw' });
  const gb = gradsOf({ batchSize: 2, gradAccum: 2, optimizer: 'adamw' });
  const a = await train(ga.opts);
  const b = await train(gb.opts);
  try {
    assert.equal(a.metrics.length, 1);
    assert.equal(b.metrics.length, 1);
    assert.equal(ga.grads.length, 1);
    assert.equal(gb.grads.length, 1);
    // The loss is a mean of 4 per-pair losses, each a float32 forward pass (reductions as above).
    assert.ok(Math.abs(a.metrics[0]!.loss - b.metrics[0]!.loss) <= GRAD_RTOL * Math.abs(a.metrics[0]!.loss), `loss ${a.metrics[0]!.loss} vs ${b.metrics[0]!.loss}`);
    // The norm's relative error is at most the entries' relative error.
    assert.ok(Math.abs(a.metrics[0]!.grad_norm - b.metrics[0]!.grad_norm) <= GRAD_RTOL * a.metrics[0]!.grad_norm, `grad_norm ${a.metrics[0]!.grad_norm} vs ${b.metrics[0]!.grad_norm}`);
    const err = gradError(ga.grads[0]!, gb.grads[0]!);
    if (process.env.SPPO_PRINT_ERRORS) console.log(`gradient accumulation: gradient error ${err} (limit ${GRAD_RTOL})`);
    assert.ok(err <= GRAD_RTOL, `largest gradient difference ${err} of the tensor's largest |gradient| (limit ${GRAD_RTOL})`);
    // And a real difference is caught: half of the batch's gradient is far outside the limit.
    const half = new Map([...gb.grads[0]!].map(([n, v]) => [n, v.map((x) => x / 2)]));
    assert.ok(gradError(ga.grads[0]!, half) > 0.1);
  } finally {
    a.model.dispose();
    b.model.dispose();
  }
});

test('held-out split, metrics JSONL, schedule with warmup, final checkpoint', { skip }, async () => {
  const out = tempDir('train');
  try {
    const metricsPath = join(out, 'metrics.jsonl');
    const ckpt = join(out, 'ckpt');
    const seen: number[] = [];
    const r = await train(base({
      examples: examples(10), evalFraction: 0.2, batchSize: 2, gradAccum: 2, epochs: 2, warmupRatio: 0.5, schedule: 'linear',
      metricsPath, checkpointDir: ckpt, onStep: (m) => seen.push(m.step),
    }));
    assert.equal(r.evalSize, 2);
    assert.equal(r.trainSize, 8);
    assert.equal(r.metrics.length, 4);
    assert.deepEqual(seen, [1, 2, 3, 4]);
    // 8 examples, 4 per optimizer step: 2 steps an epoch; the epoch is logged fractional, as transformers logs it.
    assert.deepEqual(r.metrics.map((m) => m.epoch), [0.5, 1, 1.5, 2]);
    // Warmup of ceil(0.5 * 4) = 2 steps: lr 0, lr/2, then linear decay: (4-2)/2 = 1, (4-3)/2 = 0.5.
    assert.deepEqual(r.metrics.map((m) => m.lr), [0, 0.5e-3, 1e-3, 0.5e-3]);
    assert.equal(typeof r.metrics[1]!.eval_loss, 'number');
    assert.equal(typeof r.metrics[3]!.eval_loss, 'number');
    assert.equal(r.metrics[0]!.eval_loss, undefined);
    const lines = readFileSync(metricsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 4);
    for (const k of ['step', 'epoch', 'loss', 'a_w', 'a_l', 'margin', 'pair_accuracy', 'grad_norm', 'lr', 'tokens_per_s']) assert.ok(k in lines[0], k);
    const state = JSON.parse(readFileSync(join(ckpt, 'trainer_state.json'), 'utf8'));
    assert.equal(state.step, 4);
    const reloaded = loadModel(ckpt);
    const now = params(r.model);
    for (const [n, v] of params(reloaded)) assert.deepEqual(v, now.get(n), n);
    reloaded.dispose();
    assert.ok(existsSync(join(ckpt, 'tokenizer.json')));
  } finally {
    removeDir(out);
  }
});

test('a poisoned example (infinite loss) stops training with an error naming the step', { skip }, async () => {
  const exs = examples(4);
  exs[2] = { ...exs[2]!, chosenRefLogprob: 1e30, rejectedRefLogprob: -5 };
  await assert.rejects(train(base({ examples: exs })), (e: unknown) => {
    assert.ok(e instanceof TrainingDivergedError);
    assert.equal(e.step, 1);
    assert.match(e.message, /step 1: the loss is Infinity/);
    return true;
  });
});

test('a huge learning rate: NaN stops training, the checkpoint folder keeps the last good model', { skip }, async () => {
  const out = tempDir('train-nan');
  const initial = loadModel(dir);
  try {
    // Without checkpoints: step 2 updates with lr 3e38 (step 1 is the warmup's lr 0), so step 3's loss is NaN.
    await assert.rejects(train(base({ lr: 3e38, epochs: 4, warmupRatio: 0.25 })), (e: unknown) => {
      assert.ok(e instanceof TrainingDivergedError, String(e));
      assert.equal(e.step, 3);
      assert.match(e.message, /step 3: the loss is NaN/);
      return true;
    });
    // With a checkpoint at every step: the parameters are not finite after step 2, so step 1 is the last good one.
    const ckpt = join(out, 'ckpt');
    await assert.rejects(train(base({ lr: 3e38, epochs: 4, warmupRatio: 0.25, checkpointDir: ckpt, checkpointEvery: 1 })), (e: unknown) => {
      assert.ok(e instanceof TrainingDivergedError, String(e));
      assert.equal(e.step, 2);
      assert.equal(e.lastGoodStep, 1);
      assert.match(e.message, /step 2/);
      assert.match(e.message, /step 1/);
      return true;
    });
    assert.equal(JSON.parse(readFileSync(join(ckpt, 'trainer_state.json'), 'utf8')).step, 1);
    const saved = loadModel(ckpt);
    const want = params(initial);
    for (const [n, v] of params(saved)) assert.deepEqual(v, want.get(n), n);
    saved.dispose();
  } finally {
    initial.dispose();
    removeDir(out);
  }
});

test('frozenCopy is independent of the policy', { skip }, () => {
  const m = loadModel(dir);
  const c = frozenCopy(m);
  const [name, p] = m.namedParameters()[0]!;
  const before = Float32Array.from(p.toTypedArray() as Float32Array);
  torch.noGrad(() => p.mul_(0));
  const c0 = c.namedParameters().find(([n]) => n === name)![1];
  assert.deepEqual(Float32Array.from(c0.toTypedArray() as Float32Array), before);
  m.dispose();
  assert.ok(!c0.isDisposed);
  c.dispose();
});

test('gradient checkpointing of the logits gives the same gradients', { skip }, async () => {
  const ga = gradsOf({ optimizer: 'adamw', chunkTokens: 8 });
  const gb = gradsOf({ optimizer: 'adamw', chunkTokens: 8, gradientCheckpointing: true });
  const a = await train(ga.opts);
  const b = await train(gb.opts);
  try {
    // Recomputing the same chunks with the same shapes: the same reductions, so the same limit as above
    // (GRAD_RTOL) covers it with room; the updated weights are not compared (AdamW flips near-zero entries).
    const err = gradError(ga.grads[0]!, gb.grads[0]!);
    if (process.env.SPPO_PRINT_ERRORS) console.log(`gradient checkpointing: gradient error ${err} (limit ${GRAD_RTOL})`);
    assert.ok(err <= GRAD_RTOL, `largest gradient difference ${err} (limit ${GRAD_RTOL})`);
    assert.ok(Math.abs(a.metrics[0]!.grad_norm - b.metrics[0]!.grad_norm) <= GRAD_RTOL * a.metrics[0]!.grad_norm);
  } finally {
    a.model.dispose();
    b.model.dispose();
  }
});

test('bfloat16 weights: float32 master weights keep the updates that pure bfloat16 steps round away', { skip }, async () => {
  // RMSprop's step moves a weight by at most lr / sqrt(1 - alpha^t) <= 10 lr (at t = 1; eps aside), 1e-4 here. A
  // bfloat16 weight with |w| >= 2^-4 has a spacing of at least 2^-12, so an update under 2^-13 = 1.22e-4 rounds back
  // to it: stepped directly, none of them may move. With float32 masters the 8 steps add up (up to 80 lr) and the
  // weight is the master's rounding: many move, none by more than 80 lr + half a spacing.
  const lr = 1e-5;
  const steps = 8;
  const run = async (masterWeights: boolean): Promise<{ w0: Map<string, Float32Array>; w: Map<string, Float32Array> }> => {
    const policy = loadModel(dir, { dtype: 'bfloat16' });
    const asF32 = (m: { namedParameters(): [string, torch.Tensor][] }): Map<string, Float32Array> =>
      new Map(m.namedParameters().map(([n, t]) => [n, torch.tidy(() => Float32Array.from(t.float().toTypedArray() as Float32Array))]));
    const w0 = asF32(policy);
    const res = await train(base({ policy, examples: examples(2 * steps), batchSize: 2, lr, maxGradNorm: 0, dtype: 'bfloat16', masterWeights }));
    try {
      assert.equal(res.metrics.length, steps);
      return { w0, w: asF32(res.model) };
    } finally {
      res.model.dispose();
    }
  };
  const count = ({ w0, w }: { w0: Map<string, Float32Array>; w: Map<string, Float32Array> }): { big: number; moved: number; worst: number } => {
    let big = 0, moved = 0, worst = 0;
    for (const [n, a] of w0) {
      const b = w.get(n)!;
      for (let i = 0; i < a.length; i++) {
        const x = Math.abs(a[i]!);
        if (x < 2 ** -4) continue;
        big++;
        const d = Math.abs(b[i]! - a[i]!);
        if (d > 0) moved++;
        // Half a spacing of the new value: 2^(floor(log2 |w|) - 8), at most |w| 2^-8; plus the masters' travel.
        worst = Math.max(worst, d / (steps * 10 * lr + Math.max(Math.abs(a[i]!), Math.abs(b[i]!)) * 2 ** -8));
      }
    }
    return { big, moved, worst };
  };
  const pure = count(await run(false));
  const mixed = count(await run(true));
  console.log(`# weights with |w| >= 2^-4: ${pure.big}; moved, bfloat16 steps: ${pure.moved}; with float32 masters: ${mixed.moved} (largest move ${(mixed.worst * 100).toFixed(0)}% of its bound)`);
  assert.ok(pure.big > 1000);
  assert.equal(pure.moved, 0, 'updates under half a spacing are rounded away in pure bfloat16');
  assert.ok(mixed.moved > pure.big / 100, `with float32 masters the updates add up (${mixed.moved} of ${pure.big} moved)`);
  assert.ok(mixed.worst <= 1, 'no weight moves further than the masters can');
});
