// `sppo serve` through the official openai client, against the server on 127.0.0.1: chat, completions,
// streaming, log-probs, n, seeds, token ids; the errors (401, 400s, 404, 405, 413, 429, 408) in OpenAI's
// shape; a client that disconnects cancels its sequences.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { generate } from '../src/generate/index.js';
import { fixture, MODEL, noLlama, post, raw, serve, type Served } from './serve_helpers.js';

let s: Served;
before(async () => {
  if (!noLlama) s = await serve({ apiKey: 'sk-test-key', maxBodyBytes: 64 * 1024, maxTokens: 64, maxN: 4 });
});
after(async () => {
  await s?.close();
});
const auth = { Authorization: 'Bearer sk-test-key' };
const opt = { skip: noLlama };

test('serve: /health, /v1/models', opt, async () => {
  assert.equal((await raw(s.url, '/health')).status, 200);
  const models = await s.client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
  assert.equal((await s.client.models.retrieve(MODEL)).id, MODEL);
});

test('serve: completions (text and token prompts) equal in-process generate(), with log-probs and token ids', opt, async () => {
  const { model, tokenizer } = fixture();
  const prompt = 'the quick brown fox';
  const ids = tokenizer.encode(prompt, { addSpecialTokens: true });
  const g = generate(model, [ids], { temperature: 0, maxNewTokens: 12, tokenizer, eosTokenIds: [] });
  const r = await s.client.completions.create({ model: MODEL, prompt, max_tokens: 12, temperature: 0, logprobs: 3, ignore_eos: true, return_tokens_as_token_ids: true } as any);
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.model, MODEL);
  const c = r.choices[0]!;
  assert.equal(c.index, 0);
  assert.equal(c.text, g[0]!.text);
  assert.equal(c.finish_reason, 'length');
  assert.deepEqual(c.logprobs!.tokens, g[0]!.tokens.map((t) => `token_id:${t}`));
  c.logprobs!.token_logprobs!.forEach((lp, i) => assert.ok(Math.abs(lp - g[0]!.logprobs[i]!) < 1e-4));
  // top_logprobs: the 3 best and the sampled token (greedy: the best itself).
  for (const [i, top] of c.logprobs!.top_logprobs!.entries()) {
    assert.equal(Object.keys(top).length, 3);
    const best = Math.max(...Object.values(top));
    assert.ok(Math.abs(best - c.logprobs!.token_logprobs![i]!) < 1e-6);
  }
  assert.deepEqual(r.usage, { prompt_tokens: ids.length, completion_tokens: 12, total_tokens: ids.length + 12 });
  // The same prompt as token ids, and a list of prompts (choices: prompt-major), with return_token_ids.
  const byIds = await s.client.completions.create({ model: MODEL, prompt: ids, max_tokens: 12, temperature: 0, ignore_eos: true } as any);
  assert.equal(byIds.choices[0]!.text, c.text);
  assert.equal(byIds.choices[0]!.logprobs, null);
  const many: any = await s.client.completions.create({ model: MODEL, prompt: [ids, [5, 6, 7]], n: 2, max_tokens: 5, temperature: 0, return_token_ids: true } as any);
  assert.deepEqual(many.choices.map((x: any) => x.index), [0, 1, 2, 3]);
  assert.deepEqual(many.choices[0].token_ids, g[0]!.tokens.slice(0, 5));
  assert.equal(many.usage.prompt_tokens, ids.length + 3);
});

test('serve: chat completions with the chat template, log-probs and top_logprobs, n', opt, async () => {
  const { model, tokenizer, template } = fixture();
  const messages = [{ role: 'system' as const, content: 'be brief' }, { role: 'user' as const, content: 'hello there' }];
  const ids = tokenizer.encode(template.render(messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
  const g = generate(model, [ids], { temperature: 0, maxNewTokens: 8, tokenizer });
  const r = await s.client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  const c = r.choices[0]!;
  assert.equal(c.message.role, 'assistant');
  assert.equal(c.message.content, g[0]!.text);
  assert.equal(r.usage!.prompt_tokens, ids.length);
  const content = c.logprobs!.content!;
  assert.equal(content.length, g[0]!.tokens.length);
  content.forEach((e, i) => {
    assert.ok(Math.abs(e.logprob - g[0]!.logprobs[i]!) < 1e-4);
    assert.equal(e.top_logprobs.length, 2);
    assert.deepEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
  });
  const n3 = await s.client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, n: 3, temperature: 1, seed: 4 });
  assert.equal(n3.choices.length, 3);
  assert.equal(new Set(n3.choices.map((x) => x.message.content)).size, 3, 'three different samples');
});

test('serve: seeds reproduce (alone and while other requests decode); without a seed, samples differ', opt, async () => {
  const req = { model: MODEL, prompt: 'one two three', max_tokens: 16, temperature: 1, top_p: 0.9, seed: 1234, ignore_eos: true } as any;
  const a = await s.client.completions.create(req);
  const b = await s.client.completions.create(req);
  assert.equal(b.choices[0]!.text, a.choices[0]!.text);
  // The same request among 6 others (different prompts, lengths, options) decoding at the same time.
  const noise = Array.from({ length: 6 }, (_, i) => s.client.completions.create({ model: MODEL, prompt: `noise ${i} `.repeat(i + 1), max_tokens: 10 + 5 * i, temperature: 0.7 + i / 10, ignore_eos: true } as any));
  const c = await s.client.completions.create(req);
  await Promise.all(noise);
  assert.equal(c.choices[0]!.text, a.choices[0]!.text);
  const u1 = await s.client.completions.create({ ...req, seed: undefined });
  const u2 = await s.client.completions.create({ ...req, seed: undefined });
  assert.notEqual(u1.choices[0]!.text + u2.choices[0]!.text, a.choices[0]!.text + a.choices[0]!.text);
});

test('serve: streaming completions and chat add up to the non-streamed answer; include_usage; [DONE]', opt, async () => {
  const base = { model: MODEL, prompt: 'hello', max_tokens: 20, temperature: 0, stop: ['zz'] };
  const full = await s.client.completions.create(base);
  const stream = await s.client.completions.create({ ...base, stream: true, stream_options: { include_usage: true }, logprobs: 1 });
  let text = '';
  let finish: string | null = null;
  let usage: any = null;
  let tokens = 0;
  for await (const ch of stream) {
    if (ch.usage) usage = ch.usage;
    for (const c of ch.choices) {
      text += c.text;
      tokens += c.logprobs?.tokens?.length ?? 0;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, full.choices[0]!.text);
  assert.equal(finish, full.choices[0]!.finish_reason);
  assert.equal(tokens, full.usage!.completion_tokens);
  assert.deepEqual(usage, full.usage);
  const messages = [{ role: 'user' as const, content: 'hi' }];
  const chatFull = await s.client.chat.completions.create({ model: MODEL, messages, max_tokens: 10, temperature: 0, n: 2 });
  const chatStream = await s.client.chat.completions.create({ model: MODEL, messages, max_tokens: 10, temperature: 0, n: 2, stream: true });
  const texts = ['', ''];
  const roles: string[] = [];
  for await (const ch of chatStream) {
    assert.equal(ch.object, 'chat.completion.chunk');
    for (const c of ch.choices) {
      if (c.delta.role) roles.push(c.delta.role);
      texts[c.index] += c.delta.content ?? '';
    }
  }
  assert.deepEqual(roles, ['assistant', 'assistant']);
  assert.deepEqual(texts, chatFull.choices.map((c) => c.message.content));
  const rawStream = await post(s.url, '/v1/completions', { ...base, stream: true }, auth);
  assert.equal(rawStream.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  assert.ok(rawStream.text.endsWith('data: [DONE]\n\n'));
  for (const ev of rawStream.text.split('\n\n').filter(Boolean)) assert.match(ev, /^data: /);
});

test('serve: errors in OpenAI shape: 401, 400s, 404, 405, 413, 429, and the server answers after each', opt, async () => {
  const shape = (b: any): void => {
    assert.equal(typeof b.error.message, 'string');
    assert.equal(typeof b.error.type, 'string');
    assert.ok('param' in b.error && 'code' in b.error);
  };
  const ok = { model: MODEL, prompt: 'hi', max_tokens: 2 };
  // 401: no key, a wrong key, a key of another length; /health needs none.
  for (const h of [{} as Record<string, string>, { Authorization: 'Bearer sk-test-kez' }, { Authorization: 'Bearer x' }, { Authorization: 'sk-test-key' }]) {
    const r = await post(s.url, '/v1/completions', ok, h);
    assert.equal(r.status, 401);
    shape(r.body);
  }
  assert.equal((await raw(s.url, '/v1/models')).status, 401);
  await assert.rejects(new OpenAI({ baseURL: s.url, apiKey: 'wrong', maxRetries: 0 }).models.list(), (e: any) => e.status === 401);
  const cases: [unknown, number, string | null][] = [
    ['{"model": ', 400, null],
    ['[1, 2]', 400, null],
    [{ ...ok, model: 'gpt-4' }, 404, 'model'],
    [{ prompt: 'hi', model: 5 }, 400, 'model'],
    [{ model: MODEL }, 400, 'prompt'],
    [{ ...ok, prompt: [] }, 400, 'prompt'],
    [{ ...ok, prompt: [[1, 2], 'x'] }, 400, 'prompt'],
    [{ ...ok, prompt: [1, 2, 100000] }, 400, 'prompt'],
    [{ ...ok, max_tokens: 65 }, 400, 'max_tokens'],
    [{ ...ok, max_tokens: 0 }, 400, 'max_tokens'],
    [{ ...ok, max_tokens: '5' }, 400, 'max_tokens'],
    [{ ...ok, max_tokens: 2.5 }, 400, 'max_tokens'],
    [{ ...ok, n: 5 }, 400, 'n'],
    [{ ...ok, n: 0 }, 400, 'n'],
    [{ ...ok, temperature: -1 }, 400, 'temperature'],
    [{ ...ok, temperature: 'hot' }, 400, 'temperature'],
    [{ ...ok, top_p: 0 }, 400, 'top_p'],
    [{ ...ok, top_p: 1.5 }, 400, 'top_p'],
    [{ ...ok, top_k: -2 }, 400, 'top_k'],
    [{ ...ok, logprobs: 21 }, 400, 'logprobs'],
    [{ ...ok, stop: [1] }, 400, 'stop'],
    [{ ...ok, seed: 'x' }, 400, 'seed'],
    [{ ...ok, stream: 'yes' }, 400, 'stream'],
    [{ ...ok, stream_options: { include_usage: true } }, 400, 'stream_options'],
    [{ ...ok, echo: true, stream: true }, 400, 'echo'],
    [{ ...ok, max_tokens: 0, echo: false }, 400, 'max_tokens'],
    [{ ...ok, presence_penalty: 2.5 }, 400, 'presence_penalty'],
    [{ ...ok, repetition_penalty: 0 }, 400, 'repetition_penalty'],
    [{ ...ok, logit_bias: { x: 1 } }, 400, 'logit_bias'],
    [{ ...ok, logit_bias: { '100000': 1 } }, 400, 'logit_bias'],
    [{ ...ok, prompt: 'x '.repeat(200) }, 400, 'prompt'],
    [{ ...ok, prompt: 'x '.repeat(70), max_tokens: 64 }, 400, 'max_tokens'],
  ];
  for (const [body, status, param] of cases) {
    const r = await post(s.url, '/v1/completions', body, auth);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 80)}: ${r.text}`);
    shape(r.body);
    if (param) assert.equal(r.body.error.param, param, JSON.stringify(body).slice(0, 80));
  }
  const chatCases: [unknown, number, string | null][] = [
    [{ model: MODEL }, 400, 'messages'],
    [{ model: MODEL, messages: [] }, 400, 'messages'],
    [{ model: MODEL, messages: [{ content: 'x' }] }, 400, 'messages[0].role'],
    [{ model: MODEL, messages: [{ role: 'user', content: 5 }] }, 400, 'messages[0].content'],
    [{ model: MODEL, messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }, 400, 'top_logprobs'],
    [{ model: MODEL, messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 50 }, 400, 'top_logprobs'],
    [{ model: MODEL, messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] }, 400, 'tools'],
    [{ model: 'nope', messages: [{ role: 'user', content: 'x' }] }, 404, 'model'],
  ];
  for (const [body, status, param] of chatCases) {
    const r = await post(s.url, '/v1/chat/completions', body, auth);
    assert.equal(r.status, status, `${JSON.stringify(body)}: ${r.text}`);
    shape(r.body);
    if (param) assert.equal(r.body.error.param, param);
  }
  // Through the openai client: its typed errors carry the status.
  await assert.rejects(s.client.completions.create({ ...ok, model: 'nope' }), (e: any) => e instanceof OpenAI.NotFoundError);
  await assert.rejects(s.client.completions.create({ ...ok, n: 9 }), (e: any) => e instanceof OpenAI.BadRequestError && e.param === 'n');
  // 404 route, 405 method, 413 body.
  assert.equal((await post(s.url, '/v1/embeddings', ok, auth)).status, 404);
  assert.equal((await raw(s.url, '/v1/completions', { headers: auth })).status, 405);
  const big = await post(s.url, '/v1/completions', { ...ok, prompt: 'x'.repeat(200 * 1024) }, auth);
  assert.equal(big.status, 413);
  shape(big.body);
  const r = await s.client.completions.create(ok);
  assert.equal(r.choices.length, 1, 'alive after every error');
});

test('serve: a full queue answers 429 with Retry-After', opt, async () => {
  const q = await serve({ engine: { maxBatch: 1, maxQueue: 1 }, retryAfterSeconds: 2 });
  try {
    // Waits for the engine's state instead of a fixed delay (a loaded machine admits later than 20 ms).
    const until = async (cond: () => boolean, what: string): Promise<void> => {
      const t0 = Date.now();
      while (!cond()) {
        assert.ok(Date.now() - t0 < 10_000, `timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const running = q.client.completions.create({ model: MODEL, prompt: 'a', max_tokens: 120, ignore_eos: true } as any);
    await until(() => q.engine.batchSize === 1, 'the first request in the batch');
    const waiting = q.client.completions.create({ model: MODEL, prompt: 'b', max_tokens: 2 });
    await until(() => q.engine.queued === 1, 'the second request in the queue');
    const r = await post(q.url, '/v1/completions', { model: MODEL, prompt: 'c', max_tokens: 2 });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '2');
    assert.equal(r.body.error.code, 'rate_limit_exceeded');
    await assert.rejects(q.client.completions.create({ model: MODEL, prompt: 'd', max_tokens: 2 }), (e: any) => e instanceof OpenAI.RateLimitError);
    assert.equal((await running).choices[0]!.finish_reason, 'length');
    assert.equal((await waiting).choices.length, 1);
  } finally {
    await q.close();
  }
});

test('serve: a client that disconnects cancels its sequences; a request past its timeout is cancelled (408)', opt, async () => {
  const d = await serve({ timeoutMs: 300 });
  try {
    // Streaming: read two events, then abort the connection.
    const ctrl = new AbortController();
    const stream = await d.client.completions.create({ model: MODEL, prompt: 'hello', max_tokens: 120, stream: true, ignore_eos: true } as any, { signal: ctrl.signal });
    let seen = 0;
    try {
      for await (const _ of stream as any) {
        if (++seen === 2) ctrl.abort();
      }
    } catch {
      // the client reports the abort
    }
    assert.ok(seen >= 2 && seen < 100, `${seen} events read`);
    const t0 = Date.now();
    while (d.engine.batchSize > 0 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
    assert.equal(d.engine.batchSize, 0, 'the sequence left the batch');
    assert.ok(d.engine.tokensOut < 100, `stopped after ${d.engine.tokensOut} tokens of 120`);
    // Non-streaming: the same when the client gives up.
    const before = d.engine.tokensOut;
    const ctrl2 = new AbortController();
    const p = d.client.completions.create({ model: MODEL, prompt: 'hello', max_tokens: 120, ignore_eos: true } as any, { signal: ctrl2.signal });
    await new Promise((r) => setTimeout(r, 30));
    ctrl2.abort();
    await assert.rejects(p);
    const t1 = Date.now();
    while (d.engine.batchSize > 0 && Date.now() - t1 < 2000) await new Promise((r) => setTimeout(r, 5));
    assert.equal(d.engine.batchSize, 0);
    assert.ok(d.engine.tokensOut - before < 100);
    // Timeout: the engine is held busy by slowing every step (the listener of a long request).
    const slow = d.engine.submit([1, 2, 3], 1, { maxTokens: 100, temperature: 0, topP: 1, topK: 0, ignoreEos: true }, {
      onToken() {
        const until = Date.now() + 10;
        while (Date.now() < until);
      },
      onFinish() {},
      onError() {},
    });
    const r = await post(d.url, '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 100, ignore_eos: true });
    assert.equal(r.status, 408);
    assert.equal(r.body.error.code, 'request_timeout');
    slow.cancel();
    await d.engine.whenIdle();
  } finally {
    await d.close();
  }
});

test('serve: request lines leave prompts out unless --log-prompts', opt, async () => {
  for (const logPrompts of [false, true]) {
    const lines: string[] = [];
    const l = await serve({ logRequests: true, logPrompts, log: (line) => lines.push(line) });
    try {
      await l.client.completions.create({ model: MODEL, prompt: 'secret-prompt-text', max_tokens: 2 });
      await l.client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'secret-chat-text' }], max_tokens: 2 });
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(lines.length, 2, lines.join('\n'));
      assert.match(lines[0]!, /POST \/v1\/completions 200 .* prompt_tokens=\d+ completion_tokens=2/);
      assert.equal(lines.some((x) => x.includes('secret-prompt-text')), logPrompts);
      assert.equal(lines.some((x) => x.includes('secret-chat-text')), logPrompts);
    } finally {
      await l.close();
    }
  }
});
