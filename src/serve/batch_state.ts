// The engine's running batch: one row per sequence, the batch's KV cache (batch_cache.ts: rows joined
// right-aligned on one timeline), the logits each row's next token is drawn from, and the sampled tokens
// the next decode step feeds in. Admitting prefills new prompts together (left-padded) and appends their
// caches; dropping moves the last rows into the places of finished ones; decoding runs one forward pass for
// every row.
import { cat, keep, tidy, type Generator, type Tensor } from '../torch/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { KVCache } from '../generate/kv_cache.js';
import { leftPad } from '../generate/generate.js';
import { BatchCache } from './batch_cache.js';
import { TextStream } from './text_stream.js';
import { longs, sampleRows, type SampledTokens } from './sampler.js';
import type { EngineRequest } from './request.js';

/** Milliseconds the engine's steps spent, by part: sampling and emitting, decoding, prefill, cache layout. */
export interface EngineTimings {
  sample: number;
  decode: number;
  prefill: number;
  layout: number;
}

/** Events of the batch's life: prefills of new requests, compactions of the cache's timeline. */
export interface EngineCounts {
  admissions: number;
  compactions: number;
}

/** One running sequence: a row of the batch. */
export class Row {
  tokens: number[] = [];
  /** Prompt + generated tokens (the last sampled one enters the cache at the next decode step). */
  ctx: number;
  done = false;
  readonly stream: TextStream;
  constructor(readonly req: EngineRequest, readonly seq: number, tokenizer: Tokenizer | undefined) {
    this.ctx = req.prompt.length;
    this.stream = new TextStream(tokenizer, req.stops, req.params.incrementalText !== false, { skipSpecialTokens: req.params.skipSpecialTokens !== false, includeStop: req.params.includeStopStr === true });
  }
  get remaining(): number {
    return this.req.params.maxTokens - this.tokens.length;
  }
  /** A sampled token joins the sequence. */
  push(token: number): void {
    this.tokens.push(token);
    this.ctx++;
  }
}

export class BatchState {
  rows: Row[] = [];
  /** The largest batch seen. */
  peak = 0;
  private cache: BatchCache | null = null;
  /** [B, V]: the logits the next token of each row is drawn from. */
  private logits: Tensor | null = null;
  /** [B] int64: the tokens sampled last, the next decode step's input. */
  private pending: Tensor | null = null;

  constructor(readonly model: CausalLM, readonly maxBatch: number, readonly padId: number, readonly timings: EngineTimings, readonly counts: EngineCounts) {}

  get size(): number {
    return this.rows.length;
  }

  /** Prefills the new requests together and appends their rows to the batch. */
  admit(reqs: EngineRequest[], tokenizer: Tokenizer | undefined): void {
    const model = this.model;
    const device = model.device;
    const plen = Math.max(...reqs.map((r) => r.prompt.length));
    const pre = new KVCache(model.config.numLayers, reqs.length, model.config.numKvHeads, plen, model.config.headDim, model.dtype, device);
    let prefilled: { logits: Tensor; mask: Tensor } | null = null;
    try {
      const t0 = performance.now();
      prefilled = tidy(() => {
        const { inputIds, attentionMask } = leftPad(reqs.map((r) => r.prompt), this.padId, device);
        const h = model.hidden({ inputIds, attentionMask, cache: pre });
        let last = model.logits(h.narrow(1, plen - 1, 1)).squeeze(1);
        let mask = attentionMask;
        if (reqs.some((r) => r.n > 1)) {
          const idx = longs(reqs.flatMap((r, i) => new Array<number>(r.n).fill(i)), device);
          pre.select(idx);
          last = last.indexSelect(0, idx);
          mask = mask.indexSelect(0, idx);
        }
        return { logits: keep(last), mask: keep(mask) };
      });
      const t1 = performance.now();
      this.timings.prefill += t1 - t0;
      const newRows = reqs.flatMap((r) => Array.from({ length: r.n }, (_, s) => new Row(r, s, tokenizer)));
      const rows = [...this.rows, ...newRows];
      // Room: rows (doubling, up to maxBatch) and slots (the timeline after the join, plus every row's
      // remaining tokens; compacted first when that would overflow).
      const maxRemaining = Math.max(...rows.map((r) => r.remaining));
      if (!this.cache) {
        const cap = Math.ceil((plen + maxRemaining) * 1.25);
        this.cache = new BatchCache(model.config.numLayers, model.config.numKvHeads, model.config.headDim, model.dtype, device, Math.min(this.maxBatch, Math.max(rows.length, 4)), cap);
      }
      const cache = this.cache;
      if (Math.max(cache.length, plen) + maxRemaining > cache.capacity) {
        cache.compact();
        this.counts.compactions++;
      }
      const need = Math.max(cache.length, plen) + maxRemaining;
      const rowsNeed = rows.length > cache.rowCapacity ? Math.min(this.maxBatch, Math.max(rows.length, 2 * cache.rowCapacity)) : cache.rowCapacity;
      cache.reserve(rowsNeed, need > cache.capacity ? Math.ceil(need * 1.5) : cache.capacity);
      cache.append(pre, prefilled.mask);
      const logits = this.logits ? keep(tidy(() => cat([this.logits!, prefilled!.logits], 0))) : prefilled.logits;
      if (this.logits) {
        this.logits.dispose();
        prefilled.logits.dispose();
      }
      this.logits = logits;
      prefilled.mask.dispose();
      prefilled = null;
      this.rows = rows;
      this.peak = Math.max(this.peak, rows.length);
      this.timings.layout += performance.now() - t1;
    } finally {
      pre.dispose();
      if (prefilled) {
        prefilled.logits.dispose();
        prefilled.mask.dispose();
      }
    }
  }

  /** Samples one token for every row (sampler.ts); they are the next decode step's input. */
  sample(eos: ReadonlySet<number>, shared: Generator): SampledTokens {
    const out = sampleRows(this.rows, this.logits!, eos, shared, this.model.device);
    this.pending?.dispose();
    this.pending = out.tokens;
    return out;
  }

  /**
   * Drops the finished rows: the last rows move into their places. True when the batch became empty (its
   * tensors are freed then).
   */
  dropFinished(): boolean {
    const rows = this.rows;
    const kept = rows.filter((r) => !r.done).length;
    if (kept === rows.length) return false;
    if (kept === 0) {
      this.reset();
      return true;
    }
    const cache = this.cache!;
    // order[j]: the old row that row j is now.
    const order = rows.map((_, i) => i).slice(0, kept);
    const tails = rows.map((r, i) => (i >= kept && !r.done ? i : -1)).filter((i) => i >= 0);
    for (let j = 0; j < kept; j++) {
      if (!rows[j]!.done) continue;
      const from = tails.shift()!;
      cache.moveRow(from, j);
      order[j] = from;
    }
    cache.batch = kept;
    const idx = keep(longs(order, this.model.device));
    try {
      const t = keep(tidy(() => this.pending!.indexSelect(0, idx)));
      this.pending!.dispose();
      this.pending = t;
    } finally {
      idx.dispose();
    }
    this.rows = order.map((i) => rows[i]!);
    return false;
  }

  /** Compacts the timeline when it is full, or when most of it is slots no running row attends to. */
  compact(): void {
    const cache = this.cache!;
    const longest = Math.max(...this.rows.map((r) => r.ctx - 1));
    const waste = cache.length - longest;
    if (cache.length + 1 > cache.capacity || (waste >= 64 && waste * 2 > cache.length)) {
      cache.compact();
      this.counts.compactions++;
    }
    if (cache.length + 1 > cache.capacity) cache.reserve(cache.rowCapacity, Math.ceil((cache.length + 1) * 1.5));
  }

  /** Runs the sampled tokens of the rows through the model: the logits of their next step. */
  decode(): void {
    const cache = this.cache!;
    const device = this.model.device;
    const logits = keep(tidy(() => {
      // Each row's new token sits at position ctx - 1 (its context counts it already).
      const pos = longs(this.rows.map((r) => r.ctx - 1), device).unsqueeze(1);
      return this.model.forward({ inputIds: this.pending!.unsqueeze(1), attentionMask: cache.stepMask(), positionIds: pos, cache }).squeeze(1);
    }));
    this.logits?.dispose();
    this.logits = logits;
    this.pending!.dispose();
    this.pending = null;
  }

  /** Frees the batch's tensors and forgets its rows. */
  reset(): void {
    this.cache?.dispose();
    this.logits?.dispose();
    this.pending?.dispose();
    this.cache = null;
    this.logits = null;
    this.pending = null;
    this.rows = [];
  }
}
