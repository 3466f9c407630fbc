// The OpenAI API's requests as the server reads them: each field checked for its type and range, with
// errors in OpenAI's shape ({"error": {"message", "type", "param", "code"}}) that name the field.
// Fields of OpenAI's API and of vLLM's (and SGLang's) extensions that the server implements are read;
// unknown fields are ignored (as OpenAI and vLLM do); every known field it does not implement is refused
// with a 400 naming it when it would change the output (beam search, structured outputs, tools, ...); at its
// neutral value it is accepted.

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly type = 'invalid_request_error', readonly param: string | null = null, readonly code: string | null = null, readonly headers: Record<string, string> = {}) {
    super(message);
  }
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null): ApiError => new ApiError(400, message, 'invalid_request_error', param, code);

export interface Limits {
  /** max_tokens at most. */
  maxTokens: number;
  /** n at most. */
  maxN: number;
  /** Sequences of one request at most (prompts x n). */
  maxSequences: number;
  /** Top log-probs at most. */
  maxLogprobs: number;
  /** Stop strings at most. */
  maxStops: number;
  /**
   * Sampling defaults for a request that gives none: the model's generation_config.json, as vLLM's
   * `--generation-config auto` (its default) reads them; absent: OpenAI's (temperature 1, top_p 1, no top-k).
   */
  samplingDefaults?: SamplingDefaults;
}

/** generation_config.json's sampling fields that a request's omitted fields take. */
export interface SamplingDefaults {
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  /** generation_config.json's max_new_tokens: max_tokens at most (given or not, as vLLM caps it). */
  maxTokens?: number;
}

/** Sampling and output options shared by both endpoints. */
export interface CommonRequest {
  /** Undefined: the served model (as vLLM takes a request without one). */
  model: string | undefined;
  n: number;
  /** Undefined: the endpoint's default. */
  maxTokens: number | undefined;
  minTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | undefined;
  stop: string[];
  stopTokenIds: number[];
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
  tokensAsIds: boolean;
  returnTokenIds: boolean;
  /** Keep tokens whose probability is at least minP times the most likely one's (0 = off). */
  minP: number;
  /** 1 = off; > 0. */
  repetitionPenalty: number;
  /** [-2, 2]; 0 = off. */
  presencePenalty: number;
  frequencyPenalty: number;
  /** Token id -> bias, clamped to [-100, 100] (as vLLM); ids are checked against the vocabulary by the server. */
  logitBias: Record<number, number>;
  /** vLLM's allowed_token_ids: only these may be sampled (null: any); checked against the vocabulary by the server. */
  allowedTokenIds: number[] | null;
  /** vLLM's bad_words: words never generated (tokenised by the server). */
  badWords: string[];
  /** Keep the stop string that ended a sequence in its text (vLLM's include_stop_str_in_output, SGLang's no_stop_trim). */
  includeStopStr: boolean;
  /** Leave special tokens out of the text (default true). */
  skipSpecialTokens: boolean;
  /** Add the tokenizer's special tokens (e.g. BOS) to a text prompt; undefined: the endpoint's default. */
  addSpecialTokens: boolean | undefined;
  /** Keep only this many prompt tokens (-1: the model's context length), from the side `truncationSide`. */
  truncatePromptTokens: number | undefined;
  truncationSide: 'left' | 'right';
  /** Log-probs of the prompt's tokens (vLLM's prompt_logprobs): null: none; k: each and k alternatives. */
  promptLogprobs: number | null;
}

export interface CompletionRequest extends CommonRequest {
  /** Texts or token id lists. */
  prompts: (string | number[])[];
  /** The prompt before the completion in text and log-probs (with max_tokens 0: the prompt only). */
  echo: boolean;
  /** null: no log-probs; k: the sampled token's and k alternatives. */
  logprobs: number | null;
}

export interface ChatRequest extends CommonRequest {
  messages: { role: string; content: string }[];
  logprobs: boolean;
  topLogprobs: number;
  addGenerationPrompt: boolean;
  continueFinalMessage: boolean;
  /** `chat_template_kwargs`: variables given to the chat template (vLLM's field), e.g. `{"enable_thinking": false}`. */
  chatTemplateKwargs: Record<string, unknown>;
}

type Body = Record<string, unknown>;

const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

function present(b: Body, k: string): boolean {
  return b[k] !== undefined && b[k] !== null;
}

function int(b: Body, k: string, dflt: number, min: number, max: number): number;
function int(b: Body, k: string, dflt: undefined, min: number, max: number): number | undefined;
function int(b: Body, k: string, dflt: number | undefined, min: number, max: number): number | undefined {
  if (!present(b, k)) return dflt;
  const v = b[k];
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badRequest(`'${k}' must be an integer, got ${typeName(v)} ${JSON.stringify(v)}`, k, 'invalid_type');
  if (v < min || v > max) throw badRequest(`'${k}' must be in [${min}, ${max}], got ${v}`, k, 'out_of_range');
  return v;
}

function number(b: Body, k: string, dflt: number, min: number, max: number, open = false): number {
  if (!present(b, k)) return dflt;
  const v = b[k];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(`'${k}' must be a number, got ${typeName(v)}`, k, 'invalid_type');
  if (v < min || v > max || (open && v === min)) throw badRequest(`'${k}' must be in ${open ? '(' : '['}${min}, ${max}], got ${v}`, k, 'out_of_range');
  return v;
}

function bool(b: Body, k: string, dflt: boolean): boolean {
  if (!present(b, k)) return dflt;
  const v = b[k];
  if (typeof v !== 'boolean') throw badRequest(`'${k}' must be a boolean, got ${typeName(v)}`, k, 'invalid_type');
  return v;
}

/** Fields of OpenAI's API that would change the output and that the server does not implement. */
function refuseUnsupported(b: Body): void {
  if (present(b, 'tools') && (!Array.isArray(b.tools) || b.tools.length > 0)) throw badRequest("'tools' are not supported", 'tools', 'unsupported');
  if (present(b, 'functions') && (!Array.isArray(b.functions) || b.functions.length > 0)) throw badRequest("'functions' are not supported", 'functions', 'unsupported');
  if (present(b, 'tool_choice') && b.tool_choice !== 'none' && b.tool_choice !== 'auto') throw badRequest("'tool_choice' is not supported (no tools)", 'tool_choice', 'unsupported');
  // vLLM's and SGLang's sampling extensions that the server does not implement: refused unless neutral.
  for (const k of ['logprob_token_ids', 'logits_processors', 'prompt_embeds', 'custom_logit_processor', 'stop_regex']) {
    if (present(b, k)) throw badRequest(`'${k}' is not supported`, k, 'unsupported');
  }
  if (bool(b, 'use_beam_search', false)) throw badRequest("'use_beam_search' is not supported", 'use_beam_search', 'unsupported');
  if (number(b, 'length_penalty', 1, -1e9, 1e9) !== 1) throw badRequest("'length_penalty' is not supported (beam search only; only 1)", 'length_penalty', 'unsupported');
  if (!bool(b, 'spaces_between_special_tokens', true)) throw badRequest("'spaces_between_special_tokens': false is not supported", 'spaces_between_special_tokens', 'unsupported');
  if (bool(b, 'watermarking', false)) throw badRequest("'watermarking' is not supported", 'watermarking', 'unsupported');
  if (bool(b, 'return_hidden_states', false)) throw badRequest("'return_hidden_states' is not supported", 'return_hidden_states', 'unsupported');
  if (int(b, 'priority', 0, -(2 ** 53) + 1, 2 ** 53 - 1) !== 0) throw badRequest("'priority' is not supported (only 0)", 'priority', 'unsupported');
  for (const k of ['repetition_detection', 'thinking_token_budget', 'vllm_xargs', 'lora_path']) {
    if (present(b, k) && !(k === 'thinking_token_budget' && b[k] === -1)) throw badRequest(`'${k}' is not supported`, k, 'unsupported');
  }
  // Structured outputs (vLLM's structured_outputs and older guided_* fields, SGLang's json_schema, regex, ebnf).
  for (const k of ['structured_outputs', 'guided_json', 'guided_regex', 'guided_choice', 'guided_grammar', 'guided_whitespace_pattern', 'guided_decoding_backend', 'json_schema', 'regex', 'ebnf']) {
    if (present(b, k)) throw badRequest(`'${k}' (structured output) is not supported`, k, 'unsupported');
  }
  if (present(b, 'response_format')) {
    const rf = b.response_format as { type?: unknown };
    if (typeof rf !== 'object' || rf.type !== 'text') throw badRequest("'response_format' other than {\"type\": \"text\"} is not supported", 'response_format', 'unsupported');
  }
}

function common(b: Body, limits: Limits, maxTokensKeys: string[], minMaxTokens = 1): CommonRequest {
  // As vLLM: `model` may be left out (the served model answers); given, it must be a string.
  if (present(b, 'model') && typeof b.model !== 'string') throw badRequest(`'model' must be a string, got ${typeName(b.model)}`, 'model', 'invalid_type');
  refuseUnsupported(b);
  const n = int(b, 'n', 1, 1, limits.maxN);
  if (present(b, 'best_of') && int(b, 'best_of', n, 1, limits.maxN) !== n) throw badRequest("'best_of' other than n is not supported", 'best_of', 'unsupported');
  let maxTokens: number | undefined;
  for (const k of maxTokensKeys) {
    const v = int(b, k, undefined, minMaxTokens, limits.maxTokens);
    if (v !== undefined) maxTokens = Math.min(maxTokens ?? v, v);
  }
  const minTokens = int(b, 'min_tokens', 0, 0, limits.maxTokens);
  if (maxTokens !== undefined && minTokens > maxTokens) throw badRequest("'min_tokens' must not exceed 'max_tokens'", 'min_tokens', 'out_of_range');
  const d = limits.samplingDefaults ?? {};
  const temperature = number(b, 'temperature', d.temperature ?? 1, 0, 2);
  const topP = number(b, 'top_p', d.topP ?? 1, 0, 1, true);
  const topKRaw = int(b, 'top_k', d.topK ?? 0, -1, 1_000_000_000);
  // Any integer seed, as vLLM takes 64-bit ones (a JSON number past 2^53 arrives rounded: seeded all the same).
  const seed = int(b, 'seed', undefined, -Infinity, Infinity);
  let stop: string[] = [];
  if (present(b, 'stop')) {
    const v = b.stop;
    if (typeof v === 'string') stop = [v];
    else if (Array.isArray(v) && v.every((s) => typeof s === 'string')) stop = v as string[];
    else throw badRequest("'stop' must be a string or a list of strings", 'stop', 'invalid_type');
    if (stop.length > limits.maxStops) throw badRequest(`'stop' may have at most ${limits.maxStops} strings`, 'stop', 'out_of_range');
    stop = stop.filter((s) => s.length > 0);
  }
  let stopTokenIds: number[] = [];
  if (present(b, 'stop_token_ids')) {
    const v = b.stop_token_ids;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) throw badRequest("'stop_token_ids' must be a list of token ids", 'stop_token_ids', 'invalid_type');
    stopTokenIds = v as number[];
  }
  const stream = bool(b, 'stream', false);
  let includeUsage = false;
  if (present(b, 'stream_options')) {
    const so = b.stream_options;
    if (typeof so !== 'object' || Array.isArray(so)) throw badRequest("'stream_options' must be an object", 'stream_options', 'invalid_type');
    if (!stream) throw badRequest("'stream_options' is only allowed with 'stream': true", 'stream_options');
    includeUsage = bool(so as Body, 'include_usage', false);
  }
  const minP = number(b, 'min_p', d.minP ?? 0, 0, 1);
  const repetitionPenalty = number(b, 'repetition_penalty', d.repetitionPenalty ?? 1, 0, Number.MAX_VALUE, true);
  const presencePenalty = number(b, 'presence_penalty', 0, -2, 2);
  const frequencyPenalty = number(b, 'frequency_penalty', 0, -2, 2);
  const logitBias = parseLogitBias(b);
  let allowedTokenIds: number[] | null = null;
  if (present(b, 'allowed_token_ids')) {
    const v = b.allowed_token_ids;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) throw badRequest("'allowed_token_ids' must be a list of token ids", 'allowed_token_ids', 'invalid_type');
    if (v.length === 0) throw badRequest("'allowed_token_ids' must not be empty", 'allowed_token_ids', 'out_of_range');
    allowedTokenIds = v as number[];
  }
  let badWords: string[] = [];
  if (present(b, 'bad_words')) {
    const v = b.bad_words;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw badRequest("'bad_words' must be a list of strings", 'bad_words', 'invalid_type');
    badWords = v as string[];
  }
  const includeStopStr = bool(b, 'include_stop_str_in_output', false) || bool(b, 'no_stop_trim', false);
  const skipSpecialTokens = bool(b, 'skip_special_tokens', true);
  const addSpecialTokens = present(b, 'add_special_tokens') ? bool(b, 'add_special_tokens', true) : undefined;
  const truncatePromptTokens = int(b, 'truncate_prompt_tokens', undefined, -1, 2 ** 53 - 1);
  let truncationSide: 'left' | 'right' = 'left';
  if (present(b, 'truncation_side')) {
    if (b.truncation_side !== 'left' && b.truncation_side !== 'right') throw badRequest("'truncation_side' must be 'left' or 'right'", 'truncation_side', 'invalid_type');
    truncationSide = b.truncation_side;
  }
  const promptLogprobs = present(b, 'prompt_logprobs') ? int(b, 'prompt_logprobs', 0, -1, limits.maxLogprobs) : null;
  if (promptLogprobs !== null && stream) throw badRequest("'prompt_logprobs' are not available with 'stream': true", 'prompt_logprobs');
  return {
    model: b.model as string | undefined,
    n,
    minP,
    repetitionPenalty,
    presencePenalty,
    frequencyPenalty,
    logitBias,
    allowedTokenIds,
    badWords,
    includeStopStr,
    skipSpecialTokens,
    addSpecialTokens,
    truncatePromptTokens,
    truncationSide,
    promptLogprobs: promptLogprobs === -1 ? limits.maxLogprobs : promptLogprobs,
    maxTokens,
    minTokens,
    temperature,
    topP,
    topK: topKRaw === -1 ? 0 : topKRaw,
    // Seeds are taken modulo 2^31 (libtorch's generators take 64-bit seeds; JavaScript numbers reach 2^53).
    seed: seed === undefined ? undefined : ((seed % 2 ** 31) + 2 ** 31) % 2 ** 31,
    stop,
    stopTokenIds,
    ignoreEos: bool(b, 'ignore_eos', false),
    stream,
    includeUsage,
    tokensAsIds: bool(b, 'return_tokens_as_token_ids', false),
    returnTokenIds: bool(b, 'return_token_ids', false),
  };
}

/** `logit_bias`: {"token id": bias}, the biases clamped to [-100, 100] as vLLM clamps them. */
function parseLogitBias(b: Body): Record<number, number> {
  if (!present(b, 'logit_bias')) return {};
  const v = b.logit_bias;
  if (typeof v !== 'object' || Array.isArray(v)) throw badRequest(`'logit_bias' must be an object of token ids and biases, got ${typeName(v)}`, 'logit_bias', 'invalid_type');
  const out: Record<number, number> = {};
  for (const [k, x] of Object.entries(v as Body)) {
    if (!/^\d+$/.test(k)) throw badRequest(`'logit_bias' keys must be token ids, got ${JSON.stringify(k)}`, 'logit_bias', 'invalid_type');
    if (typeof x !== 'number' || !Number.isFinite(x)) throw badRequest(`'logit_bias' of token ${k} must be a number, got ${typeName(x)}`, 'logit_bias', 'invalid_type');
    out[Number(k)] = Math.min(100, Math.max(-100, x));
  }
  return out;
}

function asObject(body: unknown): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest(`the request body must be a JSON object, got ${typeName(body)}`);
  return body as Body;
}

const isTokenList = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isInteger(x));

export function parseCompletion(body: unknown, limits: Limits): CompletionRequest {
  const b = asObject(body);
  // max_tokens 0: the prompt only, with echo (how lm-evaluation-harness scores text).
  const echo = bool(b, 'echo', false);
  const c = common(b, limits, ['max_tokens'], echo ? 0 : 1);
  if (echo && c.stream) throw badRequest("'echo' is not supported with 'stream': true", 'echo', 'unsupported');
  if (present(b, 'suffix')) throw badRequest("'suffix' is not supported", 'suffix', 'unsupported');
  const p = b.prompt;
  let prompts: (string | number[])[];
  if (typeof p === 'string') prompts = [p];
  else if (isTokenList(p)) prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) prompts = p as string[];
  else if (Array.isArray(p) && p.length > 0 && p.every(isTokenList)) prompts = p as number[][];
  else if (p === undefined || p === null) throw badRequest("'prompt' is required", 'prompt', 'missing_required_parameter');
  else throw badRequest("'prompt' must be a string, a list of strings, a list of token ids or a list of lists of token ids (none empty)", 'prompt', 'invalid_type');
  if (prompts.length * c.n > limits.maxSequences) throw badRequest(`prompts x n = ${prompts.length * c.n} sequences, more than ${limits.maxSequences} in one request`, 'prompt', 'out_of_range');
  // logprobs: N alternatives; true / false as vLLM reads them (1 / none).
  const logprobs = b.logprobs === true ? 1 : b.logprobs === false || !present(b, 'logprobs') ? null : int(b, 'logprobs', 0, 0, limits.maxLogprobs);
  return { ...c, prompts, logprobs, echo };
}

export function parseChat(body: unknown, limits: Limits): ChatRequest {
  const b = asObject(body);
  const c = common(b, limits, ['max_tokens', 'max_completion_tokens']);
  if (bool(b, 'echo', false)) throw badRequest("'echo' is not supported on chat completions", 'echo', 'unsupported');
  for (const k of ['documents', 'chat_template']) if (present(b, k)) throw badRequest(`'${k}' is not supported`, k, 'unsupported');
  const m = b.messages;
  if (!Array.isArray(m) || m.length === 0) throw badRequest("'messages' must be a non-empty list", 'messages', m === undefined ? 'missing_required_parameter' : 'invalid_type');
  const messages = m.map((msg, i) => {
    const where = `messages[${i}]`;
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw badRequest(`${where} must be an object`, where, 'invalid_type');
    const { role, content } = msg as Body;
    if (typeof role !== 'string' || role.length === 0) throw badRequest(`${where}.role must be a string`, `${where}.role`, 'invalid_type');
    let text: string;
    if (typeof content === 'string') text = content;
    else if (content === null || content === undefined) text = '';
    else if (Array.isArray(content)) {
      text = content.map((part, j) => {
        const t = part as Body;
        if (typeof t !== 'object' || t === null || t.type !== 'text' || typeof t.text !== 'string') throw badRequest(`${where}.content[${j}]: only text parts ({"type": "text", "text"}) are supported`, `${where}.content`, 'unsupported');
        return t.text;
      }).join('');
    } else throw badRequest(`${where}.content must be a string or a list of text parts`, `${where}.content`, 'invalid_type');
    return { role, content: text };
  });
  const logprobs = bool(b, 'logprobs', false);
  const topLogprobs = int(b, 'top_logprobs', 0, 0, limits.maxLogprobs);
  if (topLogprobs > 0 && !logprobs) throw badRequest("'top_logprobs' needs 'logprobs': true", 'top_logprobs');
  if (c.n * 1 > limits.maxSequences) throw badRequest(`n = ${c.n} sequences, more than ${limits.maxSequences} in one request`, 'n', 'out_of_range');
  const continueFinalMessage = bool(b, 'continue_final_message', false);
  const addGenerationPrompt = bool(b, 'add_generation_prompt', !continueFinalMessage);
  if (addGenerationPrompt && continueFinalMessage) throw badRequest("'add_generation_prompt' and 'continue_final_message' cannot both be true", 'continue_final_message');
  const chatTemplateKwargs = templateKwargs(b);
  return { ...c, messages, logprobs, topLogprobs, addGenerationPrompt, continueFinalMessage, chatTemplateKwargs };
}

/** POST /tokenize (vLLM's TokenizeCompletionRequest / TokenizeChatRequest). */
export interface TokenizeRequest {
  model: string | undefined;
  prompt: string | undefined;
  messages: { role: string; content: string }[] | undefined;
  /** Undefined: true for a prompt, false for messages (as vLLM). */
  addSpecialTokens: boolean | undefined;
  addGenerationPrompt: boolean;
  continueFinalMessage: boolean;
  chatTemplateKwargs: Record<string, unknown>;
  returnTokenStrs: boolean;
}

export function parseTokenize(body: unknown): TokenizeRequest {
  const b = asObject(body);
  if (present(b, 'model') && typeof b.model !== 'string') throw badRequest("'model' must be a string", 'model', 'invalid_type');
  const hasPrompt = present(b, 'prompt');
  const hasMessages = present(b, 'messages');
  if (hasPrompt === hasMessages) throw badRequest("give either 'prompt' or 'messages'", hasPrompt ? 'messages' : 'prompt', 'missing_required_parameter');
  if (hasPrompt && typeof b.prompt !== 'string') throw badRequest("'prompt' must be a string", 'prompt', 'invalid_type');
  let messages: { role: string; content: string }[] | undefined;
  if (hasMessages) messages = parseChat({ model: '', messages: b.messages }, { maxTokens: 1, maxN: 1, maxSequences: 1, maxLogprobs: 0, maxStops: 0 }).messages;
  const continueFinalMessage = bool(b, 'continue_final_message', false);
  return {
    model: present(b, 'model') ? (b.model as string) : undefined,
    prompt: hasPrompt ? (b.prompt as string) : undefined,
    messages,
    addSpecialTokens: present(b, 'add_special_tokens') ? bool(b, 'add_special_tokens', true) : undefined,
    addGenerationPrompt: bool(b, 'add_generation_prompt', !continueFinalMessage),
    continueFinalMessage,
    chatTemplateKwargs: templateKwargs(b),
    returnTokenStrs: bool(b, 'return_token_strs', false),
  };
}

/** `chat_template_kwargs` (vLLM's field, on chat requests and /tokenize): an object of template variables. */
function templateKwargs(b: Body): Record<string, unknown> {
  const kw = b.chat_template_kwargs;
  if (kw !== undefined && kw !== null && (typeof kw !== 'object' || Array.isArray(kw))) throw badRequest(`'chat_template_kwargs' must be an object, got ${typeName(kw)}`, 'chat_template_kwargs', 'invalid_type');
  return { ...(kw as Body | null | undefined) };
}

/** POST /detokenize (vLLM's DetokenizeRequest). */
export function parseDetokenize(body: unknown): { model: string | undefined; tokens: number[] } {
  const b = asObject(body);
  if (present(b, 'model') && typeof b.model !== 'string') throw badRequest("'model' must be a string", 'model', 'invalid_type');
  const t = b.tokens;
  if (!Array.isArray(t) || !t.every((x) => typeof x === 'number' && Number.isInteger(x))) throw badRequest("'tokens' must be a list of token ids", 'tokens', t === undefined ? 'missing_required_parameter' : 'invalid_type');
  return { model: present(b, 'model') ? (b.model as string) : undefined, tokens: t as number[] };
}
