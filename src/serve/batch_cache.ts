// The KV cache of a running batch whose sequences come and go (continuous batching). Keys and values of
// every layer live in buffers [rowCapacity, Hkv, capacity, D] with room to spare, so that a sequence that
// joins is written into its own row (no copy of the others) and one that leaves is replaced by the last
// row (one row copied). Positions are slots on a shared timeline: each forward pass writes slot `length`
// of every running row. Which slots a row attends to is its row of `mask` [rowCapacity, capacity]
// (1: a token of the row, or a slot ahead of `length`; 0: padding, or slots from before it joined).
// Rotary positions are given per row by the caller and baked into the keys, so a row's tokens need not
// sit at any particular slot: when the timeline is full, compact() gathers every row's tokens to the
// left (in order) and frees the rest.
import { keep, tidy, zeros, type DType, type Tensor } from '../torch/index.js';
import type { AttentionCache } from '../models/causal_lm.js';
import type { KVCache } from '../generate/kv_cache.js';

export class BatchCache implements AttentionCache {
  keys: Tensor[] = [];
  values: Tensor[] = [];
  /** [rowCapacity, capacity] int64. */
  mask: Tensor;
  /** Running rows (the first `batch` rows of the buffers). */
  batch = 0;
  /** Slots of the timeline written so far. */
  length = 0;
  rowCapacity: number;
  capacity: number;

  constructor(readonly numLayers: number, readonly numKvHeads: number, readonly headDim: number, readonly dtype: DType, readonly device: string, rowCapacity: number, capacity: number) {
    this.rowCapacity = rowCapacity;
    this.capacity = capacity;
    this.mask = keep(zeros([rowCapacity, capacity], { dtype: 'int64', device }));
    this.alloc();
  }

  private alloc(): void {
    // Zeros, never uninitialized memory: masked slots must not hold NaN (0 x NaN is NaN in attention).
    const shape = [this.rowCapacity, this.numKvHeads, this.capacity, this.headDim];
    this.keys = Array.from({ length: this.numLayers }, () => keep(zeros(shape, { dtype: this.dtype, device: this.device })));
    this.values = Array.from({ length: this.numLayers }, () => keep(zeros(shape, { dtype: this.dtype, device: this.device })));
  }

  update(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const l = k.size(2);
    if (this.length + l > this.capacity) throw new RangeError(`batch cache full: ${this.length} + ${l} slots, capacity ${this.capacity}`);
    const kc = this.keys[layer]!.narrow(0, 0, this.batch);
    const vc = this.values[layer]!.narrow(0, 0, this.batch);
    kc.sliceAssign_(2, this.length, k);
    vc.sliceAssign_(2, this.length, v);
    return [kc.narrow(2, 0, this.length + l), vc.narrow(2, 0, this.length + l)];
  }

  advance(n: number): void {
    this.length += n;
  }

  /** The attention mask of the next pass over one new slot: [batch, length + 1]. */
  stepMask(): Tensor {
    return this.mask.narrow(0, 0, this.batch).narrow(1, 0, this.length + 1);
  }

  /** Grows the buffers (copying the running rows' filled slots) to hold `rows` rows and `capacity` slots. */
  reserve(rows: number, capacity: number): void {
    if (rows <= this.rowCapacity && capacity <= this.capacity) return;
    const oldK = this.keys;
    const oldV = this.values;
    const oldMask = this.mask;
    this.rowCapacity = Math.max(rows, this.rowCapacity);
    this.capacity = Math.max(capacity, this.capacity);
    this.alloc();
    this.mask = keep(zeros([this.rowCapacity, this.capacity], { dtype: 'int64', device: this.device }));
    tidy(() => {
      const b = this.batch;
      const l = this.length;
      if (b > 0) {
        for (let i = 0; i < this.numLayers; i++) {
          if (l > 0) {
            this.keys[i]!.narrow(0, 0, b).sliceAssign_(2, 0, oldK[i]!.narrow(0, 0, b).narrow(2, 0, l));
            this.values[i]!.narrow(0, 0, b).sliceAssign_(2, 0, oldV[i]!.narrow(0, 0, b).narrow(2, 0, l));
          }
        }
        const m = this.mask.narrow(0, 0, b);
        if (l > 0) m.sliceAssign_(1, 0, oldMask.narrow(0, 0, b).narrow(1, 0, l));
        m.narrow(1, l, this.capacity - l).fill_(1);
      }
    });
    for (const t of [...oldK, ...oldV, oldMask]) t.dispose();
  }

  /**
   * Appends the rows of a prefilled cache (left-padded prompts, `promptMask` [b, P] its attention mask)
   * after the running rows. Their tokens end at slot `length` (when the prompts are longer than the
   * timeline so far, the timeline first moves ahead: the running rows do not attend to the slots skipped).
   * Room must have been reserved.
   */
  append(pre: KVCache, promptMask: Tensor): void {
    const b = pre.batch;
    const p = pre.length;
    if (this.batch + b > this.rowCapacity) throw new RangeError('batch cache: no room for the new rows');
    tidy(() => {
      if (p > this.length) {
        if (this.batch > 0) this.mask.narrow(0, 0, this.batch).narrow(1, this.length, p - this.length).zero_();
        this.length = p;
      }
      if (this.length > this.capacity) throw new RangeError('batch cache: no room for the new slots');
      const start = this.length - p;
      for (let i = 0; i < this.numLayers; i++) {
        this.keys[i]!.narrow(0, this.batch, b).sliceAssign_(2, start, pre.keys[i]!.narrow(2, 0, p));
        this.values[i]!.narrow(0, this.batch, b).sliceAssign_(2, start, pre.values[i]!.narrow(2, 0, p));
      }
      const m = this.mask.narrow(0, this.batch, b);
      m.zero_();
      m.sliceAssign_(1, start, promptMask.narrow(1, 0, p));
      m.narrow(1, this.length, this.capacity - this.length).fill_(1);
    });
    this.batch += b;
  }

  /** Copies row `from` onto row `to` (filled slots and mask). */
  moveRow(from: number, to: number): void {
    tidy(() => {
      const l = this.length;
      for (const bufs of [this.keys, this.values]) {
        for (const t of bufs) if (l > 0) t.narrow(0, to, 1).sliceAssign_(2, 0, t.narrow(0, from, 1).narrow(2, 0, l));
      }
      this.mask.narrow(0, to, 1).copy_(this.mask.narrow(0, from, 1));
    });
  }

  /**
   * Gathers every running row's attended slots (in order, right-aligned) into the first slots of the
   * timeline: afterwards `length` is the longest row's token count and the freed slots are ahead.
   */
  compact(): void {
    const b = this.batch;
    const l = this.length;
    if (b === 0) {
      this.length = 0;
      return;
    }
    tidy(() => {
      const m = this.mask.narrow(0, 0, b).narrow(1, 0, l);
      // A stable ascending sort puts each row's padding first and its tokens last, in order.
      const [sorted, idx] = m.sort(1, false, true);
      const keepN = Math.max(1, (m.sum(1).max().item() as number));
      const cols = idx.narrow(1, l - keepN, keepN);
      const [hkv, d] = [this.numKvHeads, this.headDim];
      const index = cols.view(b, 1, keepN, 1).expand(b, hkv, keepN, d);
      for (const bufs of [this.keys, this.values]) {
        for (const t of bufs) {
          const rows = t.narrow(0, 0, b);
          const gathered = rows.narrow(2, 0, l).gather(2, index);
          rows.sliceAssign_(2, 0, gathered);
        }
      }
      const newMask = this.mask.narrow(0, 0, b);
      newMask.sliceAssign_(1, 0, sorted.narrow(1, l - keepN, keepN));
      newMask.narrow(1, keepN, this.capacity - keepN).fill_(1);
      this.length = keepN;
    });
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values, this.mask]) t.dispose();
    this.keys = [];
    this.values = [];
  }
}
