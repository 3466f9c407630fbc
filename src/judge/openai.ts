// An LLM judge over HTTP: any OpenAI-compatible chat completions endpoint (vLLM, SGLang, llama.cpp's server,
// `sppo serve`, a hosted API) prompted with one of the templates of src/judge/templates/ (looked up by name in
// templates/registry.ts):
//   alpaca_eval  AlpacaEval 2.0's weighted GPT-4-Turbo annotator (P from the log-probs of "m" / "M")
//   arena_hard   Arena-Hard's judge prompt and five-level verdicts
//   mt_bench     MT-Bench's judge prompts (single-answer 1-10 grading; its pairwise form for prefer())
//   pairwise     a plain A/B prompt (pairwise_prompt.ts), P from the log-probs of "A" / "B"
// Every request: at most `concurrency` in flight; retried with exponential backoff (or the server's
// Retry-After) on connection errors, timeouts, 408, 429, 5xx and unreadable answers, up to maxRetries
// times; answered requests go to the verdict cache (verdict_cache.ts). A 400 (say, a prompt longer than the
// judge's context) is an answer without a verdict, counted as failed and not cached; 401, 403, 404 and the
// like stop the evaluation. stats() sums the token usage, the cache hits, the retries and the verdicts
// (how each was read, and how many could not be parsed).
//
// As a PreferenceOracle (the SPPO loop's judge or evaluation judge), prefer() asks P(a > b) of each query with
// the template's pairwise form (two identical responses: 1/2 without asking); a verdict that cannot be parsed is counted and taken as 1/2 (or, with
// unparseable: 'error', is an error).
import { HttpError, postJson, withRetries } from '../util/retry.js';
import { JudgeError, type PreferenceOracle, type PreferenceQuery } from './oracle.js';
import { VerdictCache, cacheKey } from './verdict_cache.js';
import { JUDGE_TEMPLATE_NAMES } from './spec.js';
import type { Complete, JudgeRequest, JudgeResponse, JudgeTemplate, PreferenceVerdict, VerdictMethod } from './templates/template.js';
import type { MtBenchJudgePrompt } from './templates/mt_bench.js';
import { JUDGE_TEMPLATE_REGISTRY } from './templates/registry.js';

export const JUDGE_TEMPLATES = JUDGE_TEMPLATE_NAMES;
export type JudgeTemplateName = (typeof JUDGE_TEMPLATE_NAMES)[number];

export interface OpenAIJudgeOptions {
  /** Base URL of the OpenAI API, e.g. http://127.0.0.1:8000/v1. */
  url: string;
  /** The `model` of the requests (default: the first model GET {url}/models lists). */
  model?: string;
  apiKey?: string;
  template: JudgeTemplateName;
  /** Requests in flight at most. Default 8. */
  concurrency?: number;
  /** Retries of a request after its first try. Default 6. */
  maxRetries?: number;
  /** Per request. Default 600 s. */
  timeoutS?: number;
  /** First backoff, doubled at each retry. Default 500 ms. */
  backoffMs?: number;
  /** The verdict cache file (JSONL); none: in memory only. */
  cache?: string;
  /** Overrides the template's max_tokens (1 for the log-prob templates, 4096 Arena-Hard, 2048 MT-Bench). */
  maxTokens?: number;
  /** Overrides the top_logprobs of the log-prob templates (AlpacaEval's 5, pairwise 20). */
  topLogprobs?: number;
  /** MT-Bench's judge_prompts.jsonl (template mt_bench). */
  judgePrompts?: string;
  /** prefer(): an unparseable verdict counts 1/2 ('tie', the default) or is an error. */
  unparseable?: 'tie' | 'error';
  /** Called with a line on each retry. */
  log?: (line: string) => void;
}

export interface TokenUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

export interface JudgeStats {
  template: JudgeTemplateName;
  model: string;
  url: string;
  /** Requests answered by the server in this process. */
  requests: number;
  /** Requests answered from the cache. */
  cacheHits: number;
  /** Retries (each a failed try followed by another). */
  retries: number;
  /** Requests answered with a 400 (no verdict, not cached). */
  failed: number;
  /** Token usage of the requests answered by the server in this process. */
  usage: TokenUsage;
  /** Token usage recorded with the cached answers used (paid for by an earlier run). */
  cachedUsage: TokenUsage;
  /** Verdicts read (prefer(), or noted by a benchmark): how many of each method, how many unparseable. */
  verdicts: { total: number; unparseable: number; byMethod: Record<VerdictMethod, number>; identical: number };
}

/** An answer with the cache status and the failure of a 400. */
export interface CompletedResponse extends JudgeResponse {
  cached: boolean;
  /** Set when the server refused the request (HTTP 400): content is then empty. */
  error?: string;
}

function usageOf(json: Record<string, unknown>): { promptTokens: number; completionTokens: number } {
  const u = (json.usage ?? {}) as Record<string, unknown>;
  const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return { promptTokens: n(u.prompt_tokens), completionTokens: n(u.completion_tokens) };
}

/** The answer of a chat completion; a body without a first choice and its message is a retryable error. */
export function readChatCompletion(url: string, json: unknown): JudgeResponse {
  const o = (json ?? {}) as Record<string, unknown>;
  const c = Array.isArray(o.choices) ? (o.choices[0] as Record<string, unknown> | undefined) : undefined;
  const msg = c?.message as { content?: unknown } | undefined;
  if (!c || !msg || (typeof msg.content !== 'string' && msg.content !== null)) {
    throw new HttpError(`${url}: the answer has no choices[0].message.content: ${JSON.stringify(json).slice(0, 160)}`, 200, true);
  }
  const lp = c.logprobs as { content?: { top_logprobs?: { token?: unknown; logprob?: unknown }[] }[] } | null | undefined;
  const top = lp?.content?.[0]?.top_logprobs;
  const firstTopLogprobs = Array.isArray(top)
    ? top.filter((t) => typeof t?.token === 'string' && typeof t.logprob === 'number').map((t) => ({ token: t.token as string, logprob: t.logprob as number }))
    : null;
  return { content: (msg.content as string | null) ?? '', firstTopLogprobs, finishReason: typeof c.finish_reason === 'string' ? c.finish_reason : null, usage: usageOf(o) };
}

/** The first model GET {url}/models lists. */
export async function firstServedModel(url: string, apiKey?: string): Promise<string> {
  const u = `${url.replace(/\/+$/, '')}/models`;
  let res: Response;
  try {
    res = await fetch(u, { headers: apiKey ? { Authorization: `Bearer ${apiKey}` } : {}, signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new JudgeError(`GET ${u}: ${(e as Error).message} (is the judge server up? give the model as openai:URL#MODEL)`);
  }
  if (res.status !== 200) throw new JudgeError(`GET ${u}: HTTP ${res.status} (give the model as openai:URL#MODEL)`);
  const json = (await res.json()) as { data?: { id?: string }[] };
  const id = json.data?.[0]?.id;
  if (!id) throw new JudgeError(`GET ${u} lists no model (give the model as openai:URL#MODEL)`);
  return id;
}

export class OpenAIJudge implements PreferenceOracle {
  readonly positionBiased = true;
  readonly template: JudgeTemplateName;
  readonly templateId: string;
  private readonly cache: VerdictCache;
  private readonly endpoint: string;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly templateObject: JudgeTemplate;
  /** What the template read when the judge was made (template mt_bench: its judge prompts). */
  private readonly templateContext: unknown;
  private readonly s: JudgeStats;

  private constructor(readonly opts: OpenAIJudgeOptions & { model: string }) {
    if (!(JUDGE_TEMPLATES as readonly string[]).includes(opts.template)) throw new JudgeError(`unknown judge template '${opts.template}' (known: ${JUDGE_TEMPLATES.join(', ')})`);
    this.template = opts.template;
    this.templateObject = JUDGE_TEMPLATE_REGISTRY[opts.template];
    this.templateId = this.templateObject.id;
    this.cache = new VerdictCache(opts.cache);
    this.endpoint = `${opts.url.replace(/\/+$/, '')}/chat/completions`;
    this.s = {
      template: opts.template, model: opts.model, url: opts.url, requests: 0, cacheHits: 0, retries: 0, failed: 0,
      usage: { prompt_tokens: 0, completion_tokens: 0 }, cachedUsage: { prompt_tokens: 0, completion_tokens: 0 },
      verdicts: { total: 0, unparseable: 0, byMethod: { logprobs: 0, text: 0 }, identical: 0 },
    };
    this.templateContext = this.templateObject.prepare({ ...(opts.judgePrompts !== undefined ? { judgePrompts: opts.judgePrompts } : {}) });
  }

  /** A judge on `opts.url`; without opts.model, the first model the server lists. */
  static async create(opts: OpenAIJudgeOptions): Promise<OpenAIJudge> {
    const model = opts.model ?? (await firstServedModel(opts.url, opts.apiKey));
    return new OpenAIJudge({ ...opts, model });
  }

  get name(): string {
    return `openai:${this.opts.model}@${this.opts.url} (${this.template})`;
  }

  get model(): string {
    return this.opts.model;
  }

  /** The MT-Bench judge prompts (template mt_bench). */
  get mtBenchPrompts(): Map<string, MtBenchJudgePrompt> | undefined {
    return this.template === 'mt_bench' ? (this.templateContext as Map<string, MtBenchJudgePrompt>) : undefined;
  }

  stats(): JudgeStats {
    return JSON.parse(JSON.stringify(this.s)) as JudgeStats;
  }

  /** Counts a verdict (prefer() does; benchmarks that parse answers themselves call it). */
  noteVerdict(method: VerdictMethod | 'identical' | null): void {
    this.s.verdicts.total++;
    if (method === null) this.s.verdicts.unparseable++;
    else if (method === 'identical') this.s.verdicts.identical++;
    else this.s.verdicts.byMethod[method]++;
  }

  private async acquire(): Promise<void> {
    const limit = Math.max(1, this.opts.concurrency ?? 8);
    while (this.inFlight >= limit) await new Promise<void>((r) => this.waiting.push(r));
    this.inFlight++;
  }

  private release(): void {
    this.inFlight--;
    this.waiting.shift()?.();
  }

  /** Sends one request (or answers it from the cache). */
  async complete(req: JudgeRequest): Promise<CompletedResponse> {
    const key = cacheKey(this.templateId, this.opts.model, req);
    const hit = this.cache.get(key);
    if (hit) {
      this.s.cacheHits++;
      this.s.cachedUsage.prompt_tokens += hit.usage.promptTokens;
      this.s.cachedUsage.completion_tokens += hit.usage.completionTokens;
      return { ...hit, cached: true };
    }
    const body = {
      model: this.opts.model,
      messages: req.messages,
      max_tokens: req.maxTokens,
      temperature: req.temperature,
      ...(req.logprobs ? { logprobs: true, top_logprobs: req.topLogprobs ?? 5 } : {}),
    };
    await this.acquire();
    let r: JudgeResponse;
    try {
      r = await withRetries(
        async () => readChatCompletion(this.endpoint, await postJson(this.endpoint, body, { apiKey: this.opts.apiKey, timeoutMs: (this.opts.timeoutS ?? 600) * 1000 })),
        {
          maxRetries: this.opts.maxRetries ?? 6,
          backoffMs: this.opts.backoffMs ?? 500,
          onRetry: (e, attempt, wait) => {
            this.s.retries++;
            this.opts.log?.(`judge: retry ${attempt} in ${(wait / 1000).toFixed(1)} s: ${e.message}`);
          },
        },
      );
    } catch (e) {
      if (e instanceof HttpError && e.status === 400) {
        this.s.failed++;
        return { content: '', firstTopLogprobs: null, finishReason: null, usage: { promptTokens: 0, completionTokens: 0 }, cached: false, error: e.message };
      }
      throw new JudgeError(`judge ${this.name}: ${(e as Error).message}`);
    } finally {
      this.release();
    }
    this.s.requests++;
    this.s.usage.prompt_tokens += r.usage.promptTokens;
    this.s.usage.completion_tokens += r.usage.completionTokens;
    this.cache.set(key, { template: this.templateId, model: this.opts.model }, r);
    return { ...r, cached: false };
  }

  /** The `complete` function the templates take. */
  readonly completer: Complete = (req) => this.complete(req);

  /** The pairwise verdict of one query: P(a > b) as the template reads it (a shown first). */
  async verdict(q: PreferenceQuery): Promise<PreferenceVerdict> {
    const o = { ...(this.opts.maxTokens !== undefined ? { maxTokens: this.opts.maxTokens } : {}), ...(this.opts.topLogprobs !== undefined ? { topLogprobs: this.opts.topLogprobs } : {}) };
    return this.templateObject.verdict(this.completer, q, this.templateContext, o);
  }

  /** P(a > b) per query; identical responses are a tie without a call (as AlpacaEval treats them). */
  async prefer(batch: PreferenceQuery[]): Promise<number[]> {
    const verdicts = await Promise.all(batch.map((q) => (q.a === q.b ? null : this.verdict(q))));
    return verdicts.map((v, i) => {
      if (v === null) {
        this.noteVerdict('identical');
        return 0.5;
      }
      this.noteVerdict(v.p === null ? null : v.method);
      if (v.p !== null) return v.p;
      if (this.opts.unparseable === 'error') throw new JudgeError(`judge ${this.name}: query ${i}: no verdict in ${JSON.stringify(v.raw.slice(0, 200))}`);
      return 0.5;
    });
  }
}
