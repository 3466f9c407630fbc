// Generation over OpenAI-compatible servers (`sppo serve`, vLLM, SGLang): the same Generation records as
// generate(), from /v1/completions with token-id prompts, one request per prompt (n samples each). The
// prompts form one queue shared by every server (each runs `concurrency` requests at a time); a request
// that fails (connection error, 5xx, 408, 429, timeout) is retried with exponential backoff, on whichever
// server is free next; a server that fails `maxServerFailures` times in a row is dropped and its prompts
// go to the others. Token ids and
// log-probs are taken from the response: `token_ids` (vLLM's and sppo's return_token_ids) or the
// "token_id:N" strings of logprobs.tokens (return_tokens_as_token_ids); log-probs from
// logprobs.token_logprobs (the untempered policy's on sppo serve and vLLM by default).
//
// Each prompt is sampled with its own seed (seed + prompt index), so that the output does not depend on
// how prompts were sharded or which server answered (given the same model and numerics on each).
import type { FinishReason, Generation } from './generate.js';
import { backoffDelay, retryableStatus, sleep } from '../util/retry.js';

export interface RemoteOptions {
  /** Base URLs of the OpenAI API (e.g. http://host:8000/v1). */
  urls: string[];
  /** The `model` field of the requests. */
  model: string;
  apiKey?: string;
  /** Samples per prompt. Default 1. */
  n?: number;
  /** Default 256. */
  maxNewTokens?: number;
  /** Default 1 (0 = greedy). */
  temperature?: number;
  /** Default 1. */
  topP?: number;
  /** Default 0 (off). */
  topK?: number;
  /** Prompt i is sampled with seed + i (default 0). */
  seed?: number;
  stopStrings?: string[];
  /** EOS forbidden before this many new tokens (vLLM's and sppo's min_tokens). Default 0. */
  minNewTokens?: number;
  /**
   * Accept choices with text only (no token ids): their `tokens` and `logprobs` are then empty, for the
   * caller to re-tokenise (default false: such a choice is an error).
   */
  allowTextOnly?: boolean;
  /** Requests (one prompt each) in flight per server. Default 8. */
  concurrency?: number;
  /** Tries of a prompt before giving up. Default 6. */
  maxAttempts?: number;
  /** Consecutive failures after which a server is dropped. Default 3. */
  maxServerFailures?: number;
  /** First backoff (doubled at each retry of a prompt, with jitter). Default 200 ms. */
  backoffMs?: number;
  /** Per request. Default 600 s. */
  timeoutMs?: number;
  /** Called after each prompt with the number done so far. */
  onProgress?: (done: number, total: number) => void;
  /** Called when a server is dropped. */
  onServerDown?: (url: string, err: Error) => void;
}

export class RemoteError extends Error {
  override name = 'RemoteError';
  constructor(message: string, readonly status?: number, readonly retryable = false) {
    super(message);
  }
}

interface Choice {
  index: number;
  text: string;
  finish_reason: string | null;
  stop_reason?: string | number | null;
  token_ids?: number[];
  logprobs?: { tokens?: string[]; token_logprobs?: (number | null)[] } | null;
}

/** The Generation of one choice (token ids from token_ids or "token_id:N" strings). */
function toGeneration(c: Choice, prompt: number, sample: number, allowTextOnly = false): Generation {
  const lp = c.logprobs ?? null;
  let tokens = c.token_ids;
  if (!tokens && lp?.tokens) {
    tokens = lp.tokens.map((s) => {
      const m = /^token_id:(\d+)$/.exec(s);
      if (!m) throw new RemoteError(`the server returned a token as ${JSON.stringify(s)}, not "token_id:N" (does it support return_tokens_as_token_ids?)`);
      return Number(m[1]);
    });
  }
  const reason: FinishReason = c.finish_reason === 'length' ? 'length' : c.stop_reason !== null && c.stop_reason !== undefined ? 'stop' : 'eos';
  if (!tokens && allowTextOnly) return { prompt, sample, tokens: [], logprobs: [], text: c.text, finishReason: reason };
  if (!tokens) throw new RemoteError('the server returned neither token_ids nor log-prob tokens');
  const logprobs = (lp?.token_logprobs ?? []).map((x) => x ?? 0);
  if (logprobs.length !== tokens.length) throw new RemoteError(`the server returned ${tokens.length} tokens and ${logprobs.length} log-probs`);
  return { prompt, sample, tokens, logprobs, text: c.text, finishReason: reason };
}

/**
 * Generates n continuations of each prompt (token ids) on the servers; returns, in prompt order, each
 * prompt's n generations.
 */
export async function generateRemote(prompts: readonly number[][], opts: RemoteOptions): Promise<Generation[][]> {
  if (opts.urls.length === 0) throw new RemoteError('generateRemote: no server URLs');
  const n = opts.n ?? 1;
  const maxAttempts = opts.maxAttempts ?? 6;
  const maxServerFailures = opts.maxServerFailures ?? 3;
  const backoff = opts.backoffMs ?? 200;
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const seed = opts.seed ?? 0;
  const out = new Array<Generation[]>(prompts.length);
  // One job per prompt; a failed one goes back to the front of the queue.
  interface Job {
    prompt: number;
    attempts: number;
    notBefore: number;
  }
  const queue: Job[] = prompts.map((_, prompt) => ({ prompt, attempts: 0, notBefore: 0 }));
  let done = 0;
  let fatal: Error | null = null;
  const alive = new Set(opts.urls);
  /** Consecutive failures of each server (any of its requests). */
  const failures = new Map(opts.urls.map((u) => [u, 0]));
  let inFlight = 0;

  async function request(url: string, job: Job): Promise<void> {
    const body = {
      model: opts.model, prompt: prompts[job.prompt], n, max_tokens: opts.maxNewTokens ?? 256, temperature: opts.temperature ?? 1, top_p: opts.topP ?? 1,
      ...(opts.topK ? { top_k: opts.topK } : {}), seed: seed + job.prompt, ...(opts.stopStrings?.length ? { stop: opts.stopStrings } : {}),
      ...(opts.minNewTokens ? { min_tokens: opts.minNewTokens } : {}),
      logprobs: 0, return_tokens_as_token_ids: true, return_token_ids: true,
    };
    let res: Response;
    try {
      res = await fetch(`${url.replace(/\/+$/, '')}/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(opts.apiKey ? { Authorization: `Bearer ${opts.apiKey}` } : {}) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const cause = (e as { cause?: Error }).cause;
      throw new RemoteError(`${url}: ${(e as Error).message}${cause ? ` (${cause.message})` : ''}`, undefined, true);
    }
    let json: { choices?: Choice[]; error?: { message?: string } };
    try {
      json = (await res.json()) as typeof json;
    } catch (e) {
      throw new RemoteError(`${url}: HTTP ${res.status}, unreadable body: ${(e as Error).message}`, res.status, true);
    }
    if (res.status !== 200) {
      throw new RemoteError(`${url}: HTTP ${res.status}: ${json.error?.message ?? 'error'}`, res.status, retryableStatus(res.status));
    }
    const choices = json.choices ?? [];
    if (choices.length !== n) throw new RemoteError(`${url}: ${choices.length} choices for n = ${n}`, 200, true);
    out[job.prompt] = [...choices].sort((a, b) => a.index - b.index).map((c, s) => toGeneration(c, job.prompt, s, opts.allowTextOnly));
  }

  async function worker(url: string): Promise<void> {
    for (;;) {
      if (fatal || !alive.has(url)) return;
      const job = queue.shift();
      if (!job) {
        // Nothing queued: done unless prompts in flight elsewhere may come back.
        if (inFlight === 0) return;
        await sleep(20);
        continue;
      }
      inFlight++;
      try {
        const wait = job.notBefore - Date.now();
        if (wait > 0) await sleep(wait);
        await request(url, job);
        failures.set(url, 0);
        done++;
        opts.onProgress?.(done, prompts.length);
      } catch (e) {
        const err = e instanceof RemoteError ? e : new RemoteError(String((e as Error)?.message ?? e));
        if (!err.retryable) {
          fatal = err;
          return;
        }
        job.attempts++;
        if (job.attempts >= maxAttempts) {
          fatal = new RemoteError(`prompt ${job.prompt} failed ${job.attempts} times; last: ${err.message}`, err.status);
          return;
        }
        job.notBefore = Date.now() + backoffDelay(job.attempts, backoff, Infinity);
        queue.unshift(job);
        failures.set(url, failures.get(url)! + 1);
        if (failures.get(url)! >= maxServerFailures && alive.has(url)) {
          alive.delete(url);
          opts.onServerDown?.(url, err);
          if (alive.size === 0) fatal = new RemoteError(`every server failed; last: ${err.message}`, err.status);
          return;
        }
      } finally {
        inFlight--;
      }
    }
  }

  const concurrency = Math.max(1, opts.concurrency ?? 8);
  await Promise.all(opts.urls.flatMap((u) => Array.from({ length: concurrency }, () => worker(u))));
  if (fatal) throw fatal;
  if (queue.length > 0 || out.some((g) => g === undefined)) throw new RemoteError('generateRemote: some prompts were not generated');
  return out;
}
