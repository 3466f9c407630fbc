// Autograd against central finite differences in float64, for every differentiable op of the
// Tensor API (relative error <= 1e-6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import type { Tensor } from '../src/torch/index.js';
import { gradcheck, values } from './helpers/torch.js';

// Central differences in float64 with step h: truncation error ~h^2 |f'''| and rounding ~EPS64 |f| / h; with
// h ~ 1e-6 (helpers/torch.ts) and O(1) values that is ~1e-12 + 1e-10, so 1e-6 leaves room for ops with large
// third derivatives, while a wrong sign, scale or transposed gradient is an O(1) relative error.
const TOL = 1e-6;
const v = (n: number, seed: number, lo = -1, hi = 1): number[] => values(n, seed, lo, hi);
const pos = (n: number, seed: number): number[] => values(n, seed, 0.5, 2);
const i64 = (xs: number[], shape?: number[]): Tensor => torch.tensor(xs.map(BigInt), shape ? { shape } : {});

interface Case {
  name: string;
  fn: (...xs: Tensor[]) => Tensor;
  inputs: number[][];
  shapes?: number[][];
}

const cases: Case[] = [
  // arithmetic with broadcasting
  { name: 'add', fn: (a, b) => a.add(b, 0.5), inputs: [v(6, 1), v(3, 2)], shapes: [[2, 3], [3]] },
  { name: 'add scalar', fn: (a) => a.add(2.5), inputs: [v(4, 3)] },
  { name: 'sub', fn: (a, b) => a.sub(b), inputs: [v(6, 4), v(2, 5)], shapes: [[2, 3], [2, 1]] },
  { name: 'rsub', fn: (a) => a.rsub(3), inputs: [v(4, 6)] },
  { name: 'mul', fn: (a, b) => a.mul(b), inputs: [v(6, 7), v(6, 8)], shapes: [[2, 3], [2, 3]] },
  { name: 'div', fn: (a, b) => a.div(b), inputs: [v(6, 9), pos(6, 10)] },
  { name: 'pow scalar', fn: (a) => a.pow(3), inputs: [v(5, 11)] },
  { name: 'pow tensor', fn: (a, b) => a.pow(b), inputs: [pos(5, 12), v(5, 13)] },
  { name: 'neg', fn: (a) => a.neg(), inputs: [v(4, 14)] },
  { name: 'abs', fn: (a) => a.abs(), inputs: [pos(4, 15).map((x, i) => (i % 2 ? -x : x))] },
  { name: 'maximum', fn: (a, b) => a.maximum(b), inputs: [[1, -2, 3, 0.5], [0, 0, 4, -1]] },
  { name: 'minimum', fn: (a, b) => a.minimum(b), inputs: [[1, -2, 3, 0.5], [0, 0, 4, -1]] },
  // matrix products
  { name: 'matmul', fn: (a, b) => a.matmul(b), inputs: [v(6, 16), v(12, 17)], shapes: [[2, 3], [3, 4]] },
  { name: 'matmul batched', fn: (a, b) => a.matmul(b), inputs: [v(12, 18), v(6, 19)], shapes: [[2, 2, 3], [3, 2]] },
  { name: 'mm', fn: (a, b) => a.mm(b), inputs: [v(4, 20), v(6, 21)], shapes: [[2, 2], [2, 3]] },
  { name: 'bmm', fn: (a, b) => a.bmm(b), inputs: [v(12, 22), v(12, 23)], shapes: [[2, 2, 3], [2, 3, 2]] },
  { name: 'outer', fn: (a, b) => a.outer(b), inputs: [v(3, 24), v(2, 25)] },
  { name: 'linear', fn: (x, w, b) => torch.linear(x, w, b), inputs: [v(6, 26), v(12, 27), v(4, 28)], shapes: [[2, 3], [4, 3], [4]] },
  // elementwise
  { name: 'exp', fn: (a) => a.exp(), inputs: [v(5, 29)] },
  { name: 'log', fn: (a) => a.log(), inputs: [pos(5, 30)] },
  { name: 'log1p', fn: (a) => a.log1p(), inputs: [pos(5, 31)] },
  { name: 'sqrt', fn: (a) => a.sqrt(), inputs: [pos(5, 32)] },
  { name: 'rsqrt', fn: (a) => a.rsqrt(), inputs: [pos(5, 33)] },
  { name: 'square', fn: (a) => a.square(), inputs: [v(5, 34)] },
  { name: 'reciprocal', fn: (a) => a.reciprocal(), inputs: [pos(5, 35)] },
  { name: 'tanh', fn: (a) => a.tanh(), inputs: [v(5, 36)] },
  { name: 'sigmoid', fn: (a) => a.sigmoid(), inputs: [v(5, 37, -3, 3)] },
  { name: 'logSigmoid', fn: (a) => a.logSigmoid(), inputs: [v(5, 38, -3, 3)] },
  { name: 'sin', fn: (a) => a.sin(), inputs: [v(5, 39)] },
  { name: 'cos', fn: (a) => a.cos(), inputs: [v(5, 40)] },
  { name: 'relu', fn: (a) => a.relu(), inputs: [[0.5, -0.3, 1.2, -2, 0.1]] },
  { name: 'silu', fn: (a) => a.silu(), inputs: [v(5, 41, -3, 3)] },
  { name: 'gelu exact', fn: (a) => a.gelu(), inputs: [v(5, 42, -3, 3)] },
  { name: 'gelu tanh', fn: (a) => a.gelu('tanh'), inputs: [v(5, 43, -3, 3)] },
  { name: 'softplus', fn: (a) => a.softplus(), inputs: [v(5, 44, -3, 3)] },
  { name: 'clamp', fn: (a) => a.clamp(-0.5, 0.5), inputs: [[0.2, -0.9, 0.7, 0.1, -0.3]] },
  // reductions
  { name: 'sum', fn: (a) => a.sum(), inputs: [v(6, 45)] },
  { name: 'sum dim', fn: (a) => a.sum(1, true), inputs: [v(6, 46)], shapes: [[2, 3]] },
  { name: 'mean', fn: (a) => a.mean(), inputs: [v(6, 47)] },
  { name: 'mean dims', fn: (a) => a.mean([0, 2]), inputs: [v(12, 48)], shapes: [[2, 3, 2]] },
  { name: 'max', fn: (a) => a.max(), inputs: [[0.1, 0.9, -0.3, 0.4]] },
  { name: 'min', fn: (a) => a.min(), inputs: [[0.1, 0.9, -0.3, 0.4]] },
  { name: 'maxDim values', fn: (a) => a.maxDim(1)[0], inputs: [[0.1, 0.9, -0.3, 0.4, 0.2, 0.0]], shapes: [[2, 3]] },
  { name: 'amax', fn: (a) => a.amax(0), inputs: [[0.1, 0.9, -0.3, 0.4, 0.2, 0.0]], shapes: [[2, 3]] },
  { name: 'logsumexp', fn: (a) => a.logsumexp(-1), inputs: [v(6, 49)], shapes: [[2, 3]] },
  { name: 'softmax', fn: (a) => a.softmax(-1), inputs: [v(6, 50)], shapes: [[2, 3]] },
  { name: 'logSoftmax', fn: (a) => a.logSoftmax(0), inputs: [v(6, 51)], shapes: [[2, 3]] },
  { name: 'cumsum', fn: (a) => a.cumsum(1), inputs: [v(6, 52)], shapes: [[2, 3]] },
  { name: 'prod', fn: (a) => a.prod(1), inputs: [v(6, 53)], shapes: [[2, 3]] },
  { name: 'norm', fn: (a) => a.norm(), inputs: [v(6, 54)] },
  { name: 'var', fn: (a) => a.var(1), inputs: [v(6, 55)], shapes: [[2, 3]] },
  // shape and indexing
  { name: 'reshape', fn: (a) => a.reshape(3, 2).mul(a.reshape(3, 2)), inputs: [v(6, 56)], shapes: [[2, 3]] },
  { name: 'view', fn: (a) => a.view(6).cumsum(0), inputs: [v(6, 57)], shapes: [[2, 3]] },
  { name: 'flatten', fn: (a) => a.flatten().cumsum(0), inputs: [v(8, 58)], shapes: [[2, 2, 2]] },
  { name: 'transpose', fn: (a) => a.transpose(0, 1).cumsum(0), inputs: [v(6, 59)], shapes: [[2, 3]] },
  { name: 'T', fn: (a) => a.T.cumsum(0), inputs: [v(6, 60)], shapes: [[2, 3]] },
  { name: 'permute', fn: (a) => a.permute(2, 0, 1).cumsum(0), inputs: [v(12, 61)], shapes: [[2, 3, 2]] },
  { name: 'contiguous', fn: (a) => a.transpose(0, 1).contiguous(), inputs: [v(6, 62)], shapes: [[2, 3]] },
  { name: 'expand', fn: (a) => a.expand(3, 2).cumsum(0), inputs: [v(2, 63)], shapes: [[1, 2]] },
  { name: 'unsqueeze', fn: (a) => a.unsqueeze(1).expand(3, 2), inputs: [v(3, 64)] },
  { name: 'squeeze', fn: (a) => a.squeeze(1).cumsum(0), inputs: [v(3, 65)], shapes: [[3, 1]] },
  { name: 'narrow', fn: (a) => a.narrow(1, 1, 2), inputs: [v(6, 66)], shapes: [[2, 3]] },
  { name: 'slice', fn: (a) => a.slice(0, 1, null, 2), inputs: [v(5, 67)] },
  { name: 'select', fn: (a) => a.select(0, 1), inputs: [v(6, 68)], shapes: [[2, 3]] },
  { name: 'split', fn: (a) => { const [x, y] = a.split(2, 0); return x!.mul(y!.slice(0, 0, 2)); }, inputs: [v(5, 69)] },
  { name: 'chunk', fn: (a) => { const [x, y] = a.chunk(2, 0); return x!.mul(y!); }, inputs: [v(4, 70)] },
  { name: 'cat', fn: (a, b) => torch.cat([a, b], 0).cumsum(0), inputs: [v(2, 71), v(3, 72)] },
  { name: 'stack', fn: (a, b) => torch.stack([a, b], 1).cumsum(1), inputs: [v(3, 73), v(3, 74)] },
  { name: 'repeat', fn: (a) => a.repeat(2, 2).cumsum(1), inputs: [v(2, 75)], shapes: [[1, 2]] },
  { name: 'repeatInterleave', fn: (a) => a.repeatInterleave(2, 0).cumsum(0), inputs: [v(3, 76)] },
  { name: 'triu', fn: (a) => a.triu(), inputs: [v(9, 77)], shapes: [[3, 3]] },
  { name: 'tril', fn: (a) => a.tril(-1), inputs: [v(9, 78)], shapes: [[3, 3]] },
  { name: 'gather', fn: (a) => a.gather(1, i64([2, 0, 1, 1], [2, 2])), inputs: [v(6, 79)], shapes: [[2, 3]] },
  { name: 'indexSelect', fn: (a) => a.indexSelect(0, i64([2, 0, 2])), inputs: [v(6, 80)], shapes: [[3, 2]] },
  { name: 'index', fn: (a) => a.index([i64([1, 0]), i64([2, 2])]), inputs: [v(6, 81)], shapes: [[2, 3]] },
  { name: 'embedding', fn: (w) => torch.embedding(w, i64([3, 0, 3, 1], [2, 2])), inputs: [v(8, 82)], shapes: [[4, 2]] },
  { name: 'maskedFill', fn: (a) => a.maskedFill(torch.tensor([true, false, true, false]), 0.5).mul(a), inputs: [v(4, 83)] },
  { name: 'where', fn: (a, b) => torch.where(torch.tensor([true, false, false, true]), a, b), inputs: [v(4, 84), v(4, 85)] },
  { name: 'scatter', fn: (a, s) => a.scatter(0, i64([2, 0]), s), inputs: [v(4, 86), v(2, 87)] },
  { name: 'topk values', fn: (a) => a.topk(2)[0], inputs: [[0.3, -0.1, 0.9, 0.5]] },
  { name: 'sort values', fn: (a) => a.sort(0, true)[0], inputs: [[0.3, -0.1, 0.9, 0.5]] },
  // model and loss building blocks
  { name: 'crossEntropy', fn: (x) => torch.crossEntropy(x, i64([2, 0])), inputs: [v(6, 88)], shapes: [[2, 3]] },
  { name: 'crossEntropy smoothing', fn: (x) => torch.crossEntropy(x, i64([1, 2]), { labelSmoothing: 0.1, reduction: 'sum' }), inputs: [v(6, 89)], shapes: [[2, 3]] },
  { name: 'layerNorm', fn: (x, w, b) => torch.layerNorm(x, [3], w, b), inputs: [v(6, 90), v(3, 91), v(3, 92)], shapes: [[2, 3], [3], [3]] },
  { name: 'rmsNorm', fn: (x, w) => torch.rmsNorm(x, w, 1e-6), inputs: [v(6, 93), v(3, 94)], shapes: [[2, 3], [3]] },
  { name: 'rmsNorm 1+w', fn: (x, w) => torch.rmsNorm(x, w, 1e-6, 1), inputs: [v(6, 95), v(3, 96)], shapes: [[2, 3], [3]] },
  {
    name: 'attention (causal)',
    fn: (q, k, val) => torch.scaledDotProductAttention(q, k, val, { isCausal: true }),
    inputs: [v(12, 97), v(12, 98), v(12, 99)],
    shapes: [[1, 1, 3, 4], [1, 1, 3, 4], [1, 1, 3, 4]],
  },
  {
    name: 'attention (composed, masked)',
    fn: (q, k, val) => torch.attentionComposed(q, k, val, { mask: torch.tensor([[true, false, true]]) }),
    inputs: [v(12, 100), v(12, 101), v(12, 102)],
    shapes: [[1, 1, 3, 4], [1, 1, 3, 4], [1, 1, 3, 4]],
  },
  { name: 'to float64 -> float64 clone', fn: (a) => a.clone().to('float64').mul(a), inputs: [v(4, 103)] },
  { name: 'addmm', fn: (b, x, w) => torch.addmm(b, x, w, { beta: 0.5, alpha: 2 }), inputs: [v(4, 105), v(6, 106), v(12, 107)], shapes: [[4], [2, 3], [3, 4]] },
  { name: 'pow scalar base', fn: (e) => torch.pow(2.5, e), inputs: [v(5, 108)] },
  { name: 'indexFill', fn: (a) => a.indexFill(1, i64([2, 0]), 0.25).mul(a), inputs: [v(6, 109)], shapes: [[2, 3]] },
];

for (const c of cases) {
  test(`gradcheck: ${c.name}`, () => {
    const err = gradcheck(c.fn, c.inputs, { shapes: c.shapes });
    assert.ok(err <= TOL, `relative error ${err.toExponential(2)} > ${TOL}`);
  });
}

test('gradcheck detects a wrong gradient (the check itself can fail)', () => {
  // detach() cuts the gradient of one factor: autograd then gives half of d(x^2)/dx.
  const err = gradcheck((a) => a.mul(a.detach()), [v(4, 104)]);
  assert.ok(err > 0.1, `expected a large error, got ${err}`);
});
