import { test } from 'node:test';
import assert from 'node:assert/strict';
import { charLength, computeWinRate, verdictToPreference, type Verdict } from '../src/eval/winrate.js';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b} (tol ${tol})`);

test('win rate, counts and standard error match a hand computation', () => {
  const prefs = [1, 0, 0.5, 1, 0.75];
  // mean = 3.25 / 5 = 0.65; deviations 0.35, -0.65, -0.15, 0.35, 0.1; squares sum to
  // 0.1225 + 0.4225 + 0.0225 + 0.1225 + 0.01 = 0.7; sample variance 0.7 / 4 = 0.175;
  // SE = sqrt(0.175) / sqrt(5) = sqrt(0.035).
  const r = computeWinRate(prefs);
  assert.equal(r.n, 5);
  close(r.winRate, 0.65);
  close(r.standardError, Math.sqrt(0.035));
  assert.equal(r.nWins, 3);
  assert.equal(r.nLosses, 1);
  assert.equal(r.nTies, 1);
});

test('verdicts: tie counts half', () => {
  const verdicts: Verdict[] = ['model', 'reference', 'tie', 'model'];
  const r = computeWinRate(verdicts.map(verdictToPreference));
  close(r.winRate, 2.5 / 4);
  // deviations 0.375, -0.625, -0.125, 0.375: squares sum 0.6875; SE = sqrt(0.6875 / 3) / 2
  close(r.standardError, Math.sqrt(0.6875 / 3) / 2);
  assert.equal(r.nTies, 1);
  assert.throws(() => verdictToPreference('draw' as Verdict), RangeError);
});

test('average length in code points (as Python len), SE undefined for n = 1, validation', () => {
  assert.equal(charLength('h\u00e9llo'), 5);
  assert.equal(charLength('\u{1F600}'), 1); // one code point, two UTF-16 units
  const r = computeWinRate([1, 0], { outputs: ['ab', '\u{1F600}\u{1F600}\u{1F600}x'], references: ['abcdef', ''] });
  close(r.avgLength!, (2 + 4) / 2);
  close(r.avgReferenceLength!, 3);
  assert.ok(Number.isNaN(computeWinRate([0.3]).standardError));
  assert.throws(() => computeWinRate([]), RangeError);
  assert.throws(() => computeWinRate([0.2, 1.5]), /preferences\[1\] = 1\.5/);
  assert.throws(() => computeWinRate([0.2, 1], { outputs: ['a'] }), /1 texts for 2/);
});
