// The Tensor: a TypeScript object over one libtorch at::Tensor. Every operation is an ATen operator
// called through libtorch's dispatcher (so autograd, CUDA and type promotion are libtorch's own); the
// methods here only choose the operator overload and pass arguments in schema order.
import { native, type Handle } from './native.js';
import { dtypeCode, dtypeOfCode, viewBytes, type DType, type TypedArray } from './dtype.js';
import { track, type Owned } from './scope.js';
import type { Generator } from './random.js';

const ids: Record<string, number> = Object.create(null);

/** The dispatcher id of `aten::name.overload` ('add.Tensor', 'mm'), looked up once. */
export function opId(name: string): number {
  let id = ids[name];
  if (id === undefined) {
    const dot = name.indexOf('.');
    const base = dot < 0 ? name : name.slice(0, dot);
    const overload = dot < 0 ? '' : name.slice(dot + 1);
    id = native.opFind(`aten::${base}`, overload);
    if (id < 0) throw new Error(`this libtorch (${native.version()}) has no operator aten::${name}`);
    ids[name] = id;
  }
  return id;
}

/** Whether the linked libtorch has `aten::name.overload`. */
export function hasOp(name: string): boolean {
  try {
    opId(name);
    return true;
  } catch {
    return false;
  }
}

/** The schema of an ATen operator, as libtorch states it. */
export function opSchema(name: string): string {
  return native.opSchema(opId(name));
}

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | Scalar;
export type Device = string;

/** Calls an ATen operator whose single result is a tensor. */
export function callT(name: string, ...args: unknown[]): Tensor {
  return new Tensor(native.call(opId(name), ...(args as never[])) as Handle);
}

/** Calls an ATen operator with several tensor results. */
export function callTs(name: string, ...args: unknown[]): Tensor[] {
  return (native.call(opId(name), ...(args as never[])) as Handle[]).map((h) => new Tensor(h));
}

export const handles = (ts: readonly Tensor[]): Handle[] => ts.map((t) => t.h);

const call = native.call;
const T = (h: unknown): Tensor => new Tensor(h as Handle);

// The last resort for tensors nobody disposed: freed when V8 collects their Tensor object (which
// happens only when the event loop turns). Tensors inside a tidy() scope are left out (the scope
// frees them, and registering costs a fifth of a small op); disposed tensors are unregistered.
const forgotten = new FinalizationRegistry<Handle>((h) => native.dispose(h));

export class Tensor implements Owned, Disposable {
  /** @internal */ _h: Handle | null;
  /** @internal */ _kept = false;
  /** @internal */ _registered = false;
  /** @internal */ _shape: number[] | undefined = undefined;

  /** @internal Use the creation functions (tensor, zeros, ...) instead. */
  constructor(h: Handle) {
    this._h = h;
    if (!track(this)) this._unscoped();
  }

  /** @internal No scope will free this tensor: the garbage collector is its last resort. */
  _unscoped(): void {
    if (!this._registered && this._h !== null) {
      forgotten.register(this, this._h, this);
      this._registered = true;
    }
  }

  /** The native handle; throws if the tensor was disposed. */
  get h(): Handle {
    const h = this._h;
    if (h === null) throw new Error('tensor used after dispose()');
    return h;
  }

  get isDisposed(): boolean {
    return this._h === null;
  }

  dispose(): void {
    if (this._h !== null) {
      native.dispose(this._h);
      if (this._registered) forgotten.unregister(this);
      this._h = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---------------------------------------------------------------- properties
  get shape(): number[] {
    return (this._shape ??= native.shape(this.h));
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    let n = 1;
    for (const s of this.shape) n *= s;
    return n;
  }
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`size(${dim}): tensor has ${s.length} dimensions`);
    return s[d]!;
  }
  get dtype(): DType {
    return dtypeOfCode(native.meta(this.h)[0]);
  }
  get device(): Device {
    return native.meta(this.h)[1];
  }
  get requiresGrad(): boolean {
    return native.meta(this.h)[2];
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.h);
  }
  toString(): string {
    if (this._h === null) return 'Tensor(disposed)';
    return `Tensor(${this.dtype}[${this.shape.join(',')}]${this.device === 'cpu' ? '' : ' ' + this.device})`;
  }

  // ---------------------------------------------------------------- reading back
  /** The elements as a typed array (float16/bfloat16 are converted to Float32Array). */
  toTypedArray(): TypedArray {
    const d = this.dtype;
    if (d === 'float16' || d === 'bfloat16') {
      const f = this.to('float32');
      try {
        return new Float32Array(native.toBytes(f.h));
      } finally {
        f.dispose();
      }
    }
    return viewBytes(native.toBytes(this.h), d);
  }

  /** The elements as nested arrays of numbers (booleans for bool tensors). */
  toArray(): unknown {
    const flat = this.toTypedArray();
    const isBool = this.dtype === 'bool';
    const conv = (i: number): number | boolean => {
      const v = flat[i]!;
      return isBool ? v !== 0 : typeof v === 'bigint' ? Number(v) : v;
    };
    const shape = this.shape;
    if (shape.length === 0) return conv(0);
    let k = 0;
    const build = (d: number): unknown[] => {
      const n = shape[d]!;
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = d === shape.length - 1 ? conv(k++) : build(d + 1);
      return out;
    };
    return build(0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    return Number(native.item(this.h));
  }

  // ---------------------------------------------------------------- autograd
  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.h, on);
    return this;
  }
  /** The accumulated gradient (a new reference to it), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.h);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.h, g === null ? null : g.h);
  }
  zeroGrad(): void {
    native.setGrad(this.h, null);
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward([this.h], gradient ? [gradient.h] : null, opts.retainGraph ?? false, opts.createGraph ?? false);
  }
  detach(): Tensor {
    return T(call(opId('detach'), this.h));
  }

  // ---------------------------------------------------------------- conversion
  /** To a dtype or a device ('cpu', 'cuda', 'cuda:1'); returns a new reference even when nothing changes. */
  to(target: DType | Device, opts: { dtype?: DType } = {}): Tensor {
    if (isDType(target)) return T(call(opId('to.dtype'), this.h, dtypeCode(target)));
    const dtype = opts.dtype ?? this.dtype;
    return T(call(opId('to.device'), this.h, target, dtypeCode(dtype)));
  }
  float(): Tensor {
    return this.to('float32');
  }
  cpu(): Tensor {
    return this.to('cpu');
  }
  clone(): Tensor {
    return T(call(opId('clone'), this.h));
  }
  contiguous(): Tensor {
    return T(call(opId('contiguous'), this.h));
  }

  // ---------------------------------------------------------------- arithmetic (broadcasting)
  add(o: TensorOrScalar, alpha?: number): Tensor {
    return o instanceof Tensor ? T(call(opId('add.Tensor'), this.h, o.h, alpha)) : T(call(opId('add.Scalar'), this.h, o, alpha));
  }
  sub(o: TensorOrScalar, alpha?: number): Tensor {
    return o instanceof Tensor ? T(call(opId('sub.Tensor'), this.h, o.h, alpha)) : T(call(opId('sub.Scalar'), this.h, o, alpha));
  }
  /** o - this */
  rsub(o: Scalar): Tensor {
    return T(call(opId('rsub.Scalar'), this.h, o));
  }
  mul(o: TensorOrScalar): Tensor {
    return o instanceof Tensor ? T(call(opId('mul.Tensor'), this.h, o.h)) : T(call(opId('mul.Scalar'), this.h, o));
  }
  div(o: TensorOrScalar, roundingMode?: 'trunc' | 'floor'): Tensor {
    if (roundingMode) return o instanceof Tensor ? T(call(opId('div.Tensor_mode'), this.h, o.h, roundingMode)) : T(call(opId('div.Scalar_mode'), this.h, o, roundingMode));
    return o instanceof Tensor ? T(call(opId('div.Tensor'), this.h, o.h)) : T(call(opId('div.Scalar'), this.h, o));
  }
  pow(o: TensorOrScalar): Tensor {
    return o instanceof Tensor ? T(call(opId('pow.Tensor_Tensor'), this.h, o.h)) : T(call(opId('pow.Tensor_Scalar'), this.h, o));
  }
  remainder(o: TensorOrScalar): Tensor {
    return o instanceof Tensor ? T(call(opId('remainder.Tensor'), this.h, o.h)) : T(call(opId('remainder.Scalar'), this.h, o));
  }
  maximum(o: Tensor): Tensor {
    return T(call(opId('maximum'), this.h, o.h));
  }
  minimum(o: Tensor): Tensor {
    return T(call(opId('minimum'), this.h, o.h));
  }
  neg(): Tensor {
    return T(call(opId('neg'), this.h));
  }
  abs(): Tensor {
    return T(call(opId('abs'), this.h));
  }
  sign(): Tensor {
    return T(call(opId('sign'), this.h));
  }
  matmul(o: Tensor): Tensor {
    return T(call(opId('matmul'), this.h, o.h));
  }
  mm(o: Tensor): Tensor {
    return T(call(opId('mm'), this.h, o.h));
  }
  bmm(o: Tensor): Tensor {
    return T(call(opId('bmm'), this.h, o.h));
  }
  outer(o: Tensor): Tensor {
    return T(call(opId('outer'), this.h, o.h));
  }

  // ---------------------------------------------------------------- elementwise functions
  exp(): Tensor { return T(call(opId('exp'), this.h)); }
  log(): Tensor { return T(call(opId('log'), this.h)); }
  log1p(): Tensor { return T(call(opId('log1p'), this.h)); }
  sqrt(): Tensor { return T(call(opId('sqrt'), this.h)); }
  rsqrt(): Tensor { return T(call(opId('rsqrt'), this.h)); }
  square(): Tensor { return T(call(opId('square'), this.h)); }
  tanh(): Tensor { return T(call(opId('tanh'), this.h)); }
  sigmoid(): Tensor { return T(call(opId('sigmoid'), this.h)); }
  logSigmoid(): Tensor { return T(call(opId('log_sigmoid'), this.h)); }
  sin(): Tensor { return T(call(opId('sin'), this.h)); }
  cos(): Tensor { return T(call(opId('cos'), this.h)); }
  relu(): Tensor { return T(call(opId('relu'), this.h)); }
  silu(): Tensor { return T(call(opId('silu'), this.h)); }
  /** GeLU: exact (erf) by default, or the tanh approximation. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return T(call(opId('gelu'), this.h, approximate)); }
  softplus(beta = 1, threshold = 20): Tensor { return T(call(opId('softplus'), this.h, beta, threshold)); }
  reciprocal(): Tensor { return T(call(opId('reciprocal'), this.h)); }
  floor(): Tensor { return T(call(opId('floor'), this.h)); }
  round(): Tensor { return T(call(opId('round'), this.h)); }
  clamp(min?: number | null, max?: number | null): Tensor { return T(call(opId('clamp'), this.h, min ?? null, max ?? null)); }
  isfinite(): Tensor { return T(call(opId('isfinite'), this.h)); }
  isnan(): Tensor { return T(call(opId('isnan'), this.h)); }
  logicalNot(): Tensor { return T(call(opId('logical_not'), this.h)); }
  logicalAnd(o: Tensor): Tensor { return T(call(opId('logical_and'), this.h, o.h)); }
  logicalOr(o: Tensor): Tensor { return T(call(opId('logical_or'), this.h, o.h)); }

  // ---------------------------------------------------------------- comparisons
  eq(o: TensorOrScalar): Tensor { return o instanceof Tensor ? T(call(opId('eq.Tensor'), this.h, o.h)) : T(call(opId('eq.Scalar'), this.h, o)); }
  ne(o: TensorOrScalar): Tensor { return o instanceof Tensor ? T(call(opId('ne.Tensor'), this.h, o.h)) : T(call(opId('ne.Scalar'), this.h, o)); }
  lt(o: TensorOrScalar): Tensor { return o instanceof Tensor ? T(call(opId('lt.Tensor'), this.h, o.h)) : T(call(opId('lt.Scalar'), this.h, o)); }
  le(o: TensorOrScalar): Tensor { return o instanceof Tensor ? T(call(opId('le.Tensor'), this.h, o.h)) : T(call(opId('le.Scalar'), this.h, o)); }
  gt(o: TensorOrScalar): Tensor { return o instanceof Tensor ? T(call(opId('gt.Tensor'), this.h, o.h)) : T(call(opId('gt.Scalar'), this.h, o)); }
  ge(o: TensorOrScalar): Tensor { return o instanceof Tensor ? T(call(opId('ge.Tensor'), this.h, o.h)) : T(call(opId('ge.Scalar'), this.h, o)); }
  /** Elementwise |this - o| <= atol + rtol * |o|, all of it. */
  allclose(o: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return Boolean(native.call(opId('allclose'), this.h, o.h, rtol, atol, false));
  }
  equal(o: Tensor): boolean {
    return Boolean(native.call(opId('equal'), this.h, o.h));
  }

  // ---------------------------------------------------------------- reductions
  sum(dim?: number | number[] | null, keepdim = false, dtype?: DType): Tensor {
    if (dim === undefined || dim === null) return T(call(opId('sum'), this.h, dtype ? dtypeCode(dtype) : null));
    return T(call(opId('sum.dim_IntList'), this.h, dim, keepdim, dtype ? dtypeCode(dtype) : null));
  }
  mean(dim?: number | number[] | null, keepdim = false): Tensor {
    if (dim === undefined || dim === null) return T(call(opId('mean'), this.h));
    return T(call(opId('mean.dim'), this.h, dim, keepdim));
  }
  /** Maximum of all elements. */
  max(): Tensor { return T(call(opId('max'), this.h)); }
  min(): Tensor { return T(call(opId('min'), this.h)); }
  /** Maximum along a dimension: [values, indices]. */
  maxDim(dim: number, keepdim = false): [Tensor, Tensor] { return callTs('max.dim', this.h, dim, keepdim) as [Tensor, Tensor]; }
  minDim(dim: number, keepdim = false): [Tensor, Tensor] { return callTs('min.dim', this.h, dim, keepdim) as [Tensor, Tensor]; }
  amax(dim: number | number[], keepdim = false): Tensor { return T(call(opId('amax'), this.h, dim, keepdim)); }
  amin(dim: number | number[], keepdim = false): Tensor { return T(call(opId('amin'), this.h, dim, keepdim)); }
  argmax(dim?: number, keepdim = false): Tensor { return T(call(opId('argmax'), this.h, dim ?? null, keepdim)); }
  argmin(dim?: number, keepdim = false): Tensor { return T(call(opId('argmin'), this.h, dim ?? null, keepdim)); }
  logsumexp(dim: number | number[], keepdim = false): Tensor { return T(call(opId('logsumexp'), this.h, dim, keepdim)); }
  cumsum(dim: number, dtype?: DType): Tensor { return T(call(opId('cumsum'), this.h, dim, dtype ? dtypeCode(dtype) : null)); }
  prod(dim: number, keepdim = false): Tensor { return T(call(opId('prod.dim_int'), this.h, dim, keepdim, null)); }
  any(dim?: number): Tensor { return dim === undefined ? T(call(opId('any'), this.h)) : T(call(opId('any.dim'), this.h, dim, false)); }
  all(dim?: number): Tensor { return dim === undefined ? T(call(opId('all'), this.h)) : T(call(opId('all.dim'), this.h, dim, false)); }
  /** Vector norm over all elements or the given dims. */
  norm(ord = 2, dim?: number | number[] | null, keepdim = false): Tensor {
    return T(call(opId('linalg_vector_norm'), this.h, ord, dim ?? null, keepdim, null));
  }
  var(dim: number | number[], unbiased = true, keepdim = false): Tensor { return T(call(opId('var.dim'), this.h, dim, unbiased, keepdim)); }
  softmax(dim: number, dtype?: DType): Tensor { return T(call(opId('softmax.int'), this.h, dim, dtype ? dtypeCode(dtype) : null)); }
  logSoftmax(dim: number, dtype?: DType): Tensor { return T(call(opId('log_softmax.int'), this.h, dim, dtype ? dtypeCode(dtype) : null)); }

  // ---------------------------------------------------------------- indexing and selection
  gather(dim: number, index: Tensor): Tensor { return T(call(opId('gather'), this.h, dim, index.h, false)); }
  indexSelect(dim: number, index: Tensor): Tensor { return T(call(opId('index_select'), this.h, dim, index.h)); }
  /** Advanced indexing, as t[i0, i1, ...] with index tensors (null = the whole dimension). */
  index(indices: (Tensor | null)[]): Tensor { return T(call(opId('index.Tensor'), this.h, indices.map((t) => (t ? t.h : null)))); }
  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor {
    return value instanceof Tensor ? T(call(opId('masked_fill.Tensor'), this.h, mask.h, value.h)) : T(call(opId('masked_fill.Scalar'), this.h, mask.h, value));
  }
  scatter(dim: number, index: Tensor, src: TensorOrScalar): Tensor {
    return src instanceof Tensor ? T(call(opId('scatter.src'), this.h, dim, index.h, src.h)) : T(call(opId('scatter.value'), this.h, dim, index.h, src));
  }
  /** torch.Tensor.scatter_add: a copy with src's entries added at `index` along dim (repeated indices add up). */
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return T(call(opId('scatter_add'), this.h, dim, index.h, src.h)); }
  /** torch.Tensor.index_fill: a copy with the entries at `index` (int64, 1-D) along dim set to value. */
  indexFill(dim: number, index: Tensor, value: Scalar): Tensor { return T(call(opId('index_fill.int_Scalar'), this.h, dim, index.h, value)); }
  /** A copy with the rows of `source` written at `index` along dim (torch.Tensor.index_copy). */
  indexCopy(dim: number, index: Tensor, source: Tensor): Tensor { return T(call(opId('index_copy'), this.h, dim, index.h, source.h)); }
  /** A copy with the rows of `source` added at `index` along dim, in source order (torch.Tensor.index_add). */
  indexAdd(dim: number, index: Tensor, source: Tensor): Tensor { return T(call(opId('index_add'), this.h, dim, index.h, source.h, 1)); }
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] { return callTs('topk', this.h, k, dim, largest, sorted) as [Tensor, Tensor]; }
  /** Values and indices along dim (torch.sort); `stable` keeps equal elements in their order. */
  sort(dim = -1, descending = false, stable = false): [Tensor, Tensor] {
    return (stable ? callTs('sort.stable', this.h, true, dim, descending) : callTs('sort', this.h, dim, descending)) as [Tensor, Tensor];
  }
  triu(diagonal = 0): Tensor { return T(call(opId('triu'), this.h, diagonal)); }
  tril(diagonal = 0): Tensor { return T(call(opId('tril'), this.h, diagonal)); }

  // ---------------------------------------------------------------- shape
  reshape(...shape: number[]): Tensor { return T(call(opId('reshape'), this.h, shape)); }
  view(...shape: number[]): Tensor { return T(call(opId('view'), this.h, shape)); }
  flatten(start = 0, end = -1): Tensor { return T(call(opId('flatten.using_ints'), this.h, start, end)); }
  transpose(d0: number, d1: number): Tensor { return T(call(opId('transpose.int'), this.h, d0, d1)); }
  /** The transpose of a 2-D tensor. */
  get T(): Tensor { return T(call(opId('t'), this.h)); }
  /** Whether the elements lie in row-major order with no gaps (torch.Tensor.is_contiguous). */
  isContiguous(): boolean { return native.isContiguous(this.h); }
  permute(...dims: number[]): Tensor { return T(call(opId('permute'), this.h, dims)); }
  expand(...shape: number[]): Tensor { return T(call(opId('expand'), this.h, shape, false)); }
  expandAs(o: Tensor): Tensor { return T(call(opId('expand'), this.h, o.shape, false)); }
  unsqueeze(dim: number): Tensor { return T(call(opId('unsqueeze'), this.h, dim)); }
  squeeze(dim?: number): Tensor { return dim === undefined ? T(call(opId('squeeze'), this.h)) : T(call(opId('squeeze.dim'), this.h, dim)); }
  narrow(dim: number, start: number, length: number): Tensor { return T(call(opId('narrow'), this.h, dim, start, length)); }
  /** Elements start..end (exclusive; negative counts from the end; null = to the end) along dim. */
  slice(dim: number, start: number | null = 0, end: number | null = null, step = 1): Tensor { return T(call(opId('slice.Tensor'), this.h, dim, start, end, step)); }
  /** Index `index` of dimension `dim`, which is removed. */
  select(dim: number, index: number): Tensor { return T(call(opId('select.int'), this.h, dim, index)); }
  split(size: number | number[], dim = 0): Tensor[] {
    return typeof size === 'number' ? callTs('split.Tensor', this.h, size, dim) : callTs('split_with_sizes', this.h, size, dim);
  }
  chunk(n: number, dim = 0): Tensor[] { return callTs('chunk', this.h, n, dim); }
  repeat(...times: number[]): Tensor { return T(call(opId('repeat'), this.h, times)); }
  repeatInterleave(repeats: number, dim: number): Tensor { return T(call(opId('repeat_interleave.self_int'), this.h, repeats, dim, null)); }

  // ---------------------------------------------------------------- in place (for optimizers and caches)
  copy_(src: Tensor): this { native.callInplace(opId('copy_'), this.h, src.h, false); return this; }
  zero_(): this { native.callInplace(opId('zero_'), this.h); return this; }
  fill_(v: Scalar): this { native.callInplace(opId('fill_.Scalar'), this.h, v); return this; }
  add_(o: TensorOrScalar, alpha?: number): this {
    if (o instanceof Tensor) native.callInplace(opId('add_.Tensor'), this.h, o.h, alpha);
    else native.callInplace(opId('add_.Scalar'), this.h, o, alpha);
    return this;
  }
  sub_(o: TensorOrScalar, alpha?: number): this {
    if (o instanceof Tensor) native.callInplace(opId('sub_.Tensor'), this.h, o.h, alpha);
    else native.callInplace(opId('sub_.Scalar'), this.h, o, alpha);
    return this;
  }
  mul_(o: TensorOrScalar): this {
    if (o instanceof Tensor) native.callInplace(opId('mul_.Tensor'), this.h, o.h);
    else native.callInplace(opId('mul_.Scalar'), this.h, o);
    return this;
  }
  div_(o: TensorOrScalar): this {
    if (o instanceof Tensor) native.callInplace(opId('div_.Tensor'), this.h, o.h);
    else native.callInplace(opId('div_.Scalar'), this.h, o);
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value = 1): this { native.callInplace(opId('addcmul_'), this.h, a.h, b.h, value); return this; }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this { native.callInplace(opId('addcdiv_'), this.h, a.h, b.h, value); return this; }
  lerp_(end: Tensor, weight: number): this { native.callInplace(opId('lerp_.Scalar'), this.h, end.h, weight); return this; }
  clamp_(min?: number | null, max?: number | null): this { native.callInplace(opId('clamp_'), this.h, min ?? null, max ?? null); return this; }
  maskedFill_(mask: Tensor, value: Scalar): this { native.callInplace(opId('masked_fill_.Scalar'), this.h, mask.h, value); return this; }
  /** Fills with samples of Exp(lambd) (torch.Tensor.exponential_), drawn from `generator` (default: the device's global one). */
  exponential_(lambd = 1, generator?: Generator | null): this { native.callInplace(opId('exponential_'), this.h, lambd, generator?.h ?? null); return this; }
  /** Writes the slices of `source` at the positions `index` (int64, 1-D, may live on the device) along dim, in place. */
  indexCopy_(dim: number, index: Tensor, source: Tensor): this { native.callInplace(opId('index_copy_'), this.h, dim, index.h, source.h); return this; }
  /** Adds the rows of `source` at `index` along dim, in place, in source order (torch.Tensor.index_add_). */
  indexAdd_(dim: number, index: Tensor, source: Tensor): this { native.callInplace(opId('index_add_'), this.h, dim, index.h, source.h, 1); return this; }
  /** Writes src into the slice start..start+src.size(dim) of dim. */
  sliceAssign_(dim: number, start: number, src: Tensor): this {
    const view = this.narrow(dim, start, src.size(dim));
    try {
      native.callInplace(opId('copy_'), view.h, src.h, false);
    } finally {
      view.dispose();
    }
    return this;
  }
}

/** Whether a string names a dtype (and not a device). */
export function isDType(s: string): s is DType {
  return s === 'float32' || s === 'float64' || s === 'float16' || s === 'bfloat16' || s === 'int64' || s === 'int32' || s === 'int16' || s === 'int8' || s === 'uint8' || s === 'bool';
}

/** The number of live native tensors (not yet disposed nor collected): for leak checks. */
export function liveTensors(): number {
  return native.liveTensors();
}
