// Retrying HTTP requests to OpenAI-compatible servers: which failures are worth another try (a connection
// error, a timeout, 408, 429, a 5xx, an unreadable body) and how long to wait before it (exponential backoff
// with jitter, or the server's Retry-After when it gives one). Used by remote generation
// (src/generate/remote.ts) and the HTTP judge (src/judge/openai.ts).

/** An HTTP request that failed; `retryable` says whether trying again may help. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(message: string, readonly status?: number, readonly retryable = false, readonly retryAfterMs?: number) {
    super(message);
  }
}

/** Whether an HTTP status is worth retrying: 408 (timeout), 429 (rate limit) and every 5xx. */
export function retryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/**
 * The wait before retry number `attempt` (1 for the first retry): base * 2^(attempt - 1), times a jitter in
 * [0.5, 1.5), at most `maxMs`.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs = 60_000, random: () => number = Math.random): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1) * (0.5 + random()));
}

/** A Retry-After header (seconds, or an HTTP date) in milliseconds; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null | undefined, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const s = Number(header);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const t = Date.parse(header);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RetryOptions {
  /** Retries after the first try (default 6). */
  maxRetries?: number;
  /** First backoff (default 500 ms), doubled at each retry. */
  backoffMs?: number;
  /** Longest single wait (default 60 s; a Retry-After beyond it is cut to it). */
  maxBackoffMs?: number;
  /** Called before each retry with the error and the wait. */
  onRetry?: (err: HttpError, attempt: number, waitMs: number) => void;
}

/**
 * Runs `fn` until it succeeds, retrying an HttpError marked retryable up to maxRetries times; any other error,
 * or the last retryable one, is thrown (the last with the number of tries in its message).
 */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const maxRetries = opts.maxRetries ?? 6;
  const base = opts.backoffMs ?? 500;
  const cap = opts.maxBackoffMs ?? 60_000;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!(e instanceof HttpError) || !e.retryable) throw e;
      if (attempt >= maxRetries) throw new HttpError(`${e.message} (gave up after ${attempt + 1} tries)`, e.status, false);
      const wait = e.retryAfterMs !== undefined ? Math.min(cap, e.retryAfterMs) : backoffDelay(attempt + 1, base, cap);
      opts.onRetry?.(e, attempt + 1, wait);
      await sleep(wait);
    }
  }
}

/**
 * POSTs JSON and returns the parsed JSON answer of a 200. Connection errors, timeouts, retryable statuses and
 * unreadable bodies become retryable HttpErrors; other statuses non-retryable ones with the server's message.
 */
export async function postJson(url: string, body: unknown, opts: { apiKey?: string; timeoutMs?: number } = {}): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(opts.apiKey ? { Authorization: `Bearer ${opts.apiKey}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 600_000),
    });
  } catch (e) {
    const cause = (e as { cause?: Error }).cause;
    const timedOut = (e as Error).name === 'TimeoutError';
    throw new HttpError(`${url}: ${timedOut ? `no answer within ${((opts.timeoutMs ?? 600_000) / 1000).toFixed(1)} s` : (e as Error).message}${cause ? ` (${cause.message})` : ''}`, undefined, true);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (e) {
    throw new HttpError(`${url}: HTTP ${res.status}, body cut off: ${(e as Error).message}`, res.status, true);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (res.status !== 200) {
    const msg = (json as { error?: { message?: string } } | undefined)?.error?.message ?? (text.slice(0, 200) || 'error');
    throw new HttpError(`${url}: HTTP ${res.status}: ${msg}`, res.status, retryableStatus(res.status), retryAfterMs(res.headers.get('retry-after')));
  }
  if (json === undefined) throw new HttpError(`${url}: HTTP 200 with a body that is not JSON: ${JSON.stringify(text.slice(0, 120))}`, 200, true);
  return json;
}
