// Tabular policies over n responses, kept as normalized log-probabilities.

/** log sum exp, stable. */
export function logSumExp(x: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > m) m = x[i]!;
  if (m === -Infinity) return m;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i]! - m);
  return m + Math.log(s);
}

/** Subtracts log sum exp in place, so that exp(logp) sums to 1. */
export function normalizeLog(logp: Float64Array): Float64Array {
  const z = logSumExp(logp);
  for (let i = 0; i < logp.length; i++) logp[i] = logp[i]! - z;
  return logp;
}

/** softmax(logits) into `out`. */
export function softmax(logits: ArrayLike<number>, out: Float64Array = new Float64Array(logits.length)): Float64Array {
  const z = logSumExp(logits);
  for (let i = 0; i < logits.length; i++) out[i] = Math.exp(logits[i]! - z);
  return out;
}

export function uniformLog(n: number): Float64Array {
  return new Float64Array(n).fill(-Math.log(n));
}
