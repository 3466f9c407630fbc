// A real `sppo serve` process (node bin/sppo.js serve DIR --port 0): the API key from $SPPO_API_KEY,
// requests through the openai client, and SIGTERM: no new connections, the request in flight finishes
// in full, exit status 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { get } from 'node:http';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { llamaDir, noLlama } from './serve_helpers.js';

const bin = fileURLToPath(new URL('../../bin/sppo.js', import.meta.url));

/**
 * GET on a connection of its own (agent: false), as a load balancer's probe makes it. fetch would reuse a pooled
 * keep-alive connection, which the draining server closes as idle: the request then races the close ('fetch failed').
 */
function probe(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
    });
    req.on('error', reject);
  });
}

test('serve process: answers over the openai client, then SIGTERM drains in-flight requests and exits 0', { skip: noLlama, timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [bin, 'serve', llamaDir, '--port', '0', '--served-model-name', 'tiny', '--log-requests'], {
    env: { ...process.env, SPPO_API_KEY: 'sk-proc' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = /listening on [^\s]+:(\d+)/.exec(stderr);
        if (m) resolve(Number(m[1]));
      });
      void exited.then((code) => reject(new Error(`exited ${code} before listening:\n${stderr}`)));
    });
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sk-proc', maxRetries: 0 });
    await assert.rejects(new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'other', maxRetries: 0 }).models.list(), (e: any) => e.status === 401);
    const chat = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
    assert.equal(chat.choices.length, 1);
    // A request whose body is half sent holds the drain open (the server counts it from its headers), so the checks
    // made while draining do not race the streaming request's end on a fast machine; its body is finished below.
    const held = connect(port, '127.0.0.1');
    await new Promise<void>((r) => held.once('connect', () => r()));
    const heldBody = JSON.stringify({ model: 'tiny', prompt: 'x', max_tokens: 1 });
    held.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-proc\r\nContent-Type: application/json\r\nContent-Length: ${heldBody.length}\r\n\r\n${heldBody.slice(0, 5)}`);
    let heldReply = '';
    held.on('data', (d) => (heldReply += d));
    const heldClosed = new Promise<void>((r) => held.once('close', () => r()));
    // A long streaming request in flight when SIGTERM comes.
    const stream = await client.completions.create({ model: 'tiny', prompt: 'hello', max_tokens: 120, stream: true, ignore_eos: true } as any);
    let text = 0;
    let finish: string | null = null;
    let signalled = false;
    for await (const ch of stream as unknown as AsyncIterable<OpenAI.Completion>) {
      if (!signalled) {
        child.kill('SIGTERM');
        signalled = true;
        // While draining, /health answers 503 (a load balancer's probe sees it) and new requests get 503
        // (polled until the signal has arrived).
        let health = 200;
        for (let i = 0; i < 200 && health === 200; i++) {
          health = (await probe(port, '/health')).status;
          if (health === 200) await new Promise((r) => setTimeout(r, 25));
        }
        assert.equal(health, 503);
        const late = await probe(port, '/v1/models', { Authorization: 'Bearer sk-proc' });
        assert.equal(late.status, 503);
        assert.equal(late.connection, 'close');
        held.end(heldBody.slice(5));
      }
      text += ch.choices[0]?.logprobs ? 0 : 1;
      finish = ch.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'length', 'the request in flight was finished');
    assert.ok(text > 0);
    await heldClosed;
    assert.match(heldReply, /^HTTP\/1\.1 \d{3} /, 'the held request was answered before the exit');
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /SIGTERM: no new requests; finishing [1-9]\d* running sequences/, 'the request was in flight at SIGTERM');
    assert.doesNotMatch(stderr, /hello/, 'prompts are not logged');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
