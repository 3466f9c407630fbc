// The serving engine: continuous batching over one model and one KV cache.
//
// Requests wait in a queue; between decode steps, queued requests join the running batch (their prompts
// are prefilled together, left-padded, and their caches appended to the batch's, right-aligned) and
// finished or cancelled sequences leave it (their cache rows dropped). Every step samples one token for
// each running sequence, hands it (with its untempered log-prob, top alternatives when asked, and the new
// text) to the sequence's request, and runs one forward pass for all sequences still running. The engine
// yields to the event loop between steps (setImmediate), so that HTTP I/O, new requests and disconnects
// are handled while it decodes.
//
// Sampling is src/generate's (`sampleNext`: temperature, top-k, top-p). Sequences that share sampling
// options and have no seed are sampled together from the engine's generator; a request with a seed has a
// generator of its own that draws only for its own sequences, so that its output depends on its prompt,
// options and seed, and not on which other requests share the batch (up to the rounding of batched
// matrix products, which can differ with the batch's size).
import { cat, Generator, keep, noGrad, tensor, tidy, type Tensor } from '../torch/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { StopStrings } from '../text/stop_strings.js';
import { KVCache } from '../generate/kv_cache.js';
import { BatchCache } from './batch_cache.js';
import { leftPad } from '../generate/generate.js';
import { isGreedy, sampleNext, sampleStep, tokenMask } from '../generate/sampling.js';

export interface SequenceParams {
  /** New tokens at most (the final EOS / stop token included). */
  maxTokens: number;
  /** EOS and stop tokens are forbidden before this many new tokens. Default 0. */
  minTokens?: number;
  /** 0 = greedy. */
  temperature: number;
  /** 1 = off. */
  topP: number;
  /** 0 = off. */
  topK: number;
  /** The request's own sampling generator (default: the engine's shared one). */
  seed?: number;
  /** Texts that end a sequence (finish 'stop'); the text is cut before them. */
  stop?: string[];
  /** Further tokens that end a sequence (finish 'stop'). */
  stopTokenIds?: number[];
  /** Go on after EOS (default false). */
  ignoreEos?: boolean;
  /** Top alternatives (log-probs) to return with each token; 0 = none. */
  topLogprobs?: number;
  /** Text with every token (streaming; default true). When false, and without stop strings, the text is
   * decoded once, at the end (TokenOutput.text is then empty until the last token). */
  incrementalText?: boolean;
}

export interface TokenOutput {
  /** Which of the request's n sequences. */
  seq: number;
  token: number;
  /** log p(token) under the untempered policy. */
  logprob: number;
  /** The most likely tokens and their log-probs, when asked for. */
  top: [number, number][] | null;
  /** Text that became final with this token (possibly empty: incomplete characters, or text held back
   * while it could be the start of a stop string; on the last token, all the rest). */
  text: string;
  /** Set on a sequence's last token: why it ended (onFinish follows). */
  finish: FinishReason | null;
  /** The stop string or stop token that ended it (null for EOS and length). */
  stopReason: string | number | null;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface SequenceEnd {
  seq: number;
  reason: FinishReason;
  stopReason: string | number | null;
  /** The sequence's whole output (tokens, the final EOS / stop token included; text, cut before a stop string). */
  tokens: number[];
  text: string;
}

export interface RequestListener {
  /** A new token of one of the request's sequences. */
  onToken(out: TokenOutput): void;
  /** A sequence ended: after its last token, or without one when the request was cancelled ('abort'). */
  onFinish(end: SequenceEnd): void;
  /** The engine failed while running the request (its sequences are gone). */
  onError(err: Error): void;
}

export class QueueFullError extends Error {
  override name = 'QueueFullError';
}
export class EngineClosedError extends Error {
  override name = 'EngineClosedError';
}

export interface EngineOptions {
  tokenizer?: Tokenizer;
  /** Sequences decoding together at most (default 64). */
  maxBatch?: number;
  /** Requests waiting at most (beyond it, submit throws QueueFullError; default 256). */
  maxQueue?: number;
  /** Prompt tokens prefilled between two decode steps at most (at least one request is; default 4096). */
  maxPrefillTokens?: number;
  /** Prompt + new tokens at most (default: the model's max positions). */
  maxModelLen?: number;
  /** Seed of the shared generator (default random). */
  seed?: number;
  /** While sequences are decoding, a lone new request waits up to this many steps for others to be
   * prefilled with it (prefills of one short prompt cost about a decode step each). Default 3; 0 = never. */
  admitWaitSteps?: number;
  /** An idle engine that receives a request, and a running one after sequences ended, waits this many
   * milliseconds, then on until no request has arrived for as long (4 times as long in all at most, or
   * until the batch would be full), before its next step: requests that arrive together (clients
   * answered in the same step send their next ones together) are then prefilled in one pass and join
   * at once, instead of one by one a few steps later. Default 2; 0 = never wait. */
  gatherMs?: number;
  /** EOS ids (default: the tokenizer's, else the model config's). */
  eosTokenIds?: number[];
  padTokenId?: number;
}

/** A request in the engine: cancel() ends its sequences (finish 'abort') at the next step. */
export class EngineRequest {
  cancelled = false;
  admitted = false;
  /** The engine's step count when it was queued. */
  queuedAt = 0;
  /** Sequences not finished yet. */
  live: number;
  readonly generator: Generator | undefined;
  readonly stops: StopStrings;
  constructor(readonly id: number, readonly prompt: number[], readonly n: number, readonly params: SequenceParams, readonly listener: RequestListener, private readonly engine: Engine, device: string) {
    this.live = n;
    this.stops = new StopStrings(params.stop);
    this.generator = params.seed !== undefined && !isGreedy(params) ? new Generator(params.seed, device) : undefined;
  }
  cancel(): void {
    this.engine.cancel(this);
  }
}

/** One running sequence: a row of the batch. */
class Row {
  tokens: number[] = [];
  /** Prompt + generated tokens (the last sampled one enters the cache at the next decode step). */
  ctx: number;
  done = false;
  // Incremental detokenization (as vLLM): decode(tokens[prefix:]) minus decode(tokens[prefix:read]).
  prefix = 0;
  read = 0;
  text = '';
  sent = 0;
  constructor(readonly req: EngineRequest, readonly seq: number) {
    this.ctx = req.prompt.length;
  }
  get remaining(): number {
    return this.req.params.maxTokens - this.tokens.length;
  }
}

const longs = (xs: readonly number[], device: string): Tensor => tensor(BigInt64Array.from(xs, (x) => BigInt(x)), { device });

export class Engine {
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly maxPrefillTokens: number;
  readonly maxModelLen: number;
  readonly eos: Set<number>;
  readonly padId: number;
  private readonly queue: EngineRequest[] = [];
  private rows: Row[] = [];
  private cache: BatchCache | null = null;
  /** [B, V]: the logits the next token of each row is drawn from. */
  private logits: Tensor | null = null;
  private readonly shared: Generator;
  private nextId = 1;
  private running = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** performance.now() of the last submit. */
  private lastSubmit = 0;
  /** Sequences ended so far (finished or cancelled). */
  private ended = 0;
  /** The last pause gathered requests: admit what is queued without waiting (admitWaitSteps). */
  private gathered = false;
  /** Decode steps and tokens so far (for tests and logs). */
  steps = 0;
  tokensOut = 0;
  /** The largest batch seen (tests of batching). */
  peakBatch = 0;
  /** Milliseconds spent in steps (prefill, sampling, decoding), and requests cancelled. */
  busyMs = 0;
  aborted = 0;
  /** Where the steps' time went (milliseconds): sampling and emitting, decoding, prefill, cache layout. */
  readonly timings = { sample: 0, decode: 0, prefill: 0, layout: 0, admissions: 0, compactions: 0 };

  constructor(readonly model: CausalLM, readonly opts: EngineOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 64;
    this.maxQueue = opts.maxQueue ?? 256;
    this.maxPrefillTokens = opts.maxPrefillTokens ?? 4096;
    this.maxModelLen = opts.maxModelLen ?? model.config.maxPositions;
    const tok = opts.tokenizer;
    this.eos = new Set(opts.eosTokenIds ?? (tok ? [...tok.eosTokenIds] : model.config.eosTokenIds));
    this.padId = opts.padTokenId ?? tok?.padTokenId ?? model.config.padTokenId ?? 0;
    this.shared = new Generator(opts.seed ?? Math.floor(Math.random() * 2 ** 31), model.device);
  }

  get vocabSize(): number {
    return this.model.config.vocabSize;
  }
  /** Sequences decoding now. */
  get batchSize(): number {
    return this.rows.length;
  }
  /** Requests waiting to join the batch. */
  get queued(): number {
    return this.queue.length;
  }
  get idle(): boolean {
    return this.rows.length === 0 && this.queue.length === 0;
  }

  /**
   * Queues a request for n sequences continuing `prompt`. Throws QueueFullError when the queue is full,
   * EngineClosedError after close(), RangeError for a request the engine cannot run.
   */
  submit(prompt: number[], n: number, params: SequenceParams, listener: RequestListener): EngineRequest {
    if (this.closed) throw new EngineClosedError('the engine is shutting down');
    if (this.queue.length >= this.maxQueue) throw new QueueFullError(`the queue is full (${this.maxQueue} requests waiting)`);
    if (prompt.length === 0) throw new RangeError('the prompt is empty');
    if (!Number.isInteger(n) || n < 1 || n > this.maxBatch) throw new RangeError(`n must be in [1, ${this.maxBatch}]`);
    if (!(params.maxTokens >= 1)) throw new RangeError('maxTokens must be at least 1');
    if (prompt.length + params.maxTokens > this.maxModelLen) {
      throw new RangeError(`prompt (${prompt.length} tokens) + max tokens (${params.maxTokens}) exceed the model's context length (${this.maxModelLen})`);
    }
    for (const t of prompt) if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) throw new RangeError(`token id ${t} is out of the vocabulary [0, ${this.vocabSize})`);
    const req = new EngineRequest(this.nextId++, prompt, n, params, listener, this, this.model.device);
    req.queuedAt = this.steps;
    this.queue.push(req);
    this.lastSubmit = performance.now();
    this.kick();
    return req;
  }

  /** Ends a request's sequences: at once when it is still queued, else at the next step. */
  cancel(req: EngineRequest): void {
    if (req.cancelled || req.live === 0) return;
    req.cancelled = true;
    this.aborted++;
    const i = this.queue.indexOf(req);
    if (i >= 0) {
      this.queue.splice(i, 1);
      for (let s = 0; s < req.n; s++) this.finishSeq(req, { seq: s, reason: 'abort', stopReason: null, tokens: [], text: '' });
      this.wakeIdle();
    } else {
      this.kick();
    }
  }

  /** Refuses new requests from now on; resolves when every request in flight is done. */
  async close(): Promise<void> {
    this.closed = true;
    await this.whenIdle();
  }

  /** Resolves when nothing is queued or running. */
  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Cancels everything (queued and running). */
  abortAll(): void {
    for (const r of [...this.queue]) this.cancel(r);
    for (const row of this.rows) this.cancel(row.req);
  }

  /** Frees the batch's tensors (the model stays the caller's). */
  dispose(): void {
    this.abortAll();
    this.resetBatch();
  }

  private wakeIdle(): void {
    if (!this.idle) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    const gather = this.opts.gatherMs ?? 2;
    if (this.rows.length === 0 && gather > 0) {
      void this.pause(gather).then(() => {
        this.gathered = true;
        return this.loop();
      });
    } else {
      setImmediate(() => void this.loop());
    }
  }

  /**
   * Waits gatherMs, then on while requests keep arriving (until none has for gatherMs, 4 x gatherMs in
   * all at most, or a full batch is queued): the idle engine's wait for the rest of a burst, and the
   * running engine's after sequences ended, for their clients' next requests (sent as soon as the answers
   * arrive), so that they are prefilled together and join at once instead of a few steps later.
   */
  private pause(ms: number): Promise<void> {
    const from = performance.now();
    return new Promise((resolve) => {
      const check = (): void => {
        const now = performance.now();
        const quietFor = now - this.lastSubmit;
        const queuedRows = this.queue.reduce((a, r) => a + r.n, 0);
        if (quietFor < ms && now - from < 4 * ms && this.rows.length + queuedRows < this.maxBatch) setTimeout(check, Math.max(1, ms - quietFor));
        else resolve();
      };
      setTimeout(check, ms);
    });
  }

  private async loop(): Promise<void> {
    try {
      while (!this.idle) {
        const ended = this.ended;
        this.step();
        const gather = this.opts.gatherMs ?? 2;
        if (this.ended > ended && gather > 0 && !this.idle) {
          await this.pause(gather);
          this.gathered = true;
        } else {
          await new Promise((r) => setImmediate(r));
        }
      }
    } finally {
      this.running = false;
      this.wakeIdle();
    }
  }

  /** One iteration: sample for the running rows, drop finished ones, decode one step, admit new requests. */
  step(): void {
    const t0 = performance.now();
    try {
      this.stepInner();
    } finally {
      this.busyMs += performance.now() - t0;
    }
  }

  private stepInner(): void {
    let admitting: EngineRequest[] = [];
    try {
      noGrad(() => {
        const t = this.timings;
        if (this.rows.length > 0) {
          let t0 = performance.now();
          this.sampleAndEmit();
          let t1 = performance.now();
          t.sample += t1 - t0;
          this.dropFinished();
          t0 = performance.now();
          t.layout += t0 - t1;
          if (this.rows.length > 0) {
            this.compact();
            t1 = performance.now();
            t.layout += t1 - t0;
            this.decode();
            t.decode += performance.now() - t1;
          }
        }
        admitting = this.takeAdmissible();
        if (admitting.length) {
          t.admissions++;
          this.admit(admitting);
        }
      });
    } catch (err) {
      // A failure of the model (out of memory, ...) ends the requests it touched, never the server.
      const e = err instanceof Error ? err : new Error(String(err));
      const reqs = new Set<EngineRequest>([...this.rows.map((r) => r.req), ...admitting]);
      this.resetBatch();
      for (const r of reqs) {
        if (r.live === 0) continue;
        r.live = 0;
        r.cancelled = true;
        try {
          r.listener.onError(e);
        } catch {
          // a listener's failure must not stop the engine
        }
      }
    }
  }

  private resetBatch(): void {
    this.cache?.dispose();
    this.logits?.dispose();
    this.pendingTokens?.dispose();
    this.cache = null;
    this.logits = null;
    this.pendingTokens = null;
    this.rows = [];
  }

  private takeAdmissible(): EngineRequest[] {
    const out: EngineRequest[] = [];
    if (this.queue.length === 0) return out;
    // With a batch decoding, new requests are gathered for a few steps (one prefill for several), unless
    // enough are waiting to fill a quarter of the batch (or the batch), or the oldest has waited long enough.
    const wait = this.opts.admitWaitSteps ?? 3;
    const gathered = this.gathered;
    this.gathered = false;
    if (this.rows.length > 0 && wait > 0 && !gathered) {
      const queuedRows = this.queue.reduce((a, r) => a + r.n, 0);
      const enough = queuedRows >= Math.max(2, this.rows.length / 4) || this.rows.length + queuedRows >= this.maxBatch;
      if (!enough && this.steps - this.queue[0]!.queuedAt < wait) return out;
    }
    let rows = this.rows.length;
    let tokens = 0;
    while (this.queue.length) {
      const r = this.queue[0]!;
      if (rows + r.n > this.maxBatch) break;
      if (out.length > 0 && tokens + r.prompt.length > this.maxPrefillTokens) break;
      this.queue.shift();
      out.push(r);
      rows += r.n;
      tokens += r.prompt.length;
    }
    return out;
  }

  /** Prefills the new requests together and appends their rows to the batch. */
  private admit(reqs: EngineRequest[]): void {
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
      const newRows = reqs.flatMap((r) => Array.from({ length: r.n }, (_, s) => new Row(r, s)));
      for (const r of reqs) r.admitted = true;
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
        this.timings.compactions++;
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
      this.peakBatch = Math.max(this.peakBatch, rows.length);
      this.timings.layout += performance.now() - t1;
    } finally {
      pre.dispose();
      if (prefilled) {
        prefilled.logits.dispose();
        prefilled.mask.dispose();
      }
    }
  }

  /** Samples one token for every row from this.logits, and hands the results to the requests. */
  private sampleAndEmit(): void {
    const rows = this.rows;
    const device = this.model.device;
    const logits = this.logits!;
    const out = tidy(() => {
      // EOS and stop tokens forbidden for rows under their min_tokens.
      const banRows = rows.map((r, i) => (r.tokens.length < (r.req.params.minTokens ?? 0) && !r.done ? i : -1)).filter((i) => i >= 0);
      let ban: Tensor | null = null;
      if (banRows.length) {
        const ids = [...new Set(banRows.flatMap((i) => [...(rows[i]!.req.params.ignoreEos ? [] : this.eos), ...(rows[i]!.req.params.stopTokenIds ?? [])]))];
        if (ids.length) {
          const banned = new Array<boolean>(rows.length).fill(false);
          for (const i of banRows) banned[i] = true;
          ban = tensor(banned, { dtype: 'bool', device }).unsqueeze(1).logicalAnd(tokenMask(ids, logits.size(-1), device));
        }
      }
      // Groups of rows sampled together: a seeded request's rows; else rows with equal options.
      const groups = new Map<string | EngineRequest, number[]>();
      rows.forEach((r, i) => {
        const p = r.req.params;
        const key = r.req.generator ? r.req : isGreedy(p) ? 'greedy' : `${p.temperature}/${p.topP}/${p.topK}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = []));
        g.push(i);
      });
      // A seeded request's rows draw in the order of their samples (rows move when others leave).
      for (const [key, idx] of groups) if (typeof key !== 'string') idx.sort((a, b) => rows[a]!.seq - rows[b]!.seq);
      const inOrder = [...groups.values()].every((idx) => idx.every((v, j) => j === 0 || v > idx[j - 1]!));
      const draw = (scores: Tensor): Tensor => {
        if (groups.size === 1 && inOrder) {
          const p = rows[0]!.req.params;
          return sampleNext(scores, p, rows[0]!.req.generator ?? this.shared);
        }
        const order: number[] = [];
        const parts: Tensor[] = [];
        for (const idx of groups.values()) {
          const r0 = rows[idx[0]!]!;
          parts.push(sampleNext(scores.indexSelect(0, longs(idx, device)), r0.req.params, r0.req.generator ?? this.shared));
          order.push(...idx);
        }
        const inverse = new Array<number>(order.length);
        order.forEach((row, j) => (inverse[row] = j));
        return cat(parts, 0).indexSelect(0, longs(inverse, device));
      };
      const { token: tokens, logprob: lp, logp } = sampleStep({ logits, ban, draw });
      const k = Math.max(0, ...rows.map((r) => r.req.params.topLogprobs ?? 0));
      const top = k > 0 ? logp.topk(Math.min(k, logp.size(1)), -1) : null;
      return {
        tokens: keep(tokens),
        ids: Array.from(tokens.toTypedArray() as BigInt64Array, Number),
        lps: Array.from(lp.toTypedArray() as Float32Array),
        topVals: top ? (top[0].toTypedArray() as Float32Array) : null,
        topIds: top ? (top[1].toTypedArray() as BigInt64Array) : null,
        k: top ? top[0].size(1) : 0,
      };
    });
    this.pendingTokens?.dispose();
    this.pendingTokens = out.tokens;
    this.steps++;
    rows.forEach((row, i) => {
      const req = row.req;
      if (row.done) return;
      if (req.cancelled) {
        this.endRow(row);
        return;
      }
      const id = out.ids[i]!;
      row.tokens.push(id);
      row.ctx++;
      this.tokensOut++;
      const p = req.params;
      let top: [number, number][] | null = null;
      const want = p.topLogprobs ?? 0;
      if (want > 0 && out.topIds && out.topVals) {
        top = [];
        for (let j = 0; j < Math.min(want, out.k); j++) top.push([Number(out.topIds[i * out.k + j]!), out.topVals[i * out.k + j]!]);
      }
      // The text: incremental detokenization, stop strings, the held-back tail.
      let stopped: string | null = null;
      const tok = this.opts.tokenizer;
      if (tok && (p.incrementalText !== false || !req.stops.empty)) {
        row.text += this.textDelta(row);
        const m = req.stops.empty ? null : req.stops.find(row.text, req.stops.searchFrom(row.sent));
        if (m) {
          stopped = m.stop;
          row.text = row.text.slice(0, m.at);
        }
      }
      const eos = !p.ignoreEos && this.eos.has(id);
      const stopToken = (p.stopTokenIds ?? []).includes(id);
      const finish: FinishReason | null = stopped !== null || eos || stopToken ? 'stop' : row.tokens.length >= p.maxTokens ? 'length' : null;
      const stopReason = stopped ?? (stopToken ? id : null);
      let text: string;
      if (finish) {
        text = this.release(row, stopped !== null);
      } else {
        const upTo = Math.max(row.sent, row.text.length - req.stops.holdBack);
        text = row.text.slice(row.sent, upTo);
        row.sent = upTo;
      }
      this.safe(req, () => req.listener.onToken({ seq: row.seq, token: id, logprob: out.lps[i]!, top, text, finish, stopReason }));
      if (finish) {
        row.done = true;
        this.finishSeq(req, { seq: row.seq, reason: finish, stopReason, tokens: row.tokens, text: row.text });
      }
    });
  }

  private pendingTokens: Tensor | null = null;

  /** New final text of a row after its last token (vLLM's incremental detokenization). */
  private textDelta(row: Row): string {
    const tok = this.opts.tokenizer!;
    const opts = { skipSpecialTokens: true };
    const prefixText = row.read > row.prefix ? tok.decode(row.tokens.slice(row.prefix, row.read), opts) : '';
    const newText = tok.decode(row.tokens.slice(row.prefix), opts);
    if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
      row.prefix = row.read;
      row.read = row.tokens.length;
      return newText.slice(prefixText.length);
    }
    return '';
  }

  /** The text still held back when a row ends (after a stop string: none beyond the cut). */
  private release(row: Row, cut: boolean): string {
    const tok = this.opts.tokenizer;
    if (!tok) return '';
    // Characters the incremental decoding kept back (an incomplete last character) come out now.
    if (!cut) {
      const full = tok.decode(row.tokens, { skipSpecialTokens: true });
      if (full.startsWith(row.text)) row.text = full;
    }
    const rest = row.text.slice(row.sent);
    row.sent = row.text.length;
    return rest;
  }

  /** Ends a row without a token (its request was cancelled). */
  private endRow(row: Row): void {
    row.done = true;
    this.finishSeq(row.req, { seq: row.seq, reason: 'abort', stopReason: null, tokens: row.tokens, text: row.text });
  }

  private finishSeq(req: EngineRequest, end: SequenceEnd): void {
    if (req.live <= 0) return;
    req.live--;
    this.ended++;
    this.safe(req, () => req.listener.onFinish(end));
  }

  /** Runs a listener callback; one that throws cancels its own request only. */
  private safe(req: EngineRequest, f: () => void): void {
    try {
      f();
    } catch {
      req.cancelled = true;
    }
  }

  /** Drops finished rows (and rows of cancelled requests) from the batch: the last rows move into their places. */
  private dropFinished(): void {
    for (const row of this.rows) if (!row.done && row.req.cancelled) this.endRow(row);
    const rows = this.rows;
    const kept = rows.filter((r) => !r.done).length;
    if (kept === rows.length) return;
    if (kept === 0) {
      this.resetBatch();
      this.wakeIdle();
      return;
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
      const t = keep(tidy(() => this.pendingTokens!.indexSelect(0, idx)));
      this.pendingTokens!.dispose();
      this.pendingTokens = t;
    } finally {
      idx.dispose();
    }
    this.rows = order.map((i) => rows[i]!);
  }

  /** Compacts the timeline when it is full, or when most of it is slots no running row attends to. */
  private compact(): void {
    const cache = this.cache!;
    const longest = Math.max(...this.rows.map((r) => r.ctx - 1));
    const waste = cache.length - longest;
    if (cache.length + 1 > cache.capacity || (waste >= 64 && waste * 2 > cache.length)) {
      cache.compact();
      this.timings.compactions++;
    }
    if (cache.length + 1 > cache.capacity) cache.reserve(cache.rowCapacity, Math.ceil((cache.length + 1) * 1.5));
  }

  /** Runs the sampled tokens of the running rows through the model: the logits of their next step. */
  private decode(): void {
    const cache = this.cache!;
    const device = this.model.device;
    const logits = keep(tidy(() => {
      // Each row's new token sits at position ctx - 1 (its context counts it already).
      const pos = longs(this.rows.map((r) => r.ctx - 1), device).unsqueeze(1);
      return this.model.forward({ inputIds: this.pendingTokens!.unsqueeze(1), attentionMask: cache.stepMask(), positionIds: pos, cache }).squeeze(1);
    }));
    this.logits?.dispose();
    this.logits = logits;
    this.pendingTokens!.dispose();
    this.pendingTokens = null;
  }
}
