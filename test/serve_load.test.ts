// Load on loopback, bounded in count and time: 200 requests from 32 concurrent openai clients (completions
// and chat, streamed and not), each answer checked against the answer the same request gets alone (no
// output of one client reaches another); then every kind of bad request, each answered with its status,
// and the server still answering after each.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import OpenAI from 'openai';
import { liveTensors } from '../src/torch/index.js';
import { MODEL, noLlama, post, raw, serve, type Served } from './serve_helpers.js';

let s: Served;
before(async () => {
  if (!noLlama) s = await serve({ apiKey: 'k', maxBodyBytes: 32 * 1024, maxTokens: 32, maxN: 4, engine: { maxBatch: 32, maxQueue: 64 } });
});
after(async () => {
  await s?.close();
});
const opt = { skip: noLlama };
const auth = { Authorization: 'Bearer k' };

type Kind = 'completion' | 'completion-stream' | 'chat' | 'chat-stream';
interface Req {
  kind: Kind;
  prompt: string;
  seed: number | undefined;
  maxTokens: number;
}

async function ask(client: OpenAI, r: Req): Promise<string> {
  const common = { model: MODEL, max_tokens: r.maxTokens, temperature: r.seed === undefined ? 0 : 1, seed: r.seed, ignore_eos: true } as any;
  const messages = [{ role: 'user' as const, content: r.prompt }];
  switch (r.kind) {
    case 'completion':
      return (await client.completions.create({ ...common, prompt: r.prompt })).choices[0]!.text;
    case 'chat':
      return (await client.chat.completions.create({ ...common, messages })).choices[0]!.message.content ?? '';
    case 'completion-stream': {
      let t = '';
      for await (const ch of (await client.completions.create({ ...common, prompt: r.prompt, stream: true })) as unknown as AsyncIterable<OpenAI.Completion>) t += ch.choices[0]?.text ?? '';
      return t;
    }
    case 'chat-stream': {
      let t = '';
      for await (const ch of (await client.chat.completions.create({ ...common, messages, stream: true })) as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>) t += ch.choices[0]?.delta.content ?? '';
      return t;
    }
  }
}

async function alive(): Promise<void> {
  assert.equal((await raw(s.url, '/health')).status, 200);
  const r = await post(s.url, '/v1/completions', { model: MODEL, prompt: 'ok', max_tokens: 1 }, auth);
  assert.equal(r.status, 200);
}

test('serve load: 200 requests from 32 concurrent clients, no failure, each answer its own', opt, async () => {
  const kinds: Kind[] = ['completion', 'completion-stream', 'chat', 'chat-stream'];
  const reqs: Req[] = Array.from({ length: 200 }, (_, i) => ({
    kind: kinds[i % 4]!,
    prompt: `prompt ${i % 25} ${'word '.repeat(i % 7)}`,
    seed: i % 3 === 0 ? undefined : 1000 + (i % 11),
    maxTokens: 4 + (i % 9),
  }));
  const key = (r: Req): string => JSON.stringify(r);
  // What each distinct request gets alone.
  const alone = new Map<string, string>();
  const client = new OpenAI({ baseURL: s.url, apiKey: 'k', maxRetries: 0 });
  for (const r of reqs) if (!alone.has(key(r))) alone.set(key(r), await ask(client, r));
  await s.engine.whenIdle();
  const tensorsBefore = liveTensors();
  const t0 = performance.now();
  let next = 0;
  let failures = 0;
  const mismatches: string[] = [];
  await Promise.all(Array.from({ length: 32 }, async () => {
    const c = new OpenAI({ baseURL: s.url, apiKey: 'k', maxRetries: 0, timeout: 20_000 });
    while (next < reqs.length) {
      const r = reqs[next++]!;
      try {
        const text = await ask(c, r);
        if (text !== alone.get(key(r))) mismatches.push(`${key(r)}: ${JSON.stringify(text)} vs ${JSON.stringify(alone.get(key(r)))}`);
      } catch (e) {
        failures++;
        mismatches.push(`${key(r)}: ${(e as Error).message}`);
      }
    }
  }));
  const secs = (performance.now() - t0) / 1000;
  assert.equal(failures, 0, mismatches.join('\n'));
  assert.deepEqual(mismatches, []);
  assert.ok(s.engine.peakBatch >= 8, `peak batch ${s.engine.peakBatch}`);
  assert.ok(secs < 60, `${secs.toFixed(1)} s`);
  await s.engine.whenIdle();
  assert.equal(liveTensors(), tensorsBefore, 'no tensor outlives its requests');
  await alive();
});

test('serve load: every kind of bad request gets its status, and the server answers after each', opt, async () => {
  const ok = { model: MODEL, prompt: 'hi', max_tokens: 2 };
  const bad: [string, () => Promise<number>, number][] = [
    ['no key', async () => (await post(s.url, '/v1/completions', ok)).status, 401],
    ['wrong key', async () => (await post(s.url, '/v1/chat/completions', { model: MODEL, messages: [] }, { Authorization: 'Bearer kk' })).status, 401],
    ['malformed JSON', async () => (await post(s.url, '/v1/completions', '{"model"', auth)).status, 400],
    ['not an object', async () => (await post(s.url, '/v1/completions', 'null', auth)).status, 400],
    ['wrong type', async () => (await post(s.url, '/v1/completions', { ...ok, n: '2' }, auth)).status, 400],
    ['out of range', async () => (await post(s.url, '/v1/completions', { ...ok, max_tokens: 1000 }, auth)).status, 400],
    ['bad message', async () => (await post(s.url, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: { x: 1 } }] }, auth)).status, 400],
    ['unknown model', async () => (await post(s.url, '/v1/completions', { ...ok, model: 'other' }, auth)).status, 404],
    ['unknown route', async () => (await raw(s.url, '/v1/nothing', { headers: auth })).status, 404],
    ['wrong method', async () => (await raw(s.url, '/v1/chat/completions', { headers: auth })).status, 405],
    ['body too large', async () => (await post(s.url, '/v1/completions', { ...ok, prompt: 'y'.repeat(100_000) }, auth)).status, 413],
    ['invalid UTF-8 and control bytes', async () => (await raw(s.url, '/v1/completions', { method: 'POST', headers: auth, body: new Uint8Array([0xff, 0xfe, 0x00, 0x7b]) })).status, 400],
  ];
  for (const [name, send, status] of bad) {
    assert.equal(await send(), status, name);
    await alive();
  }
  // Bytes that are not HTTP: the connection is answered 400 and closed.
  const reply = await new Promise<string>((resolve) => {
    const sock = connect(Number(new URL(s.url).port), '127.0.0.1', () => sock.end('\x00\x01 GARBAGE\r\n\r\n'));
    let data = '';
    sock.on('data', (d) => (data += d));
    sock.on('close', () => resolve(data));
    sock.on('error', () => resolve(data));
  });
  assert.match(reply, /^HTTP\/1\.1 400/);
  await alive();
  // Half a body, then the client goes away: nothing is left waiting on it.
  await new Promise<void>((resolve) => {
    const sock = connect(Number(new URL(s.url).port), '127.0.0.1', () => {
      sock.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 1000\r\n\r\n{"model": "tiny');
      setTimeout(() => {
        sock.destroy();
        resolve();
      }, 30);
    });
  });
  await alive();
  // A burst beyond the batch and the queue (of a server with room for 2 + 2 requests): some 429 (with
  // Retry-After), the rest answered in full.
  const q = await serve({ engine: { maxBatch: 2, maxQueue: 2 } });
  try {
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => post(q.url, '/v1/completions', { ...ok, prompt: `b${i}`, max_tokens: 30, ignore_eos: true })));
    const codes = burst.map((r) => r.status);
    assert.ok(codes.includes(429) && codes.includes(200), `statuses ${codes}`);
    assert.ok(codes.every((c) => c === 200 || c === 429));
    for (const r of burst) {
      if (r.status === 429) assert.ok(Number(r.headers.get('retry-after')) >= 1);
      else assert.equal(r.body.usage.completion_tokens, 30);
    }
    assert.equal((await post(q.url, '/v1/completions', ok)).status, 200);
  } finally {
    await q.close();
  }
  await alive();
  // A streaming client that vanishes mid-stream.
  const ctrl = new AbortController();
  const res = await fetch(`${s.url}/completions`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ ...ok, max_tokens: 30, stream: true, ignore_eos: true }), signal: ctrl.signal });
  await res.body!.getReader().read();
  ctrl.abort();
  await alive();
  const t0 = Date.now();
  while (s.engine.batchSize > 0 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
  assert.equal(s.engine.batchSize, 0);
});
