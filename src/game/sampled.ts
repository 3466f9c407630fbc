// What the sampled methods share: drawing K responses from pi_t, judging them against each other, and
// estimating each one's win rate against pi_t from the K x K matrix of outcomes, as SPPO does in practice
// (the paper draws K = 5 responses per prompt and scores them with PairRM).
import type { Game } from './game.js';
import type { Rng } from './rng.js';

/** How the K x K matrix is filled: the exact P entries, or one Bernoulli(P) outcome per pair (a noisy judge). */
export type Judge = 'exact' | 'bernoulli';
/** Which responses enter the loss: the best and the worst by estimated win rate, or all K. */
export type Keep = 'best-worst' | 'all';

export interface Draw {
  /** The K sampled responses (indices into the game). */
  ys: Int32Array;
  /** Estimated win rate of each sample against pi_t: (1/K) sum_k M[i][k], with the self-term M[i][i] = 1/2. */
  winRate: Float64Array;
}

/** Draws K responses from pi (i.i.d.) and estimates their win rates. */
export function drawAndJudge(game: Game, pi: Float64Array, K: number, judge: Judge, rng: Rng): Draw {
  const { n, P } = game;
  const ys = new Int32Array(K);
  for (let i = 0; i < K; i++) ys[i] = rng.categorical(pi);
  const M = new Float64Array(K * K);
  for (let i = 0; i < K; i++) {
    M[i * K + i] = 0.5;
    for (let k = i + 1; k < K; k++) {
      const p = P[ys[i]! * n + ys[k]!]!;
      const m = judge === 'exact' ? p : rng.bernoulli(p) ? 1 : 0;
      M[i * K + k] = m;
      M[k * K + i] = 1 - m;
    }
  }
  const winRate = new Float64Array(K);
  for (let i = 0; i < K; i++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += M[i * K + k]!;
    winRate[i] = s / K;
  }
  return { ys, winRate };
}

/** Positions of the highest and lowest estimated win rate (first occurrence of each). */
export function bestAndWorst(d: Draw): [number, number] {
  let b = 0;
  let w = 0;
  for (let i = 1; i < d.winRate.length; i++) {
    if (d.winRate[i]! > d.winRate[b]!) b = i;
    if (d.winRate[i]! < d.winRate[w]!) w = i;
  }
  return [b, w];
}

/**
 * The preference pairs (winner, loser) by estimated win rate: the single best-vs-worst pair, or every pair
 * of samples whose estimates differ. Pairs of tied estimates say nothing and are left out.
 */
export function preferencePairs(d: Draw, keep: Keep): Array<[number, number]> {
  if (keep === 'best-worst') {
    const [b, w] = bestAndWorst(d);
    return d.winRate[b]! > d.winRate[w]! ? [[d.ys[b]!, d.ys[w]!]] : [];
  }
  const pairs: Array<[number, number]> = [];
  const K = d.ys.length;
  for (let i = 0; i < K; i++) {
    for (let k = i + 1; k < K; k++) {
      if (d.winRate[i]! > d.winRate[k]!) pairs.push([d.ys[i]!, d.ys[k]!]);
      else if (d.winRate[k]! > d.winRate[i]!) pairs.push([d.ys[k]!, d.ys[i]!]);
    }
  }
  return pairs;
}

/** K responses drawn i.i.d. from `probs`. */
export function sampleFrom(probs: Float64Array, K: number, rng: Rng): Int32Array {
  const ys = new Int32Array(K);
  for (let i = 0; i < K; i++) ys[i] = rng.categorical(probs);
  return ys;
}

/**
 * Each response's estimated win rate against a sample of opponents: (1/K') sum_k M(y_i, o_k), with M the
 * P entry or one Bernoulli(P) outcome (a response judged against itself counts 1/2, as P[y][y] is).
 */
export function judgeAgainst(game: Game, ys: ArrayLike<number>, opponents: ArrayLike<number>, judge: Judge, rng: Rng): Float64Array {
  const { n, P } = game;
  const out = new Float64Array(ys.length);
  for (let i = 0; i < ys.length; i++) {
    let s = 0;
    for (let k = 0; k < opponents.length; k++) {
      const p = P[ys[i]! * n + opponents[k]!]!;
      s += judge === 'exact' || ys[i] === opponents[k] ? p : rng.bernoulli(p) ? 1 : 0;
    }
    out[i] = s / opponents.length;
  }
  return out;
}
