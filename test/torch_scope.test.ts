// Lifetimes: dispose, tidy scopes, keep, `using`, and a training loop with flat memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';

test('dispose frees at once; using a disposed tensor is a clear error', () => {
  const before = torch.liveTensors();
  const a = torch.ones([1000]);
  assert.equal(torch.liveTensors(), before + 1);
  a.dispose();
  assert.equal(torch.liveTensors(), before);
  assert.equal(a.isDisposed, true);
  assert.throws(() => a.add(1), /used after dispose/);
  a.dispose(); // twice is harmless
});

test('tidy disposes everything made inside except the result and kept tensors', () => {
  const before = torch.liveTensors();
  let kept!: torch.Tensor;
  const out = torch.tidy(() => {
    const a = torch.ones([3]);
    const b = a.mul(2).add(1);
    kept = torch.keep(torch.zeros([2]));
    return { sum: b.sum(), parts: [a, 'label'] };
  });
  // result: sum and a survive; b, the intermediate a.mul(2) are gone; kept survives
  assert.equal(torch.liveTensors(), before + 3);
  assert.equal(out.sum.item(), 9);
  assert.equal((out.parts[0] as torch.Tensor).isDisposed, false);
  assert.equal(kept.isDisposed, false);
  out.sum.dispose();
  (out.parts[0] as torch.Tensor).dispose();
  kept.dispose();
  assert.equal(torch.liveTensors(), before);
});

test('nested tidy hands results to the enclosing scope; a throw still frees', () => {
  const before = torch.liveTensors();
  torch.tidy(() => {
    const inner = torch.tidy(() => torch.ones([2]).mul(3));
    assert.equal(inner.isDisposed, false);
    assert.equal(torch.scopeDepth(), 1);
  });
  assert.equal(torch.liveTensors(), before);
  assert.throws(() => torch.tidy(() => { torch.ones([5]); throw new Error('inside'); }), /inside/);
  assert.equal(torch.liveTensors(), before);
  assert.throws(() => torch.tidy(() => Promise.resolve(torch.ones([1])) as never), /Promise/);
  assert.equal(torch.liveTensors(), before);
  assert.equal(torch.scopeDepth(), 0);
});

test('TypeScript `using` disposes at the end of the block', () => {
  const before = torch.liveTensors();
  {
    using a = torch.ones([4]);
    assert.equal(a.sum().item(), 4); // a.sum() is not scoped: dispose it explicitly below
    assert.equal(torch.liveTensors(), before + 2);
  }
  assert.equal(torch.liveTensors(), before + 1); // the un-disposed sum
});

test('a training loop written with tidy keeps the number of live tensors flat', () => {
  const g = new torch.Generator(0);
  const w = torch.randn([8, 4], { generator: g }).requiresGrad_();
  const opt = torch.AdamW([w], { lr: 1e-2 });
  const x = torch.randn([16, 4], { generator: g });
  const y = torch.randn([16, 8], { generator: g });
  const counts: number[] = [];
  for (let step = 0; step < 200; step++) {
    torch.tidy(() => {
      const loss = torch.linear(x, w).sub(y).square().mean();
      loss.backward();
      opt.step();
      opt.zeroGrad();
    });
    counts.push(torch.liveTensors());
  }
  assert.equal(counts[199], counts[10]);
});
