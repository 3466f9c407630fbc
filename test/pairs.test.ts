import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allResponseTargets, selectPair, selectPairs, selectTargets } from '../src/sppo/pairs.js';
import { createRng, mixSeed, mulberry32 } from '../src/sppo/rng.js';

// Total order best -> worst: 2, 0, 4, 1, 3 (see winrates.test.ts): win rates 0.9 (resp 2) ... 0.1 (resp 3).
function orderMatrix(order: number[]): number[][] {
  const k = order.length;
  const rank = new Array<number>(k);
  order.forEach((resp, r) => (rank[resp] = r));
  return Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => (i === j ? 0.5 : rank[i]! < rank[j]! ? 1 : 0)));
}

// Quality tiers q: M[i][j] = 1/2 + 1/4 * sign(q_i - q_j). Responses 1 and 3 tie for best (q = 2),
// 2 and 4 tie for worst (q = 0). Win rates: resp 1, 3: (0.5 + 0.5 + 3 * 0.75) / 5 = 0.65;
// resp 0: (0.5 + 2 * 0.25 + 2 * 0.75) / 5 = 0.5; resp 2, 4: (0.5 + 0.5 + 3 * 0.25) / 5 = 0.35.
const Q = [1, 2, 0, 2, 0];
const TIERED = Q.map((qi) => Q.map((qj) => 0.5 + 0.25 * Math.sign(qi - qj)));

test('K=5 total order: chosen = best, rejected = worst, exact win rates and P(y_w > y_l)', () => {
  const pair = selectPair(orderMatrix([2, 0, 4, 1, 3]), { seed: 1, promptIndex: 0 });
  assert.equal(pair.chosen, 2);
  assert.equal(pair.rejected, 3);
  assert.equal(pair.chosenWinRate, 0.9);
  assert.ok(Math.abs(pair.rejectedWinRate - 0.1) < 1e-15);
  assert.equal(pair.chosenOverRejected, 1);
  assert.equal(pair.degenerate, false);
});

test('soft judge: chosenOverRejected is M[w][l], not a win rate', () => {
  const m = [
    [0.5, 0.75, 0.6, 1.0, 0.9],
    [0.25, 0.5, 0.4, 0.8, 0.3],
    [0.4, 0.6, 0.5, 0.55, 0.45],
    [0.0, 0.2, 0.45, 0.5, 0.35],
    [0.1, 0.7, 0.55, 0.65, 0.5],
  ]; // win rates 0.75, 0.45, 0.5, 0.3, 0.5 -> chosen 0, rejected 3
  const pair = selectPair(m, { seed: 0, promptIndex: 3, promptId: 'p3' });
  assert.equal(pair.chosen, 0);
  assert.equal(pair.rejected, 3);
  assert.ok(Math.abs(pair.chosenWinRate - 0.75) < 1e-12);
  assert.ok(Math.abs(pair.rejectedWinRate - 0.3) < 1e-12);
  assert.equal(pair.chosenOverRejected, 1.0);
  assert.equal(pair.promptId, 'p3');
});

test('ties: chosen among {1, 3}, rejected among {2, 4}; deterministic per seed, varies across seeds and prompts', () => {
  const seen = { chosen: new Set<number>(), rejected: new Set<number>() };
  const bySeed: string[] = [];
  for (let seed = 0; seed < 64; seed++) {
    const a = selectPair(TIERED, { seed, promptIndex: 5 });
    const b = selectPair(TIERED, { seed, promptIndex: 5 });
    assert.deepEqual([a.chosen, a.rejected], [b.chosen, b.rejected], 'same seed and prompt index -> same pair');
    assert.ok([1, 3].includes(a.chosen), `chosen ${a.chosen}`);
    assert.ok([2, 4].includes(a.rejected), `rejected ${a.rejected}`);
    assert.ok(Math.abs(a.chosenWinRate - 0.65) < 1e-12);
    assert.ok(Math.abs(a.rejectedWinRate - 0.35) < 1e-12);
    assert.equal(a.chosenOverRejected, 0.75);
    seen.chosen.add(a.chosen);
    seen.rejected.add(a.rejected);
    bySeed.push(`${a.chosen}/${a.rejected}`);
  }
  assert.deepEqual([...seen.chosen].sort(), [1, 3]);
  assert.deepEqual([...seen.rejected].sort(), [2, 4]);
  // All four combinations occur over 64 seeds (each has probability 1/4).
  assert.equal(new Set(bySeed).size, 4);
  // With the seed fixed, different prompt indices also give different tie-breaks.
  const byPrompt = new Set<string>();
  for (let promptIndex = 0; promptIndex < 64; promptIndex++) {
    const p = selectPair(TIERED, { seed: 123, promptIndex });
    byPrompt.add(`${p.chosen}/${p.rejected}`);
  }
  assert.equal(byPrompt.size, 4);
});

test('degenerate: all tied and identical texts; not degenerate when texts differ', () => {
  const flat = Array.from({ length: 5 }, () => new Array<number>(5).fill(0.5));
  const same = selectPair(flat, { seed: 0, promptIndex: 0, responses: ['ok', 'ok', 'ok', 'ok', 'ok'] });
  assert.equal(same.degenerate, true);
  assert.equal(same.degenerateReason, 'all-identical');

  const differ = selectPair(flat, { seed: 0, promptIndex: 0, responses: ['a', 'b', 'c', 'd', 'e'] });
  assert.equal(differ.degenerate, false);
  assert.notEqual(differ.chosen, differ.rejected);
  assert.equal(differ.chosenWinRate, 0.5);
  assert.equal(differ.chosenOverRejected, 0.5);

  // All tied, texts mostly identical: the rejected response is picked among those whose text
  // differs from the chosen one whenever possible, over many seeds.
  for (let seed = 0; seed < 32; seed++) {
    const p = selectPair(flat, { seed, promptIndex: 0, responses: ['x', 'x', 'x', 'y', 'x'] });
    assert.equal(p.degenerate, false);
    assert.notEqual(p.chosen, p.rejected);
    assert.ok(p.chosen === 3 || p.rejected === 3, `pair ${p.chosen}/${p.rejected} should involve the only distinct text`);
  }

  const single = selectPair([[0.5]], { seed: 0, promptIndex: 0 });
  assert.equal(single.degenerate, true);
  assert.equal(single.degenerateReason, 'single-response');

  assert.throws(() => selectPair(flat, { seed: 0, promptIndex: 0, responses: ['a'] }), /1 response texts for a 5 x 5/);
  assert.throws(() => selectPair(flat, { seed: 0.5, promptIndex: 0 }), /seed/);
});

test("ranked pairs: outside in by win rate, each response at most once, the first pair best-worst's", () => {
  // Order best -> worst 2, 0, 4, 1, 3 (win rates 0.9, 0.7, 0.5, 0.3, 0.1): (2, 3), then (0, 1); 4 (the middle) left out.
  const five = selectPairs(orderMatrix([2, 0, 4, 1, 3]), { seed: 0, promptIndex: 0, mode: 'ranked' });
  assert.deepEqual(five.map((p) => [p.chosen, p.rejected]), [[2, 3], [0, 1]]);
  assert.ok(Math.abs(five[1]!.chosenWinRate - 0.7) < 1e-12 && Math.abs(five[1]!.rejectedWinRate - 0.3) < 1e-12);
  assert.equal(five[1]!.chosenOverRejected, 1);
  assert.ok(five.every((p) => !p.degenerate));
  // Even K: every response in exactly one pair.
  const six = selectPairs(orderMatrix([5, 1, 3, 0, 4, 2]), { seed: 0, promptIndex: 0, mode: 'ranked' });
  assert.deepEqual(six.map((p) => [p.chosen, p.rejected]), [[5, 2], [1, 4], [3, 0]]);
  assert.deepEqual(selectPairs(orderMatrix([2, 0, 4, 1, 3]), { seed: 0, promptIndex: 0, mode: 'best-worst' }).map((p) => [p.chosen, p.rejected]), [[2, 3]]);

  // On random soft matrices, with ties (values on a coarse grid) and repeated texts: the first pair is
  // selectPair's for the same seed, chosen never below rejected, no response twice, win rates nested.
  const rng = createRng(7, 0);
  for (let trial = 0; trial < 200; trial++) {
    const k = 2 + rng.int(7);
    const m = Array.from({ length: k }, () => new Array<number>(k).fill(0.5));
    for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) { m[i]![j] = rng.int(5) / 4; m[j]![i] = 1 - m[i]![j]!; }
    const responses = Array.from({ length: k }, () => ['a', 'b', 'c'][rng.int(3)]!);
    const opts = { seed: trial, promptIndex: trial % 5, responses };
    const ranked = selectPairs(m, { ...opts, mode: 'ranked' });
    const first = selectPair(m, opts);
    assert.deepEqual([ranked[0]!.chosen, ranked[0]!.rejected, ranked[0]!.degenerate], [first.chosen, first.rejected, first.degenerate]);
    const used = ranked.flatMap((p) => [p.chosen, p.rejected]);
    assert.equal(new Set(used).size, used.length, `trial ${trial}: a response in two pairs`);
    if (!first.degenerate || first.degenerateReason !== 'all-identical') assert.equal(ranked.length, Math.floor(k / 2), `trial ${trial}`);
    for (let i = 0; i < ranked.length; i++) {
      const p = ranked[i]!;
      assert.ok(p.chosenWinRate >= p.rejectedWinRate - 1e-9);
      if (i > 0) assert.equal(p.degenerate, responses[p.chosen] === responses[p.rejected], `trial ${trial}: inner pair of identical texts`);
      if (i > 0) assert.ok(p.chosenWinRate <= ranked[i - 1]!.chosenWinRate + 1e-9 && p.rejectedWinRate >= ranked[i - 1]!.rejectedWinRate - 1e-9, `trial ${trial}: pairs not nested`);
    }
  }

  // All tied and identical: one degenerate pair, nothing more; an inner pair of identical texts is marked.
  const flat = Array.from({ length: 5 }, () => new Array<number>(5).fill(0.5));
  const same = selectPairs(flat, { seed: 0, promptIndex: 0, responses: ['ok', 'ok', 'ok', 'ok', 'ok'], mode: 'ranked' });
  assert.equal(same.length, 1);
  assert.equal(same[0]!.degenerateReason, 'all-identical');
  const inner = selectPairs(orderMatrix([0, 1, 2, 3]), { seed: 0, promptIndex: 0, responses: ['a', 'x', 'x', 'b'], mode: 'ranked' });
  assert.deepEqual(inner.map((p) => [p.chosen, p.rejected, p.degenerateReason]), [[0, 3, undefined], [1, 2, 'identical-pair']]);
});

test('allResponses: every response with its own win rate', () => {
  const r = selectTargets(orderMatrix([2, 0, 4, 1, 3]), { seed: 0, promptIndex: 0, allResponses: true });
  assert.equal(r.kind, 'all');
  assert.deepEqual(r.targets.map((t) => t.index), [0, 1, 2, 3, 4]);
  const expected = [0.7, 0.3, 0.9, 0.1, 0.5];
  r.targets.forEach((t, i) => assert.ok(Math.abs(t.winRate - expected[i]!) < 1e-12, `${i}: ${t.winRate}`));
  assert.equal(r.degenerate, false);
  const flat = Array.from({ length: 3 }, () => new Array<number>(3).fill(0.5));
  assert.equal(allResponseTargets(flat, { promptIndex: 0, responses: ['z', 'z', 'z'] }).degenerate, true);
  assert.equal(allResponseTargets(flat, { promptIndex: 0, responses: ['z', 'w', 'z'] }).degenerate, false);
  const pair = selectTargets(TIERED, { seed: 0, promptIndex: 0 });
  assert.equal(pair.kind, 'pair');
});

test('rng: deterministic, in range, roughly uniform, seed-sensitive', () => {
  const a = createRng(42, 7);
  const b = createRng(42, 7);
  const xs = Array.from({ length: 10000 }, () => a.next());
  const ys = Array.from({ length: 10000 }, () => b.next());
  assert.deepEqual(xs, ys);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`); // sd of the mean ~ 0.0029
  const c = createRng(43, 7).next();
  const d = createRng(42, 8).next();
  assert.notEqual(c, xs[0]);
  assert.notEqual(d, xs[0]);
  assert.notEqual(mixSeed(1, 2), mixSeed(2, 1));
  assert.notEqual(mixSeed(2 ** 40), mixSeed(0)); // high bits matter
  const counts = new Array<number>(6).fill(0);
  const r = mulberry32(99);
  for (let i = 0; i < 6000; i++) counts[r.int(6)]!++;
  assert.ok(counts.every((n) => n > 850 && n < 1150), `counts ${counts}`);
  assert.throws(() => r.int(0), RangeError);
});
