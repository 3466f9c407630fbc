// `sppo generate --backend-url` against vLLM- and SGLang-shaped servers: loopback HTTP servers that replay
// responses in the shapes of the engines' protocol files (test/recordings/, written by
// scripts/remote-recordings.mjs), and check what sppo sends: every sampler field pinned at sppo's own
// values (vLLM and SGLang fill fields left out from the checkpoint's generation_config.json), one n = 1
// request per sample with a seed no other sample of the call shares.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixture, llamaDir, noLlama } from './serve_helpers.js';
import { removeDir, tempDir } from './text_helpers.js';
import { sppoAsync } from './helpers/cli.js';
import { packSequences } from '../src/sppo/logprobs.js';
import { noGrad } from '../src/torch/index.js';
import { LOGPROB32 } from './helpers/tolerances.js';
import { errorMessage, samplerFields, toGeneration } from '../src/generate/remote.js';

const recordings = fileURLToPath(new URL('../../test/recordings/', import.meta.url));
const recording = (name: string): any => JSON.parse(readFileSync(join(recordings, name), 'utf8'));

type Line = { id: string; prompt_text: string; responses: { text: string; token_ids: number[]; logprobs: number[]; finish_reason: string }[] };
const read = (p: string): Line[] => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);

/** A loopback server: GET /v1/models names one model; POST /v1/completions answers reply(body, i). */
async function replay(reply: (body: any, i: number) => { status?: number; body: unknown }): Promise<{ url: string; bodies: any[]; server: Server }> {
  const bodies: any[] = [];
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (d) => (data += d));
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json');
      if (req.url === '/v1/models') return res.end(JSON.stringify({ object: 'list', data: [{ id: 'policy', object: 'model' }] }));
      const b = JSON.parse(data);
      bodies.push(b);
      const r = reply(b, bodies.length - 1);
      res.statusCode = r.status ?? 200;
      res.end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`, bodies, server };
}

/** The sampler fields every request must carry, at sppo's values for these CLI options. */
const pinned = (maxTokens: number, minTokens = 0) => ({
  n: 1, max_tokens: maxTokens, temperature: 1, top_p: 1, top_k: -1, min_p: 0, repetition_penalty: 1, presence_penalty: 0, frequency_penalty: 0,
  min_tokens: minTokens, stop: [], stop_token_ids: [], ignore_eos: false, logit_bias: {}, logprobs: 0, return_token_ids: true, return_tokens_as_token_ids: true,
});

function assertPinned(body: Record<string, unknown>, want: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(want)) assert.deepEqual(body[k], v, `request field ${k}`);
  assert.equal(typeof body.seed, 'number', 'request field seed');
}

test('samplerFields: top_k -1 for none, the penalties and min_p at their neutral values, always sent', () => {
  assert.deepEqual(samplerFields({}), { max_tokens: 256, temperature: 1, top_p: 1, top_k: -1, min_p: 0, repetition_penalty: 1, presence_penalty: 0, frequency_penalty: 0, min_tokens: 0, stop: [], stop_token_ids: [], ignore_eos: false, logit_bias: {} });
  const f = samplerFields({ topK: 20, temperature: 0.7, topP: 0.9, minNewTokens: 2, stopStrings: ['\n'], maxNewTokens: 9 });
  assert.equal(f.top_k, 20);
  assert.equal(f.temperature, 0.7);
  assert.deepEqual(f.stop, ['\n']);
  assert.equal(f.min_tokens, 2);
  // sppo generate's penalties, when given, are sent as they are.
  const p = samplerFields({ repetitionPenalty: 1.05, presencePenalty: 0.5, frequencyPenalty: -0.5 });
  assert.deepEqual([p.repetition_penalty, p.presence_penalty, p.frequency_penalty], [1.05, 0.5, -0.5]);
});

test('toGeneration: vLLM stop_reason and SGLang matched_stop (a string: a stop string; a number: EOS)', () => {
  const v = recording('vllm-completion.json').choices[0];
  assert.equal(toGeneration(v, 0, 0).finishReason, 'eos');
  assert.equal(toGeneration({ ...v, stop_reason: '\n' }, 0, 0).finishReason, 'stop');
  assert.equal(toGeneration({ ...v, finish_reason: 'length' }, 0, 0).finishReason, 'length');
  const s = recording('sglang-completion.json').choices[0];
  const g = toGeneration(s, 0, 0);
  assert.equal(g.finishReason, 'stop');
  assert.deepEqual(g.tokens, s.token_ids);
  const t = recording('sglang-text-only.json').choices[0];
  // Text tokens: an error unless the caller re-tokenises text-only choices.
  assert.throws(() => toGeneration(t, 0, 0), /token_id:N/);
  const tg = toGeneration(t, 0, 0, true);
  assert.equal(tg.finishReason, 'eos');
  assert.deepEqual(tg.tokens, []);
  assert.equal(tg.stopToken, t.matched_stop);
  assert.equal(errorMessage(recording('sglang-error.json')), recording('sglang-error.json').message);
  assert.equal(errorMessage(recording('vllm-error.json')), recording('vllm-error.json').error.message);
});

type Local = Line['responses'][number];
/** The choice vLLM would send for what in-process generation sampled. */
function vllmChoice(template: any, r: Local, prompt: number[]): unknown {
  return {
    ...template.choices[0], text: r.text, token_ids: r.token_ids, prompt_token_ids: prompt,
    logprobs: { ...template.choices[0].logprobs, token_logprobs: r.logprobs, tokens: r.token_ids.map((t) => `token_id:${t}`), top_logprobs: r.token_ids.map((t, i) => ({ [`token_id:${t}`]: r.logprobs[i] })) },
    finish_reason: r.finish_reason === 'length' ? 'length' : 'stop', stop_reason: r.finish_reason === 'stop' ? '\n' : null,
  };
}
/** The choice SGLang would send (return_token_ids; log-prob tokens as text; matched_stop: the EOS id, or the stop string). */
function sglangChoice(template: any, r: Local, prompt: number[], eos: number, decode: (id: number) => string): unknown {
  return {
    ...template.choices[0], text: r.text, token_ids: r.token_ids, prompt_token_ids: prompt,
    logprobs: { ...template.choices[0].logprobs, token_logprobs: r.logprobs, tokens: r.token_ids.map(decode), top_logprobs: r.token_ids.map(() => null) },
    finish_reason: r.finish_reason === 'length' ? 'length' : 'stop', matched_stop: r.finish_reason === 'eos' ? eos : r.finish_reason === 'stop' ? '\n' : null,
  };
}

for (const engine of ['vLLM', 'SGLang'] as const) {
  test(`sppo generate --backend-url on a ${engine}-shaped server: the in-process output exactly; every sampler field pinned; no seed shared`, { skip: noLlama, timeout: 120_000 }, async () => {
    const dir = tempDir('remote-engines');
    const n = 3;
    writeFileSync(join(dir, 'p.jsonl'), ['{"id":"a","prompt":"hello there"}', '{"id":"b","prompt":"say a word"}', '{"id":"c","prompt":"and another"}'].join('\n') + '\n');
    const common = ['generate', '--model', llamaDir, '--prompts', join(dir, 'p.jsonl'), '-n', String(n), '--max-new-tokens', '6', '--device', 'cpu', '--seed', '5'];
    const l = await sppoAsync([...common, '--out', join(dir, 'local.jsonl')]);
    assert.equal(l.status, 0, l.stderr);
    const local = read(join(dir, 'local.jsonl'));
    const { tokenizer } = fixture();
    const template = recording(engine === 'vLLM' ? 'vllm-completion.json' : 'sglang-completion.json');
    // The server "samples" what the in-process generation sampled for (prompt, sample) = the seed's.
    const s = await replay((b) => {
      const k = b.seed - 5;
      const r = local[Math.floor(k / n)]!.responses[k % n]!;
      const choice = engine === 'vLLM' ? vllmChoice(template, r, b.prompt) : sglangChoice(template, r, b.prompt, tokenizer.eosTokenId!, (id) => tokenizer.decode([id]));
      return { body: { ...template, choices: [choice] } };
    });
    try {
      const r = await sppoAsync([...common, '--out', join(dir, 'remote.jsonl'), '--backend-url', s.url, '--concurrency', '2']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(read(join(dir, 'remote.jsonl')), local);
      assert.equal(s.bodies.length, 3 * n, 'one request per sample');
      for (const b of s.bodies) assertPinned(b, pinned(6));
      assert.deepEqual(s.bodies.map((b) => b.seed).sort((x, y) => x - y), Array.from({ length: 3 * n }, (_, i) => 5 + i), 'every sample its own seed');
    } finally {
      s.server.close();
      removeDir(dir);
    }
  });
}

/** `sppo generate --backend-url` (one prompt, n = 1) against a server replaying `body` with `status`: the CLI's result, the request, the output's response. */
async function onRecorded(body: unknown, status = 200): Promise<{ r: { status: number | null; stderr: string }; request: any; g: Line['responses'][number] | undefined }> {
  const dir = tempDir('remote-recorded');
  writeFileSync(join(dir, 'p.jsonl'), '{"prompt":"hello there"}\n');
  const s = await replay(() => ({ status, body }));
  try {
    const r = await sppoAsync(['generate', '--model', llamaDir, '--prompts', join(dir, 'p.jsonl'), '--out', join(dir, 'o.jsonl'), '-n', '1', '--max-new-tokens', '8', '--min-new-tokens', '1', '--device', 'cpu', '--backend-url', s.url]);
    const g = r.status === 0 ? read(join(dir, 'o.jsonl'))[0]!.responses[0] : undefined;
    return { r, request: s.bodies[0], g };
  } finally {
    s.server.close();
    removeDir(dir);
  }
}

test('recorded vLLM response: token ids (EOS included) and log-probs as sent, ended on EOS; the request pins the sampler', { skip: noLlama, timeout: 60_000 }, async () => {
  const rec = recording('vllm-completion.json');
  const { r, request, g } = await onRecorded(rec);
  assert.equal(r.status, 0, r.stderr);
  assertPinned(request, pinned(8, 1));
  assert.deepEqual(g!.token_ids, rec.choices[0].token_ids);
  assert.deepEqual(g!.logprobs, rec.choices[0].logprobs.token_logprobs);
  assert.equal(g!.finish_reason, 'eos');
  assert.equal(g!.text, rec.choices[0].text);
});

test('recorded SGLang response with token_ids: matched_stop "\\n" is a stop string, not EOS', { skip: noLlama, timeout: 60_000 }, async () => {
  const rec = recording('sglang-completion.json');
  const { r, g } = await onRecorded(rec);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(g!.token_ids, rec.choices[0].token_ids);
  assert.deepEqual(g!.logprobs, rec.choices[0].logprobs.token_logprobs);
  assert.equal(g!.finish_reason, 'stop');
});

test('recorded SGLang response with text tokens only: re-tokenised, the matched EOS appended, log-probs recomputed in process', { skip: noLlama, timeout: 60_000 }, async () => {
  const { model, tokenizer } = fixture();
  const rec = recording('sglang-text-only.json');
  const { r, request, g } = await onRecorded(rec);
  assert.equal(r.status, 0, r.stderr);
  const want = [...tokenizer.encode(rec.choices[0].text, { addSpecialTokens: false }), rec.choices[0].matched_stop];
  assert.deepEqual(g!.token_ids, want);
  assert.equal(g!.finish_reason, 'eos');
  // The reference: the policy's log-probs of those tokens after the prompt the server was sent.
  const prompt = request.prompt as number[];
  const batch = packSequences([{ promptIds: prompt, responseIds: want }], tokenizer.padTokenId ?? 0);
  const t = noGrad(() => model.tokenLogprobs({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }));
  const lp = t.toTypedArray() as Float32Array;
  t.dispose();
  batch.inputIds.dispose();
  batch.attentionMask.dispose();
  batch.responseMask.dispose();
  assert.equal(g!.logprobs.length, want.length);
  g!.logprobs.forEach((v, j) => assert.ok(Math.abs(v - lp[prompt.length - 1 + j]!) <= LOGPROB32, `log-prob ${j}: ${v} vs ${lp[prompt.length - 1 + j]}`));
  // Not the server's (made-up) log-probs.
  assert.notDeepEqual(g!.logprobs, rec.choices[0].logprobs.token_logprobs.slice(0, want.length));
});

test("recorded error bodies: SGLang's top-level message and vLLM's {\"error\": {\"message\"}} both reach the user", { skip: noLlama, timeout: 60_000 }, async () => {
  for (const name of ['sglang-error.json', 'vllm-error.json']) {
    const rec = recording(name);
    const { r } = await onRecorded(rec, 400);
    assert.notEqual(r.status, 0);
    assert.ok(r.stderr.includes(rec.message ?? rec.error.message), `${name}: ${r.stderr}`);
  }
});
