import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  matrixFromScores,
  PreferenceMatrixError,
  symmetrize,
  symmetrizeOrdered,
  validatePreferenceMatrix,
  winRates,
  winRatesBatch,
} from '../src/sppo/winrates.js';

const close = (a: number, b: number, tol = 1e-12, msg?: string) => assert.ok(Math.abs(a - b) <= tol, msg ?? `${a} != ${b} (tol ${tol})`);

// A deterministic judge with a strict total order over K = 5 responses: best to worst 2, 0, 4, 1, 3.
// M[i][j] = 1 if i ranks above j. The response at rank r (0 = best) beats 4 - r others, ties itself
// (1/2) and loses to the rest, so its win rate is (4 - r + 1/2) / 5: 0.9, 0.7, 0.5, 0.3, 0.1.
const ORDER = [2, 0, 4, 1, 3];
function orderMatrix(order: number[]): number[][] {
  const k = order.length;
  const rank = new Array<number>(k);
  order.forEach((resp, r) => (rank[resp] = r));
  return Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => (i === j ? 0.5 : rank[i]! < rank[j]! ? 1 : 0)));
}

test('K=5 total-order judge: win rates are (4 - rank + 1/2) / 5', () => {
  const wr = winRates(orderMatrix(ORDER));
  assert.equal(wr.length, 5);
  // response 2 is rank 0 -> 0.9; 0 -> 0.7; 4 -> 0.5; 1 -> 0.3; 3 -> 0.1
  close(wr[2]!, 0.9);
  close(wr[0]!, 0.7);
  close(wr[4]!, 0.5);
  close(wr[1]!, 0.3);
  close(wr[3]!, 0.1);
});

test('K=5 soft judge: win rates equal hand-computed row means (self term 1/2 included)', () => {
  // Upper triangle chosen by hand, lower = 1 - upper.
  const m = [
    [0.5, 0.75, 0.6, 1.0, 0.9],
    [0.25, 0.5, 0.4, 0.8, 0.3],
    [0.4, 0.6, 0.5, 0.55, 0.45],
    [0.0, 0.2, 0.45, 0.5, 0.35],
    [0.1, 0.7, 0.55, 0.65, 0.5],
  ];
  // Row sums: 3.75, 2.25, 2.5, 1.5, 2.5  -> / 5
  const expected = [0.75, 0.45, 0.5, 0.3, 0.5];
  const wr = winRates(m);
  expected.forEach((e, i) => close(wr[i]!, e, 1e-12, `response ${i}: ${wr[i]} vs ${e}`));
  // Win rates of a valid matrix sum to K/2.
  close(wr.reduce((a, b) => a + b, 0), 2.5);
  // Float64Array rows work too.
  const wr2 = winRates(m.map((r) => Float64Array.from(r)));
  assert.deepEqual(Array.from(wr2), Array.from(wr));
});

test('Bradley-Terry judge: matrixFromScores gives sigmoid differences', () => {
  const m = matrixFromScores([0, Math.log(3), 0, 0, 0]);
  close(m[1]![0]!, 0.75); // sigmoid(log 3) = 3/4
  close(m[0]![1]!, 0.25);
  const wr = winRates(m);
  // response 1: (0.5 + 4 * 0.75) / 5 = 0.7; others: (0.5 + 0.25 + 3 * 0.5) / 5 = 0.45
  close(wr[1]!, 0.7);
  for (const i of [0, 2, 3, 4]) close(wr[i]!, 0.45);
});

test('validation: non-square, out of range, M + M^T != 1, bad diagonal; errors name prompt and entry', () => {
  assert.throws(() => validatePreferenceMatrix([[0.5, 0.5], [0.5]], { promptIndex: 7 }), (e: unknown) => e instanceof PreferenceMatrixError && /prompt #7/.test(e.message) && /not square/.test(e.message) && /row 1/.test(e.message));
  assert.throws(() => validatePreferenceMatrix([]), PreferenceMatrixError);
  const bad = orderMatrix(ORDER);
  bad[1]![3] = 1.2;
  assert.throws(() => winRates(bad, { promptId: 'alpaca-12' }), (e: unknown) => e instanceof Error && /prompt "alpaca-12"/.test(e.message) && /M\[1\]\[3\] = 1\.2/.test(e.message));
  const nan = orderMatrix(ORDER);
  nan[0]![4] = NaN;
  assert.throws(() => winRates(nan), /M\[0\]\[4\] = NaN/);
  const asym = orderMatrix(ORDER);
  asym[3]![1] = 0.3; // response 1 ranks above 3, so M[1][3] = 1 and M[1][3] + M[3][1] = 1.3
  assert.throws(() => winRates(asym, { promptIndex: 4, promptId: 'x' }), (e: unknown) => e instanceof Error && /prompt "x"/.test(e.message) && /M\[1\]\[3\] \+ M\[3\]\[1\]/.test(e.message));
  const diag = orderMatrix(ORDER);
  diag[2]![2] = 0.6;
  assert.throws(() => winRates(diag), /M\[2\]\[2\]/);
  // Within tolerance is accepted; beyond a custom tolerance it is not.
  const near = orderMatrix(ORDER);
  near[0]![1] = 1 - 1e-8;
  winRates(near);
  assert.throws(() => winRates(near, { tolerance: 1e-10 }), /M\[0\]\[1\]/);
  // Batch: the failing prompt's index / id is reported.
  assert.throws(() => winRatesBatch([orderMatrix(ORDER), bad]), /prompt #1/);
  assert.throws(() => winRatesBatch([orderMatrix(ORDER), bad], { promptIds: ['a', 'b'] }), /prompt "b"/);
});

test('symmetrize: (P_fwd(a>b) + 1 - P_bwd(b>a)) / 2 and complementarity', () => {
  // forward says a wins w.p. 0.8; asked the other way round the judge says b wins w.p. 0.4,
  // i.e. a wins w.p. 0.6; the average of 0.8 and 0.6 is 0.7.
  close(symmetrize(0.8, 0.4), 0.7);
  close(symmetrize(0.8, 0.4) + symmetrize(0.4, 0.8), 1);
  close(symmetrize(1, 1), 0.5); // a judge that always prefers the first position carries no signal
  assert.throws(() => symmetrize(1.1, 0.2), RangeError);

  // A Bradley-Terry judge with a position bias b favouring the first slot:
  // F[i][j] = sigmoid(s_i - s_j + b). Symmetrised: (sigmoid(d + b) + sigmoid(d - b)) / 2 with d = s_i - s_j.
  const s = [0.3, -1, 2, 0.5, -0.2];
  const sig = (z: number) => 1 / (1 + Math.exp(-z));
  const bias = 0.7;
  const f = s.map((si, i) => s.map((sj, j) => (i === j ? 0.5 : sig(si - sj + bias))));
  const m = symmetrizeOrdered(f);
  for (let i = 0; i < 5; i++) {
    close(m[i]![i]!, 0.5);
    for (let j = 0; j < 5; j++) {
      if (i === j) continue;
      const d = s[i]! - s[j]!;
      close(m[i]![j]!, (sig(d + bias) + sig(d - bias)) / 2, 1e-12);
      assert.equal(m[i]![j]! + m[j]![i]!, 1);
    }
  }
  validatePreferenceMatrix(m, { tolerance: 0 });
  // Without bias, symmetrising a consistent judge changes nothing.
  const unbiased = s.map((si, i) => s.map((sj, j) => (i === j ? 0.5 : sig(si - sj))));
  const m0 = symmetrizeOrdered(unbiased);
  for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) close(m0[i]![j]!, unbiased[i]![j]!, 1e-15);
});
