// `sppo serve`'s HTTP server: the part of the OpenAI API that vLLM implements and clients use, on
// node:http, in front of the continuous-batching engine (engine.ts).
//
//   GET  /health                    200 (503 while shutting down)
//   GET  /v1/models                 the served model
//   POST /v1/completions            prompt as text or token ids (or lists of either)
//   POST /v1/chat/completions       messages rendered with the model folder's chat template
//
// Both POST routes stream (server-sent events ending with `data: [DONE]`) or not, and return OpenAI's
// shapes; log-probs are the untempered policy's (vLLM's default, the SPPO trainer's reference).
// Security and limits: an API key (Bearer, compared in constant time) on every /v1 route, caps on the body
// size (413), max_tokens and n (400), the queue (429 with Retry-After), a per-request timeout (408), and
// a client that disconnects cancels its sequences. Prompts are not logged unless asked.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplateError, type ChatTemplate } from '../text/chat_template.js';
import { EngineClosedError, QueueFullError, type Engine, type FinishReason, type EngineRequest, type SequenceEnd, type SequenceParams, type TokenOutput } from './engine.js';
import { ApiError, badRequest, parseChat, parseCompletion, type CommonRequest, type Limits } from './protocol.js';

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
}

interface ChoiceState {
  tokens: number[];
  logprobs: number[];
  tops: ([number, number][] | null)[];
  text: string;
  finish: FinishReason | null;
  stopReason: string | number | null;
}

interface RequestInfo {
  prompt?: string;
  promptTokens?: number;
  completionTokens?: number;
}

interface Job {
  promptIds: number[][];
  n: number;
  params: SequenceParams;
}

const sha = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class SppoServer {
  readonly http: Server;
  readonly modelName: string;
  readonly limits: Limits;
  private readonly keyHash: Buffer | null;
  private draining = false;
  private active = 0;
  private activeWaiters: (() => void)[] = [];
  private readonly tokenStrings = new Map<number, string>();
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(readonly engine: Engine, readonly tokenizer: Tokenizer, readonly template: ChatTemplate | undefined, readonly opts: ServerOptions = {}) {
    this.modelName = opts.modelName ?? 'sppo';
    const apiKey = opts.apiKey;
    this.keyHash = apiKey ? sha(apiKey) : null;
    this.limits = {
      maxTokens: opts.maxTokens ?? engine.maxModelLen,
      maxN: opts.maxN ?? Math.min(16, engine.maxBatch),
      maxSequences: opts.maxSequences ?? engine.maxBatch,
      maxLogprobs: opts.maxLogprobs ?? 20,
      maxStops: opts.maxStops ?? 16,
    };
    this.http = createServer((req, res) => void this.handle(req, res));
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
      this.draining = true;
      this.http.close();
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
    this.http.closeIdleConnections();
    this.http.closeAllConnections();
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
        this.log(`sppo serve: ${req.method} ${req.url} ${res.statusCode}${res.writableFinished ? '' : ' (client gone)'} ${(performance.now() - t0).toFixed(0)} ms${extra}${prompt}`);
      }
    });
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

  private sendJson(res: ServerResponse, status: number, body: unknown): void {
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
      res.end(this.metrics());
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
      if (id !== this.modelName) throw this.unknownModel(id);
      this.sendJson(res, 200, this.modelCard());
      return;
    }
    if (path === '/v1/models') {
      this.sendJson(res, 200, { object: 'list', data: [this.modelCard()] });
      return;
    }
    const body = await this.readJson(req);
    if (path === '/v1/completions') await this.completions(req, res, body, info);
    else await this.chat(req, res, body, info);
  }

  /** Prometheus text: the engine's counters and gauges. */
  private metrics(): string {
    const e = this.engine;
    const lines = [
      ['sppo_running_sequences', 'gauge', 'sequences decoding now', e.batchSize],
      ['sppo_queued_requests', 'gauge', 'requests waiting to join the batch', e.queued],
      ['sppo_generated_tokens_total', 'counter', 'tokens generated', e.tokensOut],
      ['sppo_decode_steps_total', 'counter', 'engine steps that sampled tokens', e.steps],
      ['sppo_engine_busy_seconds_total', 'counter', 'seconds the engine spent in steps', e.busyMs / 1000],
      ['sppo_cancelled_requests_total', 'counter', 'requests cancelled (client gone, timeout)', e.aborted],
    ] as const;
    const parts = Object.entries(e.timings);
    return lines.map(([name, type, help, v]) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${v}\n`).join('') +
      '# HELP sppo_engine_part_seconds_total seconds of the steps by part\n# TYPE sppo_engine_part_seconds_total counter\n' +
      parts.map(([k, v]) => `sppo_engine_part_seconds_total{part="${k}"} ${v / 1000}\n`).join('') +
      `# HELP sppo_admissions_total prefills of new requests\n# TYPE sppo_admissions_total counter\nsppo_admissions_total ${e.counts.admissions}\n` +
      `# HELP sppo_compactions_total compactions of the batch's KV cache timeline\n# TYPE sppo_compactions_total counter\nsppo_compactions_total ${e.counts.compactions}\n`;
  }

  private modelCard(): Record<string, unknown> {
    return { id: this.modelName, object: 'model', created: this.created, owned_by: 'sppo', root: this.opts.modelDir ?? this.modelName, parent: null, max_model_len: this.engine.maxModelLen };
  }

  private unknownModel(name: string): ApiError {
    return new ApiError(404, `The model '${name}' does not exist (this server serves '${this.modelName}')`, 'invalid_request_error', 'model', 'model_not_found');
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

  /** Token ids of a completion prompt (text with the tokenizer's special tokens, as vLLM). */
  private completionPromptIds(p: string | number[]): number[] {
    if (typeof p !== 'string') {
      const v = this.engine.vocabSize;
      for (const t of p) if (t < 0 || t >= v) throw badRequest(`token id ${t} is out of the vocabulary [0, ${v})`, 'prompt', 'out_of_range');
      return p;
    }
    const ids = this.tokenizer.encode(p, { addSpecialTokens: true });
    if (ids.length === 0) throw badRequest('the prompt is empty', 'prompt');
    return ids;
  }

  /** The engine's options of a request, with max_tokens checked against the context length. */
  private job(c: CommonRequest, promptIds: number[][], defaultMax: number | null, topLogprobs: number): Job {
    const maxLen = this.engine.maxModelLen;
    const longest = Math.max(...promptIds.map((p) => p.length));
    if (longest >= maxLen) throw badRequest(`the prompt has ${longest} tokens; this model's context length is ${maxLen}`, 'prompt', 'context_length_exceeded');
    const maxTokens = c.maxTokens ?? Math.min(defaultMax ?? maxLen - longest, this.limits.maxTokens, maxLen - longest);
    if (longest + maxTokens > maxLen) {
      throw badRequest(`this model's maximum context length is ${maxLen} tokens; the request asks for ${longest + maxTokens} (${longest} in the prompt, ${maxTokens} new): reduce max_tokens`, 'max_tokens', 'context_length_exceeded');
    }
    if (c.model !== this.modelName) throw this.unknownModel(c.model);
    return {
      promptIds,
      n: c.n,
      params: {
        maxTokens, minTokens: c.minTokens, temperature: c.temperature, topP: c.topP, topK: c.topK, seed: c.seed,
        stop: c.stop, stopTokenIds: c.stopTokenIds, ignoreEos: c.ignoreEos, topLogprobs, incrementalText: c.stream,
      },
    };
  }

  private async completions(req: IncomingMessage, res: ServerResponse, body: unknown, info: RequestInfo): Promise<void> {
    const c = parseCompletion(body, this.limits);
    if (c.model !== this.modelName) throw this.unknownModel(c.model);
    const promptIds = c.prompts.map((p) => this.completionPromptIds(p));
    info.prompt = c.prompts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('\n');
    const job = this.job(c, promptIds, 16, c.logprobs ?? 0);
    const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, object: 'text_completion', created, model: this.modelName };
    const tokStr = (t: number): string => this.tokenString(t, c.tokensAsIds);
    const lpObject = (outs: { token: number; logprob: number; top: [number, number][] | null }[], offset0: number): Record<string, unknown> => {
      let off = offset0;
      const tokens: string[] = [];
      const offsets: number[] = [];
      for (const o of outs) {
        tokens.push(tokStr(o.token));
        offsets.push(off);
        off += this.tokenString(o.token, false).length; // offsets in the text, also with token ids
      }
      return {
        tokens,
        token_logprobs: outs.map((o) => o.logprob),
        top_logprobs: outs.map((o) => {
          const d: Record<string, number> = {};
          for (const [t, lp] of o.top ?? []) d[tokStr(t)] = lp;
          d[tokStr(o.token)] = o.logprob;
          return d;
        }),
        text_offset: offsets,
      };
    };
    const usage = (choices: ChoiceState[]): Record<string, number> => {
      const prompt = promptIds.reduce((a, p) => a + p.length, 0);
      const completion = choices.reduce((a, ch) => a + ch.tokens.length, 0);
      info.promptTokens = prompt;
      info.completionTokens = completion;
      return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    };
    if (c.stream) {
      const offsets = new Array<number>(promptIds.length * c.n).fill(0);
      await this.runJob(req, res, job, {
        stream: true,
        onToken: (index, o) => {
          if (!o.text && c.logprobs === null && !o.finish) return null;
          const lp = c.logprobs === null ? null : lpObject([o], offsets[index]!);
          if (lp) offsets[index]! += this.tokenString(o.token, false).length;
          const choice: Record<string, unknown> = { index, text: o.text, logprobs: lp, finish_reason: o.finish, stop_reason: o.stopReason };
          if (c.returnTokenIds) choice.token_ids = [o.token];
          return { ...base, choices: [choice] };
        },
        onStart: () => [],
        onEnd: (choices) => (c.includeUsage ? [{ ...base, choices: [], usage: usage(choices) }] : []),
      }, info);
      return;
    }
    const choices = await this.runJob(req, res, job, { stream: false }, info);
    if (!choices) return;
    const out: Record<string, unknown> = {
      ...base,
      choices: choices.map((ch, index) => {
        const o: Record<string, unknown> = {
          index,
          text: ch.text,
          logprobs: c.logprobs === null ? null : lpObject(ch.tokens.map((token, j) => ({ token, logprob: ch.logprobs[j]!, top: ch.tops[j] ?? null })), 0),
          finish_reason: ch.finish,
          stop_reason: ch.stopReason,
        };
        if (c.returnTokenIds) o.token_ids = ch.tokens;
        return o;
      }),
      usage: usage(choices),
    };
    if (c.returnTokenIds) out.prompt_token_ids = promptIds.length === 1 ? promptIds[0] : promptIds;
    this.sendJson(res, 200, out);
  }

  private async chat(req: IncomingMessage, res: ServerResponse, body: unknown, info: RequestInfo): Promise<void> {
    const c = parseChat(body, this.limits);
    if (c.model !== this.modelName) throw this.unknownModel(c.model);
    if (!this.template) throw badRequest('this model has no chat template: use /v1/completions', 'messages', 'no_chat_template');
    let text: string;
    try {
      text = this.template.render(c.messages, { addGenerationPrompt: c.addGenerationPrompt, continueFinalMessage: c.continueFinalMessage });
    } catch (e) {
      if (e instanceof ChatTemplateError) throw badRequest(e.message, 'messages', 'chat_template_error');
      throw e;
    }
    info.prompt = text;
    const promptIds = this.tokenizer.encode(text, { addSpecialTokens: false });
    if (promptIds.length === 0) throw badRequest('the rendered conversation is empty', 'messages');
    const job = this.job(c, [promptIds], null, c.logprobs ? c.topLogprobs : 0);
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, created, model: this.modelName };
    const entry = (t: number, lp: number): { token: string; logprob: number; bytes: number[] } => {
      const s = this.tokenString(t, c.tokensAsIds);
      return { token: s, logprob: lp, bytes: [...Buffer.from(s, 'utf8')] };
    };
    const content = (token: number, logprob: number, top: [number, number][] | null): Record<string, unknown> => ({
      ...entry(token, logprob),
      top_logprobs: (top ?? []).slice(0, c.topLogprobs).map(([t, lp]) => entry(t, lp)),
    });
    const usage = (choices: ChoiceState[]): Record<string, number> => {
      const completion = choices.reduce((a, ch) => a + ch.tokens.length, 0);
      info.promptTokens = promptIds.length;
      info.completionTokens = completion;
      return { prompt_tokens: promptIds.length, completion_tokens: completion, total_tokens: promptIds.length + completion };
    };
    if (c.stream) {
      const chunk = { ...base, object: 'chat.completion.chunk' };
      await this.runJob(req, res, job, {
        stream: true,
        onStart: () => Array.from({ length: c.n }, (_, index) => ({ ...chunk, choices: [{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] })),
        onToken: (index, o) => {
          if (!o.text && !c.logprobs && !o.finish) return null;
          const choice: Record<string, unknown> = {
            index,
            delta: o.text || !o.finish ? { content: o.text } : {},
            logprobs: c.logprobs ? { content: [content(o.token, o.logprob, o.top)] } : null,
            finish_reason: o.finish,
            stop_reason: o.stopReason,
          };
          if (c.returnTokenIds) choice.token_ids = [o.token];
          return { ...chunk, choices: [choice] };
        },
        onEnd: (choices) => (c.includeUsage ? [{ ...chunk, choices: [], usage: usage(choices) }] : []),
      }, info);
      return;
    }
    const choices = await this.runJob(req, res, job, { stream: false }, info);
    if (!choices) return;
    const out: Record<string, unknown> = {
      ...base,
      object: 'chat.completion',
      choices: choices.map((ch, index) => {
        const o: Record<string, unknown> = {
          index,
          message: { role: 'assistant', content: ch.text },
          logprobs: c.logprobs ? { content: ch.tokens.map((t, j) => content(t, ch.logprobs[j]!, ch.tops[j] ?? null)) } : null,
          finish_reason: ch.finish,
          stop_reason: ch.stopReason,
        };
        if (c.returnTokenIds) o.token_ids = ch.tokens;
        return o;
      }),
      usage: usage(choices),
    };
    if (c.returnTokenIds) out.prompt_token_ids = promptIds;
    this.sendJson(res, 200, out);
  }

  /** How a token is shown in log-probs: its text, or "token_id:N" (vLLM's return_tokens_as_token_ids). */
  private tokenString(id: number, asId: boolean): string {
    if (asId) return `token_id:${id}`;
    let s = this.tokenStrings.get(id);
    if (s === undefined) {
      s = this.tokenizer.decode([id]);
      if (this.tokenStrings.size < 1_000_000) this.tokenStrings.set(id, s);
    }
    return s;
  }

  /**
   * Runs a job's sequences in the engine (choice index = prompt * n + sample). Streaming: writes the
   * events as they come and ends the stream; else resolves with the choices. Resolves null when the
   * request ended otherwise (client gone, timeout, engine failure: answered here).
   */
  private runJob(req: IncomingMessage, res: ServerResponse, job: Job, o: { stream: false }, info?: RequestInfo): Promise<ChoiceState[] | null>;
  private runJob(req: IncomingMessage, res: ServerResponse, job: Job, o: { stream: true; onStart: () => unknown[]; onToken: (index: number, out: TokenOutput) => unknown; onEnd: (choices: ChoiceState[]) => unknown[] }, info?: RequestInfo): Promise<ChoiceState[] | null>;
  private runJob(
    req: IncomingMessage,
    res: ServerResponse,
    job: Job,
    o: { stream: boolean; onStart?: () => unknown[]; onToken?: (index: number, out: TokenOutput) => unknown; onEnd?: (choices: ChoiceState[]) => unknown[] },
    info?: RequestInfo,
  ): Promise<ChoiceState[] | null> {
    const total = job.promptIds.length * job.n;
    if (this.engine.queued + job.promptIds.length > this.engine.maxQueue) {
      throw new ApiError(429, `the server is busy (${this.engine.queued} requests waiting): retry later`, 'rate_limit_error', null, 'rate_limit_exceeded', { 'Retry-After': String(this.opts.retryAfterSeconds ?? 1) });
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
        if (info) {
          info.promptTokens = job.promptIds.reduce((a, q) => a + q.length, 0);
          info.completionTokens = choices.reduce((a, ch) => a + ch.tokens.length, 0);
        }
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
