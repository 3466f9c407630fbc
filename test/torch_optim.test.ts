// Optimizers against their update rules written out by hand, state save/load, clipping, schedules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { assertClose, flat } from './helpers/torch.js';
import { cudaSkipReason } from './helpers/cuda.js';

const f64 = (xs: number[]) => torch.tensor(Float64Array.from(xs));
const P0 = [0.5, -1, 2];
const GRADS = [[0.1, -0.2, 0.3], [-0.5, 0.4, 0.0], [0.2, 0.2, -0.1]];

/** Runs three steps with fixed gradients, returns the parameter after each. */
function runSteps(opt: (p: torch.Tensor) => torch.Optimizer): number[][] {
  const p = f64(P0).requiresGrad_();
  const o = opt(p);
  return GRADS.map((g) => {
    p.grad = f64(g);
    o.step();
    o.zeroGrad();
    return flat(p);
  });
}

test('AdamW follows its update rule (decoupled weight decay, bias correction)', () => {
  const lr = 0.1, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.05;
  const got = runSteps((p) => torch.AdamW([p], { lr, betas: [b1, b2], eps, weightDecay: wd }));
  let p = P0.slice(), m = [0, 0, 0], v = [0, 0, 0];
  GRADS.forEach((g, s) => {
    const t = s + 1;
    p = p.map((x) => x * (1 - lr * wd));
    m = m.map((mi, i) => b1 * mi + (1 - b1) * g[i]!);
    v = v.map((vi, i) => b2 * vi + (1 - b2) * g[i]! ** 2);
    const bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
    p = p.map((x, i) => x - (lr / bc1) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + eps));
    assertClose(got[s], p, 1e-12, 1e-10, `step ${t}`);
  });
});

test('the fused CPU AdamW and RMSprop steps equal torch::optim\'s (which a non-contiguous parameter takes)', () => {
  // The same parameter twice: contiguous (fused step) and as a transposed view made a leaf (not
  // contiguous: torch::optim's chain of ops). Both do the same arithmetic per element, except that
  // ATen's add with alpha may fuse a multiply-add (one rounding instead of two), so each step may differ
  // by a few units in the last place of the update: after 5 steps at most ~5 x 4 ulp of the parameter.
  const cases: [string, (ps: torch.Tensor[]) => torch.Optimizer][] = [
    ['adamw', (ps) => torch.AdamW(ps, { lr: 1e-2, weightDecay: 0.05 })],
    ['rmsprop', (ps) => torch.RMSprop(ps, { lr: 1e-2, weightDecay: 0.1 })],
  ];
  for (const dtype of ['float32', 'float64'] as const) {
    const ulp = dtype === 'float32' ? 2 ** -23 : 2 ** -52;
    for (const [name, make] of cases) torch.tidy(() => {
      const g = new torch.Generator(1);
      const init = torch.randn([37, 29], { generator: g }).to(dtype);
      const a = init.clone().requiresGrad_();
      const b = init.T.contiguous().T.detach().requiresGrad_();
      assert.ok(a.isContiguous() && !b.isContiguous());
      const oa = make([a]);
      const ob = make([b]);
      for (let s = 0; s < 5; s++) {
        const grad = torch.randn([37, 29], { generator: g }).to(dtype);
        a.grad = grad;
        b.grad = grad.clone();
        oa.step();
        ob.step();
      }
      const diff = a.detach().sub(b.detach()).abs().max().item();
      const scale = init.abs().max().item() + 1;
      assert.ok(diff <= 20 * ulp * scale, `${name} ${dtype}: fused and torch::optim steps differ by ${diff}`);
      assert.ok(a.detach().sub(init).abs().max().item() > 1e-3, `${name} ${dtype}: the parameter did not move`);
    });
  }
});

test('RMSprop follows its update rule (plain and with momentum and weight decay)', () => {
  const lr = 0.01, alpha = 0.99, eps = 1e-8;
  const got = runSteps((p) => torch.RMSprop([p], { lr }));
  let p = P0.slice(), sq = [0, 0, 0];
  GRADS.forEach((g, s) => {
    sq = sq.map((q, i) => alpha * q + (1 - alpha) * g[i]! ** 2);
    p = p.map((x, i) => x - lr * g[i]! / (Math.sqrt(sq[i]!) + eps));
    assertClose(got[s], p, 1e-12, 1e-10, `step ${s + 1}`);
  });
  const mom = 0.9, wd = 0.1;
  const got2 = runSteps((q) => torch.RMSprop([q], { lr, momentum: mom, weightDecay: wd }));
  p = P0.slice();
  sq = [0, 0, 0];
  let buf = [0, 0, 0];
  GRADS.forEach((g0, s) => {
    const g = g0.map((gi, i) => gi + wd * p[i]!);
    sq = sq.map((q, i) => alpha * q + (1 - alpha) * g[i]! ** 2);
    buf = buf.map((b, i) => mom * b + g[i]! / (Math.sqrt(sq[i]!) + eps));
    p = p.map((x, i) => x - lr * buf[i]!);
    assertClose(got2[s], p, 1e-12, 1e-10, `momentum step ${s + 1}`);
  });
});

test('SGD with momentum, dampening-free, and nesterov', () => {
  const lr = 0.1, mom = 0.9;
  for (const nesterov of [false, true]) {
    const got = runSteps((p) => torch.SGD([p], { lr, momentum: mom, nesterov }));
    let p = P0.slice();
    let buf: number[] | null = null;
    GRADS.forEach((g, s) => {
      buf = buf ? buf.map((b, i) => mom * b + g[i]!) : g.slice();
      const d = nesterov ? g.map((gi, i) => gi + mom * buf![i]!) : buf;
      p = p.map((x, i) => x - lr * d[i]!);
      assertClose(got[s], p, 1e-12, 1e-10, `nesterov=${nesterov} step ${s + 1}`);
    });
  }
});

test('parameter groups take their own options; setLr/getLr per group', () => {
  const a = f64([1]).requiresGrad_();
  const b = f64([1]).requiresGrad_();
  const opt = new torch.Optimizer('sgd', [{ params: [a], lr: 0.1 }, { params: [b], lr: 0.5, weightDecay: 1 }]);
  a.grad = f64([1]);
  b.grad = f64([1]);
  opt.step();
  assertClose(flat(a), [0.9], 1e-12);
  assertClose(flat(b), [1 - 0.5 * (1 + 1)], 1e-12);
  assert.equal(opt.getLr(1), 0.5);
  opt.setLr(0.01, 0);
  assert.equal(opt.getLr(0), 0.01);
  assert.equal(opt.getLr(1), 0.5);
  opt.setLr(0.2);
  assert.equal(opt.getLr(1), 0.2);
});

test('optimizer state saved and loaded continues bit-exactly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sppo-optim-'));
  try {
    for (const kind of ['adamw', 'rmsprop', 'sgd'] as const) {
      const opts = { lr: 0.05, momentum: kind === 'adamw' ? undefined : 0.9 };
      const p1 = f64(P0).requiresGrad_();
      const o1 = new torch.Optimizer(kind, [p1], opts);
      const step = (p: torch.Tensor, o: torch.Optimizer, g: number[]) => {
        p.grad = f64(g);
        o.step();
        o.zeroGrad();
      };
      step(p1, o1, GRADS[0]!);
      step(p1, o1, GRADS[1]!);
      const path = join(dir, `${kind}.safetensors`);
      o1.save(path);
      // a fresh parameter with the same values and a fresh optimizer, loaded from the file
      const after2 = p1.detach().clone();
      const p2 = p1.detach().clone().requiresGrad_();
      const o2 = new torch.Optimizer(kind, [p2], opts);
      o2.load(path);
      step(p1, o1, GRADS[2]!);
      step(p2, o2, GRADS[2]!);
      assert.ok(p1.equal(p2), `${kind}: resumed run differs`);
      // without the saved state, the same third step gives a different parameter (the test can fail)
      const p5 = after2.clone().requiresGrad_();
      step(p5, new torch.Optimizer(kind, [p5], opts), GRADS[2]!);
      assert.ok(!p5.equal(p1), `${kind}: the state made no difference`);
      const wrong = new torch.Optimizer(kind === 'adamw' ? 'sgd' : 'adamw', [f64(P0).requiresGrad_()]);
      assert.throws(() => wrong.load(path), /optimizer state of/);
    }
    writeFileSync(join(dir, 'bad.safetensors'), 'garbage');
    assert.throws(() => torch.AdamW([f64([1]).requiresGrad_()]).load(join(dir, 'bad.safetensors')), /bad\.safetensors/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('clipGradNorm scales all gradients to the joint norm', () => {
  const a = f64([0, 0]).requiresGrad_();
  const b = f64([0]).requiresGrad_();
  a.grad = f64([3, 0]);
  b.grad = f64([4]);
  const norm = torch.clipGradNorm([a, b], 1);
  assertClose(norm, 5, 1e-12);
  assertClose(flat(a.grad!), [0.6, 0], 1e-9);
  assertClose(flat(b.grad!), [0.8], 1e-9);
  // below the bound: untouched
  a.grad = f64([0.3, 0]);
  b.grad = f64([0.4]);
  assertClose(torch.clipGradNorm([a, b], 1), 0.5, 1e-12);
  assertClose(flat(b.grad!), [0.4], 1e-12);
});

test('schedules: linear and cosine with warmup, constant', () => {
  const lin = { kind: 'linear' as const, totalSteps: 100, warmupRatio: 0.1 };
  assert.equal(torch.warmupStepsOf(lin), 10);
  assert.equal(torch.lrLambda(lin, 0), 0);
  assert.equal(torch.lrLambda(lin, 5), 0.5);
  assert.equal(torch.lrLambda(lin, 10), 1);
  assertClose(torch.lrLambda(lin, 55), 0.5, 1e-12);
  assert.equal(torch.lrLambda(lin, 100), 0);
  const cos = { kind: 'cosine' as const, totalSteps: 110, warmupSteps: 10 };
  assertClose(torch.lrLambda(cos, 10), 1, 1e-12);
  assertClose(torch.lrLambda(cos, 60), 0.5, 1e-12);
  assertClose(torch.lrLambda(cos, 110), 0, 1e-12);
  assert.equal(torch.lrLambda({ kind: 'constant', totalSteps: 10, warmupSteps: 2 }, 1), 0.5);
  assert.equal(torch.lrLambda({ kind: 'constant', totalSteps: 10, warmupSteps: 2 }, 7), 1);
  // the scheduler drives the optimizer's rate
  const p = f64([1]).requiresGrad_();
  const opt = torch.SGD([p], { lr: 0.2 });
  const sched = new torch.LRScheduler(opt, lin);
  assert.equal(opt.getLr(), 0);
  for (let i = 0; i < 5; i++) sched.step();
  assertClose(opt.getLr(), 0.1, 1e-12);
  sched.setStep(55);
  assertClose(sched.lr, 0.1, 1e-12);
  assert.throws(() => new torch.LRScheduler(opt, { kind: 'linear', totalSteps: 0 }), /totalSteps/);
});

test('on CUDA, AdamW (fused kernel) and RMSprop (foreach ops) step several parameters as the CPU does, float32 and bf16', { skip: cudaSkipReason() }, () => {
  const dev = torch.defaultDevice();
  const shapes = [[37, 29], [64], [3, 5, 7], [1]];
  const cases: [string, string, (ps: torch.Tensor[]) => torch.Optimizer][] = [
    ['adamw', 'sppo::cuda_adamw_step', (ps) => torch.AdamW(ps, { lr: 1e-2, weightDecay: 0.05 })],
    ['rmsprop', 'sppo::cuda_rmsprop_step', (ps) => torch.RMSprop(ps, { lr: 1e-2, weightDecay: 0.1 })],
  ];
  for (const dtype of ['float32', 'bfloat16'] as const) {
    // Both sides do the same arithmetic per element in another order of roundings (the fused kernel keeps its
    // intermediates in float32 registers; ATen's ops round each): each step may differ by a few units in the last
    // place of the parameter and of the update (lr-sized): 5 steps x 4 ulp x (|p| + 1), as the CPU test above.
    const ulp = dtype === 'float32' ? 2 ** -23 : 2 ** -7;
    for (const [name, marker, make] of cases) torch.tidy(() => {
      const g = new torch.Generator(3);
      const inits = shapes.map((s) => torch.randn(s, { generator: g, device: 'cpu' }).to(dtype));
      const cpu = inits.map((t) => t.clone().requiresGrad_());
      const gpu = inits.map((t) => t.to(dev).requiresGrad_());
      const oc = make(cpu);
      const og = make(gpu);
      let seen = false;
      for (let s = 0; s < 5; s++) {
        const grads = shapes.map((sh) => torch.randn(sh, { generator: g, device: 'cpu' }).to(dtype));
        cpu.forEach((p, i) => (p.grad = grads[i]!));
        gpu.forEach((p, i) => (p.grad = grads[i]!.to(dev)));
        oc.step();
        const { rows } = torch.profile(() => og.step());
        seen ||= rows.some((r) => r.name === marker);
      }
      assert.ok(seen, `${name} ${dtype}: the multi-tensor CUDA step (${marker}) was not taken`);
      cpu.forEach((p, i) => {
        const diff = gpu[i]!.detach().cpu().float().sub(p.detach().float()).abs().max().item();
        const scale = inits[i]!.float().abs().max().item() + 1;
        assert.ok(diff <= 20 * ulp * scale, `${name} ${dtype} parameter ${i}: CUDA and CPU steps differ by ${diff}`);
        assert.ok(p.detach().float().sub(inits[i]!.float()).abs().max().item() > 1e-3, `${name} ${dtype}: parameter ${i} did not move`);
      });
    });
  }
});
