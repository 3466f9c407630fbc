// The serving engine (continuous batching): its outputs against src/generate's on the same prompts
// (greedy and seeded), sequences joining and leaving a running batch without changing anyone's output,
// stop strings, min tokens, cancellation, and the queue limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate } from '../src/generate/index.js';
import { Engine, QueueFullError, type SequenceParams } from '../src/serve/index.js';
import { fixture, noLlama } from './serve_helpers.js';

interface Out {
  tokens: number[];
  logprobs: number[];
  text: string;
  streamed: string;
  reason: string;
  stopReason: string | number | null;
}

function run(engine: Engine, prompt: number[], n: number, p: Partial<SequenceParams>): { done: Promise<Out[]>; cancel(): void } {
  const params: SequenceParams = { maxTokens: 16, temperature: 0, topP: 1, topK: 0, ...p };
  let cancel = (): void => {};
  const done = new Promise<Out[]>((resolve, reject) => {
    const outs: Out[] = Array.from({ length: n }, () => ({ tokens: [], logprobs: [], text: '', streamed: '', reason: '', stopReason: null }));
    let left = n;
    const req = engine.submit(prompt, n, params, {
      onToken(o) {
        outs[o.seq]!.tokens.push(o.token);
        outs[o.seq]!.logprobs.push(o.logprob);
        outs[o.seq]!.streamed += o.text;
      },
      onFinish(e) {
        Object.assign(outs[e.seq]!, { reason: e.reason, stopReason: e.stopReason, text: e.text });
        if (--left === 0) resolve(outs);
      },
      onError: reject,
    });
    cancel = () => req.cancel();
  });
  return { done, cancel: () => cancel() };
}

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('engine: greedy and seeded outputs equal generate() on the same prompt (alone)', { skip: noLlama }, async () => {
  const { model, tokenizer } = fixture();
  const engine = new Engine(model, { tokenizer });
  const prompt = tokenizer.encode('the quick brown fox', { addSpecialTokens: true });
  const g = generate(model, [prompt], { temperature: 0, maxNewTokens: 20, tokenizer });
  const [a] = await run(engine, prompt, 1, { maxTokens: 20 }).done;
  assert.deepEqual(a!.tokens, g[0]!.tokens);
  assert.equal(a!.text, g[0]!.text);
  assert.equal(a!.streamed, a!.text, 'the streamed pieces add up to the text');
  for (let i = 0; i < a!.logprobs.length; i++) assert.ok(Math.abs(a!.logprobs[i]! - g[0]!.logprobs[i]!) < 1e-5);
  const gs = generate(model, [prompt], { temperature: 0.9, topP: 0.95, topK: 50, maxNewTokens: 20, seed: 11, tokenizer });
  const [s] = await run(engine, prompt, 1, { maxTokens: 20, temperature: 0.9, topP: 0.95, topK: 50, seed: 11 }).done;
  assert.deepEqual(s!.tokens, gs[0]!.tokens);
  engine.dispose();
});

test('engine: requests joining and leaving a running batch get the outputs they get alone', { skip: noLlama }, async () => {
  const { model, tokenizer } = fixture();
  const engine = new Engine(model, { tokenizer, seed: 5 });
  const texts = ['hello world', 'the quick brown fox jumps over the lazy dog', 'a', 'one two three four five six'];
  const prompts = texts.map((t) => tokenizer.encode(t, { addSpecialTokens: true }));
  const params = (i: number): Partial<SequenceParams> => (i % 2 ? { maxTokens: 6 + 3 * i, ignoreEos: true } : { maxTokens: 6 + 3 * i, temperature: 1, seed: 100 + i, ignoreEos: true });
  const alone: Out[][] = [];
  for (let i = 0; i < 8; i++) alone.push(await run(engine, prompts[i % 4]!, 1 + (i % 3), params(i)).done);
  // Staggered arrivals: each joins a batch already decoding.
  const pending: Promise<Out[]>[] = [];
  for (let i = 0; i < 8; i++) {
    pending.push(run(engine, prompts[i % 4]!, 1 + (i % 3), params(i)).done);
    await tick(2 * (i % 3));
  }
  const together = await Promise.all(pending);
  assert.ok(engine.peakBatch > 3, `the batch grew to ${engine.peakBatch} sequences`);
  together.forEach((outs, i) => outs.forEach((o, s) => assert.deepEqual(o.tokens, alone[i]![s]!.tokens, `request ${i} sample ${s}`)));
  // n samples of a seeded request differ from each other, and lengths are as asked.
  assert.notDeepEqual(alone[2]![0]!.tokens, alone[2]![1]!.tokens);
  together.forEach((outs, i) => outs.forEach((o) => assert.equal(o.tokens.length, 6 + 3 * i)));
  assert.equal(engine.batchSize, 0);
  engine.dispose();
});

test('engine: stop strings cut the text (never streamed past), stop tokens, min tokens, EOS', { skip: noLlama }, async () => {
  const { model, tokenizer } = fixture();
  const engine = new Engine(model, { tokenizer });
  const prompt = tokenizer.encode('the quick brown fox', { addSpecialTokens: true });
  const [free] = await run(engine, prompt, 1, { maxTokens: 30, ignoreEos: true }).done;
  const text = free!.text;
  // A stop string taken from the middle of the free text.
  const stop = text.slice(8, 11);
  assert.ok(stop.length === 3 && !stop.includes('\uFFFD'), `stop ${JSON.stringify(stop)}`);
  const [cut] = await run(engine, prompt, 1, { maxTokens: 30, ignoreEos: true, stop: [stop, 'zzzz-never'] }).done;
  assert.equal(cut!.reason, 'stop');
  assert.equal(cut!.stopReason, stop);
  assert.equal(cut!.text, text.slice(0, text.indexOf(stop)));
  assert.equal(cut!.streamed, cut!.text, 'nothing of the stop string was streamed');
  const [byToken] = await run(engine, prompt, 1, { maxTokens: 30, ignoreEos: true, stopTokenIds: [free!.tokens[4]!] }).done;
  assert.equal(byToken!.reason, 'stop');
  assert.equal(byToken!.stopReason, free!.tokens[4]);
  assert.deepEqual(byToken!.tokens, free!.tokens.slice(0, free!.tokens.indexOf(free!.tokens[4]!) + 1));
  // With the first greedy token as EOS, the sequence ends at once; min_tokens forbids it.
  const eosEngine = new Engine(model, { tokenizer, eosTokenIds: [free!.tokens[0]!] });
  const [eos] = await run(eosEngine, prompt, 1, { maxTokens: 10 }).done;
  assert.deepEqual([eos!.tokens.length, eos!.reason], [1, 'stop']);
  const [min] = await run(eosEngine, prompt, 1, { maxTokens: 10, minTokens: 3 }).done;
  assert.ok(min!.tokens.length >= 3);
  assert.notEqual(min!.tokens[0], free!.tokens[0]);
  engine.dispose();
  eosEngine.dispose();
});

test('engine: cancel ends a running request at the next step and frees its rows; the queue is bounded', { skip: noLlama }, async () => {
  const { model, tokenizer } = fixture();
  const engine = new Engine(model, { tokenizer, maxQueue: 2, maxBatch: 4 });
  const prompt = tokenizer.encode('hello', { addSpecialTokens: true });
  assert.throws(() => engine.submit(prompt, 1, { maxTokens: 1000, temperature: 0, topP: 1, topK: 0 }, { onToken() {}, onFinish() {}, onError() {} }), RangeError);
  assert.throws(() => engine.submit([1, 100000], 1, { maxTokens: 5, temperature: 0, topP: 1, topK: 0 }, { onToken() {}, onFinish() {}, onError() {} }), RangeError);
  const other = run(engine, prompt, 1, { maxTokens: 40, ignoreEos: true });
  const victim = run(engine, prompt, 2, { maxTokens: 100, ignoreEos: true });
  await tick(30);
  victim.cancel();
  const v = await victim.done;
  assert.deepEqual(v.map((o) => o.reason), ['abort', 'abort']);
  assert.ok(v[0]!.tokens.length < 100);
  const o = await other.done;
  assert.equal(o[0]!.tokens.length, 40, 'the other request is untouched');
  // Queue: the batch holds 4 sequences; 2 more requests wait; the next is refused.
  const big = [run(engine, prompt, 4, { maxTokens: 30, ignoreEos: true })];
  await tick(10);
  big.push(run(engine, prompt, 4, { maxTokens: 2 }), run(engine, prompt, 4, { maxTokens: 2 }));
  assert.throws(() => engine.submit(prompt, 1, { maxTokens: 2, temperature: 0, topP: 1, topK: 0 }, { onToken() {}, onFinish() {}, onError() {} }), QueueFullError);
  await Promise.all(big.map((b) => b.done));
  await engine.whenIdle();
  engine.dispose();
});

test('engine: a long stream of joins and leaves (timeline jumps, row moves, compactions) changes no output', { skip: noLlama }, async () => {
  const { model, tokenizer } = fixture();
  const engine = new Engine(model, { tokenizer, maxBatch: 6 });
  const words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau'.split(' ');
  const reqs = Array.from({ length: 30 }, (_, i) => ({
    prompt: tokenizer.encode(words.slice(0, 1 + ((i * 7) % 19)).join(' '), { addSpecialTokens: true }),
    maxTokens: 4 + ((i * 13) % 37),
  }));
  const expected = reqs.map((r) => generate(model, [r.prompt], { temperature: 0, maxNewTokens: r.maxTokens, eosTokenIds: [] })[0]!.tokens);
  const pending: Promise<Out[]>[] = [];
  for (const [i, r] of reqs.entries()) {
    pending.push(run(engine, r.prompt, 1, { maxTokens: r.maxTokens, ignoreEos: true }).done);
    if (i % 3 === 2) await tick(5 + (i % 4) * 3);
  }
  const outs = await Promise.all(pending);
  outs.forEach((o, i) => assert.deepEqual(o[0]!.tokens, expected[i], `request ${i}`));
  assert.ok(engine.counts.compactions > 0, `${engine.counts.compactions} compactions`);
  assert.ok(engine.counts.admissions > 5);
  engine.dispose();
});

test('engine: an idle engine gathers a burst of requests into one prefill (gatherMs); without it the first goes alone', { skip: noLlama }, async () => {
  const { model, tokenizer } = fixture();
  const prompt = tokenizer.encode('a burst', { addSpecialTokens: true });
  for (const gatherMs of [50, 0]) {
    const engine = new Engine(model, { tokenizer, gatherMs });
    const runs = [];
    // Four requests 1 ms apart: within a window of 50 ms (quiet for 50 ms, 200 ms at most) they are one prefill.
    for (let i = 0; i < 4; i++) {
      runs.push(run(engine, prompt, 1, { maxTokens: 4 }).done);
      await tick(1);
    }
    await Promise.all(runs);
    if (gatherMs > 0) {
      assert.equal(engine.counts.admissions, 1, 'one prefill for the burst');
      assert.equal(engine.peakBatch, 4);
    } else {
      assert.ok(engine.counts.admissions > 1, `the first request is prefilled alone (${engine.counts.admissions} prefills)`);
    }
    engine.dispose();
  }
});
