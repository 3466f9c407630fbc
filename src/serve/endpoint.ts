// What the two OpenAI endpoints (completions.ts, chat_completions.ts) share and use of the server: a
// request's choices as they fill, the job they hand to the engine, the usage of an answer, and how a
// token is shown in log-probs.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Tokenizer } from '../text/tokenizer.js';
import type { ChatTemplate } from '../text/chat_template.js';
import type { ApiFinishReason, SequenceParams, TokenOutput } from './request.js';
import type { CommonRequest, Limits } from './protocol.js';
import type { PromptLogprobs } from './prompt_logprobs.js';

/** One choice of an answer (prompt x sample) as its tokens come. */
export interface ChoiceState {
  tokens: number[];
  logprobs: number[];
  tops: ([number, number][] | null)[];
  text: string;
  finish: ApiFinishReason | null;
  stopReason: string | number | null;
}

/** What the request line logs (server.ts). */
export interface RequestInfo {
  prompt?: string;
  promptTokens?: number;
  completionTokens?: number;
}

/** The engine's work for one request: n sequences per prompt. */
export interface Job {
  promptIds: number[][];
  n: number;
  params: SequenceParams;
}

/** A streamed answer's events: first ones, one per token (null: none for this token), last ones. */
export interface StreamEvents {
  onStart: () => unknown[];
  onToken: (index: number, out: TokenOutput) => unknown;
  onEnd: (choices: ChoiceState[]) => unknown[];
}

/** What an endpoint uses of the server. */
export interface EndpointContext {
  readonly modelName: string;
  readonly tokenizer: Tokenizer;
  readonly template: ChatTemplate | undefined;
  readonly vocabSize: number;
  /** The token ids of a request's prompts (length checked before tokenising, long texts off the event loop, truncate_prompt_tokens applied). */
  promptIds(c: CommonRequest, prompts: readonly (string | number[])[], addSpecialTokens: boolean, param: string): Promise<number[][]>;
  /** Log-probs of a prompt's own tokens, and k alternatives at each position. */
  promptLogprobs(ids: readonly number[], k: number): PromptLogprobs;
  /** The engine's options of a request, with max_tokens checked against the context length. */
  job(c: CommonRequest, promptIds: number[][], defaultMax: number | null, topLogprobs: number): Job;
  /** Runs a job: streamed (the events written as they come), or resolved with its choices (null: answered otherwise). */
  runJob(req: IncomingMessage, res: ServerResponse, job: Job, o: { stream: false }, info?: RequestInfo): Promise<ChoiceState[] | null>;
  runJob(req: IncomingMessage, res: ServerResponse, job: Job, o: { stream: true } & StreamEvents, info?: RequestInfo): Promise<ChoiceState[] | null>;
  sendJson(res: ServerResponse, status: number, body: unknown): void;
  /** How a token is shown in log-probs: its text, or "token_id:N" (vLLM's return_tokens_as_token_ids). */
  tokenString(id: number, asId: boolean): string;
}

/** An endpoint: its request's parser and what answers it (the server checks the model name between). */
export interface Endpoint<R extends CommonRequest> {
  parse(body: unknown, limits: Limits): R;
  answer(ctx: EndpointContext, req: IncomingMessage, res: ServerResponse, c: R, info: RequestInfo): Promise<void>;
}

/** OpenAI's usage of an answer (also noted for the request line). */
export function usage(promptTokens: number, choices: readonly ChoiceState[], info?: RequestInfo): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const completion = choices.reduce((a, ch) => a + ch.tokens.length, 0);
  if (info) {
    info.promptTokens = promptTokens;
    info.completionTokens = completion;
  }
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

/** Prompt tokens of a job's prompts. */
export const promptTokens = (promptIds: readonly number[][]): number => promptIds.reduce((a, p) => a + p.length, 0);

/** Tokens' texts, decoded once each (up to a million kept). */
export class TokenStrings {
  private readonly cache = new Map<number, string>();
  constructor(private readonly tokenizer: Tokenizer) {}

  get(id: number, asId: boolean): string {
    if (asId) return `token_id:${id}`;
    let s = this.cache.get(id);
    if (s === undefined) {
      s = this.tokenizer.decode([id]);
      if (this.cache.size < 1_000_000) this.cache.set(id, s);
    }
    return s;
  }
}

/**
 * Answers a request with its job: streamed (`stream`'s events, then [DONE]), or whole (`whole(choices)` as
 * JSON, 200). Nothing more to do when the request ended otherwise (client gone, timeout, engine failure).
 */
export async function respond(ctx: EndpointContext, req: IncomingMessage, res: ServerResponse, job: Job, info: RequestInfo, stream: StreamEvents | null, whole: (choices: ChoiceState[]) => Record<string, unknown>): Promise<void> {
  if (stream) {
    await ctx.runJob(req, res, job, { stream: true, ...stream }, info);
    return;
  }
  const choices = await ctx.runJob(req, res, job, { stream: false }, info);
  if (choices) ctx.sendJson(res, 200, whole(choices));
}

/**
 * A position's top log-probs keyed by token, the chosen token first: a token whose string is already a key
 * (two ids that decode alike, e.g. incomplete UTF-8 bytes that both decode to U+FFFD) is keyed
 * "token_id:N" instead of overwriting the other's entry, so every alternative keeps its own log-prob and
 * the chosen token's key is the string in `tokens`.
 */
export function topLogprobsDict(chosen: number, chosenLp: number, top: readonly [number, number][] | null, str: (id: number) => string): Record<string, number> {
  const d: Record<string, number> = {};
  const owner = new Map<string, number>();
  const put = (id: number, lp: number): void => {
    let k = str(id);
    const o = owner.get(k);
    if (o === id) return;
    if (o !== undefined) k = `token_id:${id}`;
    owner.set(k, id);
    d[k] = lp;
  };
  put(chosen, chosenLp);
  for (const [t, lp] of top ?? []) put(t, lp);
  return d;
}

/** vLLM's prompt_logprobs of one prompt: null at the first token, then {id: {logprob, rank, decoded_token}} of the prompt's token and the top k. */
export function vllmPromptLogprobs(ids: readonly number[], p: PromptLogprobs, str: (id: number) => string): (Record<string, { logprob: number; rank: number | null; decoded_token: string }> | null)[] {
  return ids.map((id, t) => {
    if (t === 0) return null;
    const d: Record<string, { logprob: number; rank: number | null; decoded_token: string }> = {};
    d[String(id)] = { logprob: p.logprobs[t]!, rank: p.ranks[t] ?? null, decoded_token: str(id) };
    (p.tops[t] ?? []).forEach(([tid, lp], j) => {
      if (d[String(tid)] === undefined) d[String(tid)] = { logprob: lp, rank: j + 1, decoded_token: str(tid) };
    });
    return d;
  });
}
