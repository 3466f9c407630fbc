// Generation over OpenAI-compatible servers (`sppo serve`, vLLM, SGLang): the same Generation records as
// generate(), from /v1/completions with token-id prompts, one n = 1 request per (prompt, sample). The
// requests form one queue shared by every server (each runs `concurrency` requests at a time); a request
// that fails (connection error, 5xx, 408, 429, timeout) is retried with exponential backoff, on whichever
// server is free next; a server that fails `maxServerFailures` times in a row is dropped and its requests
// go to the others. Token ids and log-probs are taken from the response: `token_ids` (vLLM's, SGLang's
// and sppo's return_token_ids) or the "token_id:N" strings of logprobs.tokens (return_tokens_as_token_ids);
// log-probs from logprobs.token_logprobs (the untempered policy's on sppo serve and vLLM by default).
//
// Every request pins every sampler field (samplerFields): the engines fill fields left out from the
// checkpoint's generation_config.json. Sample j of prompt i has seed seed + i * n + j (sampleSeed), so
// that no two samples of a call share a seed and the output does not depend on how prompts were sharded
// or which server answered (given the same model and numerics on each).
//
// Read against (the servers' protocol files): vLLM vllm/entrypoints/openai/completion/protocol.py at
// commit 002032ee2b18e1f7bd924ec47b62504ba3866063 and SGLang python/sglang/srt/entrypoints/openai/
// {protocol,serving_completions}.py at commit 004c82e07d876f6e4a0ad6e15325706b0f478f1a (see
// docs/generation.md).
import type { FinishReason, Generation } from './generate.js';
import type { PenaltyOptions } from './sampling.js';
import { backoffDelay, retryableStatus, sleep } from '../util/retry.js';

export interface RemoteOptions extends Omit<PenaltyOptions, 'logitBias'> {
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
  /** Sample j of prompt i is sampled with seed + i * n + j (default 0). */
  seed?: number;
  stopStrings?: string[];
  /** EOS forbidden before this many new tokens (vLLM's and sppo's min_tokens). Default 0. */
  minNewTokens?: number;
  /**
   * Accept choices with text only (no token ids): their `tokens` and `logprobs` are then empty, for the
   * caller to re-tokenise (default false: such a choice is an error).
   */
  allowTextOnly?: boolean;
  /** Requests (one sample each) in flight per server. Default 8. */
  concurrency?: number;
  /** Tries of a request before giving up. Default 6. */
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

/** One choice of a /v1/completions response, as vLLM, SGLang and sppo serve write it. */
export interface RemoteChoice {
  index: number;
  text: string;
  finish_reason: string | null;
  /** vLLM and sppo serve: the stop string or token id that ended the sample (null: EOS or length). */
  stop_reason?: string | number | null;
  /** SGLang: the stop string, or the token id (an EOS id included) that ended the sample. */
  matched_stop?: string | number | null;
  token_ids?: number[] | null;
  logprobs?: { tokens?: string[]; token_logprobs?: (number | null)[] } | null;
}

/**
 * The sampler fields of every request, all pinned at sppo's own values. A field left out takes the
 * server's default, and vLLM's and SGLang's defaults come from the checkpoint's generation_config.json
 * (e.g. Qwen2.5's top_k 20, repetition_penalty 1.05): the samples would then not be the policy's, and
 * their stored (raw) log-probs would not be those of the distribution sampled.
 */
export function samplerFields(opts: Pick<RemoteOptions, 'temperature' | 'topP' | 'topK' | 'minNewTokens' | 'stopStrings' | 'maxNewTokens' | 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty'>): Record<string, unknown> {
  return {
    max_tokens: opts.maxNewTokens ?? 256,
    temperature: opts.temperature ?? 1,
    top_p: opts.topP ?? 1,
    // -1: no top-k on vLLM ("0 (or -1)"), SGLang (its default) and sppo serve.
    top_k: opts.topK && opts.topK > 0 ? opts.topK : -1,
    min_p: 0,
    // Neutral unless asked for (sppo generate's --repetition-penalty and the rest; never the loop's samples).
    repetition_penalty: opts.repetitionPenalty ?? 1,
    presence_penalty: opts.presencePenalty ?? 0,
    frequency_penalty: opts.frequencyPenalty ?? 0,
    min_tokens: opts.minNewTokens ?? 0,
    stop: opts.stopStrings ?? [],
    stop_token_ids: [],
    ignore_eos: false,
    logit_bias: {},
  };
}

/**
 * The seed of sample j of prompt i: seed + i * n + j, distinct for every (prompt, sample) of a call (each
 * sample is its own n = 1 request, so no engine's rule for the seeds of n samples matters).
 */
export const sampleSeed = (seed: number, n: number, prompt: number, sample: number): number => seed + prompt * n + sample;

const TOKEN_ID = /^token_id:(\d+)$/;

/**
 * The Generation of one choice: token ids from token_ids or "token_id:N" strings; a choice whose tokens
 * are text (SGLang without return_token_ids) is text-only when allowTextOnly (tokens and logprobs empty,
 * for the caller to re-tokenise; stopToken then carries the id of an EOS the server matched).
 */
export function toGeneration(c: RemoteChoice, prompt: number, sample: number, allowTextOnly = false): Generation & { stopToken?: number } {
  const lp = c.logprobs ?? null;
  let tokens = c.token_ids ?? undefined;
  if (!tokens && lp?.tokens && lp.tokens.length > 0 && lp.tokens.every((s) => TOKEN_ID.test(s))) tokens = lp.tokens.map((s) => Number(TOKEN_ID.exec(s)![1]));
  else if (!tokens && lp?.tokens && lp.tokens.length > 0 && !allowTextOnly) {
    const bad = lp.tokens.find((s) => !TOKEN_ID.test(s));
    throw new RemoteError(`the server returned a token as ${JSON.stringify(bad)}, not "token_id:N" and no token_ids (does it support return_tokens_as_token_ids or return_token_ids?)`);
  }
  // What ended the sample: vLLM's and sppo's stop_reason, SGLang's matched_stop (a string: a stop
  // string; a number: a stop token, i.e. an EOS id since no stop_token_ids are sent; null: EOS on vLLM).
  const matched = c.stop_reason ?? c.matched_stop ?? null;
  const reason: FinishReason = c.finish_reason === 'length' ? 'length' : typeof matched === 'string' ? 'stop' : 'eos';
  if (!tokens && allowTextOnly) {
    return { prompt, sample, tokens: [], logprobs: [], text: c.text, finishReason: reason, ...(typeof c.matched_stop === 'number' ? { stopToken: c.matched_stop } : {}) };
  }
  if (!tokens) throw new RemoteError('the server returned neither token_ids nor log-prob tokens');
  const logprobs = (lp?.token_logprobs ?? []).map((x) => x ?? 0);
  if (logprobs.length !== tokens.length) throw new RemoteError(`the server returned ${tokens.length} tokens and ${logprobs.length} log-probs`);
  return { prompt, sample, tokens, logprobs, text: c.text, finishReason: reason };
}

/** The message of an error body: OpenAI's and vLLM's {"error": {"message"}}, SGLang's {"object": "error", "message"}, FastAPI's {"detail"}. */
export function errorMessage(json: unknown): string {
  const j = (json ?? {}) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
  if (typeof j.error === 'object' && j.error && typeof j.error.message === 'string') return j.error.message;
  if (typeof j.error === 'string') return j.error;
  if (typeof j.message === 'string') return j.message;
  if (j.detail !== undefined) return typeof j.detail === 'string' ? j.detail : JSON.stringify(j.detail);
  return 'error';
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
  const out: Generation[][] = prompts.map(() => new Array<Generation>(n));
  // One job per (prompt, sample), an n = 1 request with its own seed; a failed one goes back to the
  // front of the queue.
  interface Job {
    prompt: number;
    sample: number;
    attempts: number;
    notBefore: number;
  }
  const queue: Job[] = prompts.flatMap((_, prompt) => Array.from({ length: n }, (_, sample) => ({ prompt, sample, attempts: 0, notBefore: 0 })));
  const left = prompts.map(() => n);
  let done = 0;
  let fatal: Error | null = null;
  const alive = new Set(opts.urls);
  /** Consecutive failures of each server (any of its requests). */
  const failures = new Map(opts.urls.map((u) => [u, 0]));
  let inFlight = 0;
  const sampler = samplerFields(opts);

  async function request(url: string, job: Job): Promise<void> {
    const body = {
      model: opts.model, prompt: prompts[job.prompt], n: 1, ...sampler, seed: sampleSeed(seed, n, job.prompt, job.sample),
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
    let json: { choices?: RemoteChoice[] };
    try {
      json = (await res.json()) as typeof json;
    } catch (e) {
      throw new RemoteError(`${url}: HTTP ${res.status}, unreadable body: ${(e as Error).message}`, res.status, true);
    }
    if (res.status !== 200) {
      throw new RemoteError(`${url}: HTTP ${res.status}: ${errorMessage(json)}`, res.status, retryableStatus(res.status));
    }
    const choices = json.choices ?? [];
    if (choices.length !== 1) throw new RemoteError(`${url}: ${choices.length} choices for n = 1`, 200, true);
    out[job.prompt]![job.sample] = toGeneration(choices[0]!, job.prompt, job.sample, opts.allowTextOnly);
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
        if (--left[job.prompt]! === 0) {
          done++;
          opts.onProgress?.(done, prompts.length);
        }
      } catch (e) {
        const err = e instanceof RemoteError ? e : new RemoteError(String((e as Error)?.message ?? e));
        if (!err.retryable) {
          fatal = err;
          return;
        }
        job.attempts++;
        if (job.attempts >= maxAttempts) {
          fatal = new RemoteError(`prompt ${job.prompt} (sample ${job.sample}) failed ${job.attempts} times; last: ${err.message}`, err.status);
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
  if (queue.length > 0 || left.some((k) => k > 0)) throw new RemoteError('generateRemote: some prompts were not generated');
  return out;
}
