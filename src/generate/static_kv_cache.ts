// The key/value cache of a static decoding step (decode_step.ts): per layer, keys and values
// [rows, Hkv, capacity, D] allocated once (zeroed) for a batch bucket and the maximum length, and the cache
// position of the next token as an int64 device tensor. A step writes its keys and values with index_copy_
// at that position and attends over the whole capacity (the mask hides what is not written yet), so every
// step runs the same operations on the same tensors: a CUDA graph can replay it. Its position is on the
// device, not the host, so it is a LayerCache only (no host length, no advance): the step passes the masks and
// positions (ForwardInput.attentionBias, positionIds) and advances `index` itself.
import { keep, noGrad, tidy, zeros, type DType, type Tensor } from '../torch/index.js';
import type { CausalLM, LayerCache } from '../models/causal_lm.js';
import type { KVCache } from './kv_cache.js';

export class StaticKVCache implements LayerCache, Disposable {
  readonly keys: Tensor[];
  readonly values: Tensor[];
  /** int64 [1] on the device: the cache index the next token's keys and values go to. */
  readonly index: Tensor;

  constructor(readonly numLayers: number, readonly rows: number, readonly numKvHeads: number, readonly capacity: number, readonly headDim: number, readonly dtype: DType, readonly device: string) {
    // Zeros, not empty: positions not written yet are multiplied by a zero probability, and 0 * NaN is NaN.
    const shape = [rows, numKvHeads, capacity, headDim];
    this.keys = Array.from({ length: numLayers }, () => keep(zeros(shape, { dtype, device })));
    this.values = Array.from({ length: numLayers }, () => keep(zeros(shape, { dtype, device })));
    this.index = keep(zeros([1], { dtype: 'int64', device }));
  }

  static forModel(model: CausalLM, rows: number, capacity: number): StaticKVCache {
    const c = model.config;
    return new StaticKVCache(c.numLayers, rows, c.numKvHeads, capacity, c.headDim, model.dtype, model.device);
  }

  /** Writes one position (k, v [rows, Hkv, 1, D]) at `index`; returns the whole cache of the layer. */
  update(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const kc = this.keys[layer]!;
    const vc = this.values[layer]!;
    kc.indexCopy_(2, this.index, k);
    vc.indexCopy_(2, this.index, v);
    return [kc, vc];
  }

  /**
   * Takes over a prefilled cache (op-by-op KVCache of `rows` sequences): its first `length` positions are
   * copied in, the rest zeroed, and `index` set to `length`. In place: the tensors a graph captured stay.
   */
  load(prefill: KVCache): void {
    const len = prefill.length;
    if (prefill.batch !== this.rows) throw new RangeError(`StaticKVCache.load: ${prefill.batch} sequences, the cache holds ${this.rows}`);
    if (len >= this.capacity) throw new RangeError(`StaticKVCache.load: ${len} prefilled positions, capacity ${this.capacity}`);
    noGrad(() => tidy(() => {
      for (const [dst, src] of [[this.keys, prefill.keys], [this.values, prefill.values]] as const) {
        dst.forEach((t, l) => {
          t.sliceAssign_(2, 0, src[l]!.narrow(2, 0, len));
          t.narrow(2, len, this.capacity - len).zero_();
        });
      }
      this.index.fill_(len);
    }));
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values, this.index]) t.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
