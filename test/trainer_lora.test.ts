// The SPPO trainer with LoRA (TrainOptions.lora) on the tiny fixtures: only the adapters get gradients and
// change, the base weights stay bit for bit; the reference is the policy with its adapters off (lr 0: log-ratios
// 0); the loss falls; checkpoints are the merged model (a
// plain HF folder equal to the adapted model) and the adapter in PEFT's layout; gradient checkpointing with
// dropout gives the gradients of the same masks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadModel } from '../src/models/registry.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapter } from '../src/models/peft.js';
import { train, type TrainExample, type TrainOptions } from '../src/sppo/trainer.js';
import { createRng } from '../src/sppo/rng.js';
import { hfTiny } from './helpers/fixtures.js';
import { removeDir, tempDir } from './text_helpers.js';
import { FWD32, LOGPROB32 } from './helpers/tolerances.js';

const llama = join(hfTiny, 'llama');
const gpt2 = join(hfTiny, 'gpt2');

function examples(n: number, seed = 1): TrainExample[] {
  const rng = createRng(seed);
  const ids = (k: number): number[] => Array.from({ length: k }, () => 4 + rng.int(500));
  return Array.from({ length: n }, (_, i) => ({
    promptIds: ids(3 + (i % 3)),
    chosenIds: ids(4 + (i % 2)),
    rejectedIds: ids(3 + ((i + 1) % 3)),
    chosenWinRate: 0.7 + 0.05 * (i % 3),
    rejectedWinRate: 0.3 - 0.05 * (i % 2),
    chosenOverRejected: 0.8,
  }));
}

function base(dir: string, over: Partial<TrainOptions>): TrainOptions {
  return {
    policy: dir, examples: examples(4), loss: 'sppo', beta: 0.1, lr: 1e-2, epochs: 1, batchSize: 4, gradAccum: 1,
    optimizer: 'adamw', warmupRatio: 0, schedule: 'constant', maxLength: 64, maxPromptLength: 32, maxGradNorm: 1,
    dtype: 'float32', device: 'cpu', seed: 0, lora: { r: 4, alpha: 8, targetModules: 'all-linear' }, ...over,
  };
}

const snapshot = (m: { namedParameters(): [string, torch.Tensor][] }): Map<string, Float32Array> =>
  new Map(m.namedParameters().map(([n, t]) => [n, Float32Array.from(t.toTypedArray() as Float32Array)]));

for (const [name, dir] of [['llama', llama], ['gpt2', gpt2]] as const) {
  const skip = existsSync(join(dir, 'model.safetensors')) ? false : `no fixture at ${dir}`;
  test(`${name}: only A and B get gradients and change; the base weights stay bit for bit; the loss falls`, { skip }, async () => {
    const policy = loadModel(dir);
    const before = snapshot(policy);
    let sawGrads = 0;
    try {
      const r = await train(base(dir, {
        policy, epochs: 8,
        onGradients: (named) => {
          sawGrads++;
          for (const [n, t] of named) {
            const isAdapter = /\.lora_[AB]\.weight$/.test(n);
            if (!isAdapter) assert.equal(t.grad, null, `${n} has a gradient`);
            // Step 1: B = 0, so A's gradient (s B^T G) is exactly 0 and B's is not; from step 2 on both are non-zero.
            else if (n.endsWith('lora_B.weight') || sawGrads > 1) assert.ok(t.grad && torch.tidy(() => t.grad!.abs().sum().item()) > 0, `${n}: no gradient at step ${sawGrads}`);
          }
        },
      }));
      try {
        assert.ok(r.lora && r.lora.layers.length > 0);
        assert.equal(sawGrads, 8);
        const first = r.metrics[0]!;
        const last = r.metrics.at(-1)!;
        assert.ok(last.loss < first.loss * 0.9, `${first.loss} -> ${last.loss}`);
        const after = snapshot(r.model);
        for (const [n, v] of before) assert.deepEqual(after.get(n), v, `base weight ${n} moved`);
        assert.ok(r.lora.layers.some((l) => torch.tidy(() => l.B.abs().max().item()) > 0), 'the adapters trained');
      } finally {
        r.lora?.dispose();
      }
    } finally {
      policy.dispose();
    }
  });
}

const skipLlama = existsSync(join(llama, 'model.safetensors')) ? false : `no fixture at ${llama}`;

test('lr 0: the log-ratios stay 0 (the reference, the policy with its fresh adapters off, is pi_t) and nothing moves', { skip: skipLlama }, async () => {
  const policy = loadModel(llama);
  const before = snapshot(policy);
  try {
    const r = await train(base(llama, { policy, lr: 0, epochs: 2, batchSize: 2, lora: { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] } }));
    try {
      assert.equal(r.metrics.length, 4);
      for (const m of r.metrics) {
        // Sequence log-probs of <= 8 response tokens computed in other batches: within 8 * LOGPROB32.
        assert.ok(Math.abs(m.a_w) <= 8 * LOGPROB32 && Math.abs(m.a_l) <= 8 * LOGPROB32, `step ${m.step}: a_w ${m.a_w}, a_l ${m.a_l}`);
        assert.ok(m.grad_norm > 0);
      }
      assert.ok(r.lora!.layers.every((l) => torch.tidy(() => l.B.abs().max().item()) === 0), 'lr 0: B stays 0');
      const after = snapshot(r.model);
      for (const [n, v] of before) assert.deepEqual(after.get(n), v, n);
    } finally {
      r.lora?.dispose();
    }
  } finally {
    policy.dispose();
  }
});

test('checkpoints: the merged model (a plain HF folder equal to the adapted model) and the adapter in PEFT layout', { skip: skipLlama }, async () => {
  const out = tempDir('trainer-lora');
  const policy = loadModel(llama);
  try {
    const ckpt = join(out, 'checkpoint');
    const adapter = join(out, 'adapter');
    const r = await train(base(llama, { policy, epochs: 3, checkpointDir: ckpt, adapterDir: adapter, lora: { r: 4, alpha: 8, targetModules: 'all-linear', dropout: 0.1 }, gradientCheckpointing: true }));
    const lora = r.lora!;
    try {
      assert.ok(existsSync(join(ckpt, 'model.safetensors')) && existsSync(join(ckpt, 'tokenizer.json')));
      assert.ok(!torch.SafetensorsFile.open(join(ckpt, 'model.safetensors')).names.some((n) => n.includes('lora')), 'no adapter tensors in the merged folder');
      const cfg = JSON.parse(readFileSync(join(adapter, ADAPTER_CONFIG), 'utf8'));
      assert.equal(cfg.peft_type, 'LORA');
      assert.equal(cfg.base_model_name_or_path, llama);
      assert.ok(existsSync(join(adapter, ADAPTER_WEIGHTS)));
      const ids = torch.tensor([[5n, 17n, 42n, 99n, 3n, 250n, 311n, 7n]]);
      const adapted = torch.noGrad(() => r.model.forward({ inputIds: ids }));
      const merged = loadModel(ckpt);
      const viaFiles = loadModel(llama);
      try {
        const a = torch.noGrad(() => merged.forward({ inputIds: ids }));
        const rel = (x: torch.Tensor, y: torch.Tensor): number => torch.tidy(() => x.sub(y).abs().max().item() / y.abs().max().item());
        assert.ok(rel(a, adapted) <= FWD32, `merged checkpoint vs adapted model: ${rel(a, adapted)}`);
        // The saved adapter on the original base gives the same model.
        const back = loadAdapter(viaFiles, adapter);
        const b = torch.noGrad(() => viaFiles.forward({ inputIds: ids }));
        back.dispose();
        assert.ok(rel(b, adapted) <= FWD32, `adapter files on pi_t vs adapted model: ${rel(b, adapted)}`);
        const moved = torch.tidy(() => rel(adapted, torch.noGrad(() => lora.disabled(() => r.model.forward({ inputIds: ids })))));
        assert.ok(moved > 100 * FWD32, 'training moved the model');
        for (const t of [a, b, adapted, ids]) t.dispose();
      } finally {
        merged.dispose();
        viaFiles.dispose();
      }
    } finally {
      lora.dispose();
    }
  } finally {
    policy.dispose();
    removeDir(out);
  }
});

test('LoRA train() calls leave no tensors or optimizers alive once the adapters are merged or disposed, also when training throws', { skip: skipLlama }, async () => {
  const optimizers = torch.liveOptimizers();
  const tensors = torch.liveTensors();
  for (let i = 0; i < 3; i++) {
    const r = await train(base(llama, { epochs: 2, gradientCheckpointing: i === 1, lora: { r: 2, alpha: 4, dropout: 0.1, targetModules: 'all-linear' } }));
    if (i === 2) r.lora!.mergeAndDetach();
    else r.lora!.dispose();
    r.model.dispose();
  }
  // A diverging run (lr so large the parameters overflow, or a NaN win rate is refused up front): the adapters go with the error.
  const policy = loadModel(llama);
  await assert.rejects(train(base(llama, { policy, examples: examples(4).map((e) => ({ ...e, chosenWinRate: NaN })) })), /chosenWinRate must be a probability/);
  await assert.rejects(train(base(llama, { policy, examples: examples(4).map((e) => ({ ...e, winRateBaseline: 1.2 })) })), /pair 1: winRateBaseline must be a mean win rate in \[0, 1\], got 1\.2/);
  await assert.rejects(train(base(llama, { policy, lr: 1e30, optimizer: 'rmsprop', epochs: 3, maxGradNorm: 0 })), /diverged/);
  assert.ok(policy.namedModules().next() && [...policy.namedModules()].every(([, m]) => !('adapter' in m) || (m as { adapter: unknown }).adapter === null), 'no adapter left on the model');
  policy.dispose();
  assert.equal(torch.liveOptimizers(), optimizers, 'optimizers left alive');
  assert.equal(torch.liveTensors(), tensors, 'tensors left alive');
});

test('adapterDir without checkpointDir: the adapter is written once, at the end, and gives the trained model on its base', { skip: skipLlama }, async () => {
  const out = tempDir('trainer-lora-end');
  const policy = loadModel(llama);
  try {
    const adapter = join(out, 'adapter');
    const r = await train(base(llama, { policy, epochs: 2, adapterDir: adapter }));
    const lora = r.lora!;
    const viaFiles = loadModel(llama);
    const ids = torch.tensor([[5n, 17n, 42n, 99n, 3n, 250n]]);
    try {
      assert.equal(JSON.parse(readFileSync(join(adapter, ADAPTER_CONFIG), 'utf8')).peft_type, 'LORA');
      const adapted = torch.noGrad(() => r.model.forward({ inputIds: ids }));
      const back = loadAdapter(viaFiles, adapter);
      const b = torch.noGrad(() => viaFiles.forward({ inputIds: ids }));
      back.dispose();
      const rel = torch.tidy(() => b.sub(adapted).abs().max().item() / adapted.abs().max().item());
      assert.ok(rel <= FWD32, `adapter files on pi_t vs the trained model: ${rel}`);
      const moved = torch.tidy(() => torch.noGrad(() => lora.disabled(() => r.model.forward({ inputIds: ids }))).sub(adapted).abs().max().item() / adapted.abs().max().item());
      assert.ok(moved > 100 * FWD32, 'training moved the model');
      adapted.dispose();
      b.dispose();
    } finally {
      ids.dispose();
      viaFiles.dispose();
      lora.dispose();
    }
  } finally {
    policy.dispose();
    removeDir(out);
  }
});
