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
  // Parameters shaped like a small model's (32 of 1 MiB, one of 8 MiB): each AdamW holds 2 x 40 MiB of
  // moments after its first step. Thirty optimizers made, stepped and disposed in a synchronous loop (no
  // garbage collection can run) would pile up 30 x 80 MiB = 2.4 GiB if dispose freed nothing. What the
  // allocator may keep is bounded by one step's working set, not by the count: the moments (80 MiB), the
  // gradients (40 MiB) and AdamW's per-parameter temporaries (up to 2 x 40 MiB), 200 MiB; freed chunks of
  // 1 MiB stay in malloc's arenas once its dynamic mmap threshold has risen (a full suite, with other files
  // running beside it, measured 82 MiB). The first five settle the allocator.
  const g = new torch.Generator(0);
  const params = [...Array.from({ length: 32 }, () => [512, 512]), [8192, 256]].map((s) => torch.keep(torch.randn(s, { generator: g }).requiresGrad_()));
  const step = (): void => torch.tidy(() => {
    using opt = torch.AdamW(params, { lr: 1e-3 });
    for (const p of params) p.grad = torch.onesLike(p);
    opt.step();
    opt.zeroGrad();
  });
  const live = torch.liveOptimizers();
  for (let i = 0; i < 5; i++) step();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 30; i++) step();
  const grown = process.memoryUsage().rss - rss0;
  assert.equal(torch.liveOptimizers(), live, 'disposed optimizers still hold native state');
  assert.ok(grown < 200 * 2 ** 20, `resident memory grew by ${(grown / 2 ** 20).toFixed(1)} MiB over 30 disposed optimizers (one step's working set: 200 MiB; a leak: 2,400 MiB)`);
  const opt = torch.AdamW(params);
  assert.equal(torch.liveOptimizers(), live + 1);
  opt.dispose();
  assert.equal(torch.liveOptimizers(), live);
  assert.throws(() => opt.step(), /used after dispose/);
  opt.dispose(); // twice is harmless
  for (const p of params) p.dispose();
});

test('cuda.memoryStats: bytes and peaks on a CUDA device (peaks reset), null without CUDA; cudaIndex parses devices', () => {
  assert.equal(torch.cudaIndex('cuda'), 0);
  assert.equal(torch.cudaIndex('cuda:3'), 3);
  assert.equal(torch.cudaIndex('cpu'), null);
  const s = torch.cuda.memoryStats(0);
  if (!torch.cuda.isAvailable()) {
    assert.equal(s, null);
    torch.cuda.resetPeakMemory(0); // a no-op without CUDA
    return;
  }
  if (s === null) return; // an addon built without the CUDA runtime's headers (documented)
  torch.cuda.resetPeakMemory(0);
  const before = torch.cuda.memoryStats(0)!;
  const t = torch.zeros([1024, 1024], { device: 'cuda' }); // 4 MiB
  const during = torch.cuda.memoryStats(0)!;
  t.dispose();
  const after = torch.cuda.memoryStats(0)!;
  assert.ok(during.allocated - before.allocated >= 4 * 2 ** 20);
  assert.ok(after.peakAllocated >= during.allocated && after.allocated < during.allocated);
  assert.ok(after.peakReserved >= after.peakAllocated);
});
