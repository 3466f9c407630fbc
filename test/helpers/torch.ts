// Shared test helpers for the tensor engine: closeness checks and a finite-difference gradient check.
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import type { Tensor } from '../../src/torch/index.js';

export function flat(t: Tensor): number[] {
  return Array.from(t.toTypedArray() as ArrayLike<number | bigint>, Number);
}

/** Asserts two nested arrays / numbers are elementwise within atol + rtol*|expected|. */
export function assertClose(actual: unknown, expected: unknown, atol = 1e-6, rtol = 1e-6, path = ''): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected an array, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${path}: length`);
    expected.forEach((e, i) => assertClose((actual as unknown[])[i], e, atol, rtol, `${path}[${i}]`));
    return;
  }
  if (typeof expected === 'boolean') {
    assert.equal(actual, expected, path);
    return;
  }
  const a = Number(actual);
  const e = Number(expected);
  if (Number.isNaN(e)) return assert.ok(Number.isNaN(a), `${path}: expected NaN, got ${a}`);
  if (!Number.isFinite(e)) return assert.equal(a, e, path);
  assert.ok(Math.abs(a - e) <= atol + rtol * Math.abs(e), `${path}: ${a} is not close to ${e}`);
}

/**
 * Central finite differences in float64 against autograd, for L = sum(fn(xs) * w) with a fixed
 * random w. Returns the largest relative error ||analytic - numeric|| / max(||numeric||, 1e-12) over
 * the inputs that require gradients.
 */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: number[][] | Tensor[], opts: { eps?: number; shapes?: number[][]; noGrad?: number[] } = {}): number {
  const eps = opts.eps ?? 1e-6;
  return torch.tidy(() => {
    const base: Tensor[] = (inputs as unknown[]).map((x, i) =>
      x instanceof torch.Tensor ? x : torch.tensor(Float64Array.from(x as number[]), { shape: opts.shapes?.[i] ?? [(x as number[]).length] }),
    );
    const data = base.map((t) => flat(t));
    const shapes = base.map((t) => t.shape);
    const dtypes = base.map((t) => t.dtype);
    const make = (vals: number[][]): Tensor[] =>
      vals.map((v, i) => (dtypes[i] === 'float64' ? torch.tensor(Float64Array.from(v), { shape: shapes[i] }) : torch.tensor(v, { dtype: dtypes[i], shape: shapes[i] } as never)));
    const differentiable = base.map((t, i) => t.dtype === 'float64' && !(opts.noGrad ?? []).includes(i));
    // The projection w, fixed.
    const probe = fn(...make(data));
    const w = torch.randn(probe.shape, { dtype: 'float64', generator: new torch.Generator(1234) });
    const lossOf = (xs: Tensor[]): Tensor => fn(...xs).mul(w).sum();
    const xs = make(data);
    xs.forEach((x, i) => differentiable[i] && x.requiresGrad_(true));
    lossOf(xs).backward();
    let worst = 0;
    xs.forEach((x, i) => {
      if (!differentiable[i]) return;
      const g = x.grad;
      const analytic = g ? flat(g) : new Array(data[i]!.length).fill(0);
      const numeric = data[i]!.map((_, j) =>
        torch.tidy(() => {
          const plus = data.map((d) => d.slice());
          const minus = data.map((d) => d.slice());
          plus[i]![j]! += eps;
          minus[i]![j]! -= eps;
          return torch.noGrad(() => (lossOf(make(plus)).item() - lossOf(make(minus)).item()) / (2 * eps));
        }),
      );
      let diff = 0;
      let norm = 0;
      for (let j = 0; j < numeric.length; j++) {
        diff += (analytic[j]! - numeric[j]!) ** 2;
        norm += numeric[j]! ** 2;
      }
      worst = Math.max(worst, Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-12));
    });
    return worst;
  });
}

/** Deterministic pseudo-random numbers in [lo, hi) for test inputs. */
export function values(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out.push(lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296));
  }
  return out;
}

/** Every tensor of a float32 safetensors file, read into JavaScript arrays (the tensors freed). */
export function readFloat32Weights(path: string): Map<string, Float32Array> {
  const { tensors } = torch.loadSafetensors(path);
  const out = new Map<string, Float32Array>();
  for (const [k, t] of tensors) {
    out.set(k, Float32Array.from(t.toTypedArray() as Float32Array));
    t.dispose();
  }
  return out;
}
