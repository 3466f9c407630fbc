// `sppo generate --backend-url`: generation on OpenAI-compatible servers instead of loading the model, in
// the same output format; a server that answers with text only (no token ids) gets its text re-tokenised
// and its log-probs recomputed in process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { llamaDir, MODEL, noLlama, serve } from './serve_helpers.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { removeDir, tempDir } from './text_helpers.js';
import { sppoAsync } from './helpers/cli.js';


/** Runs the CLI without blocking this process's event loop (the servers live here). */
const cli = (args: string[], env: Record<string, string> = {}) => sppoAsync(args, { env });

type Line = { id: string; prompt_text: string; responses: { text: string; token_ids: number[]; logprobs: number[]; finish_reason: string }[] };
const read = (p: string): Line[] => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);

test('sppo generate --backend-url: the same output format as in process, from sppo serve', { skip: noLlama, timeout: 60_000 }, async () => {
  const dir = tempDir('remote-gen');
  const s = await serve({ apiKey: 'sekret' });
  try {
    writeFileSync(join(dir, 'p.jsonl'), ['{"id":"a","prompt":"hello there"}', '{"id":"b","prompt":"say a word"}', '{"id":"c","messages":[{"role":"user","content":"hi"}]}'].join('\n') + '\n');
    const common = ['generate', '--model', llamaDir, '--prompts', join(dir, 'p.jsonl'), '-n', '2', '--max-new-tokens', '6', '--device', 'cpu'];
    const r = await cli([...common, '--out', join(dir, 'remote.jsonl'), '--backend-url', s.url, '--api-key-env', 'TEST_KEY', '--concurrency', '2'], { TEST_KEY: 'sekret' });
    assert.equal(r.status, 0, r.stderr);
    const l = await cli([...common, '--out', join(dir, 'local.jsonl')]);
    assert.equal(l.status, 0, l.stderr);
    const remote = read(join(dir, 'remote.jsonl'));
    const local = read(join(dir, 'local.jsonl'));
    const tok = Tokenizer.fromFolder(llamaDir);
    assert.equal(remote.length, 3);
    remote.forEach((x, i) => {
      assert.deepEqual(Object.keys(x).sort(), Object.keys(local[i]!).sort());
      assert.equal(x.prompt_text, local[i]!.prompt_text);
      assert.equal(x.responses.length, 2);
      for (const g of x.responses) {
        assert.deepEqual(Object.keys(g).sort(), Object.keys(local[i]!.responses[0]!).sort());
        assert.equal(g.logprobs.length, g.token_ids.length);
        assert.ok(g.token_ids.length >= 1 && g.token_ids.length <= 6);
        assert.ok(g.logprobs.every((v) => Number.isFinite(v) && v <= 0));
        assert.equal(g.text, tok.decode(g.token_ids, { skipSpecialTokens: true }));
      }
    });
    // Without the key the server refuses: an error, no output.
    const bad = await cli([...common, '--out', join(dir, 'bad.jsonl'), '--backend-url', s.url, '--backend-model', MODEL]);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /401/);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('sppo generate --backend-url: text-only responses are re-tokenised and scored in process', { skip: noLlama, timeout: 60_000 }, async () => {
  const dir = tempDir('remote-gen-text');
  const seen: Record<string, unknown>[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json');
      if (req.url === '/v1/models') return res.end(JSON.stringify({ object: 'list', data: [{ id: 'text-only', object: 'model' }] }));
      const b = JSON.parse(body) as { n: number };
      seen.push(b);
      // Text-only, and text log-prob tokens (as SGLang without return_token_ids sends them).
      res.end(JSON.stringify({ choices: Array.from({ length: b.n }, (_, index) => ({ index, text: ' hello world', finish_reason: 'length', logprobs: { tokens: [' hello', ' world'], token_logprobs: [-1, -2] } })) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    writeFileSync(join(dir, 'p.jsonl'), '{"prompt":"hello there"}\n');
    const r = await cli(['generate', '--model', llamaDir, '--prompts', join(dir, 'p.jsonl'), '--out', join(dir, 'o.jsonl'), '-n', '2', '--device', 'cpu', '--min-new-tokens', '1', '--backend-url', `http://127.0.0.1:${port}/v1`]);
    assert.equal(r.status, 0, r.stderr);
    // One n = 1 request per sample.
    assert.equal(seen.length, 2);
    for (const b of seen) {
      assert.equal(b.model, 'text-only');
      assert.equal(b.min_tokens, 1);
      assert.equal(b.n, 1);
    }
    const [line] = read(join(dir, 'o.jsonl'));
    const tok = Tokenizer.fromFolder(llamaDir);
    for (const g of line!.responses) {
      assert.deepEqual(g.token_ids, tok.encode(' hello world', { addSpecialTokens: false }));
      assert.equal(g.logprobs.length, g.token_ids.length);
      assert.ok(g.logprobs.every((v) => Number.isFinite(v) && v < 0));
    }
  } finally {
    server.close();
    removeDir(dir);
  }
});
