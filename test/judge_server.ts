// A scripted OpenAI-compatible judge for the tests: a real node:http server on 127.0.0.1 whose answer to each
// POST /v1/chat/completions is chosen by a script (a verdict text, log-probs, an HTTP error, a delay past the
// client's timeout, or a garbage body); every request body is recorded.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface ChatBody {
  model: string;
  messages: { role: string; content: string }[];
  max_tokens?: number;
  temperature?: number;
  logprobs?: boolean;
  top_logprobs?: number;
}

export type Reply =
  | { content: string; top?: [string, number][]; usage?: { prompt_tokens: number; completion_tokens: number } }
  | { status: number; message?: string; headers?: Record<string, string> }
  | { garbage: string }
  | { delayMs: number; then: Reply };

export interface ScriptedJudge {
  url: string;
  /** Request bodies of /v1/chat/completions, in arrival order. */
  requests: ChatBody[];
  close(): Promise<void>;
}

/** A chat completion with `content` and, when `top` is given, the first token's top log-probs. */
export function completion(model: string, content: string, top?: [string, number][], usage = { prompt_tokens: 10, completion_tokens: 1 }): unknown {
  return {
    id: 'cmpl-test', object: 'chat.completion', created: 0, model,
    choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content }, logprobs: top ? { content: [{ token: content.slice(0, 1), logprob: top[0]?.[1] ?? 0, top_logprobs: top.map(([token, logprob]) => ({ token, logprob })) }] } : null }],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
  };
}

export async function scriptedJudge(script: (body: ChatBody, i: number) => Reply, opts: { models?: string[] } = {}): Promise<ScriptedJudge> {
  const requests: ChatBody[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const answer = (res: ServerResponse, body: ChatBody, r: Reply): void => {
    if ('delayMs' in r) {
      const t = setTimeout(() => answer(res, body, r.then), r.delayMs);
      res.on('close', () => clearTimeout(t));
      return;
    }
    if ('garbage' in r) {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(r.garbage);
      return;
    }
    if ('status' in r) {
      res.writeHead(r.status, { 'Content-Type': 'application/json', ...(r.headers ?? {}) }).end(JSON.stringify({ error: { message: r.message ?? `scripted ${r.status}` } }));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(completion(body.model, r.content, r.top, r.usage)));
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/v1/models') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ object: 'list', data: (opts.models ?? ['scripted-judge']).map((id) => ({ id, object: 'model' })) }));
        return;
      }
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(data) as ChatBody;
      requests.push(body);
      let reply: Reply;
      try {
        reply = script(body, requests.length - 1);
      } catch (e) {
        // A bug in a test's script answers 500 (the test then fails) rather than leaving the request hanging.
        reply = { status: 500, message: `script error: ${(e as Error).message}` };
      }
      answer(res, body, reply);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${addr.port}/v1`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
