// The game lab's building blocks: loading and validating games, the PRNG, the measures, the losses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bradleyTerryGame, loadGames, makeGame, parseGames, GameFileError } from '../src/game/game.js';
import { dualityGap, l1, winRates } from '../src/game/measures.js';
import { softmax, uniformLog } from '../src/game/policy.js';
import { Rng } from '../src/game/rng.js';
import { sppoExactStep } from '../src/game/exact.js';
import { drawAndJudge, preferencePairs, bestAndWorst } from '../src/game/sampled.js';
import { fitPairs, fitSppo, pairLossGrad, sppoLossGrad } from '../src/game/fit.js';
import { GAMES_FILE } from './game-fixture.js';

const RPS = [
  [0.5, 1, 0],
  [0, 0.5, 1],
  [1, 0, 0.5],
];

test('the fixture file loads: square preference matrices with their equilibria', async () => {
  const games = await loadGames(GAMES_FILE);
  assert.ok(games.length >= 4);
  for (const g of games) {
    assert.equal(g.P.length, g.n * g.n);
    assert.ok(g.nash, `${g.name} has a nash`);
    // The given equilibrium has gap ~0: nobody beats it.
    assert.ok(Math.abs(dualityGap(g, g.nash!)) < 1e-6, `${g.name}: gap of nash ${dualityGap(g, g.nash!)}`);
  }
  assert.ok(games.some((g) => g.name === 'rock-paper-scissors'));
});

test('a bad file names the file, the game and the entry', () => {
  const bad = (P: unknown, re: RegExp) => assert.throws(() => parseGames({ games: [{ name: 'rps', P }] }, 'games.json'), (e: unknown) => e instanceof GameFileError && re.test(e.message));
  bad([[0.5, 0.7], [0.5, 0.5]], /^games\.json: game "rps": P\[0\]\[1\] \+ P\[1\]\[0\] = 1\.2, expected 1$/);
  bad([[0.5, 1.5], [-0.5, 0.5]], /^games\.json: game "rps": P\[0\]\[1\] = 1\.5 is outside \[0, 1\]$/);
  bad([[0.5, 1, 0], [0, 0.5], [1, 0, 0.5]], /^games\.json: game "rps": P\[1\] has 2 entries, expected 3/);
  bad([[0.4, 0.5], [0.5, 0.5]], /game "rps": P\[0\]\[0\] = 0\.4, expected 0\.5/);
  bad([[0.5, 'x'], [0.5, 0.5]], /game "rps": P\[0\]\[1\] = "x" is not a finite number/);
  assert.throws(() => parseGames({ games: [{ name: 'g', P: RPS, nash: [0.5, 0.5, 0.5] }] }, 'f.json'), /f\.json: game "g": nash sums to 1\.5/);
  assert.throws(() => parseGames({ nope: 1 }, 'f.json'), /f\.json: expected an object with a "games" array/);
  // The second game is named when it is the bad one.
  assert.throws(() => parseGames({ games: [{ name: 'ok', P: RPS }, { name: 'second', P: [[0.5, 0.2], [0.2, 0.5]] }] }, 'f.json'), /game "second": P\[0\]\[1\] \+ P\[1\]\[0\] = 0\.4/);
});

test('xoshiro128** matches the reference C implementation, is reproducible from its seed and about uniform', () => {
  // The first outputs of xoshiro128starstar.c from the state {1, 2, 3, 4}.
  const ref = new Rng(0);
  (ref as unknown as { s: Uint32Array }).s.set([1, 2, 3, 4]);
  assert.deepEqual(Array.from({ length: 5 }, () => ref.nextU32()), [11520, 0, 5927040, 70819200, 2031721883]);
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(xs, Array.from({ length: 5 }, () => b.nextU32()));
  assert.notDeepEqual(xs, Array.from({ length: 5 }, () => c.nextU32()));
  const r = new Rng(7);
  const probs = [0.1, 0.6, 0.3];
  const counts = [0, 0, 0];
  let sum = 0;
  const N = 100000;
  for (let i = 0; i < N; i++) {
    const u = r.float();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    counts[r.categorical(probs)]!++;
  }
  assert.ok(Math.abs(sum / N - 0.5) < 0.005, `mean ${sum / N}`);
  probs.forEach((p, i) => assert.ok(Math.abs(counts[i]! / N - p) < 0.01, `category ${i}: ${counts[i]! / N}`));
});

test('gap and win rates: 0 at the equilibrium, the best response margin elsewhere', () => {
  const g = makeGame('rps', RPS);
  assert.ok(Math.abs(dualityGap(g, [1 / 3, 1 / 3, 1 / 3])) < 1e-12);
  // Pure rock: paper beats it always, gap 2 * 1 - 1 = 1.
  assert.equal(dualityGap(g, [1, 0, 0]), 1);
  assert.deepEqual(Array.from(winRates(g, [1, 0, 0])), [0.5, 0, 1]);
  assert.equal(l1([1, 0, 0], [0, 0.5, 0.5]), 2);
  // For any policy pi^T P pi = 1/2, so the gap is never negative.
  const r = new Rng(1);
  for (let k = 0; k < 50; k++) {
    const pi = softmax(Float64Array.from({ length: 3 }, () => 3 * r.normal()));
    assert.ok(dualityGap(g, pi) >= -1e-12);
  }
});

test('sppo-exact step is multiplicative weights on P pi', () => {
  const g = makeGame('rps', RPS);
  const pi0 = [0.5, 0.3, 0.2];
  const logp = Float64Array.from(pi0, Math.log);
  const eta = 0.7;
  sppoExactStep(g, logp, Float64Array.from(pi0), eta);
  const w = winRates(g, pi0);
  const un = pi0.map((p, i) => p * Math.exp(eta * w[i]!));
  const z = un.reduce((a, b) => a + b, 0);
  un.forEach((u, i) => assert.ok(Math.abs(Math.exp(logp[i]!) - u / z) < 1e-12));
});

test('sampled win rates: self-term 1/2, M + M^T = 1, exact or Bernoulli entries', () => {
  const g = bradleyTerryGame('bt', [0, 1, 2, 3]);
  const pi = softmax(new Float64Array(4));
  const rng = new Rng(3);
  for (const judge of ['exact', 'bernoulli'] as const) {
    for (let k = 0; k < 20; k++) {
      const d = drawAndJudge(g, pi, 5, judge, rng);
      const total = d.winRate.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(total - 5 / 2) < 1e-12, 'win rates of K samples sum to K/2');
      if (judge === 'exact') {
        d.ys.forEach((y, i) => {
          let s = 0;
          d.ys.forEach((z, j) => (s += i === j ? 0.5 : g.P[y * 4 + z]!));
          assert.ok(Math.abs(d.winRate[i]! - s / 5) < 1e-12);
        });
      } else {
        // (1/K) times a sum of 0/1 outcomes plus 1/2
        d.winRate.forEach((w) => assert.ok(Math.abs(w * 5 - 0.5 - Math.round(w * 5 - 0.5)) < 1e-12));
      }
      const [b, w] = bestAndWorst(d);
      for (const x of d.winRate) assert.ok(x <= d.winRate[b]! && x >= d.winRate[w]!);
      let differing = 0;
      for (let i = 0; i < 5; i++) for (let j = i + 1; j < 5; j++) if (d.winRate[i] !== d.winRate[j]) differing++;
      assert.equal(preferencePairs(d, 'all').length, differing, 'one pair per two samples whose estimates differ');
      const bw = preferencePairs(d, 'best-worst');
      assert.deepEqual(bw, d.winRate[b]! > d.winRate[w]! ? [[d.ys[b], d.ys[w]]] : []);
    }
  }
});

function numericGrad(f: (theta: Float64Array) => number, theta: Float64Array): Float64Array {
  const h = 1e-6;
  return theta.map((_, k) => {
    const p = Float64Array.from(theta);
    const m = Float64Array.from(theta);
    p[k]! += h;
    m[k]! -= h;
    return (f(p) - f(m)) / (2 * h);
  });
}

test('analytic gradients of the sppo, dpo and ipo losses match finite differences', () => {
  const r = new Rng(11);
  const n = 5;
  const ref = softmax(Float64Array.from({ length: n }, () => r.normal())).map(Math.log);
  const theta = Float64Array.from({ length: n }, () => r.normal());
  const grad = new Float64Array(n);
  const scratch = new Float64Array(n);
  const ys = [1, 3, 3, 0];
  const wr = [0.8, 0.3, 0.3, 0.55];
  const eta = 0.4;
  sppoLossGrad(theta, ref, ys, wr, eta, grad);
  const num = numericGrad((t) => sppoLossGrad(t, ref, ys, wr, eta, scratch), theta);
  grad.forEach((g, k) => assert.ok(Math.abs(g - num[k]!) < 1e-6, `sppo d/dtheta_${k}: ${g} vs ${num[k]}`));
  const pairs: Array<[number, number]> = [[1, 3], [0, 3], [1, 2]];
  for (const kind of ['dpo', 'ipo'] as const) {
    pairLossGrad(kind, theta, ref, pairs, eta, grad);
    const nu = numericGrad((t) => pairLossGrad(kind, t, ref, pairs, eta, scratch), theta);
    grad.forEach((g, k) => assert.ok(Math.abs(g - nu[k]!) < 1e-6, `${kind} d/dtheta_${k}: ${g} vs ${nu[k]}`));
  }
});

test('the fits reach their targets: sppo a = eta (P^ - 1/2), ipo a_w - a_l = eta / 2, dpo widens the margin', () => {
  const ref = uniformLog(6);
  const eta = 0.3;
  const next = fitSppo(ref, [2, 4], [0.9, 0.2], { eta, steps: 300, lr: 0.5 });
  assert.ok(Math.abs(next[2]! - ref[2]! - eta * 0.4) < 1e-8);
  assert.ok(Math.abs(next[4]! - ref[4]! - eta * -0.3) < 1e-8);
  assert.ok(Math.abs(Math.exp(next[0]!) + Math.exp(next[1]!) + Math.exp(next[2]!) + Math.exp(next[3]!) + Math.exp(next[4]!) + Math.exp(next[5]!) - 1) < 1e-12);
  const ipo = fitPairs('ipo', ref, [[2, 4]], { eta, steps: 300, lr: 0.5 });
  assert.ok(Math.abs(ipo[2]! - ipo[4]! - eta / 2) < 1e-8);
  const dpo20 = fitPairs('dpo', ref, [[2, 4]], { eta, steps: 20, lr: 0.5 });
  const dpo200 = fitPairs('dpo', ref, [[2, 4]], { eta, steps: 200, lr: 0.5 });
  assert.ok(dpo20[2]! - dpo20[4]! > 0);
  assert.ok(dpo200[2]! - dpo200[4]! > dpo20[2]! - dpo20[4]!, 'DPO has no finite minimizer: more steps, wider margin');
});
