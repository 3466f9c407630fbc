// Lifetimes of the SPPO trainer: repeated train() calls on the tiny Llama fixture leave the native optimizers,
// the live tensors and resident memory where they were, also when training throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { train, TrainingDivergedError, type TrainExample, type TrainOptions } from '../src/sppo/trainer.js';
import { loadModel } from '../src/models/registry.js';
import { createRng } from '../src/sppo/rng.js';
import { hfTiny } from './helpers/fixtures.js';

const dir = join(hfTiny, 'llama');
const skip = existsSync(join(dir, 'model.safetensors')) ? false : `no fixture at ${dir} (set SPPO_HF_FIXTURES)`;

function examples(n: number): TrainExample[] {
  const rng = createRng(3);
  const ids = (k: number): number[] => Array.from({ length: k }, () => 4 + rng.int(500));
  return Array.from({ length: n }, (_, i) => ({
    promptIds: ids(3 + (i % 3)), chosenIds: ids(4 + (i % 2)), rejectedIds: ids(3 + ((i + 1) % 3)),
    chosenWinRate: 0.7, rejectedWinRate: 0.3, chosenOverRejected: 0.8,
  }));
}

const options = (over: Partial<TrainOptions> = {}): TrainOptions => ({
  policy: dir, examples: examples(6), loss: 'sppo', beta: 0.1, lr: 1e-3, epochs: 1, batchSize: 2, gradAccum: 1,
  optimizer: 'adamw', warmupRatio: 0, schedule: 'constant', maxLength: 64, maxPromptLength: 32, maxGradNorm: 1,
  dtype: 'float32', device: 'cpu', seed: 0, ...over,
});

async function trainOnce(over: Partial<TrainOptions> = {}): Promise<void> {
  const r = await train(options(over));
  r.model.dispose();
}

test('repeated train() calls leave native optimizers, live tensors and resident memory flat', { skip }, async () => {
  // The optimizer state: AdamW keeps two moments (exp_avg, exp_avg_sq) per parameter element, so its state is
  // 2 x the parameters' bytes. The fixture (hidden 64, 2 layers, intermediate 176, vocab 512, 4 heads of 16,
  // 2 kv heads, untied) has 2 x 512 x 64 (embeddings, LM head) + 2 x (64 x 64 x 2 + 64 x 32 x 2 + 3 x 64 x 176
  // + 2 x 64) + 64 = 158,016 float32 parameters, 632 kB, so 1.26 MB of state per optimizer.
  const model = loadModel(dir);
  const paramCount = model.parameters().reduce((a, p) => a + p.numel, 0);
  const paramBytes = model.parameters().reduce((a, p) => a + p.numel * 4, 0);
  model.dispose();
  assert.equal(paramCount, 2 * 512 * 64 + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 176 + 2 * 64) + 64);
  const stateBytes = 2 * paramBytes;
  const optimizers = torch.liveOptimizers();
  const tensors = torch.liveTensors();
  // Warm-up: the allocator and the lazily built caches settle.
  for (let i = 0; i < 5; i++) await trainOnce();
  const rss0 = process.memoryUsage().rss;
  const N = 120;
  for (let i = 0; i < N; i++) await trainOnce();
  const grown = process.memoryUsage().rss - rss0;
  assert.equal(torch.liveOptimizers(), optimizers, 'train() left native optimizers alive');
  assert.equal(torch.liveTensors(), tensors, 'train() left tensors alive');
  // Leaking each call's optimizer would grow memory by N x stateBytes (about 150 MB), and each call's models
  // by as much again; the allocator's slack is bounded by a call's working set (a full suite, with other files
  // running beside it, measured 14 MiB after 40 calls), not by N: allow a third of the optimizers' share.
  assert.ok(grown < (N * stateBytes) / 3,
    `resident memory grew by ${(grown / 2 ** 20).toFixed(1)} MiB over ${N} train() calls (optimizer state ${(stateBytes / 2 ** 20).toFixed(2)} MiB each)`);
});

test('a train() that throws disposes its optimizer too', { skip }, async () => {
  const optimizers = torch.liveOptimizers();
  const model = loadModel(dir);
  try {
    // lr 3e38 overflows the parameters: training stops with TrainingDivergedError after the optimizer exists.
    await assert.rejects(train(options({ policy: model, lr: 3e38, epochs: 4, warmupRatio: 0.25 })), (e: unknown) => e instanceof TrainingDivergedError);
    assert.equal(torch.liveOptimizers(), optimizers, 'the optimizer of a failed train() is still alive');
  } finally {
    model.dispose();
  }
});
