// What a judge template is: the chat request it sends (messages and sampling), the answer it reads back
// (text, the first token's top log-probs, usage) and the verdict it parses from it. The templates of
// src/judge/templates/ (alpaca_eval, arena_hard, mt_bench, pairwise_prompt) are built on these, each with a
// JudgeTemplate object that registry.ts lists by name; the HTTP judge (src/judge/openai.ts) looks its template up
// there and sends the requests, with retries and a cache, through a `Complete` function.
import type { PreferenceQuery } from '../oracle.js';

export interface JudgeMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** One chat completion request of a judge. */
export interface JudgeRequest {
  messages: JudgeMessage[];
  maxTokens: number;
  temperature: number;
  /** Ask for the log-probs of the generated tokens. */
  logprobs?: boolean;
  /** Alternatives per position (with logprobs). */
  topLogprobs?: number;
}

export interface TopLogprob {
  token: string;
  logprob: number;
}

/** What a judge answered, as read from a chat completion. */
export interface JudgeResponse {
  content: string;
  /** The top log-probs of the first generated token; null when the server returned none. */
  firstTopLogprobs: TopLogprob[] | null;
  finishReason: string | null;
  usage: { promptTokens: number; completionTokens: number };
}

/** Sends one request to the judge (with retries and the cache) and returns its answer. */
export type Complete = (req: JudgeRequest) => Promise<JudgeResponse>;

/** How a preference was read: from the log-probs of the answer tokens, or from the answer text. */
export type VerdictMethod = 'logprobs' | 'text';

/**
 * A pairwise verdict: p = P(the first response shown beats the second), or null when the answer could not be
 * parsed (then `raw` says what the judge wrote).
 */
export interface PreferenceVerdict {
  p: number | null;
  method: VerdictMethod | null;
  /** The judge's label, when the template has labels (A>>B, [[A]], m, ...). */
  label?: string;
  raw: string;
}

/** What a judge's options may override in a template's requests. */
export interface RequestOverrides {
  maxTokens?: number;
  topLogprobs?: number;
}

/**
 * The request of a judge read from its first answer token's top log-probs (AlpacaEval's, the pairwise prompt's):
 * a system and a user message, max_tokens 1 and the template's `topLogprobs` unless `opts` overrides them.
 */
export function firstTokenRequest(system: string, user: string, sampling: { temperature: number; topLogprobs: number }, opts: RequestOverrides = {}): JudgeRequest {
  return {
    messages: [
      { role: 'system', content: system },
      { role: 'user', content: user },
    ],
    maxTokens: opts.maxTokens ?? 1,
    temperature: sampling.temperature,
    logprobs: true,
    topLogprobs: opts.topLogprobs ?? sampling.topLogprobs,
  };
}

/** What a template may need from the judge's options (MT-Bench: its judge prompts file). */
export interface JudgeTemplateOptions {
  judgePrompts?: string;
}

/**
 * A template as the HTTP judge uses it: the id its answers are cached under, what it reads once when the judge is
 * made, and the verdict of one query (its request or requests rendered, sent through `complete`, the answer parsed).
 */
export interface JudgeTemplate<Context = unknown> {
  /** The template's part of the verdict cache's keys. */
  readonly id: string;
  /** Reads what the template needs (MT-Bench's judge prompts); a JudgeError when an option it needs is missing. */
  prepare(opts: JudgeTemplateOptions): Context;
  /** P(a > b) of one query as the template reads it (a shown first). */
  verdict(complete: Complete, q: PreferenceQuery, context: Context, opts: RequestOverrides): Promise<PreferenceVerdict>;
}

/** A template of one request per query: `request` renders it, `parse` reads the verdict from the answer. */
export function oneRequestTemplate(id: string, request: (q: PreferenceQuery, opts: RequestOverrides) => JudgeRequest, parse: (r: JudgeResponse) => PreferenceVerdict): JudgeTemplate<void> {
  return {
    id,
    prepare: () => undefined,
    verdict: async (complete, q, _context, opts) => parse(await complete(request(q, opts))),
  };
}

/** log(sum exp(x)) of finite values (-Infinity for none). */
export function logSumExp(xs: number[]): number {
  const m = Math.max(...xs);
  if (!Number.isFinite(m)) return -Infinity;
  return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
}

/**
 * P(first) from the top log-probs of the first token: the mass of the `first` tokens over that of `first` and
 * `second` together; null when neither appears. `normalize` maps a token to the label it stands for
 * (default: the token itself).
 */
export function twoTokenProbability(top: readonly TopLogprob[], first: string, second: string, normalize: (t: string) => string = (t) => t): number | null {
  const a: number[] = [];
  const b: number[] = [];
  for (const t of top) {
    if (!Number.isFinite(t.logprob) && t.logprob !== -Infinity) continue;
    const k = normalize(t.token);
    if (k === first) a.push(t.logprob);
    else if (k === second) b.push(t.logprob);
  }
  if (a.length === 0 && b.length === 0) return null;
  const la = logSumExp(a);
  const lb = logSumExp(b);
  if (la === -Infinity && lb === -Infinity) return null;
  if (lb === -Infinity) return 1;
  if (la === -Infinity) return 0;
  return 1 / (1 + Math.exp(lb - la));
}

/**
 * The verdict of a judge that answers with one of two labels (`first` better: p = 1): from the first token's top
 * log-probs when they name either label (twoTokenProbability, with `normalize`), else from the text, whose label
 * `textLabel` reads (null: unparseable).
 */
export function twoLabelVerdict(r: JudgeResponse, first: string, second: string, textLabel: (raw: string) => string | null, normalize?: (t: string) => string): PreferenceVerdict {
  const raw = r.content;
  if (r.firstTopLogprobs && r.firstTopLogprobs.length > 0) {
    const p = twoTokenProbability(r.firstTopLogprobs, first, second, normalize);
    if (p !== null) return { p, method: 'logprobs', raw };
  }
  const label = textLabel(raw);
  if (label === first) return { p: 1, method: 'text', label, raw };
  if (label === second) return { p: 0, method: 'text', label, raw };
  return { p: null, method: null, raw };
}
