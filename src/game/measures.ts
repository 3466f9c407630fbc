// Measures of a policy in a preference game.
import type { Game } from './game.js';

/** (P pi)_j = P(j beats pi) = sum_k P[j][k] pi(k), for every response j. */
export function winRates(game: Game, pi: ArrayLike<number>, out: Float64Array = new Float64Array(game.n)): Float64Array {
  const { n, P } = game;
  for (let j = 0; j < n; j++) {
    let s = 0;
    const row = j * n;
    for (let k = 0; k < n; k++) s += P[row + k]! * pi[k]!;
    out[j] = s;
  }
  return out;
}

/**
 * The duality gap 2 max_j (P pi)_j - 1: how much the best response beats pi, rescaled to [0, 1]. Because
 * pi^T P pi = 1/2 for any pi, it is >= 0, and it is 0 exactly at a Nash equilibrium of the symmetric
 * game (the game value is 1/2).
 */
export function dualityGap(game: Game, pi: ArrayLike<number>, scratch?: Float64Array): number {
  const w = winRates(game, pi, scratch);
  let m = -Infinity;
  for (let j = 0; j < w.length; j++) if (w[j]! > m) m = w[j]!;
  return 2 * m - 1;
}

export function l1(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s;
}
