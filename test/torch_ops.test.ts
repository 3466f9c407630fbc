// Op semantics against values computed independently: hand-written small cases and identities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { assertClose, flat } from './helpers/torch.js';

const t = (x: unknown, dtype?: torch.DType) => torch.tensor(x as never, dtype ? { dtype } : {});

test('creation: nested arrays, typed arrays, dtypes and shapes', () => {
  const a = t([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(a.shape, [2, 3]);
  assert.equal(a.dtype, 'float32');
  assert.deepEqual(a.toArray(), [[1, 2, 3], [4, 5, 6]]);
  assert.equal(t([true, false]).dtype, 'bool');
  assert.deepEqual(t([true, false]).toArray(), [true, false]);
  assert.equal(t([1n, 2n]).dtype, 'int64');
  assert.deepEqual(torch.tensor(new Int32Array([7, 8, 9, 10]), { shape: [2, 2] }).toArray(), [[7, 8], [9, 10]]);
  assert.equal(torch.tensor(new Float64Array([1])).dtype, 'float64');
  for (const d of ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'bool'] as const) {
    const x = t([0, 1, 2], d);
    assert.equal(x.dtype, d);
    assert.deepEqual(x.toArray(), d === 'bool' ? [false, true, true] : [0, 1, 2]);
  }
  assert.throws(() => t([[1, 2], [3]]), /ragged/);
  assert.throws(() => torch.tensor(new Float32Array(3), { shape: [2, 2] }), /needs 4 elements/);
});

test('creation: zeros, ones, full, arange, eye, linspace, *Like', () => {
  assert.deepEqual(torch.zeros([2, 2]).toArray(), [[0, 0], [0, 0]]);
  assert.deepEqual(torch.ones([3], { dtype: 'int32' }).toArray(), [1, 1, 1]);
  assert.deepEqual(torch.full([2], 7.5).toArray(), [7.5, 7.5]);
  assert.deepEqual(torch.arange(5).toArray(), [0, 1, 2, 3, 4]);
  assert.equal(torch.arange(5).dtype, 'int64');
  assert.deepEqual(torch.arange(1, 2, 0.25).toArray(), [1, 1.25, 1.5, 1.75]);
  assert.deepEqual(torch.eye(2).toArray(), [[1, 0], [0, 1]]);
  assert.deepEqual(torch.linspace(0, 1, 5).toArray(), [0, 0.25, 0.5, 0.75, 1]);
  const x = t([[1, 2]]);
  assert.deepEqual(torch.zerosLike(x).toArray(), [[0, 0]]);
  assert.deepEqual(torch.onesLike(x).toArray(), [[1, 1]]);
  assert.deepEqual(torch.fullLike(x, 3).toArray(), [[3, 3]]);
  assert.equal(torch.scalarTensor(2.5).item(), 2.5);
  assert.deepEqual(torch.scalarTensor(2.5).shape, []);
});

test('random: seeded generators reproduce, distributions have the right moments', () => {
  const g1 = new torch.Generator(42);
  const g2 = new torch.Generator(42);
  const a = torch.randn([1000], { generator: g1 });
  const b = torch.randn([1000], { generator: g2 });
  assert.ok(a.equal(b));
  const c = torch.randn([1000], { generator: g1 });
  assert.ok(!a.equal(c));
  const big = torch.randn([100000], { generator: new torch.Generator(1), dtype: 'float64' });
  assert.ok(Math.abs(big.mean().item()) < 0.02);
  assert.ok(Math.abs(big.var(0).item() - 1) < 0.02);
  const u = torch.rand([100000], { generator: new torch.Generator(2), dtype: 'float64' });
  assert.ok(u.min().item() >= 0 && u.max().item() < 1);
  assert.ok(Math.abs(u.mean().item() - 0.5) < 0.01);
  const ri = torch.randint(3, 7, [1000], { generator: new torch.Generator(3) });
  assert.equal(ri.dtype, 'int64');
  assert.ok(ri.min().item() === 3 && ri.max().item() === 6);
  torch.manualSeed(5);
  const m1 = torch.randn([4]);
  torch.manualSeed(5);
  assert.ok(m1.equal(torch.randn([4])));
});

test('arithmetic broadcasts as numpy does', () => {
  const a = t([[1, 2, 3], [4, 5, 6]]);
  const b = t([10, 20, 30]);
  assert.deepEqual(a.add(b).toArray(), [[11, 22, 33], [14, 25, 36]]);
  assert.deepEqual(a.add(b, 2).toArray(), [[21, 42, 63], [24, 45, 66]]);
  assert.deepEqual(a.sub(t([[1], [2]])).toArray(), [[0, 1, 2], [2, 3, 4]]);
  assert.deepEqual(a.mul(2).toArray(), [[2, 4, 6], [8, 10, 12]]);
  assert.deepEqual(a.div(t([1, 2, 4])).toArray(), [[1, 1, 0.75], [4, 2.5, 1.5]]);
  assert.deepEqual(t([7, -7]).div(2, 'floor').toArray(), [3, -4]);
  assert.deepEqual(t([7, -7]).div(2, 'trunc').toArray(), [3, -3]);
  assert.deepEqual(a.pow(2).toArray(), [[1, 4, 9], [16, 25, 36]]);
  assert.deepEqual(a.rsub(1).toArray(), [[0, -1, -2], [-3, -4, -5]]);
  assert.deepEqual(t([-1, 2]).neg().toArray(), [1, -2]);
  assert.deepEqual(t([-1, 2]).abs().toArray(), [1, 2]);
  assert.deepEqual(t([1, 5]).maximum(t([3, 2])).toArray(), [3, 5]);
  assert.deepEqual(t([1, 5]).minimum(t([3, 2])).toArray(), [1, 2]);
  assert.deepEqual(t([5, -5]).remainder(3).toArray(), [2, 1]);
});

test('matrix products', () => {
  const a = t([[1, 2], [3, 4]]);
  const b = t([[5, 6], [7, 8]]);
  assert.deepEqual(a.matmul(b).toArray(), [[19, 22], [43, 50]]);
  assert.deepEqual(a.mm(b).toArray(), [[19, 22], [43, 50]]);
  assert.deepEqual(torch.stack([a, b]).bmm(torch.stack([b, a])).toArray(), [[[19, 22], [43, 50]], [[23, 34], [31, 46]]]);
  assert.deepEqual(t([1, 2]).outer(t([3, 4])).toArray(), [[3, 4], [6, 8]]);
  // linear: x W^T + b
  assert.deepEqual(torch.linear(t([[1, 1]]), a, t([1, 1])).toArray(), [[4, 8]]);
  assert.deepEqual(a.T.toArray(), [[1, 3], [2, 4]]);
});

test('elementwise functions match their definitions', () => {
  const xs = [-2, -0.5, 0, 0.7, 3];
  const x = torch.tensor(Float64Array.from(xs));
  const close = (got: torch.Tensor, f: (v: number) => number) => assertClose(got.toArray(), xs.map(f), 1e-12, 1e-12);
  close(x.exp(), Math.exp);
  close(x.tanh(), Math.tanh);
  close(x.sigmoid(), (v) => 1 / (1 + Math.exp(-v)));
  close(x.logSigmoid(), (v) => -Math.log1p(Math.exp(-v)));
  close(x.silu(), (v) => v / (1 + Math.exp(-v)));
  close(x.relu(), (v) => Math.max(0, v));
  close(x.sin(), Math.sin);
  close(x.cos(), Math.cos);
  close(x.square(), (v) => v * v);
  close(x.softplus(), (v) => Math.log1p(Math.exp(v)));
  close(x.gelu('tanh'), (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
  // exact GeLU = x * Phi(x); Phi from erf via a series accurate to 1e-12 on this range
  const erf = (z: number) => {
    let sum = 0;
    let term = z;
    for (let n = 0; n < 60; n++) {
      sum += term / (2 * n + 1);
      term *= (-z * z) / (n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  };
  close(x.gelu(), (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
  close(x.clamp(-1, 1), (v) => Math.min(1, Math.max(-1, v)));
  close(x.clamp(null, 0), (v) => Math.min(0, v));
  const p = torch.tensor(Float64Array.from([0.25, 1, 4]));
  assertClose(p.log().toArray(), [Math.log(0.25), 0, Math.log(4)], 1e-12);
  assertClose(p.sqrt().toArray(), [0.5, 1, 2], 1e-12);
  assertClose(p.rsqrt().toArray(), [2, 1, 0.5], 1e-12);
  assertClose(p.reciprocal().toArray(), [4, 1, 0.25], 1e-12);
  assertClose(p.log1p().toArray(), [Math.log(1.25), Math.log(2), Math.log(5)], 1e-12);
  assert.deepEqual(t([1, NaN, Infinity]).isfinite().toArray(), [true, false, false]);
  assert.deepEqual(t([1, NaN]).isnan().toArray(), [false, true]);
});

test('reductions with dims and keepdim', () => {
  const a = t([[1, 5, 3], [4, 2, 6]]);
  assert.equal(a.sum().item(), 21);
  assert.deepEqual(a.sum(0).toArray(), [5, 7, 9]);
  assert.deepEqual(a.sum(1, true).toArray(), [[9], [12]]);
  assert.deepEqual(a.sum([0, 1]).toArray(), 21);
  assert.equal(a.mean().item(), 3.5);
  assert.deepEqual(a.mean(1).toArray(), [3, 4]);
  assert.equal(a.max().item(), 6);
  assert.equal(a.min().item(), 1);
  const [vals, idx] = a.maxDim(1);
  assert.deepEqual(vals!.toArray(), [5, 6]);
  assert.deepEqual(idx!.toArray(), [1, 2]);
  assert.deepEqual(a.minDim(0, true)[0]!.toArray(), [[1, 2, 3]]);
  assert.deepEqual(a.argmax(1).toArray(), [1, 2]);
  assert.equal(a.argmax().item(), 5);
  assert.deepEqual(a.argmin(0).toArray(), [0, 1, 0]);
  assert.deepEqual(a.amax(0).toArray(), [4, 5, 6]);
  assert.deepEqual(a.amin(1, true).toArray(), [[1], [2]]);
  assert.deepEqual(a.cumsum(1).toArray(), [[1, 6, 9], [4, 6, 12]]);
  assert.deepEqual(a.prod(1).toArray(), [15, 48]);
  // float32 reductions of 2-4 values below 7 (a few roundings each): assertClose allows atol + rtol * |expected|
  // with rtol 1e-6 = 16.8 * EPS32 relative plus 1e-6 (1e-5 for logsumexp, whose exps reach e^6: 16 * EPS32 * 7
  // = 6.7e-6); float64 paths: 1e-12 (F64_CLOSED_FORM in helpers/tolerances.ts).
  assertClose(a.logsumexp(1).toArray(), [Math.log(Math.exp(1) + Math.exp(5) + Math.exp(3)), Math.log(Math.exp(4) + Math.exp(2) + Math.exp(6))], 1e-5);
  assertClose(t([3, 4]).norm().item(), 5, 1e-6);
  assertClose(t([3, -4]).norm(1).item(), 7, 1e-6);
  assertClose(t([[1, 2, 3, 4]]).var(1).toArray(), [5 / 3], 1e-6);
  assert.equal(t([true, false]).any().item(), 1);
  assert.equal(t([true, false]).all().item(), 0);
  // identities
  const s = a.softmax(1);
  assertClose(s.sum(1).toArray(), [1, 1], 1e-6);
  assertClose(a.logSoftmax(1).exp().toArray(), s.toArray(), 1e-6);
  assertClose(a.logSoftmax(1).toArray(), a.sub(a.logsumexp(1, true)).toArray(), 1e-6);
  assertClose(a.softmax(0, 'float64').toArray(), a.to('float64').softmax(0).toArray(), 1e-12);
});

test('indexing and selection', () => {
  const a = t([[1, 2, 3], [4, 5, 6]]);
  const idx = (xs: number[][] | number[]) => torch.tensor(xs as never, { dtype: 'int64' });
  assert.deepEqual(a.gather(1, idx([[2, 0], [1, 1]])).toArray(), [[3, 1], [5, 5]]);
  assert.deepEqual(a.indexSelect(1, idx([2, 0])).toArray(), [[3, 1], [6, 4]]);
  assert.deepEqual(a.index([idx([1, 0]), idx([0, 2])]).toArray(), [4, 3]);
  assert.deepEqual(a.index([null, idx([1])]).toArray(), [[2], [5]]);
  assert.deepEqual(torch.embedding(a, idx([1, 1, 0])).toArray(), [[4, 5, 6], [4, 5, 6], [1, 2, 3]]);
  const mask = torch.tensor([[true, false, false], [false, false, true]]);
  assert.deepEqual(a.maskedFill(mask, -1).toArray(), [[-1, 2, 3], [4, 5, -1]]);
  assert.deepEqual(torch.where(mask, a, t(0)).toArray(), [[1, 0, 0], [0, 0, 6]]);
  assert.deepEqual(torch.where(mask, a, 0).toArray(), [[1, 0, 0], [0, 0, 6]]);
  assert.deepEqual(torch.where(mask, 9, a).toArray(), [[9, 2, 3], [4, 5, 9]]);
  assert.deepEqual(t([0, 0, 0]).scatter(0, idx([2, 0]), t([7, 8])).toArray(), [8, 0, 7]);
  assert.deepEqual(t([0, 0, 0]).scatter(0, idx([1]), 5).toArray(), [0, 5, 0]);
  const [tv, ti] = t([3, 1, 4, 1, 5]).topk(2);
  assert.deepEqual(tv!.toArray(), [5, 4]);
  assert.deepEqual(ti!.toArray(), [4, 2]);
  assert.deepEqual(t([3, 1, 4, 1, 5]).topk(2, -1, false)[0]!.toArray(), [1, 1]);
  const [sv, si] = t([3, 1, 2]).sort(0, true);
  assert.deepEqual(sv!.toArray(), [3, 2, 1]);
  assert.deepEqual(si!.toArray(), [0, 2, 1]);
  const m = t([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
  assert.deepEqual(m.triu().toArray(), [[1, 2, 3], [0, 5, 6], [0, 0, 9]]);
  assert.deepEqual(m.tril(-1).toArray(), [[0, 0, 0], [4, 0, 0], [7, 8, 0]]);
  assert.deepEqual(m.triu(1).toArray(), [[0, 2, 3], [0, 0, 6], [0, 0, 0]]);
});

test('comparisons and logic', () => {
  const a = t([1, 2, 3]);
  const b = t([3, 2, 1]);
  assert.deepEqual(a.eq(b).toArray(), [false, true, false]);
  assert.deepEqual(a.ne(2).toArray(), [true, false, true]);
  assert.deepEqual(a.lt(b).toArray(), [true, false, false]);
  assert.deepEqual(a.le(2).toArray(), [true, true, false]);
  assert.deepEqual(a.gt(b).toArray(), [false, false, true]);
  assert.deepEqual(a.ge(2).toArray(), [false, true, true]);
  assert.deepEqual(a.gt(1).logicalAnd(a.lt(3)).toArray(), [false, true, false]);
  assert.deepEqual(a.eq(1).logicalOr(a.eq(3)).toArray(), [true, false, true]);
  assert.deepEqual(a.eq(1).logicalNot().toArray(), [false, true, true]);
  assert.ok(a.allclose(t([1, 2, 3 + 1e-7])));
  assert.ok(!a.allclose(t([1, 2, 3.1])));
  assert.ok(a.equal(t([1, 2, 3])));
});

test('shape operations', () => {
  const a = torch.arange(6, undefined, 1, { dtype: 'float32' });
  assert.deepEqual(a.reshape(2, 3).toArray(), [[0, 1, 2], [3, 4, 5]]);
  assert.deepEqual(a.view(3, -1).shape, [3, 2]);
  const m = a.reshape(2, 3);
  assert.deepEqual(m.transpose(0, 1).toArray(), [[0, 3], [1, 4], [2, 5]]);
  assert.deepEqual(torch.arange(24).reshape(2, 3, 4).permute(2, 0, 1).shape, [4, 2, 3]);
  assert.equal(String(torch.arange(24).reshape(2, 3, 4).permute(2, 0, 1).contiguous().reshape(-1).toArray()), Array.from({ length: 24 }, (_, n) => { const k = Math.floor(n / 6), i = Math.floor((n % 6) / 3), j = n % 3; return 12 * i + 4 * j + k; }).toString());
  assert.deepEqual(t([1, 2]).unsqueeze(0).shape, [1, 2]);
  assert.deepEqual(t([[1], [2]]).squeeze(1).toArray(), [1, 2]);
  assert.deepEqual(t([[1, 2]]).expand(3, 2).toArray(), [[1, 2], [1, 2], [1, 2]]);
  assert.deepEqual(m.narrow(1, 1, 2).toArray(), [[1, 2], [4, 5]]);
  assert.deepEqual(a.slice(0, 1, 5, 2).toArray(), [1, 3]);
  assert.deepEqual(a.slice(0, -2).toArray(), [4, 5]);
  assert.deepEqual(m.select(1, 2).toArray(), [2, 5]);
  assert.deepEqual(a.split(4).map((x) => x.toArray()), [[0, 1, 2, 3], [4, 5]]);
  assert.deepEqual(a.split([1, 5]).map((x) => x.shape[0]), [1, 5]);
  assert.deepEqual(a.chunk(3).map((x) => x.toArray()), [[0, 1], [2, 3], [4, 5]]);
  assert.deepEqual(torch.cat([t([1]), t([2, 3])]).toArray(), [1, 2, 3]);
  assert.deepEqual(torch.stack([t([1, 2]), t([3, 4])], 1).toArray(), [[1, 3], [2, 4]]);
  assert.deepEqual(t([1, 2]).repeat(2).toArray(), [1, 2, 1, 2]);
  assert.deepEqual(t([1, 2]).repeatInterleave(2, 0).toArray(), [1, 1, 2, 2]);
  assert.deepEqual(m.flatten().shape, [6]);
  assert.equal(m.numel, 6);
  assert.equal(m.ndim, 2);
  assert.equal(m.size(-1), 3);
});

test('conversions between dtypes and the cpu device', () => {
  const a = t([1.5, -2.25, 3]);
  assert.deepEqual(a.to('int64').toArray(), [1, -2, 3]);
  assert.deepEqual(a.to('float16').toArray(), [1.5, -2.25, 3]);
  assert.deepEqual(a.to('bfloat16').to('float32').toArray(), [1.5, -2.25, 3]);
  // bfloat16 keeps 8 bits of mantissa: 1 + 2^-9 rounds to 1
  assert.equal(t([1 + 2 ** -9]).to('bfloat16').item(), 1);
  assert.equal(a.to('cpu').device, 'cpu');
  assert.equal(a.float().dtype, 'float32');
  assert.equal(t([1, 2]).to('bool').dtype, 'bool');
  assert.equal(torch.cuda.isAvailable(), torch.cuda.deviceCount() > 0);
});

test('multinomial draws by the given probabilities', () => {
  const probs = t([[0.1, 0.2, 0.7]]);
  const n = 20000;
  const s = torch.multinomial(probs, n, { replacement: true, generator: new torch.Generator(7) });
  const counts = [0, 0, 0];
  for (const v of flat(s)) counts[v]!++;
  // chi-square with 2 degrees of freedom: 13.8 is the 0.999 quantile
  const chi = counts.reduce((acc, c, i) => acc + (c - n * [0.1, 0.2, 0.7][i]!) ** 2 / (n * [0.1, 0.2, 0.7][i]!), 0);
  assert.ok(chi < 13.8, `chi-square ${chi}`);
  const again = torch.multinomial(probs, n, { replacement: true, generator: new torch.Generator(7) });
  assert.ok(s.equal(again));
});

test('cross entropy and attention against their definitions', () => {
  const logits = torch.tensor(Float64Array.from([1, 2, 0.5, -1, 0, 3]), { shape: [2, 3] });
  const target = torch.tensor([2n, 1n]);
  const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
  const expected = ((lse([1, 2, 0.5]) - 0.5) + (lse([-1, 0, 3]) - 0)) / 2;
  assertClose(torch.crossEntropy(logits, target).item(), expected, 1e-12);
  assertClose(torch.crossEntropy(logits, torch.tensor([2n, -100n])).item(), lse([1, 2, 0.5]) - 0.5, 1e-12);
  assert.deepEqual(torch.crossEntropy(logits, target, { reduction: 'none' }).shape, [2]);
  // attention: fused/native path equals the composed reference, causal and masked
  const g = new torch.Generator(3);
  const q = torch.randn([2, 3, 5, 4], { generator: g, dtype: 'float64' });
  const k = torch.randn([2, 3, 5, 4], { generator: g, dtype: 'float64' });
  const v = torch.randn([2, 3, 5, 4], { generator: g, dtype: 'float64' });
  assertClose(torch.scaledDotProductAttention(q, k, v, { isCausal: true }).toArray(), torch.attentionComposed(q, k, v, { isCausal: true }).toArray(), 1e-10);
  // the first query of a causal attention sees only the first key: its output is v[0]
  assertClose(torch.attentionComposed(q, k, v, { isCausal: true }).select(2, 0).toArray(), v.select(2, 0).toArray(), 1e-12);
  // uniform attention when all scores are equal
  const z = torch.zeros([1, 1, 2, 4], { dtype: 'float64' });
  const vv = torch.tensor(Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8]), { shape: [1, 1, 2, 4] });
  assertClose(torch.attentionComposed(z, z, vv).toArray(), [[[[3, 4, 5, 6], [3, 4, 5, 6]]]], 1e-12);
  // layer norm and rms norm from their formulas
  const x = torch.tensor(Float64Array.from([1, 2, 3, 4]), { shape: [1, 4] });
  const mean = 2.5;
  const variance = (1.5 ** 2 + 0.5 ** 2 + 0.5 ** 2 + 1.5 ** 2) / 4;
  assertClose(torch.layerNorm(x, [4], null, null, 0).toArray(), [[1, 2, 3, 4].map((u) => (u - mean) / Math.sqrt(variance))], 1e-12);
  const rms = Math.sqrt((1 + 4 + 9 + 16) / 4);
  assertClose(torch.rmsNorm(x, torch.tensor(Float64Array.from([1, 1, 2, 2])), 0).toArray(), [[1 / rms, 2 / rms, 6 / rms, 8 / rms]], 1e-12);
  assertClose(torch.rmsNorm(x, torch.tensor(Float64Array.from([0, 0, 1, 1])), 0, 1).toArray(), [[1 / rms, 2 / rms, 6 / rms, 8 / rms]], 1e-12);
});

test('in-place updates', () => {
  const a = t([1, 2, 3]);
  a.add_(t([1, 1, 1])).mul_(2).sub_(1).div_(2);
  assert.deepEqual(a.toArray(), [1.5, 2.5, 3.5]);
  a.addcmul_(t([1, 1, 1]), t([2, 2, 2]), 0.5);
  assert.deepEqual(a.toArray(), [2.5, 3.5, 4.5]);
  a.addcdiv_(t([1, 2, 3]), t([2, 2, 2]));
  assert.deepEqual(a.toArray(), [3, 4.5, 6]);
  a.lerp_(t([5, 5, 5]), 0.5);
  assert.deepEqual(a.toArray(), [4, 4.75, 5.5]);
  a.clamp_(4.5, 5);
  assert.deepEqual(a.toArray(), [4.5, 4.75, 5]);
  a.fill_(2);
  assert.deepEqual(a.toArray(), [2, 2, 2]);
  a.maskedFill_(t([true, false, true]), 0);
  assert.deepEqual(a.toArray(), [0, 2, 0]);
  const m = torch.zeros([2, 4]);
  m.sliceAssign_(1, 1, torch.ones([2, 2]));
  assert.deepEqual(m.toArray(), [[0, 1, 1, 0], [0, 1, 1, 0]]);
  m.copy_(torch.full([2, 4], 3));
  assert.equal(m.sum().item(), 24);
  m.zero_();
  assert.equal(m.sum().item(), 0);
});

test('addmm, pow with a scalar base, indexFill, isin, scatter of a mask (the ops models and sampling use)', () => {
  const idx = (xs: number[]) => torch.tensor(xs.map(BigInt));
  const a = t([[1, 2], [3, 4]]);
  const b = t([[5, 6, 7], [8, 9, 10]]);
  const bias = t([1, 0, -1]);
  // [[21, 24, 27], [47, 54, 61]] = a @ b
  assert.deepEqual(torch.addmm(bias, a, b).toArray(), [[22, 24, 26], [48, 54, 60]]);
  assert.deepEqual(torch.addmm(bias, a, b, { beta: 2, alpha: 0.5 }).toArray(), [[12.5, 12, 11.5], [25.5, 27, 28.5]]);
  assert.deepEqual(torch.addmm(t([[1], [2]]), a, b).toArray(), [[22, 25, 28], [49, 56, 63]]);
  assert.throws(() => torch.addmm(bias, a, a), /addmm/);

  const e = t([0, 0.5, 1, 2]);
  assertClose(torch.pow(10000, e).toArray(), [1, 100, 10000, 1e8], 0, 1e-6);
  assert.equal(torch.pow(2, e).dtype, 'float32');
  assert.deepEqual(torch.pow(2, torch.tensor([0n, 3n])).toArray(), [1, 8]);
  assert.deepEqual(torch.pow(t([2, 3]), 2).toArray(), [4, 9]);
  assert.deepEqual(torch.pow(t([2, 3]), t([3, 0])).toArray(), [8, 1]);
  assert.throws(() => torch.pow(2 as never, 3 as never), /must be a tensor/);

  const m = t([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(m.indexFill(1, idx([2, 0]), -Infinity).toArray(), [[-Infinity, 2, -Infinity], [-Infinity, 5, -Infinity]]);
  assert.deepEqual(m.indexFill(0, idx([1]), 0).toArray(), [[1, 2, 3], [0, 0, 0]]);
  assert.deepEqual(m.toArray(), [[1, 2, 3], [4, 5, 6]], 'indexFill is out of place');
  assert.deepEqual(torch.tensor([false, false, false]).indexFill(0, idx([2]), true).toArray(), [false, false, true]);

  const x = torch.tensor([5n, 2n, 7n, 2n, 9n]);
  const set = torch.tensor([2n, 9n, 4n]);
  assert.deepEqual(torch.isin(x, set).toArray(), [false, true, false, true, true]);
  assert.deepEqual(torch.isin(x, set, { invert: true }).toArray(), [true, false, true, false, false]);
  assert.deepEqual(torch.isin(x.view(5, 1), set).shape, [5, 1]);
  assert.deepEqual(torch.isin(x, torch.tensor([] as bigint[], { dtype: 'int64' })).toArray(), [false, false, false, false, false]);

  // sampling's top-p: a mask in sorted order scattered back to vocabulary order (drop.scatter(-1, idx, drop))
  const sortedDrop = torch.tensor([[true, true, false]]);
  const order = torch.tensor([[2n, 0n, 1n]]);
  assert.deepEqual(sortedDrop.scatter(-1, order, sortedDrop).toArray(), [[true, false, true]]);
});

test('hasFusedAttention says whether scaledDotProductAttention runs libtorch\'s own kernel', () => {
  const fused = torch.hasFusedAttention();
  assert.equal(fused, torch.hasOp('scaled_dot_product_attention'));
  const g = new torch.Generator(3);
  const [q, k, v] = [0, 1, 2].map(() => torch.randn([1, 2, 3, 4], { generator: g, dtype: 'float64' }));
  const fusedOrNot = torch.scaledDotProductAttention(q!, k!, v!, { isCausal: true, scale: 0.3 });
  const composed = torch.attentionComposed(q!, k!, v!, { isCausal: true, scale: 0.3 });
  assertClose(fusedOrNot.toArray(), composed.toArray(), 1e-12, 1e-12);
});

test('indexCopy writes rows at an index; a stable sort keeps equal elements in order', () => {
  torch.tidy(() => {
    const x = torch.zeros([3, 2]);
    const y = x.indexCopy(0, torch.tensor([2n, 0n]), torch.tensor([[1, 2], [3, 4]]));
    assert.deepEqual(y.toArray(), [[3, 4], [0, 0], [1, 2]]);
    assert.deepEqual(x.toArray(), [[0, 0], [0, 0], [0, 0]], 'the input is not written');
    const [v, i] = torch.tensor([[1, 0, 1, 0, 0, 1]], { dtype: 'int64' }).sort(1, false, true);
    assert.deepEqual(v.toArray(), [[0, 0, 0, 1, 1, 1]]);
    assert.deepEqual(i.toArray(), [[1, 3, 4, 0, 2, 5]]);
  });
});
