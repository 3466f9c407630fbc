// Making tensors: from JavaScript data, filled, ranges, and random.
import { native } from './native.js';
import { dtypeCode, dtypeOfArray, ELEMENT_SIZE, type DType, type TypedArray } from './dtype.js';
import { callT, Tensor, type Device, type Scalar } from './tensor.js';
import type { Generator } from './random.js';
import { defaultDevice } from './device.js';

export interface Options {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}
export interface RandomOptions extends Options {
  generator?: Generator;
}

function finish(t: Tensor, opts: Options): Tensor {
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

const dev = (opts: Options): string => opts.device ?? defaultDevice();
const dt = (opts: Options, dflt: DType = 'float32'): number => dtypeCode(opts.dtype ?? dflt);

type Nested = number | boolean | bigint | Nested[];

function shapeOf(data: Nested): number[] {
  const shape: number[] = [];
  let x: Nested = data;
  while (Array.isArray(x)) {
    shape.push(x.length);
    if (x.length === 0) break;
    x = x[0]!;
  }
  return shape;
}

/**
 * A tensor from nested arrays or a typed array. Without a dtype: booleans give bool, bigints int64,
 * numbers float32 (JavaScript cannot tell 1 from 1.0, so unlike PyTorch integers are not int64 unless
 * asked for); a typed array keeps its own type.
 */
export function tensor(data: Nested | TypedArray, opts: Options & { shape?: number[] } = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    const src = data as TypedArray;
    const srcType = dtypeOfArray(src);
    const shape = opts.shape ?? [src.length];
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== src.length) throw new RangeError(`tensor: shape [${shape.join(',')}] needs ${n} elements, the array has ${src.length}`);
    let t = new Tensor(native.fromBytes(src, dtypeCode(srcType), shape));
    if (opts.dtype && opts.dtype !== srcType) {
      const c = t.to(opts.dtype);
      t.dispose();
      t = c;
    }
    return moveAndFinish(t, opts);
  }
  const nestedShape = shapeOf(data as Nested);
  const flat: (number | boolean | bigint)[] = [];
  const walk = (x: Nested, d: number): void => {
    if (Array.isArray(x)) {
      if (x.length !== nestedShape[d]) throw new RangeError(`tensor: ragged nested array (dimension ${d} has lengths ${nestedShape[d]} and ${x.length})`);
      for (const e of x) walk(e, d + 1);
    } else {
      if (d !== nestedShape.length) throw new RangeError('tensor: ragged nested array');
      flat.push(x);
    }
  };
  walk(data as Nested, 0);
  const shape = opts.shape ?? nestedShape;
  if (opts.shape && shape.reduce((a, b) => a * b, 1) !== flat.length) {
    throw new RangeError(`tensor: shape [${shape.join(',')}] does not hold the ${flat.length} elements given`);
  }
  let dtype = opts.dtype;
  if (!dtype) {
    if (flat.length > 0 && flat.every((v) => typeof v === 'boolean')) dtype = 'bool';
    else if (flat.length > 0 && flat.every((v) => typeof v === 'bigint')) dtype = 'int64';
    else dtype = 'float32';
  }
  const arr = typedFor(dtype, flat);
  const t = new Tensor(native.fromBytes(arr, dtypeCode(dtype === 'float16' || dtype === 'bfloat16' ? 'float32' : dtype), shape));
  if (dtype === 'float16' || dtype === 'bfloat16') {
    const c = t.to(dtype);
    t.dispose();
    return moveAndFinish(c, opts);
  }
  return moveAndFinish(t, opts);
}

function moveAndFinish(t: Tensor, opts: Options): Tensor {
  const device = dev(opts);
  if (device !== 'cpu') {
    const m = t.to(device);
    t.dispose();
    t = m;
  }
  return finish(t, opts);
}

function typedFor(dtype: DType, flat: (number | boolean | bigint)[]): TypedArray {
  const num = (v: number | boolean | bigint): number => Number(v);
  switch (dtype) {
    case 'float64': return Float64Array.from(flat, num);
    case 'int64': return BigInt64Array.from(flat, (v) => (typeof v === 'bigint' ? v : BigInt(Math.trunc(Number(v)))));
    case 'int32': return Int32Array.from(flat, num);
    case 'int16': return Int16Array.from(flat, num);
    case 'int8': return Int8Array.from(flat, num);
    case 'uint8': return Uint8Array.from(flat, num);
    case 'bool': return Uint8Array.from(flat, (v) => (v ? 1 : 0));
    default: return Float32Array.from(flat, num);
  }
}

/** A CPU tensor holding a copy of raw little-endian bytes as elements of dtype. */
export function fromBytes(bytes: Uint8Array, dtype: DType, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== n * ELEMENT_SIZE[dtype]) throw new RangeError(`fromBytes: ${bytes.byteLength} bytes for ${dtype}[${shape.join(',')}]`);
  return new Tensor(native.fromBytes(bytes, dtypeCode(dtype), shape));
}

export function scalarTensor(v: number, opts: Options = {}): Tensor {
  return finish(callT('scalar_tensor', v, dt(opts), null, dev(opts), null), opts);
}
export function zeros(shape: number[], opts: Options = {}): Tensor {
  return finish(callT('zeros', shape, dt(opts), null, dev(opts), null), opts);
}
export function ones(shape: number[], opts: Options = {}): Tensor {
  return finish(callT('ones', shape, dt(opts), null, dev(opts), null), opts);
}
export function empty(shape: number[], opts: Options = {}): Tensor {
  return finish(callT('empty.memory_format', shape, dt(opts), null, dev(opts), null, null), opts);
}
/** Uninitialised, with the shape, dtype and device of t (torch.empty_like). */
export function emptyLike(t: Tensor): Tensor {
  return callT('empty_like', t.h, null, null, null, null, null);
}
export function full(shape: number[], value: Scalar, opts: Options = {}): Tensor {
  const d = opts.dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32');
  return finish(callT('full', shape, value, dtypeCode(d), null, dev(opts), null), opts);
}
export function zerosLike(t: Tensor, opts: Options = {}): Tensor {
  return finish(callT('zeros_like', t.h, opts.dtype ? dtypeCode(opts.dtype) : null, null, dev(opts), null, null), opts);
}
export function onesLike(t: Tensor, opts: Options = {}): Tensor {
  return finish(callT('ones_like', t.h, opts.dtype ? dtypeCode(opts.dtype) : null, null, dev(opts), null, null), opts);
}
export function fullLike(t: Tensor, value: Scalar, opts: Options = {}): Tensor {
  return finish(callT('full_like', t.h, value, opts.dtype ? dtypeCode(opts.dtype) : null, null, dev(opts), null, null), opts);
}
/** start, start+step, ... below end (int64 when all are integers and no dtype is given, as PyTorch). */
export function arange(start: number, end?: number, step = 1, opts: Options = {}): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  const ints = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  const d = opts.dtype ?? (ints ? 'int64' : 'float32');
  return finish(callT('arange.start_step', start, end, step, dtypeCode(d), null, dev(opts), null), opts);
}
export function linspace(start: number, end: number, steps: number, opts: Options = {}): Tensor {
  return finish(callT('linspace', start, end, steps, dt(opts), null, dev(opts), null), opts);
}
export function eye(n: number, opts: Options = {}): Tensor {
  return finish(callT('eye', n, dt(opts), null, dev(opts), null), opts);
}
/** Standard normal samples. */
export function randn(shape: number[], opts: RandomOptions = {}): Tensor {
  return finish(callT('randn.generator', shape, opts.generator?.h ?? null, dt(opts), null, dev(opts), null), opts);
}
/** Uniform samples in [0, 1). */
export function rand(shape: number[], opts: RandomOptions = {}): Tensor {
  return finish(callT('rand.generator', shape, opts.generator?.h ?? null, dt(opts), null, dev(opts), null), opts);
}
/** Integers uniform in [low, high). */
export function randint(low: number, high: number, shape: number[], opts: RandomOptions = {}): Tensor {
  return finish(callT('randint.low_generator', low, high, shape, opts.generator?.h ?? null, dt(opts, 'int64'), null, dev(opts), null), opts);
}
/** `numSamples` indices per row drawn from the (unnormalised) probabilities in each row of probs. */
export function multinomial(probs: Tensor, numSamples: number, opts: { replacement?: boolean; generator?: Generator } = {}): Tensor {
  return callT('multinomial', probs.h, numSamples, opts.replacement ?? false, opts.generator?.h ?? null);
}
