// Comparing a run directory's JSONL artifacts between runs that used other thread counts, ranks or kernels: what
// the loop guarantees there (docs/sppo-loop.md, "What is the same across runs") is the same lines, tokens, texts,
// preferences and pairs, with the float32 log-probs equal to rounding. A log-prob of n tokens is a sum of n
// per-token log-probs, each within LOGPROB32 of another kernel's (test/helpers/tolerances.ts), so two runs'
// values differ by at most n * LOGPROB32; a different token or a shifted position changes it by O(1).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LOGPROB32 } from './tolerances.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** The number of tokens a log-prob field of `obj` sums over, or null when `key` is not a log-prob field. */
function logprobTokens(obj: { [k: string]: Json }, key: string): number | null {
  const len = (k: string): number => (Array.isArray(obj[k]) ? (obj[k] as Json[]).length : 0);
  if (key === 'logprob') return len('token_ids');
  if (key === 'chosen_ref_logprob') return len('chosen_ids');
  if (key === 'rejected_ref_logprob') return len('rejected_ids');
  if (key === 'logprobs') return 1; // per token, elementwise
  return null;
}

/**
 * Asserts that `actual` equals `expected` except for log-prob fields, which may differ by their tokens x LOGPROB32.
 * Returns the largest log-prob difference as a fraction of its bound (for the test's log).
 */
export function assertSameUpToLogprobs(actual: Json, expected: Json, where: string): number {
  let worst = 0;
  const walk = (a: Json, e: Json, path: string, perValue: number | null): void => {
    if (perValue !== null && typeof a === 'number' && typeof e === 'number') {
      const bound = Math.max(1, perValue) * LOGPROB32;
      const d = Math.abs(a - e);
      assert.ok(d <= bound, `${where}${path}: log-prob ${a} vs ${e} differs by ${d.toExponential(2)} > ${bound.toExponential(2)} (${perValue} tokens x LOGPROB32)`);
      worst = Math.max(worst, d / bound);
      return;
    }
    if (Array.isArray(e)) {
      assert.ok(Array.isArray(a) && a.length === e.length, `${where}${path}: ${JSON.stringify(a)?.slice(0, 200)} vs ${JSON.stringify(e).slice(0, 200)}`);
      e.forEach((x, i) => walk((a as Json[])[i]!, x, `${path}[${i}]`, perValue));
      return;
    }
    if (e !== null && typeof e === 'object') {
      assert.ok(a !== null && typeof a === 'object' && !Array.isArray(a), `${where}${path}: not an object`);
      const ao = a as { [k: string]: Json };
      assert.deepEqual(Object.keys(ao).sort(), Object.keys(e).sort(), `${where}${path}: other fields`);
      for (const k of Object.keys(e)) walk(ao[k]!, e[k]!, `${path}.${k}`, logprobTokens(e, k));
      return;
    }
    assert.equal(a, e, `${where}${path}`);
  };
  walk(actual, expected, '', null);
  return worst;
}

/** The same for two JSONL files, line by line (same number of lines, same order). */
export function assertSameJsonlUpToLogprobs(actualPath: string, expectedPath: string, what: string): number {
  const lines = (p: string): Json[] => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Json);
  const a = lines(actualPath);
  const e = lines(expectedPath);
  assert.equal(a.length, e.length, `${what}: ${a.length} lines vs ${e.length}`);
  let worst = 0;
  e.forEach((x, i) => (worst = Math.max(worst, assertSameUpToLogprobs(a[i]!, x, `${what} line ${i + 1}`))));
  return worst;
}
