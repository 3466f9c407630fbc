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
