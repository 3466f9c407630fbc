// `sppo run` with the last-iterate losses (src/sppo/last_iterate.ts) on the tiny llama fixture: the extra stages
// run and write their artifacts, the cross judgments are the judge's, and the trainer regresses on the targets
// the method defines: at the first optimizer step (policy = reference, one batch holding every pair) the loss is
// the mean of (T_w^2 + T_l^2) / 2 with T computed here from the artifacts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSppo } from '../src/sppo/loop.js';
import type { SppoConfigInput } from '../src/sppo/config.js';
import { baselineOf, magnetDir, opponentOf, withOpponentWinRates } from '../src/sppo/last_iterate.js';
import { trainingSchema } from '../src/sppo/config.js';
import { logRatioTarget } from '../src/sppo/losses.js';
import { tensor, tidy } from '../src/torch/index.js';
import { LOGPROB32 } from './helpers/tolerances.js';
import { exampleLogprobs } from '../src/sppo/trainer.js';
import { loadModel } from '../src/models/registry.js';
import { fixtureRoot, removeDir, tempDir } from './text_helpers.js';
import { LIKES_TOKEN_JUDGE } from './helpers/judges.js';

const model = join(fixtureRoot, 'llama');
const skip = existsSync(join(model, 'model.safetensors')) ? false : `no llama fixture at ${model}`;

const JUDGE = LIKES_TOKEN_JUDGE;
const prefer = (a: string, b: string): number => {
  const count = (s: string): number => s.split('given').length - 1;
  return 1 / (1 + Math.exp(-2 * (count(a) - count(b))));
};

const readJsonl = (path: string): any[] => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

function cfg(loss: string, training: Record<string, unknown> = {}): SppoConfigInput {
  return {
    model,
    prompts: 'prompts.jsonl',
    runDir: `run-${loss}`,
    judge: { kind: 'module', path: 'judge.mjs', options: { token: 'given' } },
    iterations: 2,
    seed: 5,
    device: 'cpu',
    promptsPerIteration: 12,
    generation: { k: 6, temperature: 1, topP: 1, maxNewTokens: 16, batchSize: 8 },
    training: { loss, beta: 0.1, lr: 0.003, optimizer: 'adamw', epochs: 1, batchSize: 16, maxLength: 64, maxPromptLength: 48, warmupRatio: 0, ...training },
    eval: { count: 0 },
  } as SppoConfigInput;
}

function setup(name: string): string {
  const dir = tempDir(name);
  writeFileSync(join(dir, 'judge.mjs'), JUDGE);
  const topics = ['cats', 'dogs', 'the sea', 'numbers', 'music', 'stars', 'bread', 'rain'];
  writeFileSync(join(dir, 'prompts.jsonl'), Array.from({ length: 24 }, (_, i) => JSON.stringify({ id: `q${i}`, prompt: `Q ${i}: say something about ${topics[i % 8]}.` })).join('\n') + '\n');
  return dir;
}

/** The first optimizer step's loss expected from the pairs and each response's targets. */
function expectedFirstLoss(pairs: any[], target: (p: any, side: 'chosen' | 'rejected') => number): number {
  const kept = pairs.filter((p) => !p.degenerate);
  return kept.reduce((s, p) => s + (target(p, 'chosen') ** 2 + target(p, 'rejected') ** 2) / 2, 0) / kept.length;
}

const closeRel = (a: number, b: number, tol: number, what: string): void => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} != ${b}`);

test('extragradient: look-ahead trained, sampled and judged against; the final step regresses on eta (P(y > pi_{t+1/2}) - 1/2)', { skip }, async () => {
  const dir = setup('loop-eg');
  try {
    await runSppo(cfg('extragradient', { tau: 0.05 }), { baseDir: dir, progress: false, log: () => {} });
    const eta = 1 / 0.1;
    for (const t of [1, 2]) {
      const it = join(dir, 'run-extragradient', `iter-${t}`);
      for (const f of ['lookahead-checkpoint/model.safetensors', 'lookahead-train-metrics.jsonl', 'lookahead-generations.jsonl', 'lookahead-preferences.jsonl', 'checkpoint/model.safetensors']) assert.ok(existsSync(join(it, f)), `iter-${t}/${f}`);
      const gens = new Map(readJsonl(join(it, 'generations.jsonl')).map((g) => [g.index, g]));
      const look = new Map(readJsonl(join(it, 'lookahead-generations.jsonl')).map((g) => [g.index, g]));
      const cross = readJsonl(join(it, 'lookahead-preferences.jsonl'));
      // The cross matrices are the judge's, response i of pi_{t-1} against look-ahead sample k; win rates their row means.
      for (const c of cross) {
        const a = gens.get(c.index)!.responses;
        const b = look.get(c.index)!.responses;
        assert.equal(c.matrix.length, 6);
        c.matrix.forEach((row: number[], i: number) => {
          row.forEach((v, k) => closeRel(v, prefer(a[i].text, b[k].text), 1e-12, `prompt ${c.index} [${i}][${k}]`));
          closeRel(c.win_rates[i], row.reduce((s, x) => s + x, 0) / row.length, 1e-12, 'row mean');
        });
      }
      if (t === 1) {
        // At t = 1 the magnet is pi_0, the reference itself: m = 0, so T = eta (P - 1/2), with P against pi_0 for the
        // look-ahead and against pi_{1/2} for the real step.
        const pairs = readJsonl(join(it, 'pairs.jsonl'));
        const wr = new Map(cross.map((c) => [c.index, c.win_rates]));
        const lookLoss = readJsonl(join(it, 'lookahead-train-metrics.jsonl'))[0].loss;
        const lookExpected = expectedFirstLoss(pairs, (p, s) => eta * (p[`${s}_win_rate`] - 0.5));
        closeRel(lookLoss, lookExpected, 1e-3, 'look-ahead step 1 loss');
        const realLoss = readJsonl(join(it, 'train-metrics.jsonl'))[0].loss;
        const realExpected = expectedFirstLoss(pairs, (p, s) => eta * (wr.get(p.index)![p[s]] - 0.5));
        closeRel(realLoss, realExpected, 1e-3, 'real step 1 loss');
        // Both carry signal (some responses say the token), and they differ.
        assert.ok(lookExpected > 0.05 && realExpected > 0.05 && Math.abs(lookExpected - realExpected) > 0.01, `${lookExpected} ${realExpected}`);
      }
    }
  } finally {
    removeDir(dir);
  }
});

test('omwu, baseline half: from iteration 2, pi_0 sampled and judged against; the step regresses on eta (2 P_t - P_prev - 1/2)', { skip }, async () => {
  const dir = setup('loop-omwu');
  try {
    await runSppo(cfg('omwu', { baseline: 'half' }), { baseDir: dir, progress: false, log: () => {} });
    const eta = 1 / 0.1;
    const run = join(dir, 'run-omwu');
    assert.ok(!existsSync(join(run, 'iter-1/prev-generations.jsonl')), 'iteration 1 has no previous policy');
    // At t = 1 P_prev := P: the targets are SPPO's.
    const pairs1 = readJsonl(join(run, 'iter-1/pairs.jsonl'));
    closeRel(readJsonl(join(run, 'iter-1/train-metrics.jsonl'))[0].loss, expectedFirstLoss(pairs1, (p, s) => eta * (p[`${s}_win_rate`] - 0.5)), 1e-3, 'iteration 1');
    const prev = readJsonl(join(run, 'iter-2/prev-preferences.jsonl'));
    assert.ok(existsSync(join(run, 'iter-2/prev-generations.jsonl')));
    const wr = new Map(prev.map((c) => [c.index, c.win_rates]));
    const pairs2 = readJsonl(join(run, 'iter-2/pairs.jsonl'));
    const expected = expectedFirstLoss(pairs2, (p, s) => eta * (2 * p[`${s}_win_rate`] - wr.get(p.index)![p[s]] - 0.5));
    closeRel(readJsonl(join(run, 'iter-2/train-metrics.jsonl'))[0].loss, expected, 1e-3, 'iteration 2');
    // The previous policy's win rates matter: SPPO's targets would give another loss.
    const sppoLike = expectedFirstLoss(pairs2, (p, s) => eta * (p[`${s}_win_rate`] - 0.5));
    assert.ok(Math.abs(expected - sppoLike) > 0.01, `${expected} vs ${sppoLike}`);
  } finally {
    removeDir(dir);
  }
});

test('mpo: the magnet is pi_0, then moves every magnetEvery iterations; at t = 1 the targets are eta (P - 1/2) / (1 + eta tau)', { skip }, async () => {
  const c = { model: 'M', training: { loss: 'mpo', magnetEvery: 2, tau: 0.1 } } as never;
  const at = (s: number): string => `iter-${s}/checkpoint`;
  assert.deepEqual([1, 2, 3, 4, 5].map((t) => magnetDir(c, t, at)), ['M', 'M', at(2), at(2), at(4)]);
  assert.equal(magnetDir({ model: 'M', training: { loss: 'nash-md', magnetEvery: 2, tau: 0.1 } } as never, 5, at), 'M');
  assert.equal(magnetDir({ model: 'M', training: { loss: 'sppo', magnetEvery: 2 } } as never, 5, at), undefined);
  const dir = setup('loop-mpo');
  try {
    await runSppo({ ...cfg('mpo', { tau: 0.2, magnetEvery: 1 }), iterations: 1 }, { baseDir: dir, progress: false, log: () => {} });
    const eta = 1 / 0.1;
    const pairs = readJsonl(join(dir, 'run-mpo/iter-1/pairs.jsonl'));
    closeRel(readJsonl(join(dir, 'run-mpo/iter-1/train-metrics.jsonl'))[0].loss, expectedFirstLoss(pairs, (p, s) => (eta * (p[`${s}_win_rate`] - 0.5)) / (1 + eta * 0.2)), 1e-3, 'mpo');
  } finally {
    removeDir(dir);
  }
});

test('nash-md: at t = 2 the responses are judged against samples of the geometric mixture pi_1^(1 - eta tau) pi_0^(eta tau); the step regresses on eta (P(y > mixture) - 1/2) + eta tau (log pi_0 - log pi_1)', { skip }, async () => {
  const dir = setup('loop-nashmd');
  try {
    const tau = 0.05;
    const eta = 1 / 0.1;
    await runSppo(cfg('nash-md', { tau }), { baseDir: dir, progress: false, log: () => {} });
    const run = join(dir, 'run-nash-md');
    // At t = 1 the mixture is pi_0 itself: no extra samples; the targets use the K x K win rates.
    assert.ok(!existsSync(join(run, 'iter-1/mixture-generations.jsonl')), 'iteration 1 samples no mixture');
    const pairs1 = readJsonl(join(run, 'iter-1/pairs.jsonl'));
    closeRel(readJsonl(join(run, 'iter-1/train-metrics.jsonl'))[0].loss, expectedFirstLoss(pairs1, (p, s) => eta * (p[`${s}_win_rate`] - 0.5)), 1e-3, 'nash-md iteration 1');
    const pairs = readJsonl(join(run, 'iter-2/pairs.jsonl'));
    const mixGens = readJsonl(join(run, 'iter-2/mixture-generations.jsonl'));
    const cross = readJsonl(join(run, 'iter-2/mixture-preferences.jsonl'));
    const wr = new Map(cross.map((c) => [c.index, c.win_rates]));
    const pi0 = loadModel(model, { dtype: 'float32', device: 'cpu' });
    const pi1 = loadModel(join(run, 'iter-1/checkpoint'), { dtype: 'float32', device: 'cpu' });
    try {
      // The mixture's samples: each one's recorded log-prob (untempered; the test samples at temperature 1) is its
      // log-prob under log_softmax((1 - eta tau) z_pi1 + eta tau z_pi0), from full forward passes of both models.
      const c = eta * tau;
      let checked = 0;
      for (const g of mixGens.slice(0, 3)) {
        for (const r of g.responses.slice(0, 2)) {
          const lp = tidy(() => {
            const ids = tensor(BigInt64Array.from([...g.prompt_ids, ...r.token_ids], BigInt), { shape: [1, g.prompt_ids.length + r.token_ids.length] });
            const mixed = pi1.forward({ inputIds: ids }).mul(1 - c).add(pi0.forward({ inputIds: ids }).mul(c)).logSoftmax(-1).toArray() as number[][][];
            return r.token_ids.reduce((s: number, tok: number, j: number) => s + mixed[0]![g.prompt_ids.length + j - 1]![tok]!, 0);
          });
          // A sum of up to 16 float32 log-probs, each within LOGPROB32.
          assert.ok(Math.abs(lp - r.logprob) <= 16 * LOGPROB32, `mixture sample of prompt #${g.index}: recorded ${r.logprob}, mixture ${lp}`);
          checked++;
        }
      }
      assert.equal(checked, 6);
      const mag = new Map(pairs.map((p) => [p.index, exampleLogprobs(pi0, { promptIds: p.prompt_ids, chosenIds: p.chosen_ids, rejectedIds: p.rejected_ids }, 64, 48)]));
      const expected = expectedFirstLoss(pairs, (p, s) => eta * (wr.get(p.index)![p[s]] - 0.5) + eta * tau * (mag.get(p.index)![s] - p[`${s}_ref_logprob`]));
      closeRel(readJsonl(join(run, 'iter-2/train-metrics.jsonl'))[0].loss, expected, 1e-3, 'nash-md iteration 2');
      const noMagnet = expectedFirstLoss(pairs, (p, s) => eta * (wr.get(p.index)![p[s]] - 0.5));
      assert.ok(Math.abs(expected - noMagnet) > 1e-3 * expected, `the magnet term matters: ${expected} vs ${noMagnet}`);
      const policyOpponent = expectedFirstLoss(pairs, (p, s) => eta * (p[`${s}_win_rate`] - 0.5) + eta * tau * (mag.get(p.index)![s] - p[`${s}_ref_logprob`]));
      assert.ok(Math.abs(expected - policyOpponent) > 1e-3 * expected, `the mixture's win rates matter: ${expected} vs ${policyOpponent}`);
    } finally {
      pi0.dispose();
      pi1.dispose();
    }
  } finally {
    removeDir(dir);
  }
});

test('nash-md: whom each iteration judges against (opponentOf), and the settings it refuses', () => {
  const c = (training: Record<string, unknown>) => ({ training: { loss: 'nash-md', tau: 0.01, beta: 0.1, ...training } }) as never;
  assert.deepEqual([1, 2, 3].map((t) => opponentOf(c({}), t)), [undefined, 'mixture', 'mixture']);
  assert.deepEqual([1, 2, 3].map((t) => opponentOf(c({ opponent: 'policy' }), t)), [undefined, undefined, undefined]);
  assert.deepEqual([1, 2].map((t) => opponentOf({ training: { loss: 'omwu' } } as never, t)), [undefined, 'prev']);
  assert.deepEqual([1, 2].map((t) => opponentOf({ training: { loss: 'extragradient' } } as never, t)), ['lookahead', 'lookahead']);
  assert.equal(opponentOf({ training: { loss: 'sppo' } } as never, 2), undefined);
  const parse = (training: Record<string, unknown>) => trainingSchema.safeParse({ loss: 'nash-md', beta: 0.1, ...training });
  assert.ok(parse({ tau: 0.1 }).success, 'eta tau = 1 is allowed');
  const big = parse({ tau: 0.2 });
  assert.ok(!big.success && /eta tau = tau \/ beta <= 1/.test(big.error.issues[0]!.message) && big.error.issues[0]!.path[0] === 'tau');
  const other = trainingSchema.safeParse({ loss: 'sppo', opponent: 'policy' });
  assert.ok(!other.success && other.error.issues[0]!.path[0] === 'opponent', 'opponent is nash-md\'s only');
});

test('baseline samples: each example carries its prompt\'s mean win rate against the opponent (targets eta (P - P_bar)); half carries none; refused where pi_t plays itself', () => {
  const pair = (index: number, chosen: number, rejected: number) =>
    ({ index, chosen, rejected, chosen_win_rate: 0.7, rejected_win_rate: 0.3, chosen_over_rejected: 0.8, degenerate: false, prompt_ids: [1], chosen_ids: [2], rejected_ids: [3] }) as never;
  const degenerate = { ...(pair(2, 0, 1) as object), degenerate: true } as never;
  const cross = [
    { index: 0, matrix: [], win_rates: [0.02, 0.5, 0.3, 0.58] }, // mean 0.35
    { index: 1, matrix: [], win_rates: [0.9, 0.6, 0.6] }, // mean 0.7
  ];
  const pairs = [pair(0, 0, 3), pair(1, 0, 2), degenerate];
  const half = withOpponentWinRates(pairs, cross, 'lookahead');
  assert.deepEqual(half.map((e) => [e.chosenWinRate, e.rejectedWinRate, e.winRateBaseline]), [[0.02, 0.58, undefined], [0.9, 0.6, undefined]], 'half: the win rates as judged, no baseline');
  const centred = withOpponentWinRates(pairs, cross, 'lookahead', 'samples');
  const near = (a: number | undefined, b: number): void => assert.ok(Math.abs(a! - b) <= 1e-15, `${a} vs ${b}`);
  // The win rates stay the judged probabilities (0.02 - 0.35 + 1/2 would have been fine, 0.02 - 0.7 + 1/2 not).
  assert.deepEqual(centred.map((e) => [e.chosenWinRate, e.rejectedWinRate]), [[0.02, 0.58], [0.9, 0.6]]);
  near(centred[0]!.winRateBaseline, 0.35);
  near(centred[1]!.winRateBaseline, 0.7);
  assert.equal(centred.length, 2, 'degenerate pairs are not trained on');
  // The targets: eta (P - P_bar); omwu eta (2 P_t - P_prev - 1 + P_bar_prev).
  const opts = { beta: 0.1, tau: 0 };
  near(logRatioTarget('extragradient', { winRate: 0.02, winRateBaseline: 0.35, magnetLogprob: 0, refLogprob: 0 }, opts), 10 * (0.02 - 0.35));
  near(logRatioTarget('extragradient', { winRate: 0.02, magnetLogprob: 0, refLogprob: 0 }, opts), 10 * (0.02 - 0.5));
  near(logRatioTarget('omwu', { winRate: 0.7, prevWinRate: 0.9, winRateBaseline: 0.7 }, opts), 10 * (1.4 - 0.9 - 1 + 0.7));
  // omwu: the previous policy's win rates carry the baseline; P_t (the K x K row means) stays.
  const prev = withOpponentWinRates(pairs, cross, 'prev', 'samples');
  assert.equal(prev[0]!.chosenPrevWinRate, 0.02);
  near(prev[0]!.winRateBaseline, 0.35);
  assert.equal(prev[0]!.chosenWinRate, 0.7);
  assert.throws(() => withOpponentWinRates([pair(5, 0, 1)], cross, 'mixture', 'samples'), /no mixture win rates for prompt #5/);
  const refused = trainingSchema.safeParse({ loss: 'sppo', baseline: 'samples' });
  assert.ok(!refused.success && refused.error.issues[0]!.path[0] === 'baseline' && /omwu, extragradient and nash-md only/.test(refused.error.issues[0]!.message));
  assert.ok(trainingSchema.safeParse({ loss: 'omwu', baseline: 'half' }).success);
  // The defaults: omwu centres, extragradient and nash-md subtract 1/2.
  assert.deepEqual(['omwu', 'extragradient', 'nash-md'].map((loss) => baselineOf({ training: { loss } } as never)), ['samples', 'half', 'half']);
  assert.equal(baselineOf({ training: { loss: 'omwu', baseline: 'half' } } as never), 'half');
});

test('baseline samples in the loop: extragradient\'s step and omwu\'s second iteration (omwu\'s default) regress on the centred targets', { skip }, async () => {
  const dir = setup('loop-baseline');
  const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
  try {
    const eta = 1 / 0.1;
    await runSppo({ ...cfg('extragradient', { baseline: 'samples' }), iterations: 1 }, { baseDir: dir, progress: false, log: () => {} });
    const it = join(dir, 'run-extragradient', 'iter-1');
    const pairs = readJsonl(join(it, 'pairs.jsonl'));
    const wr = new Map(readJsonl(join(it, 'lookahead-preferences.jsonl')).map((c) => [c.index, c.win_rates as number[]]));
    const expected = expectedFirstLoss(pairs, (p, s) => eta * (wr.get(p.index)![p[s]] - mean(wr.get(p.index)!)));
    const uncentred = expectedFirstLoss(pairs, (p, s) => eta * (wr.get(p.index)![p[s]] - 0.5));
    closeRel(readJsonl(join(it, 'train-metrics.jsonl'))[0].loss, expected, 1e-3, 'extragradient step 1 loss');
    assert.ok(Math.abs(expected - uncentred) > 0.01, `the centring matters here: ${expected} vs ${uncentred}`);

    await runSppo(cfg('omwu'), { baseDir: dir, progress: false, log: () => {} });
    const run = join(dir, 'run-omwu');
    const prev = new Map(readJsonl(join(run, 'iter-2/prev-preferences.jsonl')).map((c) => [c.index, c.win_rates as number[]]));
    const pairs2 = readJsonl(join(run, 'iter-2/pairs.jsonl'));
    const expected2 = expectedFirstLoss(pairs2, (p, s) => eta * (2 * p[`${s}_win_rate`] - (prev.get(p.index)![p[s]] - mean(prev.get(p.index)!) + 0.5) - 0.5));
    closeRel(readJsonl(join(run, 'iter-2/train-metrics.jsonl'))[0].loss, expected2, 1e-3, 'omwu iteration 2 loss');
  } finally {
    removeDir(dir);
  }
});
