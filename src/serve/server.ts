// `sppo serve`'s HTTP server: the part of the OpenAI API that vLLM implements and clients use, on
// node:http, in front of the continuous-batching engine (engine.ts).
//
//   GET  /health                    200 (503 while shutting down)
//   GET  /metrics                   the engine's counters, Prometheus' text format (metrics.ts)
//   GET  /v1/models                 the served model
//   POST /v1/completions            prompt as text or token ids (or lists of either) (completions.ts)
//   POST /v1/chat/completions       messages rendered with the model folder's chat template (chat_completions.ts)
//   POST /tokenize, /detokenize     vLLM's: a prompt (or messages) to token ids, token ids to text
//   GET  /tokenizer_info            vLLM's: the special tokens and chat template (lm-evaluation-harness's
//                                   remote tokenizer reads it with /tokenize and /detokenize)
//
// This file is the HTTP part (routes, bodies, errors, keys, streams, shutdown); each POST route's file
// shapes its answers. Both POST routes stream (server-sent events ending with `data: [DONE]`) or not, and return OpenAI's
// shapes; log-probs are the untempered policy's (vLLM's default, the SPPO trainer's reference).
// Security and limits: an API key (Bearer, compared in constant time) on every /v1 route, caps on the body
// size (413), max_tokens and n (400), the queue (429 with Retry-After), a per-request timeout (408), and
// a client that disconnects cancels its sequences. Prompts are not logged unless asked.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJson } from '../util/files.js';
import type { Tokenizer } from '../text/tokenizer.js';
import type { ChatTemplate } from '../text/chat_template.js';
import { contextLengthHead, contextOverflow, EngineClosedError, QueueFullError, type EngineRequest, type SequenceEnd } from './request.js';
import type { Engine } from './engine.js';
import { ApiError, badRequest, type CommonRequest, type Limits, type SamplingDefaults } from './protocol.js';
import { promptTokens, TokenStrings, usage, type ChoiceState, type Endpoint, type EndpointContext, type Job, type RequestInfo, type StreamEvents } from './endpoint.js';
import { completions } from './completions.js';
import { chatCompletions } from './chat_completions.js';
import { metricsText } from './metrics.js';
import { PromptTokenizer } from './tokenize.js';
import { promptLogprobs, type PromptLogprobs } from './prompt_logprobs.js';
import { parseDetokenize, parseTokenize } from './protocol.js';
import { badWordsIds } from './bad_words.js';

export interface ServerOptions extends Partial<Limits> {
  /** The name clients give as `model` (default 'sppo'). */
  modelName?: string;
  /** Where the model was loaded from (shown as `root` in /v1/models). */
  modelDir?: string;
  /** Every /v1 route needs `Authorization: Bearer KEY`. */
  apiKey?: string;
  /** Request bodies at most (default 1 MiB). */
  maxBodyBytes?: number;
  /** A request that runs longer is cancelled (default 600 s). */
  timeoutMs?: number;
  /** Seconds in 429's Retry-After (default 1). */
  retryAfterSeconds?: number;
  /** One line per request (method, route, status, tokens, time). */
  logRequests?: boolean;
  /** Put the prompts in those lines (off by default). */
  logPrompts?: boolean;
  /** Where log lines go (default stderr). */
  log?: (line: string) => void;
  /** Prompts at least this many characters long are tokenised on a worker thread (default 16384). */
  workerChars?: number;
}

/**
 * The sampling defaults of a model folder's generation_config.json (temperature, top_p, top_k, min_p,
 * repetition_penalty; max_new_tokens as a cap on max_tokens), which vLLM applies to requests that leave them out
 * (`--generation-config auto`, its default); {} without the file.
 */
export function readSamplingDefaults(dir: string): SamplingDefaults {
  const path = join(dir, 'generation_config.json');
  if (!existsSync(path)) return {};
  const g = readJson<Record<string, unknown>>(path);
  const num = (k: string, ok: (x: number) => boolean): number | undefined => {
    const v = g[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !ok(v)) throw new Error(`${path}: ${k} must be a number in its range, got ${JSON.stringify(v)}`);
    return v;
  };
  const defaults: SamplingDefaults = {};
  const temperature = num('temperature', (x) => x >= 0);
  const topP = num('top_p', (x) => x > 0 && x <= 1);
  const topK = num('top_k', (x) => Number.isInteger(x) && x >= -1);
  const minP = num('min_p', (x) => x >= 0 && x <= 1);
  if (temperature !== undefined) defaults.temperature = Math.min(temperature, 2);
  if (topP !== undefined) defaults.topP = topP;
  if (topK !== undefined) defaults.topK = topK;
  if (minP !== undefined) defaults.minP = minP;
  const rp = num('repetition_penalty', (x) => x > 0);
  if (rp !== undefined) defaults.repetitionPenalty = rp;
  const maxNew = num('max_new_tokens', (x) => Number.isInteger(x) && x >= 1);
  if (maxNew !== undefined) defaults.maxTokens = maxNew;
  return defaults;
}

/** How long an idle keep-alive connection stays open (see the constructor). */
export const KEEP_ALIVE_MS = 65_000;

const sha = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class SppoServer implements EndpointContext {
  readonly http: Server;
  readonly modelName: string;
  readonly limits: Limits;
  private readonly keyHash: Buffer | null;
  private draining = false;
  private active = 0;
  private activeWaiters: (() => void)[] = [];
  private readonly tokenStrings: TokenStrings;
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly prompts: PromptTokenizer;

  constructor(readonly engine: Engine, readonly tokenizer: Tokenizer, readonly template: ChatTemplate | undefined, readonly opts: ServerOptions = {}) {
    this.modelName = opts.modelName ?? 'sppo';
    this.tokenStrings = new TokenStrings(tokenizer);
    this.prompts = new PromptTokenizer(tokenizer, { workerChars: opts.workerChars });
    const apiKey = opts.apiKey;
    this.keyHash = apiKey ? sha(apiKey) : null;
    this.limits = {
      maxTokens: opts.maxTokens ?? engine.maxModelLen,
      maxN: opts.maxN ?? Math.min(16, engine.maxBatch),
      maxSequences: opts.maxSequences ?? engine.maxBatch,
      maxLogprobs: opts.maxLogprobs ?? 20,
      maxStops: opts.maxStops ?? 16,
      ...(opts.samplingDefaults ? { samplingDefaults: opts.samplingDefaults } : {}),
    };
    this.http = createServer((req, res) => void this.handle(req, res));
    // An idle keep-alive socket is closed after keepAliveTimeout by a timer, and timers run before pending reads:
    // a decoding step that holds the event loop past it (a long prefill, a large batch) would close a socket
    // whose client has just sent its next request, which gets ECONNRESET. Node's 5 s is short beside such a step;
    // 65 s (and headers within it) leaves clients, which reuse a socket for less (undici: the advertised timeout
    // less 1 s; httpx: 5 s), to close first.
    this.http.keepAliveTimeout = KEEP_ALIVE_MS;
    this.http.headersTimeout = KEEP_ALIVE_MS + 1000;
  }

  /** Listens on host:port (port 0: a free one); resolves with the address. */
  listen(port = 8000, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve(this.http.address() as AddressInfo);
      });
    });
  }

  /** The base URL of the OpenAI API (http://host:port/v1). */
  get url(): string {
    const a = this.http.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}/v1`;
  }

  get shuttingDown(): boolean {
    return this.draining;
  }

  /**
   * Stops accepting connections and requests (503), lets every request in flight finish (after `graceMs`
   * the rest are cancelled), then closes every connection.
   */
  async shutdown(graceMs = 30_000): Promise<void> {
    if (!this.draining) {
      // Still listening while draining: /health answers 503 (a load balancer's probe sees the drain),
      // and new requests get 503 with Connection: close; the listener closes when the drain is over.
      this.draining = true;
      this.http.closeIdleConnections();
    }
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
    const done = this.engine.close().then(() => this.whenNoActive());
    if ((await Promise.race([done, grace])) === 'timeout') {
      this.engine.abortAll();
      await Promise.race([this.whenNoActive(), new Promise((r) => setTimeout(r, 2000))]);
    }
    clearTimeout(timer);
    this.http.close();
    this.http.closeIdleConnections();
    this.http.closeAllConnections();
    await this.prompts.close();
  }

  private whenNoActive(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((r) => this.activeWaiters.push(r));
  }

  private log(line: string): void {
    (this.opts.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    this.active++;
    const info: RequestInfo = {};
    res.once('close', () => {
      this.active--;
      if (this.draining) setImmediate(() => this.http.closeIdleConnections());
      if (this.active === 0) {
        const w = this.activeWaiters;
        this.activeWaiters = [];
        for (const f of w) f();
      }
      if (this.opts.logRequests || this.opts.logPrompts) {
        const extra = info.promptTokens !== undefined ? ` prompt_tokens=${info.promptTokens} completion_tokens=${info.completionTokens ?? 0}` : '';
        const prompt = this.opts.logPrompts && info.prompt !== undefined ? ` prompt=${JSON.stringify(info.prompt)}` : '';
        // A request never answered (the client left first) has no status: logged as such, not as 200.
        const status = res.headersSent ? String(res.statusCode) : 'unanswered';
        this.log(`sppo serve: ${req.method} ${req.url} ${status}${res.writableFinished ? '' : ' (client gone)'} ${(performance.now() - t0).toFixed(0)} ms${extra}${prompt}`);
      }
    });
    // CORS as vLLM's default (any origin, method and header), so browser clients can call the API; the API key,
    // when set, still guards every /v1 route. A preflight is answered here, before any route or key.
    res.setHeader('Access-Control-Allow-Origin', '*');
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': req.headers['access-control-request-headers'] ?? '*',
        'Access-Control-Max-Age': '600',
      });
      res.end();
      return;
    }
    try {
      await this.route(req, res, info);
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(500, `internal error: ${(err as Error)?.message ?? String(err)}`, 'server_error', null, 'internal_error');
      if (!(err instanceof ApiError)) this.log(`sppo serve: ${req.method} ${req.url}: ${(err as Error)?.stack ?? String(err)}`);
      this.sendError(req, res, e);
    }
  }

  private sendError(req: IncomingMessage, res: ServerResponse, e: ApiError): void {
    if (res.headersSent) {
      // Streaming: an error event (the openai client raises it), then the end of the stream.
      if (!res.writableEnded) res.end(`data: ${JSON.stringify(e.body())}\n\n`);
      return;
    }
    const headers: Record<string, string> = { 'Content-Type': 'application/json', ...e.headers };
    if (this.draining || e.status === 413) headers.Connection = 'close';
    res.writeHead(e.status, headers);
    res.end(JSON.stringify(e.body()));
    if (e.status === 413 && !req.complete) {
      // Read the rest of an oversized body away (so the client sees the 413), up to a bound.
      let seen = 0;
      req.on('data', (c: Buffer) => {
        seen += c.length;
        if (seen > 64 * 1024 * 1024) req.destroy();
      });
      req.resume();
    }
  }

  sendJson(res: ServerResponse, status: number, body: unknown): void {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (this.draining) headers.Connection = 'close';
    res.writeHead(status, headers);
    res.end(JSON.stringify(body));
  }

  private checkKey(req: IncomingMessage): void {
    if (!this.keyHash) return;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    // Constant time: both sides hashed to 32 bytes before timingSafeEqual.
    if (!m || !timingSafeEqual(sha(m[1]!), this.keyHash)) {
      throw new ApiError(401, 'Incorrect or missing API key (send Authorization: Bearer KEY)', 'invalid_request_error', null, 'invalid_api_key', { 'WWW-Authenticate': 'Bearer' });
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, info: RequestInfo): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (path === '/health') {
      if (method !== 'GET' && method !== 'HEAD') throw new ApiError(405, `${method} ${path}: method not allowed`, 'invalid_request_error', null, 'method_not_allowed');
      if (this.draining) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
      return;
    }
    if (path === '/metrics') {
      if (method !== 'GET') throw new ApiError(405, `${method} ${path}: method not allowed`, 'invalid_request_error', null, 'method_not_allowed');
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      res.end(metricsText(this.engine));
      return;
    }
    if (path === '/tokenizer_info') {
      this.checkKey(req);
      if (method !== 'GET') throw new ApiError(405, `${method} ${path}: method not allowed (use GET)`, 'invalid_request_error', null, 'method_not_allowed');
      this.sendJson(res, 200, this.tokenizerInfo());
      return;
    }
    if (path === '/tokenize' || path === '/detokenize') {
      this.checkKey(req);
      if (this.draining) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
      if (method !== 'POST') throw new ApiError(405, `${method} ${path}: method not allowed (use POST)`, 'invalid_request_error', null, 'method_not_allowed');
      const body = await this.readJson(req);
      if (path === '/tokenize') await this.tokenize(res, body);
      else this.detokenize(res, body);
      return;
    }
    if (!path.startsWith('/v1/') && path !== '/v1') throw new ApiError(404, `${method} ${path}: no such route`, 'invalid_request_error', null, 'not_found');
    this.checkKey(req);
    if (this.draining) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    const routes: Record<string, string> = { '/v1/models': 'GET', '/v1/completions': 'POST', '/v1/chat/completions': 'POST' };
    const modelRoute = /^\/v1\/models\/(.+)$/.exec(path);
    const want = routes[path] ?? (modelRoute ? 'GET' : undefined);
    if (!want) throw new ApiError(404, `${method} ${path}: no such route`, 'invalid_request_error', null, 'not_found');
    if (method !== want) throw new ApiError(405, `${method} ${path}: method not allowed (use ${want})`, 'invalid_request_error', null, 'method_not_allowed');
    if (modelRoute) {
      let id: string;
      try {
        id = decodeURIComponent(modelRoute[1]!);
      } catch {
        id = modelRoute[1]!;
      }
      this.checkModel(id);
      this.sendJson(res, 200, this.modelCard());
      return;
    }
    if (path === '/v1/models') {
      this.sendJson(res, 200, { object: 'list', data: [this.modelCard()] });
      return;
    }
    const body = await this.readJson(req);
    if (path === '/v1/completions') await this.answer(completions, req, res, body, info);
    else await this.answer(chatCompletions, req, res, body, info);
  }

  /** A POST route: the request parsed, its model checked, then answered by its endpoint's file. */
  private async answer<R extends CommonRequest>(endpoint: Endpoint<R>, req: IncomingMessage, res: ServerResponse, body: unknown, info: RequestInfo): Promise<void> {
    const c = endpoint.parse(body, this.limits);
    if (c.model !== undefined) this.checkModel(c.model);
    await endpoint.answer(this, req, res, c, info);
  }

  private modelCard(): Record<string, unknown> {
    return { id: this.modelName, object: 'model', created: this.created, owned_by: 'sppo', root: this.opts.modelDir ?? this.modelName, parent: null, max_model_len: this.engine.maxModelLen };
  }

  /** The one check of a model name (requests' `model`, /v1/models/ID): 404 unless it is the served one. */
  private checkModel(name: string): void {
    if (name !== this.modelName) throw new ApiError(404, `The model '${name}' does not exist (this server serves '${this.modelName}')`, 'invalid_request_error', 'model', 'model_not_found');
  }

  get vocabSize(): number {
    return this.engine.vocabSize;
  }

  private readJson(req: IncomingMessage): Promise<unknown> {
    const max = this.opts.maxBodyBytes ?? 1024 * 1024;
    const tooLarge = (): ApiError => new ApiError(413, `the request body is larger than ${max} bytes`, 'invalid_request_error', null, 'request_too_large');
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) return Promise.reject(tooLarge());
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      const onData = (c: Buffer): void => {
        size += c.length;
        if (size > max) {
          failed = true;
          req.off('data', onData);
          reject(tooLarge());
          return;
        }
        chunks.push(c);
      };
      req.on('data', onData);
      req.once('error', (e) => reject(new ApiError(400, `cannot read the request: ${e.message}`)));
      // A client that goes away in the middle of its body leaves nothing to answer.
      req.once('close', () => {
        if (!req.complete && !failed) reject(new ApiError(400, 'the client closed the connection before the end of the request body', 'invalid_request_error', null, 'incomplete_body'));
      });
      req.once('end', () => {
        if (failed) return;
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve(JSON.parse(text));
        } catch (e) {
          reject(badRequest(`the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json'));
        }
      });
    });
  }

  /**
   * The token ids of a request's prompts: a text's length checked against the context length before it is
   * tokenised (a lower bound on its tokens), long texts tokenised on the worker thread; token ids checked
   * against the vocabulary; then truncate_prompt_tokens. `param`: the field errors name.
   */
  async promptIds(c: CommonRequest, prompts: readonly (string | number[])[], addSpecialTokens: boolean, param: string): Promise<number[][]> {
    const maxLen = this.engine.maxModelLen;
    const out: number[][] = [];
    for (const p of prompts) {
      let ids: number[];
      if (typeof p === 'string') {
        const least = this.prompts.minTokens(p);
        if (c.truncatePromptTokens === undefined && least >= maxLen) {
          throw badRequest(`${contextLengthHead(maxLen)} at least ${least} tokens in the ${param === 'messages' ? 'messages' : 'prompt'} (${p.length} characters). Please reduce its length.`, param, 'context_length_exceeded');
        }
        ids = await this.prompts.encode(p, addSpecialTokens);
      } else {
        const v = this.vocabSize;
        for (const t of p) if (t < 0 || t >= v) throw badRequest(`token id ${t} is out of the vocabulary [0, ${v})`, param, 'out_of_range');
        ids = p;
      }
      if (c.truncatePromptTokens !== undefined) {
        const keep = c.truncatePromptTokens === -1 ? maxLen : c.truncatePromptTokens;
        if (ids.length > keep) ids = c.truncationSide === 'left' ? ids.slice(ids.length - keep) : ids.slice(0, keep);
      }
      if (ids.length === 0) throw badRequest(typeof p === 'string' && p.length > 0 ? 'the prompt has no tokens' : 'the prompt is empty', param);
      out.push(ids);
    }
    return out;
  }

  /** Log-probs of a prompt's own tokens (and k alternatives at each position). */
  promptLogprobs(ids: readonly number[], k: number): PromptLogprobs {
    return promptLogprobs(this.engine.model, ids, k);
  }

  /** POST /tokenize (vLLM's): {prompt} or {messages} to {count, max_model_len, tokens[, token_strs]}. */
  private async tokenize(res: ServerResponse, body: unknown): Promise<void> {
    const t = parseTokenize(body);
    if (t.model !== undefined) this.checkModel(t.model);
    let ids: number[];
    if (t.messages) {
      if (!this.template) throw badRequest('this model has no chat template: tokenize a prompt', 'messages', 'no_chat_template');
      let text: string;
      try {
        text = this.template.render(t.messages, { ...t.chatTemplateKwargs, addGenerationPrompt: t.addGenerationPrompt, continueFinalMessage: t.continueFinalMessage });
      } catch (e) {
        throw badRequest((e as Error).message, 'messages', 'chat_template_error');
      }
      ids = await this.prompts.encode(text, t.addSpecialTokens ?? false);
    } else ids = await this.prompts.encode(t.prompt!, t.addSpecialTokens ?? true);
    this.sendJson(res, 200, { count: ids.length, max_model_len: this.engine.maxModelLen, tokens: ids, ...(t.returnTokenStrs ? { token_strs: ids.map((i) => this.tokenString(i, false)) } : {}) });
  }

  /** GET /tokenizer_info (vLLM's): the tokenizer's special tokens, its chat template and the context length. */
  private tokenizerInfo(): Record<string, unknown> {
    const sp = this.tokenizer.specialTokens;
    const one = (k: string): string | null => (typeof sp[k] === 'string' ? (sp[k] as string) : null);
    return {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: one('bos_token'),
      eos_token: one('eos_token'),
      pad_token: one('pad_token'),
      unk_token: one('unk_token'),
      chat_template: this.template?.text ?? null,
      model_max_length: this.engine.maxModelLen,
    };
  }

  /** POST /detokenize (vLLM's): {tokens} to {prompt}. */
  private detokenize(res: ServerResponse, body: unknown): void {
    const d = parseDetokenize(body);
    if (d.model !== undefined) this.checkModel(d.model);
    const v = this.vocabSize;
    for (const t of d.tokens) if (t < 0 || t >= v) throw badRequest(`token id ${t} is out of the vocabulary [0, ${v})`, 'tokens', 'out_of_range');
    this.sendJson(res, 200, { prompt: this.tokenizer.decode(d.tokens) });
  }

  /** The engine's options of a request, with max_tokens checked against the context length. */
  job(c: CommonRequest, promptIds: number[][], defaultMax: number | null, topLogprobs: number): Job {
    const maxLen = this.engine.maxModelLen;
    const longest = Math.max(...promptIds.map((p) => p.length));
    const cap = this.limits.samplingDefaults?.maxTokens;
    let maxTokens = c.maxTokens ?? Math.min(defaultMax ?? maxLen - longest, this.limits.maxTokens, maxLen - longest);
    if (cap !== undefined) maxTokens = Math.min(maxTokens, cap);
    const v = this.vocabSize;
    for (const id of Object.keys(c.logitBias)) {
      if (Number(id) >= v) throw badRequest(`'logit_bias' names token ${id}, out of the vocabulary [0, ${v})`, 'logit_bias', 'out_of_range');
    }
    const badWords = badWordsIds(this.tokenizer, c.badWords);
    for (const w of badWords) {
      const bad = w.find((id) => id >= v);
      if (bad !== undefined) throw badRequest(`'bad_words' tokenise to token ${bad}, out of the model's vocabulary [0, ${v})`, 'bad_words', 'out_of_range');
    }
    const outside = c.allowedTokenIds?.find((id) => id >= v);
    if (outside !== undefined) throw badRequest(`'allowed_token_ids' names token ${outside}, out of the vocabulary [0, ${v})`, 'allowed_token_ids', 'out_of_range');
    if (c.allowedTokenIds && c.minTokens > 0 && c.allowedTokenIds.every((id) => (!c.ignoreEos && this.engine.eos.has(id)) || c.stopTokenIds.includes(id))) {
      throw badRequest("'allowed_token_ids' holds only tokens that end a sequence, which 'min_tokens' forbids: nothing could be sampled", 'allowed_token_ids', 'out_of_range');
    }
    const over = contextOverflow(longest, maxTokens, maxLen, 'messages' in c ? 'messages' : 'prompt');
    if (over) throw badRequest(over.message, over.param, 'context_length_exceeded');
    return {
      promptIds,
      n: c.n,
      params: {
        maxTokens, minTokens: c.minTokens, temperature: c.temperature, topP: c.topP, topK: c.topK, minP: c.minP, seed: c.seed,
        repetitionPenalty: c.repetitionPenalty, presencePenalty: c.presencePenalty, frequencyPenalty: c.frequencyPenalty, logitBias: c.logitBias,
        ...(c.allowedTokenIds ? { allowedTokenIds: c.allowedTokenIds } : {}),
        ...(badWords.length ? { badWordsIds: badWords } : {}),
        stop: c.stop, stopTokenIds: c.stopTokenIds, ignoreEos: c.ignoreEos, topLogprobs, incrementalText: c.stream,
        includeStopStr: c.includeStopStr, skipSpecialTokens: c.skipSpecialTokens,
      },
    };
  }

  /** How a token is shown in log-probs: its text, or "token_id:N" (vLLM's return_tokens_as_token_ids). */
  tokenString(id: number, asId: boolean): string {
    return this.tokenStrings.get(id, asId);
  }

  /**
   * Runs a job's sequences in the engine (choice index = prompt * n + sample). Streaming: writes the
   * events as they come and ends the stream; else resolves with the choices. Resolves null when the
   * request ended otherwise (client gone, timeout, engine failure: answered here).
   */
  runJob(req: IncomingMessage, res: ServerResponse, job: Job, o: { stream: false }, info?: RequestInfo): Promise<ChoiceState[] | null>;
  runJob(req: IncomingMessage, res: ServerResponse, job: Job, o: { stream: true } & StreamEvents, info?: RequestInfo): Promise<ChoiceState[] | null>;
  runJob(
    req: IncomingMessage,
    res: ServerResponse,
    job: Job,
    o: { stream: boolean } & Partial<StreamEvents>,
    info?: RequestInfo,
  ): Promise<ChoiceState[] | null> {
    const total = job.promptIds.length * job.n;
    if (this.engine.backlog + job.promptIds.length > this.engine.maxQueue) {
      throw new ApiError(429, `the server is busy (${this.engine.backlog} requests waiting): retry later`, 'rate_limit_error', null, 'rate_limit_exceeded', { 'Retry-After': String(this.opts.retryAfterSeconds ?? 1) });
    }
    const choices: ChoiceState[] = Array.from({ length: total }, () => ({ tokens: [], logprobs: [], tops: [], text: '', finish: null, stopReason: null }));
    const handles: EngineRequest[] = [];
    const write = (ev: unknown): void => {
      if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(ev)}\n\n`);
    };
    return new Promise<ChoiceState[] | null>((resolve, reject) => {
      let left = total;
      let settled = false;
      const cancelAll = (): void => {
        for (const h of handles) h.cancel();
      };
      const settle = (v: ChoiceState[] | null, err?: ApiError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        res.off('close', onClose);
        if (err) {
          cancelAll();
          reject(err);
        } else resolve(v);
      };
      const timeoutMs = this.opts.timeoutMs ?? 600_000;
      const timer = setTimeout(() => settle(null, new ApiError(408, `the request took longer than ${timeoutMs} ms and was cancelled`, 'timeout_error', null, 'request_timeout')), timeoutMs);
      const onClose = (): void => {
        // The client went away before the answer was complete: its sequences stop.
        if (!res.writableFinished) {
          cancelAll();
          settle(null);
        }
      };
      res.on('close', onClose);
      const finishOne = (): void => {
        if (--left > 0 || settled) return;
        usage(promptTokens(job.promptIds), choices, info);
        if (o.stream) {
          for (const ev of o.onEnd!(choices)) write(ev);
          if (!res.writableEnded) res.end('data: [DONE]\n\n');
        }
        settle(choices);
      };
      try {
        job.promptIds.forEach((prompt, p) => {
          const h = this.engine.submit(prompt, job.n, job.params, {
            onToken: (out) => {
              if (settled) return;
              const ch = choices[p * job.n + out.seq]!;
              ch.tokens.push(out.token);
              ch.logprobs.push(out.logprob);
              ch.tops.push(out.top);
              ch.text += out.text;
              if (out.finish) {
                ch.finish = out.finish;
                ch.stopReason = out.stopReason;
              }
              if (o.stream) {
                const ev = o.onToken!(p * job.n + out.seq, out);
                if (ev) write(ev);
              }
            },
            onFinish: (end: SequenceEnd) => {
              if (end.reason !== 'abort') choices[p * job.n + end.seq]!.text = end.text;
              finishOne();
            },
            onError: (err) => settle(null, new ApiError(500, `generation failed: ${err.message}`, 'server_error', null, 'engine_error')),
          });
          handles.push(h);
        });
      } catch (err) {
        if (err instanceof QueueFullError) settle(null, new ApiError(429, err.message, 'rate_limit_error', null, 'rate_limit_exceeded', { 'Retry-After': String(this.opts.retryAfterSeconds ?? 1) }));
        else if (err instanceof EngineClosedError) settle(null, new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down'));
        else if (err instanceof RangeError) settle(null, badRequest(err.message));
        else settle(null, new ApiError(500, (err as Error).message, 'server_error'));
        return;
      }
      if (o.stream) {
        res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', ...(this.draining ? { Connection: 'close' } : {}) });
        for (const ev of o.onStart!()) write(ev);
      }
    });
  }
}
