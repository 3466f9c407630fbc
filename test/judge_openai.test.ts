// The HTTP judge (src/judge/openai.ts) against a scripted judge server on 127.0.0.1: each template's request
// and parsing, retries (5xx, 429, timeouts, garbage bodies), errors that stop, the verdict cache on disk, and
// the counting of unparseable verdicts and usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OpenAIJudge } from '../src/judge/openai.js';
import { JudgeError } from '../src/judge/oracle.js';
import { loadJudge, parseJudgeSpec } from '../src/judge/judge.js';
import { ARENA_HARD_CONTINUE, ARENA_HARD_SYSTEM, arenaHardGame, parseArenaHard } from '../src/judge/templates/arena_hard.js';
import { mtBenchSingleRequest, parseMtBenchRating, readMtBenchJudgePrompts, parseMtBenchPair } from '../src/judge/templates/mt_bench.js';
import { twoTokenProbability } from '../src/judge/templates/template.js';
import { EPS64 } from './helpers/tolerances.js';
import { scriptedJudge } from './judge_server.js';
import { removeDir, tempDir } from './text_helpers.js';

const DATA = join(process.cwd(), '..', 'shared', 'data');
const JUDGE_PROMPTS = join(DATA, 'mt_bench_judge_prompts.jsonl');
const q = { prompt: 'What is 2+2?', a: 'four', b: 'It is 4.' };
/** |P - expected| for a probability from two log-probs: a few roundings of exp and a division. */
const PTOL = 16 * EPS64;

test('alpaca_eval: the annotator prompt, max_tokens 1, top_logprobs 5; P(m) / (P(m) + P(M)) from the log-probs', async () => {
  const s = await scriptedJudge(() => ({ content: 'm', top: [['m', -0.1], ['M', -2.4], ['The', -5]] }));
  try {
    const j = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'alpaca_eval' });
    const [p] = await j.prefer([q]);
    const expected = Math.exp(-0.1) / (Math.exp(-0.1) + Math.exp(-2.4));
    assert.ok(Math.abs(p! - expected) <= PTOL, `${p} vs ${expected}`);
    const body = s.requests[0]!;
    assert.equal(body.max_tokens, 1);
    assert.equal(body.temperature, 1);
    assert.equal(body.logprobs, true);
    assert.equal(body.top_logprobs, 5);
    assert.equal(body.messages[0]!.role, 'system');
    assert.match(body.messages[0]!.content, /^You are a highly efficient assistant, who evaluates and selects the best large language model/);
    const user = body.messages[1]!.content;
    assert.ok(user.includes('"instruction": """What is 2+2?"""'), user);
    assert.ok(user.indexOf('"model_identifier": "m",\n        "output": """four"""') > 0, 'output_1 is m');
    assert.ok(user.indexOf('"model_identifier": "M",\n        "output": """It is 4."""') > 0, 'output_2 is M');
    assert.ok(user.endsWith('## Best Model Identifier'));
    assert.deepEqual(j.stats().verdicts.byMethod, { logprobs: 1, text: 0 });
  } finally {
    await s.close();
  }
});

test('alpaca_eval without log-probs (a proxy that drops them): the answer text, reported as method text; garbage text is unparseable', async () => {
  const answers = ['M', 'm', 'Model m is better'];
  const s = await scriptedJudge((_, i) => ({ content: answers[i]! }));
  try {
    const j = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'alpaca_eval', concurrency: 1 });
    const v = await Promise.all([0, 1, 2].map(async () => j.verdict(q)));
    // concurrency 1: requests answered in order.
    assert.deepEqual(v.map((x) => [x.p, x.method]), [[0, 'text'], [1, 'text'], [null, null]]);
  } finally {
    await s.close();
  }
});

test('twoTokenProbability: only the named tokens count; one missing has probability 0; none -> null', () => {
  assert.equal(twoTokenProbability([{ token: 'M', logprob: -0.5 }, { token: 'x', logprob: -0.1 }], 'm', 'M'), 0);
  assert.equal(twoTokenProbability([{ token: 'm', logprob: -3 }], 'm', 'M'), 1);
  assert.equal(twoTokenProbability([{ token: 'x', logprob: -0.1 }], 'm', 'M'), null);
  const p = twoTokenProbability([{ token: ' A', logprob: Math.log(0.3) }, { token: 'A', logprob: Math.log(0.1) }, { token: 'B', logprob: Math.log(0.2) }], 'A', 'B', (t) => t.trim());
  assert.ok(Math.abs(p! - 0.4 / 0.6) <= PTOL);
});

test('pairwise: P(A) from the A / B log-probs (white space trimmed); unparseable verdicts are counted and taken as 1/2; identical responses cost no call', async () => {
  const s = await scriptedJudge((body) => (body.messages[1]!.content.includes('garbage') ? { content: '???', top: [['?', -0.01]] } : { content: 'A', top: [[' A', Math.log(0.6)], ['B', Math.log(0.2)]] }));
  try {
    const j = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'pairwise' });
    const p = await j.prefer([q, { prompt: 'garbage', a: 'x', b: 'y' }, { prompt: 'same', a: 'z', b: 'z' }]);
    assert.ok(Math.abs(p[0]! - 0.75) <= PTOL);
    assert.equal(p[1], 0.5);
    assert.equal(p[2], 0.5);
    assert.equal(s.requests.length, 2, 'no request for identical responses');
    const st = j.stats();
    assert.deepEqual(st.verdicts, { total: 3, unparseable: 1, byMethod: { logprobs: 1, text: 0 }, identical: 1 });
    assert.deepEqual(st.usage, { prompt_tokens: 20, completion_tokens: 2 });
    const strict = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'pairwise', unparseable: 'error' });
    await assert.rejects(strict.prefer([{ prompt: 'garbage', a: 'x', b: 'y' }]), (e: Error) => e instanceof JudgeError && /no verdict/.test(e.message));
  } finally {
    await s.close();
  }
});

test('arena_hard: the judge prompt, one more attempt when no label, conflicting labels give no verdict', async () => {
  assert.deepEqual(parseArenaHard('My final verdict is tie: [[A=B]]'), { label: 'A=B' });
  assert.deepEqual(parseArenaHard('[[A>B]] ... final: [[A>B]]'), { label: 'A>B' });
  assert.equal(parseArenaHard('[[A>B]] but then [[B>>A]]'), null);
  assert.equal(parseArenaHard('no label'), 'retry');
  const script = ['Let me think. Assistant B is', 'better overall. My final verdict is: [[B>>A]]'];
  const s = await scriptedJudge((_, i) => ({ content: script[i] ?? 'x' }));
  try {
    const j = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'arena_hard' });
    const g = await arenaHardGame(j.completer, 'Q?', 'ans A', 'ans B');
    assert.equal(g.score, 'B>>A');
    assert.equal(g.judgment, '\n' + script[0] + '\n' + script[1]);
    assert.equal(s.requests.length, 2);
    const [first, second] = s.requests;
    assert.equal(first!.messages[0]!.content, ARENA_HARD_SYSTEM);
    assert.equal(first!.messages[1]!.content, "<|User Prompt|>\nQ?\n\n<|The Start of Assistant A's Answer|>\nans A\n<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\nans B\n<|The End of Assistant B's Answer|>");
    assert.equal(first!.temperature, 0);
    assert.equal(first!.max_tokens, 4096);
    assert.deepEqual(second!.messages.slice(2).map((m) => [m.role, m.content]), [['assistant', script[0]], ['user', ARENA_HARD_CONTINUE]]);
  } finally {
    await s.close();
  }
});

test('mt_bench: FastChat prompts by category and turn; [[rating]] then [rating], else -1; the pairwise verdicts', { skip: !readFileSafe(JUDGE_PROMPTS) && 'no shared data' }, () => {
  const prompts = readMtBenchJudgePrompts(JUDGE_PROMPTS);
  const w = mtBenchSingleRequest(prompts, { category: 'writing', questions: ['q1', 'q2'], answers: ['a1', 'a2'], turn: 1 });
  assert.equal(w.name, 'single-v1');
  assert.equal(w.request.messages[0]!.content, 'You are a helpful assistant.');
  assert.ok(w.request.messages[1]!.content.includes("[Question]\nq1\n\n[The Start of Assistant's Answer]\na1\n[The End of Assistant's Answer]"));
  const m2 = mtBenchSingleRequest(prompts, { category: 'math', questions: ['q1', 'q2'], answers: ['a1', 'a2'], references: ['r1', 'r2'], turn: 2 });
  assert.equal(m2.name, 'single-math-v1-multi-turn');
  assert.ok(m2.request.messages[1]!.content.includes('### Reference answer:\nr2'));
  assert.ok(m2.request.messages[1]!.content.includes('### Assistant A:\na2'));
  assert.equal(m2.request.temperature, 0);
  assert.equal(m2.request.maxTokens, 2048);
  assert.throws(() => mtBenchSingleRequest(prompts, { category: 'coding', questions: ['q'], answers: ['a'], turn: 1 }), /needs reference answers/);
  assert.equal(parseMtBenchRating('Rating: [[7]]'), 7);
  assert.equal(parseMtBenchRating('score [8.5] of 10'), 8.5);
  assert.equal(parseMtBenchRating('[[6]] then [[9]]'), 6);
  assert.equal(parseMtBenchRating('no rating'), -1);
  assert.equal(parseMtBenchPair('... [[B]]').p, 0);
  assert.equal(parseMtBenchPair('... [[C]]').p, 0.5);
  assert.equal(parseMtBenchPair('... B').p, null);
});

function readFileSafe(p: string): boolean {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
}

test('retries: 503, 429 (Retry-After), a timeout and a garbage body are retried with backoff, then the verdict', async () => {
  const replies = [
    { status: 503 },
    { status: 429, headers: { 'Retry-After': '0' } },
    { delayMs: 2000, then: { content: 'A', top: [['A', -0.1], ['B', -3]] as [string, number][] } },
    { garbage: '<html>bad gateway</html>' },
    { garbage: '{"choices": []}' },
  ];
  const s = await scriptedJudge((_, i) => replies[i] ?? { content: 'B', top: [['B', 0]] });
  const lines: string[] = [];
  try {
    const j = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'pairwise', backoffMs: 5, timeoutS: 0.3, log: (l) => lines.push(l) });
    const [p] = await j.prefer([q]);
    assert.equal(p, 0);
    assert.equal(s.requests.length, 6);
    assert.equal(j.stats().retries, 5);
    assert.equal(j.stats().requests, 1);
    assert.equal(lines.length, 5);
    assert.match(lines.join('\n'), /HTTP 503[\s\S]*HTTP 429[\s\S]*no answer within 0\.3 s[\s\S]*not JSON[\s\S]*no choices/);
  } finally {
    await s.close();
  }
});

test('errors: retries run out -> JudgeError; 401 stops at once; a 400 is a failed verdict, not cached', async () => {
  const s = await scriptedJudge((body) => {
    const u = body.messages.at(-1)!.content;
    if (u.includes('always-503')) return { status: 503 };
    if (u.includes('auth')) return { status: 401, message: 'bad key' };
    return { status: 400, message: 'context length exceeded' };
  });
  try {
    const j = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'pairwise', backoffMs: 1, maxRetries: 2 });
    await assert.rejects(j.prefer([{ prompt: 'always-503', a: 'x', b: 'y' }]), (e: Error) => e instanceof JudgeError && /HTTP 503.*gave up after 3 tries/.test(e.message));
    assert.equal(s.requests.length, 3);
    await assert.rejects(j.prefer([{ prompt: 'auth', a: 'x', b: 'y' }]), (e: Error) => e instanceof JudgeError && /HTTP 401: bad key/.test(e.message));
    assert.equal(s.requests.length, 4);
    const r = await j.complete({ messages: [{ role: 'user', content: 'long' }], maxTokens: 1, temperature: 0 });
    assert.match(r.error!, /HTTP 400: context length exceeded/);
    await j.complete({ messages: [{ role: 'user', content: 'long' }], maxTokens: 1, temperature: 0 });
    assert.equal(s.requests.length, 6, 'a 400 is asked again, not cached');
    assert.equal(j.stats().failed, 2);
  } finally {
    await s.close();
  }
});

test('the verdict cache: a second judge on the same file makes no calls; another model or template does; a torn last line is dropped', async () => {
  const dir = tempDir('judge-cache');
  const s = await scriptedJudge((_, i) => ({ content: 'A', top: [['A', -0.2 - i], ['B', -1]], usage: { prompt_tokens: 100, completion_tokens: 1 } }));
  try {
    const cache = join(dir, 'cache.jsonl');
    const queries = [q, { prompt: 'p2', a: 'x', b: 'y' }];
    const j1 = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'pairwise', cache });
    const p1 = await j1.prefer(queries);
    assert.equal(s.requests.length, 2);
    const j2 = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'pairwise', cache });
    assert.deepEqual(await j2.prefer(queries), p1);
    assert.equal(s.requests.length, 2, 'answered from the cache');
    assert.equal(j2.stats().cacheHits, 2);
    assert.deepEqual(j2.stats().usage, { prompt_tokens: 0, completion_tokens: 0 });
    assert.deepEqual(j2.stats().cachedUsage, { prompt_tokens: 200, completion_tokens: 2 });
    const j3 = await OpenAIJudge.create({ url: s.url, model: 'other', template: 'pairwise', cache });
    await j3.prefer([q]);
    assert.equal(s.requests.length, 3, 'another judge model is another key');
    // A kill in the middle of a write leaves a torn last line: dropped, and the file appends cleanly after it.
    appendFileSync(cache, '{"key":"abc","resp');
    const j4 = await OpenAIJudge.create({ url: s.url, model: 'j', template: 'pairwise', cache });
    await j4.prefer([...queries, { prompt: 'p3', a: 'x', b: 'y' }]);
    assert.equal(s.requests.length, 4);
    const lines = readFileSync(cache, 'utf8').trim().split('\n');
    assert.equal(lines.length, 4);
    lines.forEach((l) => JSON.parse(l));
    writeFileSync(cache, 'not json\n' + lines.join('\n') + '\n');
    await assert.rejects(OpenAIJudge.create({ url: s.url, model: 'j', template: 'pairwise', cache }), /cache\.jsonl:1: not a JSON line/);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('--judge openai:URL#MODEL, openai:URL (the first served model), and bad specs', async () => {
  assert.deepEqual(parseJudgeSpec('openai:http://127.0.0.1:8000/v1#Qwen/Qwen2-7B', { template: 'arena_hard' }), { kind: 'openai', url: 'http://127.0.0.1:8000/v1', model: 'Qwen/Qwen2-7B', template: 'arena_hard' });
  assert.throws(() => parseJudgeSpec('openai:localhost:8000'), /expected openai:URL#MODEL/);
  const s = await scriptedJudge(() => ({ content: 'A' }), { models: ['served-judge', 'second'] });
  try {
    const j = await loadJudge(parseJudgeSpec(`openai:${s.url}`));
    assert.equal((j as OpenAIJudge).model, 'served-judge');
    await j.prefer([q]);
    assert.equal(s.requests[0]!.model, 'served-judge');
    await assert.rejects(loadJudge({ kind: 'openai', url: s.url, template: 'pairwise', apiKeyEnv: 'SPPO_TEST_UNSET_KEY' }), /SPPO_TEST_UNSET_KEY is not set/);
    await assert.rejects(loadJudge({ kind: 'openai', url: s.url, template: 'mt_bench' }), /needs the MT-Bench judge prompts/);
  } finally {
    await s.close();
  }
});
