// The engine's queue and admission: which waiting requests join the running batch, and when (as vLLM's
// scheduler, at request granularity). Requests are admitted in order of arrival while the batch has rows
// for all their sequences and the prefill stays under maxPrefillTokens (at least one request is). With a
// batch decoding, a lone new request waits a few steps for others to be prefilled with it; an idle engine,
// and one whose sequences just ended, first waits a little for the rest of a burst of requests (gather).
import type { EngineRequest } from './request.js';

export interface SchedulerLimits {
  /** Requests waiting at most beyond those that fit the batch's free rows (at least 1). */
  maxQueue: number;
  /** Sequences decoding together at most. */
  maxBatch: number;
  /** Prompt tokens prefilled between two decode steps at most. */
  maxPrefillTokens: number;
  /** Steps a new request may wait for others while a batch decodes (0 = never). */
  admitWaitSteps: number;
}

export class Scheduler {
  private readonly queue: EngineRequest[] = [];
  /** performance.now() of the last submit. */
  private lastSubmit = 0;
  /** The last pause gathered requests: admit what is queued without waiting (admitWaitSteps). */
  gathered = false;

  constructor(readonly limits: SchedulerLimits) {}

  /** Requests waiting, oldest first. */
  get waiting(): readonly EngineRequest[] {
    return this.queue;
  }
  get length(): number {
    return this.queue.length;
  }
  /**
   * Requests waiting beyond those that join the batch at its next admission (the first waiting requests
   * whose sequences fit the batch's free rows, with `running` sequences decoding): what the queue limit
   * counts. Requests held only by the gather window, or by a lone request's wait for company, are about to
   * run and are not counted.
   */
  backlog(running: number): number {
    let free = this.limits.maxBatch - running;
    let i = 0;
    for (; i < this.queue.length; i++) {
      const n = this.queue[i]!.n;
      if (n > free) break;
      free -= n;
    }
    return this.queue.length - i;
  }
  /** The queue limit is reached (`running` sequences decoding). */
  full(running: number): boolean {
    return this.backlog(running) >= this.limits.maxQueue;
  }
  /** Sequences the waiting requests ask for. */
  get queuedRows(): number {
    return this.queue.reduce((a, r) => a + r.n, 0);
  }

  /** Queues a request at engine step `step`. */
  push(req: EngineRequest, step: number): void {
    req.queuedAt = step;
    this.queue.push(req);
    this.lastSubmit = performance.now();
  }

  /** Takes a request out of the queue; false when it was not waiting. */
  remove(req: EngineRequest): boolean {
    const i = this.queue.indexOf(req);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }

  /** The requests that join a batch of `running` sequences at engine step `step` (taken out of the queue). */
  takeAdmissible(running: number, step: number): EngineRequest[] {
    const out: EngineRequest[] = [];
    if (this.queue.length === 0) return out;
    const { maxBatch, maxPrefillTokens, admitWaitSteps: wait } = this.limits;
    // With a batch decoding, new requests are gathered for a few steps (one prefill for several), unless
    // enough are waiting to fill a quarter of the batch (or the batch), or the oldest has waited long enough.
    const gathered = this.gathered;
    this.gathered = false;
    if (running > 0 && wait > 0 && !gathered) {
      const queuedRows = this.queuedRows;
      const enough = queuedRows >= Math.max(2, running / 4) || running + queuedRows >= maxBatch;
      if (!enough && step - this.queue[0]!.queuedAt < wait) return out;
    }
    let rows = running;
    let tokens = 0;
    while (this.queue.length) {
      const r = this.queue[0]!;
      if (rows + r.n > maxBatch) break;
      if (out.length > 0 && tokens + r.prompt.length > maxPrefillTokens) break;
      this.queue.shift();
      out.push(r);
      rows += r.n;
      tokens += r.prompt.length;
    }
    return out;
  }

  /**
   * Waits `ms`, then on while requests keep arriving (until none has for `ms`, 4 x `ms` in all at most, or
   * a full batch is queued): the idle engine's wait for the rest of a burst, and the running engine's after
   * sequences ended, for their clients' next requests (sent as soon as the answers arrive), so that they
   * are prefilled together and join at once instead of a few steps later. Then `gathered` is set.
   */
  gather(ms: number, running: () => number): Promise<void> {
    const from = performance.now();
    return new Promise((resolve) => {
      const check = (): void => {
        const now = performance.now();
        const quietFor = now - this.lastSubmit;
        if (quietFor < ms && now - from < 4 * ms && running() + this.queuedRows < this.limits.maxBatch) setTimeout(check, Math.max(1, ms - quietFor));
        else {
          this.gathered = true;
          resolve();
        }
      };
      setTimeout(check, ms);
    });
  }
}
