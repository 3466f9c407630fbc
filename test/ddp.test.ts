// Data-parallel training (src/sppo/trainer.ts with a c10d Gloo group) in real processes: two ranks that
// share each step's global batch end where one process with the same global batch ends. The gradients the
// ranks sum are compared with one process's (reduction-order tolerance, as for gradient accumulation in
// test/trainer.test.ts), and the updated weights entry by entry against a bound derived from RMSprop's
// first step; over several steps the largest weight difference is reported against RMSprop's worst case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { createRng } from '../src/sppo/rng.js';
import type { StepMetrics, TrainExample, TrainOptions } from '../src/sppo/trainer.js';
import { hfTiny } from './helpers/fixtures.js';
import { freePort } from '../src/util/ports.js';
import { EPS32 } from './helpers/tolerances.js';
import { removeDir, tempDir } from './text_helpers.js';
import { readFloat32Weights } from './helpers/torch.js';

const worker = fileURLToPath(new URL('./helpers/ddp_worker.js', import.meta.url));
const dir = join(hfTiny, 'llama');
const skip = !existsSync(join(dir, 'model.safetensors')) ? `no fixture at ${dir}` : !torch.distributedAvailable().backends.includes('gloo') ? torch.distributedAvailable().reason : false;

function examples(n: number): TrainExample[] {
  const rng = createRng(7);
  const ids = (k: number): number[] => Array.from({ length: k }, () => 4 + rng.int(500));
  return Array.from({ length: n }, (_, i) => ({
    promptIds: ids(3 + (i % 3)), chosenIds: ids(4 + (i % 2)), rejectedIds: ids(3 + ((i + 1) % 3)),
    chosenWinRate: 0.7 + 0.05 * (i % 3), rejectedWinRate: 0.3 - 0.05 * (i % 2), chosenOverRejected: 0.8,
  }));
}

type Opts = Omit<TrainOptions, 'onGradients' | 'onStep' | 'processGroup'>;

/** Runs the worker as one process (world 0: no launcher variables) or as `world` ranks; returns its output folder. */
async function run(root: string, name: string, world: number, opts: Opts): Promise<string> {
  const out = join(root, name);
  mkdirSync(out, { recursive: true });
  const file = join(out, 'options.json');
  writeFileSync(file, JSON.stringify({ ...opts, checkpointDir: join(out, 'ckpt'), out }));
  const port = await freePort();
  const n = Math.max(1, world);
  const codes = await Promise.all(Array.from({ length: n }, (_, rank) => new Promise<string>((res) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (world > 0) Object.assign(env, { RANK: String(rank), WORLD_SIZE: String(world), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
    const p = spawn(process.execPath, [worker, file], { env, stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code, sig) => res(code === 0 ? '' : `rank ${rank} exited ${code ?? sig}: ${err}`));
  })));
  assert.deepEqual(codes.filter(Boolean), [], codes.join('\n'));
  return out;
}

const maxAbs = (v: Float32Array): number => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

// Reduction-order tolerance of two float32 computations of the same gradients (derivation in test/trainer.test.ts,
// GRAD_RTOL): 2048 * 2^-24 of the tensor's largest |gradient|. Two ranks differ from one process in exactly
// that way: other micro-batches (padding, kernel blocking) and the two ranks' halves added by the allreduce.
const GRAD_RTOL = 2048 * EPS32;

function base(over: Partial<Opts>): Opts {
  return {
    policy: dir, examples: examples(4), loss: 'sppo', beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 2, gradAccum: 2,
    optimizer: 'rmsprop', warmupRatio: 0, schedule: 'constant', maxLength: 64, maxPromptLength: 32, maxGradNorm: 0,
    dtype: 'float32', device: 'cpu', seed: 0, ...over,
  };
}

test('2 ranks vs 1 process, one step of a global batch of 4: the same summed gradients and the same updated weights', { skip, timeout: 300_000 }, async () => {
  const root = tempDir('sppo-ddp-');
  try {
    const opts = base({});
    const one = await run(root, 'one', 0, opts);
    const two = await run(root, 'two', 2, opts);
    const g1 = readFloat32Weights(join(one, 'grads-1.safetensors'));
    const g2 = readFloat32Weights(join(two, 'grads-1.safetensors'));
    let gradErr = 0;
    for (const [n, a] of g1) {
      const b = g2.get(n)!;
      const scale = maxAbs(a);
      for (let i = 0; i < a.length; i++) gradErr = Math.max(gradErr, Math.abs(a[i]! - b[i]!) / Math.max(scale, 1e-30));
    }
    console.log(`[ddp] 1 step: largest gradient difference ${gradErr.toExponential(2)} of the tensor's largest |gradient| (limit ${GRAD_RTOL.toExponential(2)})`);
    assert.ok(gradErr <= GRAD_RTOL, `gradient difference ${gradErr} > ${GRAD_RTOL}`);
    // Each rank's share alone is a different gradient: the check above would see a missing allreduce.
    const m1 = JSON.parse(readFileSync(join(one, 'result.json'), 'utf8')) as { metrics: StepMetrics[] };
    const m2 = JSON.parse(readFileSync(join(two, 'result.json'), 'utf8')) as { metrics: StepMetrics[] };
    assert.ok(Math.abs(m1.metrics[0]!.loss - m2.metrics[0]!.loss) <= GRAD_RTOL * Math.abs(m1.metrics[0]!.loss));
    assert.ok(Math.abs(m1.metrics[0]!.grad_norm - m2.metrics[0]!.grad_norm) <= GRAD_RTOL * m1.metrics[0]!.grad_norm);

    // Weights after RMSprop's first step (alpha 0.99, eps 1e-8, no weight decay, no clipping): p - lr * g / (s|g| + eps),
    // s = sqrt(1 - alpha) = 0.1. With the gradient known within d = 2 * GRAD_RTOL * max|g| (both runs' errors):
    //  - an entry with |g| > 2d keeps its sign, and the update moves by at most lr * eps * d / (s (|g| - d))^2;
    //  - an entry with 0 < |g| <= 2d may flip: its update lies anywhere in [-lr/s, lr/s].
    // Plus float32 rounding in each run: the update u = lr g / (sqrt((1 - alpha) g^2) + eps) rounds 6 times (g^2,
    // x (1 - alpha), sqrt, + eps, lr g, the division; sqrt halves the error before it), at most 6 EPS32 |u| with
    // |u| <= lr / s, and p - u once more, EPS32 |p|; both runs: EPS32 * (12 lr / s + 2 |p|).
    const { lr } = opts;
    const s = Math.sqrt(1 - 0.99);
    const w1 = readFloat32Weights(join(one, 'ckpt', 'model.safetensors'));
    const w2 = readFloat32Weights(join(two, 'ckpt', 'model.safetensors'));
    let worst = 0, worstRatio = 0, flips = 0, total = 0;
    for (const [n, a] of w1) {
      const b = w2.get(n)!;
      const g = g1.get(n);
      assert.ok(g, `no gradient for ${n}`);
      const d = 2 * GRAD_RTOL * maxAbs(g);
      for (let i = 0; i < a.length; i++) {
        const gi = Math.abs(g[i]!);
        const round = EPS32 * (12 * lr / s + 2 * Math.abs(a[i]!));
        // A zero gradient (an embedding row no example uses) is zero in both runs, and so is its update.
        const lim = gi === 0 ? round : gi > 2 * d ? lr * 1e-8 * d / (s * (gi - d)) ** 2 + round : 2 * lr / s + round;
        if (gi !== 0 && gi <= 2 * d) flips++;
        total++;
        const diff = Math.abs(a[i]! - b[i]!);
        worst = Math.max(worst, diff);
        worstRatio = Math.max(worstRatio, diff / lim);
      }
    }
    console.log(`[ddp] 1 step: largest weight difference ${worst.toExponential(2)}, at most ${(worstRatio * 100).toFixed(1)}% of its entry's bound; ${flips} of ${total} entries have 0 < |g| <= 2d (may flip)`);
    assert.ok(worstRatio <= 1, `a weight differs by more than its bound (${worstRatio}x)`);
  } finally {
    removeDir(root);
  }
});

test('2 ranks vs 1 process over 2 epochs (held-out split, reference log-probs computed): largest weight difference within RMSprop\'s bound', { skip, timeout: 300_000 }, async () => {
  const root = tempDir('sppo-ddp-');
  try {
    const opts = base({ examples: examples(10), evalFraction: 0.2, epochs: 2, maxGradNorm: 1 });
    const one = await run(root, 'one', 0, opts);
    const two = await run(root, 'two', 2, opts);
    const r1 = JSON.parse(readFileSync(join(one, 'result.json'), 'utf8')) as { metrics: StepMetrics[]; evalLossBefore: number; evalLoss: number };
    const r2 = JSON.parse(readFileSync(join(two, 'result.json'), 'utf8')) as { metrics: StepMetrics[]; evalLossBefore: number; evalLoss: number };
    assert.equal(r2.metrics.length, r1.metrics.length);
    // Before training both evaluate the same weights: a mean of per-pair losses (forward tolerance, as the losses above).
    assert.ok(Math.abs(r1.evalLossBefore - r2.evalLossBefore) <= GRAD_RTOL * Math.abs(r1.evalLossBefore), `${r1.evalLossBefore} vs ${r2.evalLossBefore}`);
    // RMSprop moves an entry by at most lr / sqrt(1 - alpha) per step, whatever the gradient: two runs of S steps
    // differ by at most 2 * S * lr / s (plus rounding). Entries away from zero gradient differ far less (first test).
    const steps = r1.metrics.length;
    const s = Math.sqrt(1 - 0.99);
    const bound = 2 * steps * opts.lr / s + 4 * EPS32 * 1;
    const w1 = readFloat32Weights(join(one, 'ckpt', 'model.safetensors'));
    const w2 = readFloat32Weights(join(two, 'ckpt', 'model.safetensors'));
    let worst = 0, sq = 0, sqRef = 0;
    for (const [n, a] of w1) {
      const b = w2.get(n)!;
      for (let i = 0; i < a.length; i++) {
        const diff = Math.abs(a[i]! - b[i]!);
        worst = Math.max(worst, diff);
        sq += diff * diff;
        sqRef += a[i]! * a[i]!;
      }
    }
    console.log(`[ddp] ${steps} steps: largest weight difference ${worst.toExponential(2)} (bound ${bound.toExponential(2)}), relative L2 ${(Math.sqrt(sq / sqRef)).toExponential(2)}; eval loss ${r1.evalLoss} vs ${r2.evalLoss}`);
    assert.ok(worst <= bound, `largest weight difference ${worst} > ${bound}`);
    // The run with 2 ranks did train: its weights moved from the start by far more than they differ from one process's.
    const w0 = readFloat32Weights(join(dir, 'model.safetensors'));
    let moved = 0;
    for (const [n, a] of w0) {
      const b = w2.get(n) ?? w2.get(`model.${n}`);
      if (!b) continue;
      for (let i = 0; i < a.length; i++) moved = Math.max(moved, Math.abs(a[i]! - b[i]!));
    }
    assert.ok(moved > 10 * worst || worst === 0, `weights moved ${moved}, differ by ${worst}`);
  } finally {
    removeDir(root);
  }
});

test('2 ranks with many small buckets (started during the backward pass) and with gradient checkpointing (after it): the gradients of one process', { skip, timeout: 300_000 }, async () => {
  const root = tempDir('sppo-ddp-');
  try {
    const opts = base({});
    const one = await run(root, 'one', 0, opts);
    const g1 = readFloat32Weights(join(one, 'grads-1.safetensors'));
    for (const [name, over] of [['buckets', { bucketBytes: 16 * 1024 }], ['checkpointing', { gradientCheckpointing: true }]] as const) {
      const two = await run(root, name, 2, { ...opts, ...over });
      const g2 = readFloat32Weights(join(two, 'grads-1.safetensors'));
      let err = 0;
      for (const [n, a] of g1) {
        const b = g2.get(n)!;
        const scale = maxAbs(a);
        for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i]! - b[i]!) / Math.max(scale, 1e-30));
      }
      console.log(`[ddp] ${name}: largest gradient difference ${err.toExponential(2)} (limit ${GRAD_RTOL.toExponential(2)})`);
      assert.ok(err <= GRAD_RTOL, `${name}: gradient difference ${err} > ${GRAD_RTOL}`);
    }
  } finally {
    removeDir(root);
  }
});

test('ZeRO-1 (optimizer state sharded over 2 ranks) ends with the same weights, bit for bit, as 2 ranks stepping all of them', { skip, timeout: 300_000 }, async () => {
  const root = tempDir('sppo-ddp-');
  try {
    for (const optimizer of ['rmsprop', 'adamw'] as const) {
      const opts = base({ examples: examples(8), epochs: 2, optimizer, maxGradNorm: 1 });
      const plain = await run(root, `plain-${optimizer}`, 2, opts);
      const zero = await run(root, `zero1-${optimizer}`, 2, { ...opts, zero1: true } as Opts);
      const a = readFloat32Weights(join(plain, 'ckpt', 'model.safetensors'));
      const b = readFloat32Weights(join(zero, 'ckpt', 'model.safetensors'));
      const start = readFloat32Weights(join(dir, 'model.safetensors'));
      let moved = 0;
      for (const [n, v] of a) {
        const w = b.get(n)!;
        // The owner's update is the update every rank computes without sharding: the same float32 operations.
        for (let i = 0; i < v.length; i++) assert.equal(w[i], v[i], `${optimizer} ${n}[${i}]`);
        const s0 = start.get(n);
        if (s0) for (let i = 0; i < v.length; i++) moved = Math.max(moved, Math.abs(v[i]! - s0[i]!));
      }
      assert.ok(moved > 0, 'training moved the weights');
    }
  } finally {
    removeDir(root);
  }
});

test('ZeRO-1 partition: every parameter owned by one rank, sizes balanced greedily', async () => {
  const { ownerRanks } = await import('../src/sppo/data_parallel.js');
  // 40 -> rank 0, 30 -> rank 1, 20 -> rank 1 (30 < 40), 10 -> rank 0 (40 < 50).
  assert.deepEqual(ownerRanks([10, 40, 30, 20], 2), [0, 0, 1, 1]);
  assert.deepEqual(ownerRanks([5, 5, 5], 1), [0, 0, 0]);
  assert.deepEqual(ownerRanks([7], 3), [0]);
});
