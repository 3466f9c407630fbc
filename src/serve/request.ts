// A request in the serving engine and what it is told: the sequences' parameters, the tokens and text
// handed to its listener, how each sequence ended, and the errors of submit().
import { Generator } from '../torch/index.js';
import { StopStrings } from '../text/stop_strings.js';
import { isGreedy, type PenaltyOptions } from '../generate/sampling.js';

export interface SequenceParams extends PenaltyOptions {
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
  /** 0 = off (min_p). */
  minP?: number;
  /** The request's own sampling generator (default: the engine's shared one). */
  seed?: number;
  /** Texts that end a sequence (finish 'stop'); the text is cut before them (after them with includeStopStr). */
  stop?: string[];
  /** Keep the stop string that ended a sequence in its text (default false). */
  includeStopStr?: boolean;
  /** Leave special tokens out of the text (default true). */
  skipSpecialTokens?: boolean;
  /** Further tokens that end a sequence (finish 'stop'). */
  stopTokenIds?: number[];
  /** Go on after EOS (default false). */
  ignoreEos?: boolean;
  /** Only these tokens may be sampled (vLLM's allowed_token_ids; default: any). */
  allowedTokenIds?: number[];
  /** Token sequences never generated (vLLM's bad_words, tokenised by serve/bad_words.ts's badWordsIds). */
  badWordsIds?: number[][];
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
  finish: ApiFinishReason | null;
  /** The stop string or stop token that ended it (null for EOS and length). */
  stopReason: string | number | null;
}

/**
 * How a served sequence ended, in the API's words (OpenAI's finish_reason, with vLLM's 'abort' for a
 * cancelled one): EOS, a stop token and a stop string are all 'stop' (the stop reason tells them apart).
 * Not src/generate's FinishReason, which tells EOS from stop tokens and strings.
 */
export type ApiFinishReason = 'stop' | 'length' | 'abort';

export interface SequenceEnd {
  seq: number;
  reason: ApiFinishReason;
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


/** A request in the engine: cancel() ends its sequences (finish 'abort') at the next step. */
export class EngineRequest {
  cancelled = false;
  /** The engine's step count when it was queued. */
  queuedAt = 0;
  /** Sequences not finished yet. */
  live: number;
  readonly generator: Generator | undefined;
  readonly stops: StopStrings;
  constructor(readonly id: number, readonly prompt: number[], readonly n: number, readonly params: SequenceParams, readonly listener: RequestListener, private readonly onCancel: (req: EngineRequest) => void, device: string) {
    this.live = n;
    this.stops = new StopStrings(params.stop);
    this.generator = params.seed !== undefined && !isGreedy(params) ? new Generator(params.seed, device) : undefined;
  }
  cancel(): void {
    this.onCancel(this);
  }
}

/** The start of every context-length error, worded as vLLM's and OpenAI's (clients match on it). */
export function contextLengthHead(maxLen: number): string {
  return `This model's maximum context length is ${maxLen} tokens. However, you requested`;
}

/**
 * The one check of the context length: why a prompt of `promptTokens` and `maxTokens` new tokens does not
 * fit in `maxLen` positions (with the request field to blame: `promptParam`, `messages` on chat), or null when
 * it does. The message begins as vLLM's and OpenAI's do ("This model's maximum context length is N tokens"),
 * which clients (LiteLLM's context-window fallbacks) match.
 */
export function contextOverflow(promptTokens: number, maxTokens: number, maxLen: number, promptParam = 'prompt'): { param: string; message: string } | null {
  const head = contextLengthHead(maxLen);
  const what = promptParam === 'messages' ? 'messages' : 'prompt';
  if (promptTokens >= maxLen) return { param: promptParam, message: `${head} ${promptTokens} tokens in the ${what}. Please reduce the length of the ${what}.` };
  if (promptTokens + maxTokens > maxLen) {
    return { param: 'max_tokens', message: `${head} ${promptTokens + maxTokens} tokens (${promptTokens} in the ${what}, ${maxTokens} in the completion). Please reduce the length of the ${what} or completion.` };
  }
  return null;
}
