// The gold style game of the demo (src/demo/style_game.ts): its matrix from the gold rules, its equilibrium
// by the game lab's solver, and the exploitability of a style mix, against values derived by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { entry } from '../src/game/game.js';
import { exactGapBound, defaultExactEta } from '../src/game/exact.js';
import { exactSppoFrom, measureStyles, sampledExploitability, solveStyleGame, SOLVER_ITERS, styleExploitability, styleGame, styleLengths, STYLE_STRATEGIES, type StyleMix } from '../src/demo/style_game.js';
import { goldPreference } from '../src/demo/gold_judge.js';
import { EPS64 } from './helpers/tolerances.js';
import { createRng } from '../src/util/rng.js';
import { join } from 'node:path';
import { sppoFails, sppoOk } from './helpers/cli.js';
import { projectRoot } from './helpers/fixtures.js';

const T = 0, S = 1, F = 2, O = 3;
/** Rounding of a 4-term dot product of numbers in [0, 1] and the doubling: a few units of roundoff. */
const ROUND = 16 * EPS64;

/**
 * How far a mix y with exploitability g can be from the equilibrium x* of a 3-cycle game whose margins are
 * a_ts (terse over sentence), a_sf, a_ft (P - 1/2 on the cycle) and whose styles beat 'other' by c_j.
 * At x*, x*_t = a_sf / Z, x*_s = a_ft / Z, x*_f = a_ts / Z (Z the sum of the margins). Every row of (P - 1/2) y
 * is <= g/2. Weighting the three style rows by x* cancels the cycle (x*^T A = 0 on the styles) and leaves
 * y_o sum_j x*_j c_j <= g/2. With r_j = y_j / x*_j, row t reads a_ts a_ft (r_s - r_f) / Z + c_t y_o <= g/2, so
 * each signed difference of the r is <= D = g Z / (2 min product of two margins), hence |r_i - r_k| <= 2D; the
 * x*-weighted mean of r is 1 - y_o, so |y_j - x*_j| <= x*_j (2D + y_o).
 */
function distanceBound(a: { ts: number; sf: number; ft: number }, c: [number, number, number], g: number): { styles: [number, number, number]; other: number } {
  const Z = a.ts + a.sf + a.ft;
  const eq: [number, number, number] = [a.sf / Z, a.ft / Z, a.ts / Z];
  const other = g / (2 * (eq[0] * c[0] + eq[1] * c[1] + eq[2] * c[2]));
  const D = (g * Z) / (2 * Math.min(a.ts * a.ft, a.sf * a.ts, a.ft * a.sf));
  return { styles: eq.map((x) => x * (2 * D + other)) as [number, number, number], other };
}

test('style game: the pure cycle from the gold rules (0.7 around the cycle, 0.8 against other)', () => {
  const g = styleGame();
  assert.deepEqual(STYLE_STRATEGIES, ['terse', 'sentence', 'formatted', 'other']);
  assert.equal(entry(g.P, 4, T, S), 0.7);
  assert.equal(entry(g.P, 4, S, F), 0.7);
  assert.equal(entry(g.P, 4, F, T), 0.7);
  for (const j of [T, S, F]) assert.ok(Math.abs(entry(g.P, 4, j, O) - 0.8) <= ROUND);
  for (let i = 0; i < 4; i++) assert.equal(entry(g.P, 4, i, i), 0.5);
  // the gold judge on two correct answers: the same style term, plus its length term (1 vs 8 characters)
  assert.ok(Math.abs(goldPreference('Add 3+5.', '8', 'It is 8.') - (entry(g.P, 4, T, S) + (0.1 * (1 - 8)) / 20)) <= ROUND);
});

test('style game: exploitability of pure styles (2 * 0.7 - 1 = 0.4), of other (0.6), of the uniform mix of styles (0) and of half terse, half sentence (0.2)', () => {
  const g = styleGame();
  for (const s of ['terse', 'sentence', 'formatted'] as const) assert.ok(Math.abs(styleExploitability(g, { [s]: 1 }) - 0.4) <= ROUND, s);
  assert.ok(Math.abs(styleExploitability(g, { other: 1 }) - 0.6) <= ROUND);
  assert.ok(Math.abs(styleExploitability(g, { terse: 1 / 3, sentence: 1 / 3, formatted: 1 / 3 })) <= ROUND);
  // against (1/2, 1/2, 0, 0): terse wins 0.5/2 + 0.7/2 = 0.6, sentence 0.4, formatted 0.5 -> 2 * 0.6 - 1
  assert.ok(Math.abs(styleExploitability(g, { terse: 0.5, sentence: 0.5 }) - 0.2) <= ROUND);
  // the starter mix (rounded): terse .18 .5 + .48 .7 + .31 .3 + .04 .8 = 0.551 -> 0.102
  assert.ok(Math.abs(styleExploitability(g, { terse: 0.18, sentence: 0.48, formatted: 0.31, other: 0.04 }) - 0.102) <= ROUND);
});

test('style game: the game lab solver finds the pure cycle\'s equilibrium, 1/3 per style with other dominated', () => {
  const eq = solveStyleGame(styleGame());
  const bound = exactGapBound(4, SOLVER_ITERS, defaultExactEta(SOLVER_ITERS));
  assert.ok(eq.residual >= 0 && eq.residual <= bound, `residual ${eq.residual} <= the solver's bound ${bound}`);
  assert.ok(Math.abs(styleExploitability(styleGame(), eq.mix) - eq.residual) <= ROUND);
  const d = distanceBound({ ts: 0.2, sf: 0.2, ft: 0.2 }, [0.3, 0.3, 0.3], eq.residual);
  assert.ok(eq.mix.other <= d.other + ROUND, `other ${eq.mix.other} <= ${d.other}`);
  (['terse', 'sentence', 'formatted'] as const).forEach((s, i) => assert.ok(Math.abs(eq.mix[s] - 1 / 3) <= d.styles[i]! + ROUND, `${s} ${eq.mix[s]}`));
});

test('style game with the length term: terse 2, sentence 9, formatted 10 characters move the equilibrium to (0.325, 0.4, 0.275, 0)', () => {
  const lengths: StyleMix = { terse: 2, sentence: 9, formatted: 10, other: 5 };
  const g = styleGame(lengths);
  // 0.7 + 0.1 (len_a - len_b) / 20 around the cycle; 0.8 + 0.1 (len_j - 5) / 20 against other
  const a = { ts: 0.2 - 0.035, sf: 0.2 - 0.005, ft: 0.2 + 0.04 };
  assert.ok(Math.abs(entry(g.P, 4, T, S) - (0.5 + a.ts)) <= ROUND);
  assert.ok(Math.abs(entry(g.P, 4, S, F) - (0.5 + a.sf)) <= ROUND);
  assert.ok(Math.abs(entry(g.P, 4, F, T) - (0.5 + a.ft)) <= ROUND);
  const c: [number, number, number] = [0.3 - 0.015, 0.3 + 0.02, 0.3 + 0.025];
  [T, S, F].forEach((j, k) => assert.ok(Math.abs(entry(g.P, 4, j, O) - (0.5 + c[k]!)) <= ROUND));
  // the equalizer of the cycle: x_t : x_s : x_f = a_sf : a_ft : a_ts = 0.195 : 0.24 : 0.165
  const hand = { terse: 0.325, sentence: 0.4, formatted: 0.275, other: 0 };
  assert.ok(Math.abs(styleExploitability(g, hand)) <= ROUND, 'the hand-derived mix is an equilibrium');
  assert.ok(styleExploitability(g, { terse: 1 / 3, sentence: 1 / 3, formatted: 1 / 3 }) > 0.01, 'the uniform mix is not');
  const eq = solveStyleGame(g);
  const d = distanceBound(a, c, eq.residual);
  assert.ok(eq.residual <= exactGapBound(4, SOLVER_ITERS, defaultExactEta(SOLVER_ITERS)));
  assert.ok(eq.mix.other <= d.other + ROUND);
  (['terse', 'sentence', 'formatted'] as const).forEach((s, i) => assert.ok(Math.abs(eq.mix[s] - hand[s]) <= d.styles[i]! + ROUND, `${s} ${eq.mix[s]} vs ${hand[s]} (bound ${d.styles[i]})`));
});

test('style lengths: measured per style; a missing style gets the mean payload plus its own characters', () => {
  assert.deepEqual(styleLengths(['8', 'It is 12.', 'Answer: 8', '8.']), { terse: 1, sentence: 9, formatted: 9, other: 2 });
  assert.deepEqual(styleLengths(['8', '12']), { terse: 1.5, sentence: 8.5, formatted: 9.5, other: 1.5 });
  const m = measureStyles({ sentence: 1 }, ['It is 8.', 'It is 12.']);
  // a pure style in the game with lengths: the best response beats it by its cycle entry
  assert.ok(Math.abs(m.style_exploitability - (2 * entry(styleGame(m.style_lengths).P, 4, T, S) - 1)) <= ROUND);
  assert.ok(Math.abs(m.style_exploitability_cycle - 0.4) <= ROUND);
  const sum = Object.values(m.style_equilibrium).reduce((x, y) => x + y, 0);
  // the solver's average of SOLVER_ITERS policies, each summing to 1 within a few roundoffs
  assert.ok(Math.abs(sum - 1) <= SOLVER_ITERS * 8 * EPS64);
});

test('exact SPPO on the style game: from uniform, one step keeps the styles equal and shrinks other by exp(-0.3 eta)', () => {
  const g = styleGame();
  // against uniform over the four: each style wins (0.5 + 0.7 + 0.3 + 0.8) / 4 = 0.575, other (3 * 0.2 + 0.5) / 4 = 0.275
  for (const eta of [1, 5]) {
    const tr = exactSppoFrom(g, { terse: 1, sentence: 1, formatted: 1, other: 1 }, eta, 2);
    const d = Math.exp(-0.3 * eta) / (3 + Math.exp(-0.3 * eta));
    assert.ok(Math.abs(tr.average[0]! - tr.last[0]!) <= ROUND);
    // with the styles equal, each style row of (P - 1/2) pi is 0.3 d: exploitability 0.6 d
    const after2 = Math.exp(-0.6 * eta) / (3 + Math.exp(-0.6 * eta));
    assert.ok(Math.abs(tr.last[0]! - 0.6 * d) <= ROUND, `eta ${eta}: ${tr.last[0]} vs ${0.6 * d}`);
    assert.ok(Math.abs(tr.mix.other - after2) <= ROUND, 'two steps: exp(-0.3 eta) twice');
    assert.ok(Math.abs(tr.average[1]! - 0.6 * (d + after2) / 2) <= ROUND);
  }
  // a pure style cannot leave itself under multiplicative weights: 0.4 at every step
  assert.deepEqual(exactSppoFrom(g, { terse: 1 }, 2, 3).last.map((x) => Math.round(x * 1e12) / 1e12), [0.4, 0.4, 0.4]);
});

test('sampled exploitability: what the demo measures for a policy exactly at a mix (style samples drawn from it)', () => {
  const cycle = styleGame();
  const eq = { terse: 1 / 3, sentence: 1 / 3, formatted: 1 / 3, other: 0 };
  const at = (samples: number, seed: number, mix: Partial<StyleMix> = eq, threshold = 0.02) =>
    sampledExploitability(cycle, mix, { samples, draws: 400, rng: createRng(seed), threshold, seeds: 5 });
  const a = at(512, 1);
  // At the equilibrium the exact figure is 0 and the measure is a maximum of linear functions (convex): any sampling
  // noise moves it up, so every draw is >= 0 and the mean is > 0.
  assert.ok(a.exact <= ROUND, String(a.exact));
  assert.ok(a.mean > 0 && a.median > 0 && a.p90 >= a.median, JSON.stringify(a));
  assert.deepEqual(at(512, 1), a, 'the same rng seed draws the same samples');
  assert.equal(at(512, 1, eq, 1).atMost, 1);
  assert.equal(at(512, 1, eq, 1).allSeedsAtMost, 1);
  assert.equal(at(512, 1, eq, -1).atMost, 0);
  assert.ok(Math.abs(a.allSeedsAtMost - a.atMost ** 5) <= 1e-15);
  // At a kink the measure scales with the sampling noise, 1/sqrt(samples): 16x the samples, 1/4 the mean. Each mean
  // is over 400 draws of a figure whose spread is about its mean (relative error of a mean ~ 1/sqrt(400) = 5 %),
  // so the ratio is 4 within 3 x 2 x 5 % = 30 %.
  const ratio = a.mean / at(8192, 2).mean;
  assert.ok(ratio > 4 * 0.7 && ratio < 4 * 1.3, `ratio ${ratio}`);
  // Away from a kink (pure terse: the max is formatted's row, by a wide margin) the measure is linear in the shares,
  // |sampled - exact| <= 2 max|P - 1/2| ||q - p||_1 <= 0.96 ||q - p||_1, and a pure mix draws no noise at all.
  const pure = at(512, 3, { terse: 1, sentence: 0, formatted: 0, other: 0 });
  // (the mean of 400 equal figures: a sum's rounding, at most 400 units of roundoff relative)
  assert.ok(Math.abs(pure.exact - 0.4) <= ROUND && Math.abs(pure.mean - 0.4) <= 0.4 * 400 * EPS64 + ROUND, JSON.stringify(pure));
  // A mix near pure terse: E ||q - p||_1 <= sum_k sqrt(p_k (1 - p_k) / n), so the mean is within 0.96 x that (x 3 for the
  // draws' own spread) of the exact figure.
  const near = { terse: 0.9, sentence: 0.05, formatted: 0.05, other: 0 };
  const n = 2048;
  const l1 = [0.9, 0.05, 0.05].reduce((s, p) => s + Math.sqrt((p * (1 - p)) / n), 0);
  const b = at(n, 4, near);
  assert.ok(Math.abs(b.mean - b.exact) <= 3 * 0.96 * l1, `${b.mean} vs ${b.exact} (bound ${3 * 0.96 * l1})`);
  assert.throws(() => sampledExploitability(cycle, eq, { samples: 0, draws: 1, rng: createRng(1), threshold: 0.02, seeds: 5 }), /samples and draws must be integers >= 1/);
});

test('sppo demo style-game --judge MODULE: the gold judge read as a judge gives the gold matrices, its equilibrium, and the floor a policy there would meet', () => {
  const module = join(projectRoot, 'dist', 'src', 'demo', 'gold_judge.js');
  const r = sppoOk(['demo', 'style-game', '--judge', module]);
  const blocks = r.stdout.split(`${module} on `).slice(1);
  assert.equal(blocks.length, 2, r.stdout);
  for (const b of blocks) {
    const judge = /\n {2}judge ([^\n]+)/.exec(b)![1];
    const gold = /\n {2}gold {2}([^\n]+)/.exec(b)![1];
    assert.equal(judge, gold, 'the reading of the gold judge is the gold reading');
    assert.match(b, /same preferred style as the gold judge: 100\.0 %/);
    assert.match(b, /its gold exploitability 0\.000/);
    // A policy at gold's own equilibrium: 2,048 samples put the demo's measure under 0.02 in most seeds.
    const p = Number(/in all of 5 seeds with probability ([0-9.]+)/.exec(b)![1]);
    assert.ok(p > 0.8 && p <= 1, `probability ${p}`);
  }
  sppoFails(['demo', 'style-game', '--judge', join(projectRoot, 'no-such-judge.mjs')], 1, /no-such-judge\.mjs does not exist/);
});
