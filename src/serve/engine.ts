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
// The parts, one file each: request.ts (what a request asks for and is told), scheduler.ts (the queue and
// admission), batch_state.ts (the running rows, their cache and logits), sampler.ts (the next tokens, with
// src/generate's sampleStep), text_stream.ts (detokenization and stop strings). This file runs the steps
// and tells the requests.
import { Generator, noGrad } from '../torch/index.js';
import { checkPenalties } from '../generate/sampling.js';
import type { CausalLM } from '../models/causal_lm.js';
import { positionLimit } from '../models/config.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { BatchState, type EngineCounts, type EngineTimings, type Row } from './batch_state.js';
import { Scheduler } from './scheduler.js';
import { topOf, type SampledTokens } from './sampler.js';
import { contextOverflow, EngineClosedError, EngineRequest, QueueFullError, type ApiFinishReason, type RequestListener, type SequenceEnd, type SequenceParams } from './request.js';

export * from './request.js';
export type { EngineCounts, EngineTimings } from './batch_state.js';

export interface EngineOptions {
  tokenizer?: Tokenizer;
  /** Sequences decoding together at most (default 64). */
  maxBatch?: number;
  /** Requests waiting at most beyond those that fit the batch's free rows (beyond it, submit throws
   * QueueFullError; default 256; at least 1). Requests that join the batch at its next admission (held
   * only by the gather window) are not counted. */
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


export class Engine {
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly maxPrefillTokens: number;
  readonly maxModelLen: number;
  readonly eos: Set<number>;
  readonly padId: number;
  /** Milliseconds spent in the steps' parts: sampling and emitting, decoding, prefill, cache layout. */
  readonly timings: EngineTimings = { sample: 0, decode: 0, prefill: 0, layout: 0 };
  /** Prefills of new requests (admissions) and compactions of the cache's timeline. */
  readonly counts: EngineCounts = { admissions: 0, compactions: 0 };
  /** Decode steps and tokens so far (for tests and logs). */
  steps = 0;
  tokensOut = 0;
  /** Milliseconds spent in steps (prefill, sampling, decoding), and requests cancelled. */
  busyMs = 0;
  aborted = 0;
  private readonly scheduler: Scheduler;
  private readonly batch: BatchState;
  private readonly shared: Generator;
  private nextId = 1;
  private running = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Sequences ended so far (finished or cancelled). */
  private ended = 0;

  constructor(readonly model: CausalLM, readonly opts: EngineOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 64;
    this.maxQueue = opts.maxQueue ?? 256;
    if (!Number.isInteger(this.maxQueue) || this.maxQueue < 1) throw new RangeError(`maxQueue must be an integer of at least 1 (requests waiting beyond the batch's free rows), got ${this.maxQueue}`);
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new RangeError(`maxBatch must be an integer of at least 1, got ${this.maxBatch}`);
    this.maxPrefillTokens = opts.maxPrefillTokens ?? 4096;
    this.maxModelLen = opts.maxModelLen ?? model.config.maxPositions;
    const over = positionLimit(model.config, this.maxModelLen);
    if (over?.learned) throw new RangeError(`maxModelLen ${this.maxModelLen}: ${over.message}`);
    const tok = opts.tokenizer;
    this.eos = new Set(opts.eosTokenIds ?? (tok ? [...tok.eosTokenIds] : model.config.eosTokenIds));
    this.padId = opts.padTokenId ?? tok?.padTokenId ?? model.config.padTokenId ?? 0;
    this.shared = new Generator(opts.seed ?? Math.floor(Math.random() * 2 ** 31), model.device);
    this.scheduler = new Scheduler({ maxQueue: this.maxQueue, maxBatch: this.maxBatch, maxPrefillTokens: this.maxPrefillTokens, admitWaitSteps: opts.admitWaitSteps ?? 3 });
    this.batch = new BatchState(model, this.maxBatch, this.padId, this.timings, this.counts);
  }

  get vocabSize(): number {
    return this.model.config.vocabSize;
  }
  /** Sequences decoding now. */
  get batchSize(): number {
    return this.batch.size;
  }
  /** The largest batch seen (tests of batching). */
  get peakBatch(): number {
    return this.batch.peak;
  }
  /** Requests waiting to join the batch. */
  get queued(): number {
    return this.scheduler.length;
  }
  /** Requests waiting beyond those that fit the batch's free rows (what maxQueue limits). */
  get backlog(): number {
    return this.scheduler.backlog(this.batch.size);
  }
  get idle(): boolean {
    return this.batch.size === 0 && this.scheduler.length === 0;
  }

  /**
   * Queues a request for n sequences continuing `prompt`. Throws QueueFullError when the queue is full,
   * EngineClosedError after close(), RangeError for a request the engine cannot run.
   */
  submit(prompt: number[], n: number, params: SequenceParams, listener: RequestListener): EngineRequest {
    if (this.closed) throw new EngineClosedError('the engine is shutting down');
    if (this.scheduler.full(this.batch.size)) throw new QueueFullError(`the queue is full (${this.maxQueue} requests waiting beyond the batch)`);
    if (prompt.length === 0) throw new RangeError('the prompt is empty');
    if (!Number.isInteger(n) || n < 1 || n > this.maxBatch) throw new RangeError(`n must be in [1, ${this.maxBatch}]`);
    if (!(params.maxTokens >= 1)) throw new RangeError('maxTokens must be at least 1');
    const over = contextOverflow(prompt.length, params.maxTokens, this.maxModelLen);
    if (over) throw new RangeError(over.message);
    for (const t of prompt) if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) throw new RangeError(`token id ${t} is out of the vocabulary [0, ${this.vocabSize})`);
    checkPenalties(params, this.vocabSize, 'submit');
    if (params.allowedTokenIds !== undefined) {
      if (params.allowedTokenIds.length === 0) throw new RangeError('allowedTokenIds is empty');
      for (const t of params.allowedTokenIds) if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) throw new RangeError(`allowedTokenIds: token id ${t} is out of the vocabulary [0, ${this.vocabSize})`);
    }
    const req = new EngineRequest(this.nextId++, prompt, n, params, listener, (r) => this.cancel(r), this.model.device);
    this.scheduler.push(req, this.steps);
    this.kick();
    return req;
  }

  /** Ends a request's sequences: at once when it is still queued, else at the next step. */
  cancel(req: EngineRequest): void {
    if (req.cancelled || req.live === 0) return;
    req.cancelled = true;
    this.aborted++;
    if (this.scheduler.remove(req)) {
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
    for (const r of [...this.scheduler.waiting]) this.cancel(r);
    for (const row of this.batch.rows) this.cancel(row.req);
  }

  /** Frees the batch's tensors (the model stays the caller's). */
  dispose(): void {
    this.abortAll();
    this.batch.reset();
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
    if (this.batch.size === 0 && gather > 0) void this.scheduler.gather(gather, () => this.batch.size).then(() => this.loop());
    else setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (!this.idle) {
        const ended = this.ended;
        this.step();
        const gather = this.opts.gatherMs ?? 2;
        if (this.ended > ended && gather > 0 && !this.idle) await this.scheduler.gather(gather, () => this.batch.size);
        else await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
      this.wakeIdle();
    }
  }

  /** One iteration: sample for the running rows, finish those that ended, drop them, decode one step, admit new requests. */
  step(): void {
    const t0 = performance.now();
    let admitting: EngineRequest[] = [];
    try {
      noGrad(() => {
        if (this.batch.size > 0) {
          this.timed('sample', () => this.finish(this.sample()));
          this.timed('layout', () => this.drop());
          if (this.batch.size > 0) this.decode();
        }
        admitting = this.scheduler.takeAdmissible(this.batch.size, this.steps);
        if (admitting.length) this.admit(admitting);
      });
    } catch (err) {
      this.fail(err, admitting);
    } finally {
      this.busyMs += performance.now() - t0;
    }
  }

  private timed(part: keyof EngineTimings, f: () => void): void {
    const t0 = performance.now();
    f();
    this.timings[part] += performance.now() - t0;
  }

  private sample(): SampledTokens {
    const out = this.batch.sample(this.eos, this.shared);
    this.steps++;
    return out;
  }

  /** Hands every row its token and new text; rows that drew an end, hit a stop string or their length end. */
  private finish(s: SampledTokens): void {
    this.batch.rows.forEach((row, i) => {
      const req = row.req;
      if (row.done) return;
      if (req.cancelled) {
        this.endRow(row);
        return;
      }
      const id = s.ids[i]!;
      row.push(id);
      this.tokensOut++;
      const p = req.params;
      const stopped = row.stream.push(row.tokens);
      const eos = !p.ignoreEos && this.eos.has(id);
      const stopToken = (p.stopTokenIds ?? []).includes(id);
      const finish: ApiFinishReason | null = stopped !== null || eos || stopToken ? 'stop' : row.tokens.length >= p.maxTokens ? 'length' : null;
      const stopReason = stopped ?? (stopToken ? id : null);
      const text = finish ? row.stream.release(row.tokens, stopped !== null) : row.stream.take();
      const top = topOf(s, i, p.topLogprobs ?? 0);
      this.safe(req, () => req.listener.onToken({ seq: row.seq, token: id, logprob: s.lps[i]!, top, text, finish, stopReason }));
      if (finish) {
        row.done = true;
        this.finishSeq(req, { seq: row.seq, reason: finish, stopReason, tokens: row.tokens, text: row.stream.text });
      }
    });
  }

  /** Ends the rows of cancelled requests, and drops every finished row from the batch. */
  private drop(): void {
    for (const row of this.batch.rows) if (!row.done && row.req.cancelled) this.endRow(row);
    if (this.batch.dropFinished()) this.wakeIdle();
  }

  /** One forward pass for the running rows (the cache's timeline compacted first when needed). */
  private decode(): void {
    this.timed('layout', () => this.batch.compact());
    this.timed('decode', () => this.batch.decode());
  }

  private admit(reqs: EngineRequest[]): void {
    this.counts.admissions++;
    this.batch.admit(reqs, this.opts.tokenizer);
  }

  /** A failure of the model (out of memory, ...) ends the requests it touched, never the server. */
  private fail(err: unknown, admitting: EngineRequest[]): void {
    const e = err instanceof Error ? err : new Error(String(err));
    const reqs = new Set<EngineRequest>([...this.batch.rows.map((r) => r.req), ...admitting]);
    this.batch.reset();
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

  /** Ends a row without a token (its request was cancelled). */
  private endRow(row: Row): void {
    row.done = true;
    this.finishSeq(row.req, { seq: row.seq, reason: 'abort', stopReason: null, tokens: row.tokens, text: row.stream.text });
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
}
