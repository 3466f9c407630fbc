// The key/value cache of generation: per layer, keys and values [B, Hkv, capacity, D] allocated once;
// each forward pass writes its new positions in place and attends over the filled prefix.
import { empty, keep, tidy, type DType, type Tensor } from '../torch/index.js';
import type { AttentionCache, CausalLM } from '../models/causal_lm.js';

export class KVCache implements AttentionCache, Disposable {
  keys: Tensor[];
  values: Tensor[];
  length = 0;

  constructor(readonly numLayers: number, public batch: number, readonly numKvHeads: number, readonly capacity: number, readonly headDim: number, readonly dtype: DType, readonly device: string) {
    const shape = [batch, numKvHeads, capacity, headDim];
    this.keys = Array.from({ length: numLayers }, () => keep(empty(shape, { dtype, device })));
    this.values = Array.from({ length: numLayers }, () => keep(empty(shape, { dtype, device })));
  }

  /** A cache for `batch` sequences of up to `capacity` positions of a model. */
  static forModel(model: CausalLM, batch: number, capacity: number): KVCache {
    const c = model.config;
    return new KVCache(c.numLayers, batch, c.numKvHeads, capacity, c.headDim, model.dtype, model.device);
  }

  update(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const l = k.size(2);
    if (this.length + l > this.capacity) throw new RangeError(`KV cache full: ${this.length} + ${l} positions, capacity ${this.capacity}`);
    const kc = this.keys[layer]!;
    const vc = this.values[layer]!;
    kc.sliceAssign_(2, this.length, k);
    vc.sliceAssign_(2, this.length, v);
    return [kc.narrow(2, 0, this.length + l), vc.narrow(2, 0, this.length + l)];
  }

  advance(n: number): void {
    this.length += n;
  }

  #map(f: (t: Tensor) => Tensor): void {
    const swap = (ts: Tensor[]): Tensor[] => ts.map((t) => {
      const n = keep(tidy(() => f(t)));
      t.dispose();
      return n;
    });
    this.keys = swap(this.keys);
    this.values = swap(this.values);
  }

  /** Each sequence repeated n times in a row (n samples sharing one prompt's prefill). */
  repeatInterleave(n: number): void {
    if (n === 1) return;
    this.#map((t) => t.repeatInterleave(n, 0));
    this.batch *= n;
  }

  /** Keeps the sequences at `index` (int64 [B']), in that order. */
  select(index: Tensor): void {
    this.#map((t) => t.indexSelect(0, index));
    this.batch = index.size(0);
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
    this.keys = [];
    this.values = [];
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
