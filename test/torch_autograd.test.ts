// Autograd: requiresGrad, backward with a gradient, grads, detach, no-grad scopes, checkpointing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import type { Tensor } from '../src/torch/index.js';
import { assertClose, flat, values } from './helpers/torch.js';

const f64 = (xs: number[], shape?: number[]) => torch.tensor(Float64Array.from(xs), { shape: shape ?? [xs.length] });

test('backward, grad, accumulation and zeroGrad', () => {
  const x = f64([1, 2, 3]).requiresGrad_();
  assert.equal(x.requiresGrad, true);
  assert.equal(x.isLeaf, true);
  x.mul(x).sum().backward();
  assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
  x.mul(3).sum().backward(); // accumulates
  assert.deepEqual(x.grad!.toArray(), [5, 7, 9]);
  x.zeroGrad();
  assert.equal(x.grad, null);
  // backward of a non-scalar with a gradient argument (vector-Jacobian product)
  const y = x.mul(x);
  assert.equal(y.isLeaf, false);
  y.backward(f64([1, 0, -1]));
  assert.deepEqual(x.grad!.toArray(), [2, 0, -6]);
  x.grad = null;
  // several outputs at once
  const a = x.sum();
  const b = x.mul(2).sum();
  torch.backward([a, b]);
  assert.deepEqual(x.grad!.toArray(), [3, 3, 3]);
});

test('retainGraph allows a second backward; without it, a clear error', () => {
  const x = f64([1, 2]).requiresGrad_();
  const y = x.exp().sum();
  y.backward(undefined, { retainGraph: true });
  y.backward();
  assertClose(x.grad!.toArray(), [2 * Math.E, 2 * Math.E ** 2], 1e-12);
  const z = x.exp().sum();
  z.backward();
  assert.throws(() => z.backward(), /backward.*(second time|freed)/i);
});

test('detach and noGrad stop gradients; enableGrad turns them back on', () => {
  const x = f64([1, 2]).requiresGrad_();
  const d = x.detach();
  assert.equal(d.requiresGrad, false);
  const y = torch.noGrad(() => x.mul(2));
  assert.equal(y.requiresGrad, false);
  assert.equal(torch.isGradEnabled(), true);
  torch.noGrad(() => {
    assert.equal(torch.isGradEnabled(), false);
    const z = torch.enableGrad(() => x.mul(2));
    assert.equal(z.requiresGrad, true);
  });
  // the grad mode is restored when fn throws
  assert.throws(() => torch.noGrad(() => { throw new Error('boom'); }), /boom/);
  assert.equal(torch.isGradEnabled(), true);
  // a gradient can flow into a non-leaf only through backward of its output
  assert.throws(() => d.sum().backward(), /does not require grad/);
});

function mlpParams(seed: number): Tensor[] {
  return [
    f64(values(12, seed), [4, 3]).requiresGrad_(),
    f64(values(4, seed + 1), [4]).requiresGrad_(),
    f64(values(16, seed + 2), [4, 4]).requiresGrad_(),
    f64(values(8, seed + 3), [2, 4]).requiresGrad_(),
  ];
}

test('gradient checkpointing gives the same gradients as plain backward', () => {
  const [w1, b1, w2, w3] = mlpParams(10);
  const x = f64(values(15, 20), [5, 3]);
  const layer1 = (h: Tensor) => torch.linear(h, w1!, b1!).tanh();
  const layer2 = (h: Tensor) => torch.linear(h, w2!).silu().add(h); // residual inside
  const run = (tape: torch.CheckpointTape | null): number[][] =>
    torch.tidy(() => {
      for (const p of [w1!, b1!, w2!, w3!]) p.zeroGrad();
      // a graph before the first segment, segments chained, a graph between them, and a skip
      const pre = x.mul(2);
      const h1 = tape ? tape.checkpoint(layer1, pre) : layer1(pre);
      const mid = h1.mul(0.5);
      const h2 = tape ? tape.checkpoint(layer2, mid) : layer2(mid);
      const h3 = tape ? tape.checkpoint(layer2, h2) : layer2(h2);
      const out = torch.linear(h3.add(h1), w3!); // skip connection from h1
      const loss = out.square().mean();
      if (tape) tape.backward(loss);
      else loss.backward();
      return [w1!, b1!, w2!, w3!].map((p) => flat(p.grad!));
    });
  const plain = run(null);
  const tape = new torch.CheckpointTape();
  const ckpt = run(tape);
  tape.dispose();
  plain.forEach((g, i) => assertClose(ckpt[i], g, 1e-12, 1e-10, `param ${i}`));
  // and the gradients are not trivially zero
  assert.ok(plain.every((g) => g.some((v) => Math.abs(v) > 1e-6)));
});

test('checkpointed segments keep no graph: their outputs are leaves', () => {
  const [w1, b1] = mlpParams(30);
  const tape = new torch.CheckpointTape();
  const h = tape.checkpoint((a) => torch.linear(a, w1!, b1!).tanh(), f64(values(6, 3), [2, 3]));
  assert.equal(h.isLeaf, true);
  assert.equal(h.requiresGrad, true);
  tape.dispose();
  assert.equal(h.isDisposed, true);
});
