// The logit bias and the repetition, frequency and presence penalties (src/generate/sampling.ts): the rule against its
// formulas, transformers' generate with repetition_penalty (test/fixtures/transformers/penalties.json, written by
// scripts/penalty-fixture.py), the decode loop's bookkeeping against full forward passes, the draw's distribution, and
// the server's requests (vLLM's fields).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type CausalLM } from '../src/models/index.js';
import { applyPenalties, countTokens, generate, penaltyCoefficients, promptHistory, leftPad, sampleNext, sampleStep, tokenHistory, type PenaltyOptions } from '../src/generate/index.js';
import { Generator, noGrad, tensor, tidy } from '../src/torch/index.js';
import { fixtureRoot } from './text_helpers.js';
import { projectRoot } from './helpers/fixtures.js';
import { EPS32, FWD32, LOGPROB32, reportError } from './helpers/tolerances.js';
import { MODEL, post, serve } from './serve_helpers.js';

const llamaDir = join(fixtureRoot, 'llama');
const noLlama = existsSync(join(llamaDir, 'model.safetensors')) ? false : `no llama fixture at ${llamaDir}`;

/** The rule in float64, from its definition (vLLM's order): bias, repetition over prompt and output, frequency, presence. */
function reference(logits: number[], prompt: readonly number[], output: readonly number[], o: PenaltyOptions): number[] {
  const r = o.repetitionPenalty ?? 1;
  return logits.map((l, v) => {
    let x = l + (o.logitBias?.[v] ?? 0);
    const count = output.filter((t) => t === v).length;
    if (count > 0 || prompt.includes(v)) x = x > 0 ? x / r : x * r;
    return x - (o.frequencyPenalty ?? 0) * count - (o.presencePenalty ?? 0) * (count > 0 ? 1 : 0);
  });
}

/** A small deterministic pseudo-random sequence in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test('applyPenalties is vLLM\'s rule: bias, repetition over the prompt and the output, frequency per occurrence, presence once; per-row coefficients', () => {
  const V = 12;
  const rnd = lcg(7);
  const prompts = [[1, 2, 3], [], [4, 4, 11], [0]];
  const outputs = [[2, 5, 5, 5], [7], [], [0, 0, 9]];
  const opts: PenaltyOptions[] = [
    { repetitionPenalty: 1.3, frequencyPenalty: 0.4, presencePenalty: -0.5, logitBias: { 3: 2.5, 6: -100 } },
    { repetitionPenalty: 0.7, presencePenalty: 2 },
    { frequencyPenalty: -1.2, logitBias: { 11: 100 } },
    {},
  ];
  const logits = prompts.map(() => Array.from({ length: V }, () => (rnd() - 0.5) * 8));
  const want = logits.map((l, i) => reference(l, prompts[i]!, outputs[i]!, opts[i]!));
  const { got, single } = tidy(() => {
    const h = tokenHistory(prompts, outputs, V, 'cpu');
    const col = (f: (o: PenaltyOptions) => number) => tensor(Float32Array.from(opts, f), { shape: [opts.length, 1] });
    const bias = new Float32Array(opts.length * V);
    opts.forEach((o, i) => Object.entries(o.logitBias ?? {}).forEach(([t, b]) => (bias[i * V + Number(t)] = b)));
    const x = tensor(Float32Array.from(logits.flat()), { shape: [opts.length, V] });
    const got = applyPenalties(x, h, {
      repetition: col((o) => o.repetitionPenalty ?? 1), presence: col((o) => o.presencePenalty ?? 0), frequency: col((o) => o.frequencyPenalty ?? 0),
      bias: tensor(bias, { shape: [opts.length, V] }),
    }).toArray() as number[][];
    // One row's options as numbers (the in-process path) give the same row.
    const single = applyPenalties(x.narrow(0, 0, 1), { prompt: h.prompt.narrow(0, 0, 1), counts: h.counts.narrow(0, 0, 1) }, penaltyCoefficients(opts[0]!, V, 'cpu')).toArray() as number[][];
    return { got, single };
  });
  // float32: the logits rounded once, then at most four roundings (add, divide or multiply, two subtractions), each
  // within EPS32 of a value below max|x| + 100 + 2 * count + 2.
  const bound = 5 * EPS32 * (4 + 100 + 2 * 3 + 2);
  want.forEach((row, i) => row.forEach((w, v) => {
    if (w === -Infinity) return;
    assert.ok(Math.abs(got[i]![v]! - w) <= bound, `row ${i}, token ${v}: ${got[i]![v]} vs ${w}`);
  }));
  assert.deepEqual(single[0], got[0]);
  // Row 3 has no options: its logits come back as they were (rounded to float32).
  got[3]!.forEach((x, v) => assert.equal(x, Math.fround(logits[3]![v]!)));
});

test('token histories: from a left-padded batch (padding not counted) and counted step by step equal the one built from id lists', () => {
  const V = 10;
  const prompts = [[3, 3, 1], [7]];
  const steps = [[2, 9], [2, 2], [5, 9]]; // step j: the token of each row
  const { a, b } = tidy(() => {
    const { inputIds, attentionMask } = leftPad(prompts, 0); // pad id 0, not a prompt token of either row
    let h = promptHistory(inputIds, attentionMask, V);
    const finished = tensor([false, true]);
    for (const [j, s] of steps.entries()) {
      // Row 1 finished after step 0: its later (padding) tokens are not counted.
      h = { prompt: h.prompt, counts: countTokens(h.counts, tensor(BigInt64Array.from(s, BigInt)), j === 0 ? null : finished) };
    }
    const ref = tokenHistory(prompts, [steps.map((s) => s[0]!), [steps[0]![1]!]], V, 'cpu');
    return { a: [h.prompt.toArray(), h.counts.toArray()], b: [ref.prompt.toArray(), ref.counts.toArray()] };
  });
  assert.deepEqual(a, b);
  assert.equal((a[0] as boolean[][])[1]![0], false, 'the padding id is not a seen token');
  assert.deepEqual((a[1] as number[][])[0], [0, 0, 2, 0, 0, 1, 0, 0, 0, 0]);
});

test('sampling with penalties draws from softmax(penalised logits / temperature): chi-square', () => {
  const V = 6;
  const logits = [1.5, 1.0, 0.5, 0.0, -0.5, -1.0];
  const o: PenaltyOptions = { repetitionPenalty: 2, frequencyPenalty: 0.5, presencePenalty: 0.25, logitBias: { 5: 1.5 } };
  const prompt = [0];
  const output = [1, 1, 3];
  const t = 0.8;
  const pen = reference(logits, prompt, output, o).map((x) => x / t);
  const m = Math.max(...pen);
  const e = pen.map((x) => Math.exp(x - m));
  const probs = e.map((x) => x / e.reduce((s, y) => s + y, 0));
  const n = 40000;
  const counts = tidy(() => {
    const h = tokenHistory(Array(n).fill(prompt), Array(n).fill(output), V, 'cpu');
    const gen = new Generator(99);
    const { token } = sampleStep({
      logits: tensor(logits).unsqueeze(0).expand(n, V),
      penalties: { history: h, coefficients: penaltyCoefficients(o, V, 'cpu') },
      draw: (scores) => sampleNext(scores, { temperature: t }, gen),
    });
    return (token.toArray() as number[]).reduce((c, x) => (c[x]!++, c), new Array<number>(V).fill(0));
  });
  const chi2 = probs.reduce((s, p, i) => s + (counts[i]! - n * p) ** 2 / (n * p), 0);
  assert.ok(chi2 < 20.52, `chi-square ${chi2.toFixed(2)} (0.999 quantile with 5 degrees of freedom: 20.52); counts ${counts}, expected ${probs.map((p) => (p * n).toFixed(0))}`);
});

interface PenaltyFixture {
  transformers: string;
  max_new_tokens: number;
  runs: { repetition_penalty: number; generations: { prompt_ids: number[]; tokens: number[]; scores: number[]; margins: number[]; logprobs: number[] }[] }[];
}

/** The model's raw logits at each generated position (one full forward pass over prompt + tokens): [steps][V]. */
function stepLogits(model: CausalLM, prompt: number[], tokens: number[]): number[][] {
  return noGrad(() => tidy(() => {
    const ids = tensor(BigInt64Array.from([...prompt, ...tokens], BigInt)).unsqueeze(0);
    return model.forward({ inputIds: ids }).squeeze(0).narrow(0, prompt.length - 1, tokens.length).float().toArray() as number[][];
  }));
}

test('greedy generation with repetition_penalty matches transformers 5.17\'s generate (tokens, penalised scores, raw log-probs), batched and left-padded here', { skip: noLlama }, () => {
  const fx = JSON.parse(readFileSync(join(projectRoot, 'test', 'fixtures', 'transformers', 'penalties.json'), 'utf8')) as PenaltyFixture;
  const model = loadModel(llamaDir);
  try {
    let lpGap = 0;
    let scoreGap = 0;
    for (const run of fx.runs) {
      const prompts = run.generations.map((g) => g.prompt_ids);
      // EOS (2) banned throughout, as the fixture's min_new_tokens = max_new_tokens bans it.
      const opts = { temperature: 0, maxNewTokens: fx.max_new_tokens, minNewTokens: fx.max_new_tokens, eosTokenIds: [2] };
      const gens = generate(model, prompts, { ...opts, repetitionPenalty: run.repetition_penalty });
      const plain = generate(model, prompts, opts);
      assert.ok(plain.some((g, i) => g.tokens.join() !== run.generations[i]!.tokens.join()), `repetition_penalty ${run.repetition_penalty} changes some greedy output`);
      run.generations.forEach((want, i) => {
        assert.deepEqual(gens[i]!.tokens, want.tokens, `repetition_penalty ${run.repetition_penalty}, prompt ${i}`);
        want.logprobs.forEach((x, j) => (lpGap = Math.max(lpGap, Math.abs(x - gens[i]!.logprobs[j]!))));
        // The penalised score of each chosen token, by applyPenalties over our full-forward logits, against transformers'.
        const logits = stepLogits(model, want.prompt_ids, want.tokens);
        want.tokens.forEach((tok, j) => {
          const got = tidy(() => {
            const h = tokenHistory([want.prompt_ids], [want.tokens.slice(0, j)], logits[j]!.length, 'cpu');
            return (applyPenalties(tensor([logits[j]!]), h, penaltyCoefficients({ repetitionPenalty: run.repetition_penalty }, logits[j]!.length, 'cpu')).toArray() as number[][])[0]![tok]!;
          });
          scoreGap = Math.max(scoreGap, Math.abs(got - want.scores[j]!));
        });
      });
    }
    reportError('repetition-penalised generation: raw log-probs vs transformers', lpGap, LOGPROB32);
    assert.ok(lpGap <= LOGPROB32, `log-prob gap ${lpGap}`);
    // A logit within FWD32 * 16 of transformers', divided or multiplied by a penalty <= 1.5.
    const scoreBound = 1.5 * FWD32 * 16;
    reportError('repetition-penalised scores vs transformers', scoreGap, scoreBound);
    assert.ok(scoreGap <= scoreBound, `score gap ${scoreGap}`);
  } finally {
    model.dispose();
  }
});

test('the decode loop counts each row\'s tokens: every greedy token is the argmax of the rule over full-forward logits; log-probs stay the raw ones', { skip: noLlama }, () => {
  const model = loadModel(llamaDir);
  try {
    const prompts = [[1, 388, 269, 505], [1, 42], [1, 266, 174, 16, 447, 347, 471]];
    const o: PenaltyOptions = { repetitionPenalty: 1.2, frequencyPenalty: 0.6, presencePenalty: 0.3, logitBias: { 388: 3, 269: -2 } };
    const gens = generate(model, prompts, { temperature: 0, maxNewTokens: 14, eosTokenIds: [], ...o });
    const plain = generate(model, prompts, { temperature: 0, maxNewTokens: 14, eosTokenIds: [] });
    assert.ok(gens.some((g, i) => g.tokens.join() !== plain[i]!.tokens.join()), 'the options change the greedy output');
    // A score within FWD32 * 16 * 1.2 of ours on another CPU: tokens are compared up to the first near-tie.
    const tie = 2 * 1.2 * FWD32 * 16;
    let checked = 0;
    let lpGap = 0;
    gens.forEach((g, i) => {
      const logits = stepLogits(model, prompts[i]!, g.tokens);
      for (let j = 0; j < g.tokens.length; j++) {
        const lse = Math.log(logits[j]!.reduce((s, x) => s + Math.exp(x), 0));
        lpGap = Math.max(lpGap, Math.abs(logits[j]![g.tokens[j]!]! - lse - g.logprobs[j]!));
        const s = reference(logits[j]!, prompts[i]!, g.tokens.slice(0, j), o);
        const order = s.map((_, v) => v).sort((a, b) => s[b]! - s[a]!);
        if (s[order[0]!]! - s[order[1]!]! <= tie) break;
        assert.equal(g.tokens[j], order[0], `prompt ${i}, step ${j}`);
        checked++;
      }
    });
    assert.ok(checked >= 30, `${checked} of 42 steps checked before a near-tie`);
    assert.ok(lpGap <= LOGPROB32, `raw log-prob gap ${lpGap}`);
  } finally {
    model.dispose();
  }
});

test('generate refuses penalties out of range and a bias on a token outside the vocabulary', { skip: noLlama }, () => {
  const model = loadModel(llamaDir);
  try {
    const run = (o: PenaltyOptions) => generate(model, [[1, 2]], { maxNewTokens: 2, ...o });
    assert.throws(() => run({ repetitionPenalty: 0 }), /repetitionPenalty must be a number > 0/);
    assert.throws(() => run({ presencePenalty: 3 }), /presencePenalty must be in \[-2, 2\]/);
    assert.throws(() => run({ logitBias: { 512: 1 } }), /logitBias names token 512, outside the vocabulary \[0, 512\)/);
    assert.throws(() => run({ logitBias: { 5: 200 } }), /logitBias of token 5 must be in \[-100, 100\]/);
  } finally {
    model.dispose();
  }
});

test('serve: repetition_penalty, presence_penalty, frequency_penalty, logit_bias, allowed_token_ids and bad_words as vLLM reads them; a penalised request beside a plain one is unchanged by it', { skip: noLlama }, async () => {
  const s = await serve({ maxN: 4 });
  try {
    const { tokenizer, model } = await import('./serve_helpers.js').then((m) => m.fixture());
    const prompt = 'Once upon a time there was';
    const ids = tokenizer.encode(prompt, { addSpecialTokens: true });
    const body = { model: MODEL, prompt, max_tokens: 12, temperature: 0, ignore_eos: true, return_token_ids: true };
    const o: PenaltyOptions = { repetitionPenalty: 1.4, presencePenalty: 0.5, frequencyPenalty: 0.5, logitBias: { 388: 4 } };
    const fields = { repetition_penalty: 1.4, presence_penalty: 0.5, frequency_penalty: 0.5, logit_bias: { '388': 4 } };
    const [pen, plain] = await Promise.all([post(s.url, '/v1/completions', { ...body, ...fields }), post(s.url, '/v1/completions', body)]);
    assert.equal(pen.status, 200, pen.text);
    // The same tokens as in-process generation with the same options, and the plain request's as alone.
    const want = generate(model as CausalLM, [ids], { temperature: 0, maxNewTokens: 12, eosTokenIds: [], ...o })[0]!.tokens;
    assert.deepEqual(pen.body.choices[0].token_ids, want);
    const alone = await post(s.url, '/v1/completions', body);
    assert.deepEqual(plain.body.choices[0].token_ids, alone.body.choices[0].token_ids);
    assert.notDeepEqual(plain.body.choices[0].token_ids, want);
    // logit_bias 100 on one token: every sampled token is it; a bias past 100 is clamped, as vLLM clamps it.
    const forced = await post(s.url, '/v1/completions', { ...body, temperature: 1, n: 3, logit_bias: { '77': 500 } });
    assert.equal(forced.status, 200, forced.text);
    for (const c of forced.body.choices) assert.deepEqual(c.token_ids, Array(12).fill(77));
    // allowed_token_ids (vLLM's): only those are sampled, beside a request without it in the same batch.
    const [only, free] = await Promise.all([
      post(s.url, '/v1/completions', { ...body, temperature: 1.5, n: 3, seed: 4, allowed_token_ids: [77, 78, 79] }),
      post(s.url, '/v1/completions', { ...body, temperature: 1.5, n: 3, seed: 4 }),
    ]);
    assert.equal(only.status, 200, only.text);
    const used = new Set(only.body.choices.flatMap((c: { token_ids: number[] }) => c.token_ids));
    assert.ok([...used].every((t) => t === 77 || t === 78 || t === 79) && used.size > 1, `allowed tokens only: ${[...used]}`);
    assert.ok(free.body.choices.flatMap((c: { token_ids: number[] }) => c.token_ids).some((t: number) => t < 77 || t > 79), 'the other request is not limited');
    // bad_words (vLLM's): a word the greedy output contains is not generated, whether one token or several.
    const greedyIds: number[] = plain.body.choices[0].token_ids;
    for (const span of [greedyIds.slice(2, 3), greedyIds.slice(3, 5)]) {
      const word = tokenizer.decode(span).trim();
      const { badWordsIds, bannedNext } = await import('../src/serve/bad_words.js');
      const seqs = badWordsIds(tokenizer, [word]);
      assert.ok(seqs.length >= 1);
      const r = await post(s.url, '/v1/completions', { ...body, bad_words: [word] });
      assert.equal(r.status, 200, r.text);
      const out: number[] = r.body.choices[0].token_ids;
      assert.notDeepEqual(out, greedyIds, `bad word ${JSON.stringify(word)} changes the output`);
      // No sequence of the word appears in the output, and up to the first change the output is the greedy one.
      for (const w of seqs) for (let j = 0; j + w.length <= out.length; j++) assert.notDeepEqual(out.slice(j, j + w.length), w, `${JSON.stringify(word)} at ${j}`);
      const first = out.findIndex((t, j) => t !== greedyIds[j]);
      assert.ok(bannedNext(seqs, out.slice(0, first)).includes(greedyIds[first]!), 'the first change is where the word would have been completed');
    }
    const stuck = await post(s.url, '/v1/completions', { ...body, allowed_token_ids: [...s.engine.eos], min_tokens: 2, ignore_eos: false });
    assert.equal(stuck.status, 400, stuck.text);
    assert.equal(stuck.body.error.param, 'allowed_token_ids');
    // Chat takes the same fields.
    const chat = await post(s.url, '/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, logit_bias: { '77': 100 }, temperature: 0, ignore_eos: true });
    assert.equal(chat.status, 200, chat.text);
    assert.equal(chat.body.choices[0].message.content, tokenizer.decode(Array(4).fill(77), { skipSpecialTokens: true }));
  } finally {
    await s.close();
  }
});

test('serve: generation_config.json\'s repetition_penalty is the default of requests that leave it out; its max_new_tokens caps max_tokens', { skip: noLlama }, async () => {
  const s = await serve({ samplingDefaults: { repetitionPenalty: 1.4, maxTokens: 10 } });
  try {
    const body = { model: MODEL, prompt: 'Once upon a time there was', max_tokens: 12, temperature: 0, ignore_eos: true, return_token_ids: true };
    const byDefault = await post(s.url, '/v1/completions', body);
    const given = await post(s.url, '/v1/completions', { ...body, repetition_penalty: 1.4 });
    const off = await post(s.url, '/v1/completions', { ...body, repetition_penalty: 1 });
    assert.equal(byDefault.status, 200, byDefault.text);
    assert.equal(byDefault.body.choices[0].token_ids.length, 10);
    assert.deepEqual(byDefault.body.choices[0].token_ids, given.body.choices[0].token_ids);
    assert.notDeepEqual(byDefault.body.choices[0].token_ids, off.body.choices[0].token_ids);
  } finally {
    await s.close();
  }
});

test('bad words: tokenised bare and after a space (kept when another sequence of the same length), banned where they would be completed', { skip: noLlama }, async () => {
  const { badWordsIds, bannedNext } = await import('../src/serve/bad_words.js');
  const { Tokenizer } = await import('../src/text/tokenizer.js');
  const tok = Tokenizer.fromFolder(llamaDir);
  const seqs = badWordsIds(tok, ['  hello world']);
  const bare = tok.encode('hello world', { addSpecialTokens: false });
  const spaced = tok.encode(' hello world', { addSpecialTokens: false });
  assert.deepEqual(seqs[0], bare);
  assert.equal(seqs.length, spaced.length === bare.length && spaced[0] !== bare[0] ? 2 : 1);
  assert.deepEqual(bannedNext([[5]], []), [5]);
  assert.deepEqual(bannedNext([[5, 6, 7]], [1, 5]), []);
  assert.deepEqual(bannedNext([[5, 6, 7]], [1, 5, 6]), [7]);
  assert.deepEqual(bannedNext([[5, 6, 7], [6, 9]], [5, 6]), [7, 9]);
});
