// `sppo serve`: the request fields that change the output, each honoured or refused with a 400 naming it
// (min_p, include_stop_str_in_output, skip_special_tokens, add_special_tokens, truncate_prompt_tokens,
// echo with prompt log-probs and max_tokens 0, prompt_logprobs; beam search, structured outputs, ...), vLLM's /tokenize and /detokenize, top_logprobs keyed by token without
// collisions, the queue limit (requests about to join the batch are not queued), a huge prompt that does
// not stall the other streams, and request lines that say when a request was never answered.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, MODEL, noLlama, post, serve, type Served } from './serve_helpers.js';
import { noGrad, tensor } from '../src/torch/index.js';
import { topLogprobsDict } from '../src/serve/endpoint.js';
import { TextStream } from '../src/serve/text_stream.js';
import { StopStrings } from '../src/text/stop_strings.js';
import { Engine, SppoServer } from '../src/serve/index.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { copyFolder, removeDir, tempDir } from './text_helpers.js';
import { spawn, spawnSync } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOGPROB32 } from './helpers/tolerances.js';
import { sppoCli } from './helpers/cli.js';
import { llamaDir } from './serve_helpers.js';

let s: Served;
before(async () => {
  if (!noLlama) s = await serve({ apiKey: 'k', maxBodyBytes: 4 * 1024 * 1024, maxTokens: 100, maxN: 4 });
});
after(async () => {
  await s?.close();
});
const auth = { Authorization: 'Bearer k' };
const opt = { skip: noLlama, timeout: 60_000 };
const complete = (body: Record<string, unknown>) => post(s.url, '/v1/completions', { model: MODEL, ...body }, auth);

/** log p(x[t] | x[<t]) of a prompt with the model in process (the trainer's computation). */
function ownLogprobs(ids: number[]): number[] {
  const { model } = fixture();
  return noGrad(() => {
    const t = model.tokenLogprobs({ inputIds: tensor(BigInt64Array.from(ids, BigInt)).unsqueeze(0) });
    const out = Array.from(t.toTypedArray() as Float32Array);
    t.dispose();
    return out;
  });
}

test('serve fields: min_p 1 keeps only the most likely token (the greedy output); min_p 0 samples', opt, async () => {
  const greedy = await complete({ prompt: 'the quick brown fox', max_tokens: 12, temperature: 0, ignore_eos: true });
  const minP = await complete({ prompt: 'the quick brown fox', max_tokens: 12, temperature: 1.5, min_p: 1, seed: 3, ignore_eos: true });
  assert.equal(minP.status, 200, minP.text);
  assert.equal(minP.body.choices[0].text, greedy.body.choices[0].text);
  const sampled = await complete({ prompt: 'the quick brown fox', max_tokens: 12, temperature: 1.5, min_p: 0, seed: 3, ignore_eos: true });
  assert.notEqual(sampled.body.choices[0].text, greedy.body.choices[0].text);
  assert.equal((await complete({ prompt: 'x', min_p: 1.5 })).body.error.param, 'min_p');
});

test('serve fields: include_stop_str_in_output keeps the stop string; skip_special_tokens: false keeps special tokens', opt, async () => {
  const greedy = await complete({ prompt: 'the quick brown fox', max_tokens: 12, temperature: 0, ignore_eos: true });
  const text: string = greedy.body.choices[0].text;
  const stop = text.slice(3, 5);
  const cut = text.slice(0, text.indexOf(stop));
  const without = await complete({ prompt: 'the quick brown fox', max_tokens: 12, temperature: 0, ignore_eos: true, stop: [stop] });
  assert.equal(without.body.choices[0].text, cut);
  const withStop = await complete({ prompt: 'the quick brown fox', max_tokens: 12, temperature: 0, ignore_eos: true, stop: [stop], include_stop_str_in_output: true });
  assert.equal(withStop.body.choices[0].text, cut + stop);
  assert.equal(withStop.body.choices[0].stop_reason, stop);
  // skip_special_tokens decides whether special tokens reach the text (a sequence with BOS and EOS in it).
  const { tokenizer } = fixture();
  const ids = [tokenizer.bosTokenId!, ...tokenizer.encode(' hi there', { addSpecialTokens: false }), tokenizer.eosTokenId!];
  for (const skip of [true, false]) {
    const ts = new TextStream(tokenizer, new StopStrings([]), true, { skipSpecialTokens: skip });
    for (let i = 1; i <= ids.length; i++) ts.push(ids.slice(0, i));
    ts.release(ids, false);
    assert.equal(ts.text, tokenizer.decode(ids, { skipSpecialTokens: skip }));
  }
  // Over HTTP: echo of a token prompt that starts with BOS.
  const kept = await complete({ prompt: ids.slice(0, -1), max_tokens: 0, echo: true, skip_special_tokens: false });
  const skipped = await complete({ prompt: ids.slice(0, -1), max_tokens: 0, echo: true });
  assert.ok(kept.body.choices[0].text.includes(tokenizer.decode([tokenizer.bosTokenId!])), kept.text);
  assert.ok(!skipped.body.choices[0].text.includes(tokenizer.decode([tokenizer.bosTokenId!])), skipped.text);
});

test('serve fields: echo with max_tokens 0 and logprobs gives the prompt log-probs of tokenLogprobs; with max_tokens, the prompt then the completion', opt, async () => {
  const { tokenizer } = fixture();
  const prompt = 'the quick brown fox jumps';
  const ids = tokenizer.encode(prompt, { addSpecialTokens: true });
  const own = ownLogprobs(ids);
  const r = await complete({ prompt, max_tokens: 0, echo: true, logprobs: 1, temperature: 0 });
  assert.equal(r.status, 200, r.text);
  const c = r.body.choices[0];
  assert.equal(c.text, prompt);
  assert.equal(c.finish_reason, 'length');
  assert.equal(c.logprobs.tokens.length, ids.length);
  assert.equal(c.logprobs.token_logprobs[0], null);
  assert.equal(c.logprobs.top_logprobs[0], null);
  own.forEach((v, t) => assert.ok(Math.abs(c.logprobs.token_logprobs[t + 1] - v) <= LOGPROB32, `position ${t + 1}`));
  // Each position's top entry is the most likely token; the prompt's own token is keyed as in `tokens`.
  for (let t = 1; t < ids.length; t++) {
    const top = c.logprobs.top_logprobs[t];
    assert.ok(c.logprobs.tokens[t] in top);
    assert.ok(Math.max(...Object.values(top) as number[]) >= c.logprobs.token_logprobs[t] - 1e-6);
  }
  assert.deepEqual(r.body.usage, { prompt_tokens: ids.length, completion_tokens: 0, total_tokens: ids.length });
  // With generation: the prompt's text and log-probs, then the completion's.
  const g = await complete({ prompt, max_tokens: 3, temperature: 0, ignore_eos: true, logprobs: 0 });
  const e = await complete({ prompt, max_tokens: 3, temperature: 0, ignore_eos: true, logprobs: 0, echo: true });
  assert.equal(e.body.choices[0].text, prompt + g.body.choices[0].text);
  assert.deepEqual(e.body.choices[0].logprobs.token_logprobs.slice(ids.length), g.body.choices[0].logprobs.token_logprobs);
  // Without logprobs: text only.
  const t = await complete({ prompt, max_tokens: 0, echo: true });
  assert.equal(t.body.choices[0].logprobs, null);
});

test('serve fields: prompt_logprobs (vLLM shape), on completions and chat', opt, async () => {
  const { tokenizer, template } = fixture();
  const ids = tokenizer.encode('hello there you', { addSpecialTokens: true });
  const own = ownLogprobs(ids);
  const r = await complete({ prompt: ids, max_tokens: 1, prompt_logprobs: 2 });
  assert.equal(r.status, 200, r.text);
  const pl = r.body.choices[0].prompt_logprobs;
  assert.equal(pl.length, ids.length);
  assert.equal(pl[0], null);
  for (let t = 1; t < ids.length; t++) {
    const e = pl[t][String(ids[t])];
    assert.ok(Math.abs(e.logprob - own[t - 1]!) <= LOGPROB32);
    assert.ok(Number.isInteger(e.rank) && e.rank >= 1);
    assert.equal(e.decoded_token, tokenizer.decode([ids[t]!]));
    assert.ok(Object.keys(pl[t]).length >= 2 && Object.keys(pl[t]).length <= 3);
  }
  assert.deepEqual(r.body.choices[0].prompt_token_ids, ids);
  const chat = await post(s.url, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, prompt_logprobs: 0 }, auth);
  assert.equal(chat.status, 200, chat.text);
  const cids = tokenizer.encode(template.render([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true }), { addSpecialTokens: false });
  assert.deepEqual(chat.body.prompt_token_ids, cids);
  assert.equal(chat.body.prompt_logprobs.length, cids.length);
  assert.equal((await complete({ prompt: 'x', prompt_logprobs: 1, stream: true })).body.error.param, 'prompt_logprobs');
});

test('serve fields: add_special_tokens and truncate_prompt_tokens', opt, async () => {
  // A copy of the fixture's tokenizer whose post-processor adds BOS (the fixture's adds nothing).
  const dir = copyFolder(llamaDir, 'bos');
  const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  tj.post_processor = {
    type: 'Sequence',
    processors: [tj.post_processor, { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } }],
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
  const tokenizer = Tokenizer.fromFolder(dir);
  const engine = new Engine(fixture().model, { tokenizer, seed: 0 });
  const server = new SppoServer(engine, tokenizer, fixture().template, { modelName: MODEL });
  await server.listen(0, '127.0.0.1');
  try {
    const prompt = 'one two three four five';
    const withBos = tokenizer.encode(prompt, { addSpecialTokens: true });
    const plain = tokenizer.encode(prompt, { addSpecialTokens: false });
    assert.deepEqual(withBos, [1, ...plain], 'the copy adds BOS');
    const ask = (b: Record<string, unknown>) => post(server.url, '/v1/completions', { model: MODEL, prompt, max_tokens: 1, return_token_ids: true, ...b });
    assert.deepEqual((await ask({})).body.prompt_token_ids, withBos);
    assert.deepEqual((await ask({ add_special_tokens: false })).body.prompt_token_ids, plain);
    assert.deepEqual((await ask({ truncate_prompt_tokens: 3 })).body.prompt_token_ids, withBos.slice(-3));
    assert.deepEqual((await ask({ truncate_prompt_tokens: 3, truncation_side: 'right' })).body.prompt_token_ids, withBos.slice(0, 3));
    // Chat: the rendered text as it is unless add_special_tokens: true.
    const messages = [{ role: 'user', content: 'hi' }];
    const rendered = fixture().template.render(messages, { addGenerationPrompt: true });
    const chat = (b: Record<string, unknown>) => post(server.url, '/v1/chat/completions', { model: MODEL, messages, max_tokens: 1, return_token_ids: true, ...b });
    assert.deepEqual((await chat({})).body.prompt_token_ids, tokenizer.encode(rendered, { addSpecialTokens: false }));
    assert.deepEqual((await chat({ add_special_tokens: true })).body.prompt_token_ids, tokenizer.encode(rendered, { addSpecialTokens: true }));
  } finally {
    await server.shutdown(1000);
    engine.dispose();
    removeDir(dir);
  }
});

test('serve fields: every other output-changing field is refused with a 400 naming it', opt, async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ allowed_token_ids: [] }, 'allowed_token_ids'],
    [{ allowed_token_ids: [1, 1e6] }, 'allowed_token_ids'],
    [{ bad_words: 'x' }, 'bad_words'],
    [{ use_beam_search: true }, 'use_beam_search'],
    [{ length_penalty: 2 }, 'length_penalty'],
    [{ spaces_between_special_tokens: false }, 'spaces_between_special_tokens'],
    [{ logprob_token_ids: [1], logprobs: 1 }, 'logprob_token_ids'],
    [{ structured_outputs: { regex: 'a+' } }, 'structured_outputs'],
    [{ guided_json: { type: 'object' } }, 'guided_json'],
    [{ guided_choice: ['a', 'b'] }, 'guided_choice'],
    [{ regex: 'a+' }, 'regex'],
    [{ json_schema: '{}' }, 'json_schema'],
    [{ ebnf: 'root ::= "a"' }, 'ebnf'],
    [{ stop_regex: 'a' }, 'stop_regex'],
    [{ response_format: { type: 'json_object' } }, 'response_format'],
    [{ logits_processors: ['x'] }, 'logits_processors'],
    [{ repetition_penalty: -1 }, 'repetition_penalty'],
    [{ frequency_penalty: -2.5 }, 'frequency_penalty'],
    [{ logit_bias: { '5': 'up' } }, 'logit_bias'],
    [{ priority: 1 }, 'priority'],
    [{ suffix: 'x' }, 'suffix'],
    [{ truncation_side: 'middle' }, 'truncation_side'],
  ];
  for (const [extra, param] of cases) {
    const r = await complete({ prompt: 'hi', max_tokens: 2, ...extra });
    assert.equal(r.status, 400, `${param}: ${r.text}`);
    assert.equal(r.body.error.param, param);
  }
  // Their neutral values are accepted (what sppo's own remote generation sends).
  const neutral = await complete({ prompt: 'hi', max_tokens: 2, top_k: -1, min_p: 0, repetition_penalty: 1, presence_penalty: 0, frequency_penalty: 0, stop: [], stop_token_ids: [], ignore_eos: false, logit_bias: {}, bad_words: [], use_beam_search: false, length_penalty: 1 });
  assert.equal(neutral.status, 200, neutral.text);
  for (const [extra, param] of [[{ echo: true }, 'echo'], [{ chat_template: '{{ x }}' }, 'chat_template'], [{ tool_choice: 'required' }, 'tool_choice']] as const) {
    const r = await post(s.url, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 2, ...extra }, auth);
    assert.equal(r.status, 400, `${param}: ${r.text}`);
    assert.equal(r.body.error.param, param);
  }
});

test('serve: /tokenize and /detokenize (vLLM shapes), behind the API key', opt, async () => {
  const { tokenizer, template } = fixture();
  const t = await post(s.url, '/tokenize', { model: MODEL, prompt: 'hello world', return_token_strs: true }, auth);
  assert.equal(t.status, 200, t.text);
  const ids = tokenizer.encode('hello world', { addSpecialTokens: true });
  assert.deepEqual(t.body, { count: ids.length, max_model_len: s.engine.maxModelLen, tokens: ids, token_strs: ids.map((i) => tokenizer.decode([i])) });
  const noSpecial = await post(s.url, '/tokenize', { prompt: 'hello world', add_special_tokens: false }, auth);
  assert.deepEqual(noSpecial.body.tokens, tokenizer.encode('hello world', { addSpecialTokens: false }));
  const messages = [{ role: 'user', content: 'hi' }];
  const m = await post(s.url, '/tokenize', { model: MODEL, messages }, auth);
  assert.deepEqual(m.body.tokens, tokenizer.encode(template.render(messages, { addGenerationPrompt: true }), { addSpecialTokens: false }));
  const d = await post(s.url, '/detokenize', { model: MODEL, tokens: ids }, auth);
  assert.deepEqual(d.body, { prompt: tokenizer.decode(ids) });
  assert.equal((await post(s.url, '/tokenize', { prompt: 'x' })).status, 401);
  // /tokenizer_info: what lm-evaluation-harness's remote tokenizer reads.
  const info = await fetch(s.url.replace(/\/v1$/, '') + '/tokenizer_info', { headers: auth });
  const ib = (await info.json()) as Record<string, unknown>;
  assert.equal(ib.eos_token, tokenizer.specialTokens.eos_token);
  assert.equal(ib.bos_token, tokenizer.specialTokens.bos_token);
  assert.equal(ib.chat_template, template.text);
  assert.equal(ib.model_max_length, s.engine.maxModelLen);
  assert.equal((await post(s.url, '/detokenize', { tokens: [1e9] }, auth)).body.error.param, 'tokens');
  assert.equal((await post(s.url, '/tokenize', { model: 'other', prompt: 'x' }, auth)).status, 404);
});

test('top_logprobs keyed by token: two ids that decode alike keep their own entries', () => {
  const str = (id: number): string => (id === 7 || id === 8 || id === 9 ? '\uFFFD' : `t${id}`);
  const d = topLogprobsDict(8, -1.5, [[7, -0.5], [8, -1.5], [3, -2], [9, -3]], str);
  assert.deepEqual(d, { '\uFFFD': -1.5, 'token_id:7': -0.5, t3: -2, 'token_id:9': -3 });
});

test('serve queue: --max-queue 0 refused at startup; requests about to join the batch are not counted as queued', opt, async () => {
  assert.throws(() => new Engine(fixture().model, { maxQueue: 0 }), /maxQueue/);
  const cli = sppoCli(['serve', llamaDir, '--max-queue', '0', '--port', '0']);
  assert.equal(cli.status, 2, cli.stderr);
  assert.match(cli.stderr, /max-queue/);
  const q = await serve({ engine: { maxBatch: 2, maxQueue: 2 } });
  try {
    const rs = await Promise.all(Array.from({ length: 10 }, () => post(q.url, '/v1/completions', { model: MODEL, prompt: 'hello', max_tokens: 40, ignore_eos: true, temperature: 0 })));
    const ok = rs.filter((r) => r.status === 200).length;
    if (process.env.SPPO_PRINT_ERRORS) console.log(`[queue] ${ok} answered, ${10 - ok} refused`);
    const busy = rs.filter((r) => r.status === 429);
    assert.equal(ok + busy.length, 10);
    // Two join the batch, two wait: at least four answered (the old count refused all but two).
    assert.ok(ok >= 4, `${ok} answered, ${busy.length} refused`);
    for (const b of busy) assert.equal(b.headers.get('retry-after'), '1');
    // /metrics: the backlog the limit counts, beside everything waiting.
    const m = await (await fetch(q.url.replace(/\/v1$/, '') + '/metrics')).text();
    assert.match(m, /^sppo_queue_backlog_requests 0$/m);
    assert.match(m, /^sppo_queued_requests 0$/m);
  } finally {
    await q.close();
  }
});

/** Streams 90 tokens; after the 5th chunk calls `midway`; returns the gaps between chunks (ms). */
async function streamGaps(midway: () => void): Promise<number[]> {
  const gaps: number[] = [];
  const stream = await fetch(`${s.url}/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...auth }, body: JSON.stringify({ model: MODEL, prompt: 'hello', max_tokens: 90, ignore_eos: true, stream: true, temperature: 0 }) });
  const reader = stream.body!.getReader();
  let last = 0;
  let chunks = 0;
  let fired = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const now = performance.now();
    if (last) gaps.push(now - last);
    last = now;
    chunks += new TextDecoder().decode(value).split('data: ').length - 1;
    if (chunks >= 5 && !fired) {
      fired = true;
      midway();
    }
  }
  return gaps;
}

/** POSTs a JSON file from another process (curl), as a real client would: status and parsed body. */
function curlPost(url: string, file: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const c = spawn('curl', ['-s', '-X', 'POST', '-H', 'Content-Type: application/json', '-H', `Authorization: ${auth.Authorization}`, '--data-binary', `@${file}`, '-w', '\n%{http_code}', url], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('error', reject);
    c.on('exit', () => {
      const i = out.lastIndexOf('\n');
      resolve({ status: Number(out.slice(i + 1)), body: JSON.parse(out.slice(0, i)) });
    });
  });
}

const noCurl = spawnSync('curl', ['--version']).status === 0 ? false : 'no curl';

test('serve: a 1 MB prompt does not stall another stream; a long prompt is tokenised off the event loop', { ...opt, skip: noLlama || noCurl }, async () => {
  const { tokenizer } = fixture();
  const dir = tempDir('big-prompts');
  const big = 'lorem ipsum dolor sit amet, '.repeat(40_000).slice(0, 1024 * 1024);
  const mid = 'lorem ipsum dolor sit amet, '.repeat(8_000);
  writeFileSync(join(dir, 'big.json'), JSON.stringify({ model: MODEL, prompt: big, max_tokens: 2 }));
  writeFileSync(join(dir, 'mid.json'), JSON.stringify({ model: MODEL, prompt: mid, max_tokens: 2, truncate_prompt_tokens: 8 }));
  try {
    // The same stream alone first: this machine's own jitter (a shared CPU) is not the server's stall.
    const alone = Math.max(...(await streamGaps(() => {})));
    // The 1 MB prompt comes from another process (curl), as from a real client: this process is the server's.
    let huge: Promise<{ status: number; body: any }> | null = null;
    const gaps = await streamGaps(() => {
      huge = curlPost(`${s.url}/completions`, join(dir, 'big.json'));
    });
    const h = await huge!;
    assert.equal(h.status, 400);
    assert.equal(h.body.error.param, 'prompt');
    assert.match(h.body.error.message, /context length/);
    // A 224 KB prompt that must be tokenised whole (truncate_prompt_tokens): on the worker thread, so the
    // event loop is not held while it is (the loop's longest delay, over the request); the same tokens.
    const delay = monitorEventLoopDelay({ resolution: 1 });
    delay.enable();
    const l = await curlPost(`${s.url}/completions`, join(dir, 'mid.json'));
    delay.disable();
    assert.equal(l.status, 200, JSON.stringify(l.body));
    assert.equal(l.body.usage.prompt_tokens, 8);
    const t0 = performance.now();
    const direct = tokenizer.encode(mid, { addSpecialTokens: true }).slice(-8);
    const inPlace = performance.now() - t0;
    const viaWorker = await complete({ prompt: mid, max_tokens: 1, truncate_prompt_tokens: 8, return_token_ids: true });
    assert.deepEqual(viaWorker.body.prompt_token_ids, direct);
    const held = delay.max / 1e6;
    if (process.env.SPPO_PRINT_ERRORS) console.log(`[gap] event loop held at most ${held.toFixed(1)} ms while the 224 KB prompt was tokenised (${inPlace.toFixed(0)} ms in place)`);
    assert.ok(held < 100, `the event loop was held ${held.toFixed(1)} ms`);
    // Tokenised on the event loop, the 1 MB prompt stalled the other stream for as long as its tokenisation takes
    // (2.4-3.7 s measured). That time, measured here on this machine under its present load, scales the bound: a
    // stall is at least all of it, while a loaded machine's scheduling (other processes, curl and the worker
    // thread on the same cores) gaps a stream that is not stalled by a fraction of it (132 ms measured on 2 cores
    // shared by five processes). Half of it, and never under 100 ms.
    const t1 = performance.now();
    tokenizer.encode(big, { addSpecialTokens: true });
    const stall = performance.now() - t1;
    const worst = Math.max(...gaps);
    if (process.env.SPPO_PRINT_ERRORS) console.log(`[gap] longest gap ${worst.toFixed(1)} ms with the big prompts, ${alone.toFixed(1)} ms alone; the 1 MB prompt tokenised in place: ${stall.toFixed(0)} ms`);
    const bound = alone + Math.max(100, stall / 2);
    assert.ok(worst < bound, `the other stream's longest gap between chunks: ${worst.toFixed(1)} ms (alone: ${alone.toFixed(1)} ms; bound ${bound.toFixed(0)} ms, half the ${stall.toFixed(0)} ms the 1 MB prompt takes to tokenise here)`);
  } finally {
    removeDir(dir);
  }
});

test('serve: a request never answered is logged as unanswered, not 200', opt, async () => {
  const lines: string[] = [];
  const l = await serve({ logRequests: true, log: (line) => lines.push(line) });
  try {
    const ac = new AbortController();
    const p = fetch(`${l.url}/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: 'hello', max_tokens: 100, ignore_eos: true }), signal: ac.signal }).catch(() => null);
    await new Promise((r) => setTimeout(r, 30));
    ac.abort();
    await p;
    for (let i = 0; i < 100 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /POST \/v1\/completions unanswered \(client gone\)/);
  } finally {
    await l.close();
  }
});
