// `sppo serve` as the clients written for vLLM and OpenAI use it (found by an audit against vLLM's API): a request
// without `model`, 64-bit seeds, `logprobs: true` on completions, the context-length message clients match on,
// CORS for browser clients, generation_config.json's sampling defaults, and keep-alive sockets that survive an
// event loop held by a long step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSamplingDefaults, KEEP_ALIVE_MS } from '../src/serve/server.js';
import { MODEL, noLlama, post, raw, serve } from './serve_helpers.js';
import { removeDir, tempDir } from './text_helpers.js';

const opt = { skip: noLlama };

test('serve: model may be left out; any integer seed; completions logprobs true is 1; context errors read as vLLM\'s', opt, async () => {
  const s = await serve({ maxTokens: 64 });
  try {
    const a = await post(s.url, '/v1/completions', { prompt: 'hi', max_tokens: 3, temperature: 0 });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.body.model, MODEL);
    const seeded = { model: MODEL, prompt: 'hi', max_tokens: 4, seed: 2 ** 60 };
    const s1 = await post(s.url, '/v1/completions', seeded);
    const s2 = await post(s.url, '/v1/completions', seeded);
    assert.equal(s1.status, 200, s1.text);
    assert.equal(s1.body.choices[0].text, s2.body.choices[0].text);
    const lp = await post(s.url, '/v1/completions', { model: MODEL, prompt: 'hi', max_tokens: 2, logprobs: true });
    assert.equal(lp.status, 200, lp.text);
    assert.equal(lp.body.choices[0].logprobs.top_logprobs[0] && Object.keys(lp.body.choices[0].logprobs.top_logprobs[0]).length >= 1, true);
    const none = await post(s.url, '/v1/completions', { model: MODEL, prompt: 'hi', max_tokens: 2, logprobs: false });
    assert.equal(none.body.choices[0].logprobs, null);
    // "This model's maximum context length is N tokens": the text LiteLLM and others match to fall back.
    const long = await post(s.url, '/v1/completions', { model: MODEL, prompt: 'x '.repeat(70), max_tokens: 64 });
    assert.equal(long.status, 400);
    assert.equal(long.body.error.param, 'max_tokens');
    assert.match(long.body.error.message, /^This model's maximum context length is 128 tokens\. However, you requested \d+ tokens \(\d+ in the prompt, 64 in the completion\)\. Please reduce the length of the prompt or completion\.$/);
    const chat = await post(s.url, '/v1/chat/completions', { messages: [{ role: 'user', content: 'x '.repeat(200) }] });
    assert.equal(chat.status, 400);
    assert.equal(chat.body.error.param, 'messages');
    assert.match(chat.body.error.message, /^This model's maximum context length is 128 tokens\. However, you requested (at least )?\d+ tokens in the messages/);
  } finally {
    await s.close();
  }
});

test('serve: CORS for browser clients: a preflight gets 204 with the methods and headers, every answer the origin', opt, async () => {
  const s = await serve({ apiKey: 'k' });
  try {
    const pre = await raw(s.url, '/v1/chat/completions', { method: 'OPTIONS', headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.equal(pre.headers.get('access-control-allow-headers'), 'authorization, content-type');
    const denied = await raw(s.url, '/v1/models', { headers: { Origin: 'http://localhost:3000' } });
    assert.equal(denied.status, 401); // the key still guards the API
    assert.equal(denied.headers.get('access-control-allow-origin'), '*');
    const ok = await raw(s.url, '/v1/models', { headers: { Origin: 'http://localhost:3000', Authorization: 'Bearer k' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), '*');
  } finally {
    await s.close();
  }
});

test('serve: generation_config.json\'s sampling fields are the defaults of requests that leave them out', opt, async () => {
  const dir = tempDir('serve-gencfg');
  try {
    mkdirSync(join(dir, 'm'));
    writeFileSync(join(dir, 'm', 'generation_config.json'), JSON.stringify({ do_sample: true, temperature: 0.6, top_p: 0.9, top_k: 1, repetition_penalty: 1.05, max_new_tokens: 512, eos_token_id: 2 }));
    assert.deepEqual(readSamplingDefaults(join(dir, 'm')), { temperature: 0.6, topP: 0.9, topK: 1, repetitionPenalty: 1.05, maxTokens: 512 });
    assert.deepEqual(readSamplingDefaults(dir), {});
    writeFileSync(join(dir, 'm', 'generation_config.json'), JSON.stringify({ temperature: 0.6, top_p: 0.9, top_k: 1 }));
    const defaults = readSamplingDefaults(join(dir, 'm'));
    writeFileSync(join(dir, 'm', 'generation_config.json'), JSON.stringify({ top_p: '0.9' }));
    assert.throws(() => readSamplingDefaults(join(dir, 'm')), /generation_config\.json: top_p must be a number in its range, got "0\.9"/);
    // top_k 1 as the default: every sample of n is the greedy one; a request's own top_k overrides it.
    const s = await serve({ samplingDefaults: defaults, maxN: 4 });
    try {
      const greedy = await post(s.url, '/v1/completions', { model: MODEL, prompt: 'Once upon', max_tokens: 6, temperature: 0 });
      const byDefault = await post(s.url, '/v1/completions', { model: MODEL, prompt: 'Once upon', max_tokens: 6, n: 4 });
      assert.deepEqual(byDefault.body.choices.map((c: { text: string }) => c.text), Array(4).fill(greedy.body.choices[0].text));
      const own = await post(s.url, '/v1/completions', { model: MODEL, prompt: 'Once upon', max_tokens: 6, n: 4, top_k: -1, temperature: 1, seed: 3 });
      assert.ok(new Set(own.body.choices.map((c: { text: string }) => c.text)).size > 1, 'a request\'s own top_k and temperature apply');
    } finally {
      await s.close();
    }
  } finally {
    removeDir(dir);
  }
});

test('serve: a keep-alive socket whose next request arrives while the event loop is held past Node\'s default idle close is answered', opt, async () => {
  assert.ok(KEEP_ALIVE_MS > 60_000);
  const s = await serve();
  try {
    const { port } = new URL(s.url);
    const sock = connect(Number(port), '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    let got = '';
    let closed = false;
    sock.on('data', (d) => (got += d.toString()));
    sock.once('close', () => (closed = true));
    // An answer is complete at the end of its body ('{}', sent chunked or with a length); false if the socket closes.
    const answered = async (): Promise<boolean> => {
      const deadline = Date.now() + 10_000;
      while (!/^HTTP\/1\.1 200[\s\S]*(\r\n0\r\n\r\n|\r\n\r\n\{\})$/.test(got)) {
        if (closed || Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 10));
      }
      return true;
    };
    const req = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`;
    sock.write(req);
    assert.ok(await answered(), `the first request was answered: ${JSON.stringify(got)}`);
    got = '';
    // The next request is on its way while a long step holds the loop for longer than Node's default keep-alive
    // (5 s, closed about a second later): the socket's idle timer would fire before its bytes are read.
    sock.write(req);
    const until = Date.now() + 7_500;
    while (Date.now() < until) {
      /* a step that holds the event loop */
    }
    assert.ok(await answered(), `the second request on the socket was answered; got ${JSON.stringify(got.slice(0, 60))}${closed ? ' and the socket closed' : ''}`);
    sock.destroy();
  } finally {
    await s.close();
  }
});
