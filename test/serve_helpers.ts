// Shared by the serve tests: the tiny Llama fixture served in-process on 127.0.0.1 (a free port), and
// the official openai client pointed at it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { loadModel, type CausalLMBase } from '../src/models/index.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { ChatTemplate } from '../src/text/chat_template.js';
import { Engine, SppoServer, type EngineOptions, type ServerOptions } from '../src/serve/index.js';
import { fixtureRoot } from './text_helpers.js';

export const llamaDir = join(fixtureRoot, 'llama');
export const noLlama = existsSync(join(llamaDir, 'model.safetensors')) ? false : `no llama fixture at ${llamaDir}`;
export const MODEL = 'tiny-llama';

let shared: { model: CausalLMBase; tokenizer: Tokenizer; template: ChatTemplate } | null = null;

/** The fixture's model, tokenizer and chat template, loaded once per test file. */
export function fixture(): { model: CausalLMBase; tokenizer: Tokenizer; template: ChatTemplate } {
  if (!shared) {
    const tokenizer = Tokenizer.fromFolder(llamaDir);
    shared = { model: loadModel(llamaDir), tokenizer, template: ChatTemplate.fromFolder(llamaDir, { specialTokens: tokenizer.specialTokens }) };
  }
  return shared;
}

export interface Served {
  server: SppoServer;
  engine: Engine;
  url: string;
  client: OpenAI;
  close(): Promise<void>;
}

/** Serves the fixture on 127.0.0.1 (free port); the client does not retry (each status is seen as sent). */
export async function serve(opts: ServerOptions & { engine?: EngineOptions } = {}): Promise<Served> {
  const { model, tokenizer, template } = fixture();
  const engine = new Engine(model, { tokenizer, seed: 0, ...opts.engine });
  const server = new SppoServer(engine, tokenizer, template, { modelName: MODEL, ...opts });
  await server.listen(0, '127.0.0.1');
  const client = new OpenAI({ baseURL: server.url, apiKey: opts.apiKey ?? 'none', maxRetries: 0, timeout: 30_000 });
  return {
    server,
    engine,
    url: server.url,
    client,
    async close() {
      await server.shutdown(1000);
      engine.dispose();
    },
  };
}

/** A raw HTTP request (for what the openai client would not send): status, headers and parsed body. */
export async function raw(url: string, path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: any; text: string }> {
  const res = await fetch(url.replace(/\/v1$/, '') + path, init);
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, headers: res.headers, body, text };
}

export const post = (url: string, path: string, body: unknown, headers: Record<string, string> = {}): ReturnType<typeof raw> =>
  raw(url, path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
