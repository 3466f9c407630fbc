// Resident memory stays flat over 10,000 steps of a training loop written the documented way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';

test('10,000 training steps keep resident memory within 10% of its value after step 100', () => {
  const g = new torch.Generator(0);
  const w1 = torch.keep(torch.randn([64, 32], { generator: g }).mul(0.1).requiresGrad_());
  const w2 = torch.keep(torch.randn([1, 64], { generator: g }).mul(0.1).requiresGrad_());
  const opt = torch.AdamW([w1, w2], { lr: 1e-3 });
  const sched = new torch.LRScheduler(opt, { kind: 'linear', totalSteps: 10000, warmupRatio: 0.1 });
  const x = torch.keep(torch.randn([32, 32], { generator: g }));
  const y = torch.keep(torch.randn([32, 1], { generator: g }));
  let rss100 = 0;
  let live100 = 0;
  let last = 0;
  for (let step = 1; step <= 10000; step++) {
    last = torch.tidy(() => {
      const h = torch.linear(x, w1).gelu();
      const loss = torch.linear(h, w2).sub(y).square().mean();
      loss.backward();
      torch.clipGradNorm([w1, w2], 1.0);
      opt.step();
      opt.zeroGrad();
      sched.step();
      return loss.item();
    });
    if (step === 100) {
      rss100 = process.memoryUsage().rss;
      live100 = torch.liveTensors();
    }
  }
  const rss = process.memoryUsage().rss;
  assert.ok(Number.isFinite(last));
  assert.equal(torch.liveTensors(), live100, 'live tensors grew');
  assert.ok(rss <= rss100 * 1.1, `resident memory grew from ${(rss100 / 2 ** 20).toFixed(1)} MiB to ${(rss / 2 ** 20).toFixed(1)} MiB`);
});

test('Optimizer.dispose frees the native optimizer and its state at once; later use throws', () => {
  // 4M float32 parameters: each AdamW holds 2 x 16 MiB of moments after its first step. Thirty optimizers
  // made, stepped and disposed in a synchronous loop (no garbage collection can run) must not pile up
  // their 960 MiB of state. The first ten settle the allocator (glibc keeps some freed blocks mapped).
  const p = torch.keep(torch.zeros([4 * 1024 * 1024]).requiresGrad_());
  const step = (): void => torch.tidy(() => {
    using opt = torch.AdamW([p], { lr: 1e-3 });
    p.grad = torch.ones([4 * 1024 * 1024]);
    opt.step();
    opt.zeroGrad();
  });
  for (let i = 0; i < 10; i++) step();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 30; i++) step();
  const grown = process.memoryUsage().rss - rss0;
  assert.ok(grown < 4 * 32 * 2 ** 20, `resident memory grew by ${(grown / 2 ** 20).toFixed(1)} MiB over 30 disposed optimizers (one optimizer's state: 32 MiB)`);
  const opt = torch.AdamW([p]);
  opt.dispose();
  assert.throws(() => opt.step(), /used after dispose/);
  opt.dispose(); // twice is harmless
  p.dispose();
});
