// Exact updates of the self-play methods whose last iterate converges, on a preference matrix P, with
// win rates w_t = P pi_t ((P pi)_y = P(y beats pi)), a reference (magnet) mu and log-policies in place:
//
//   nash-md        Munos et al. 2023, "Nash Learning from Human Feedback": mirror descent regularised
//                  toward mu, played against the geometric mixture pi_t^mu ∝ pi_t^(1 - eta tau) mu^(eta tau):
//                    log pi_{t+1} = log pi_t^mu + eta P pi_t^mu + const.
//                  Its last iterate converges to the Nash equilibrium of the tau-regularised game
//                  max_pi min_pi' P(pi > pi') - tau KL(pi, mu) + tau KL(pi', mu), not of the original game.
//   mpo            Wang et al., ICLR 2025, "Magnetic Preference Optimization": magnetic mirror descent
//                  (Sokota et al. 2023), pi_{t+1} = argmax eta (<pi, P pi_t> - tau KL(pi, mu)) - KL(pi, pi_t):
//                    log pi_{t+1} = (log pi_t + eta tau log mu + eta P pi_t) / (1 + eta tau) + const,
//                  with the magnet mu replaced by the current policy every `magnetEvery` iterations, so that
//                  the regularised equilibria it converges to in turn converge to the original game's.
//   omwu           optimistic multiplicative weights (optimistic online mirror descent with the last win
//                  rates as the prediction of the next; Zhang et al. 2025 build ONPO on it):
//                    log pi_{t+1} = log pi_t + eta (2 P pi_t - P pi_{t-1}) + const   (P pi_0 := P pi_1).
//   extragradient  Zhou et al. 2025, "Extragradient Preference Optimization": a look-ahead step from
//                  pi_t, then the real step from pi_t with the look-ahead's win rates (mirror prox), both
//                  regularised toward mu as in nash-md (tau = 0: plain mirror prox on the original game):
//                    log pi_{t+1/2} = (1 - eta tau) log pi_t + eta tau log mu + eta P pi_t + const
//                    log pi_{t+1}   = (1 - eta tau) log pi_t + eta tau log mu + eta P pi_{t+1/2} + const.
import type { Game } from './game.js';
import { winRates } from './measures.js';
import { normalizeLog, softmax } from './policy.js';

/** What a method keeps between iterations: the magnet, the previous win rates, a counter. */
export interface LastIterateState {
  /** log mu: the reference (pi_1) or, for mpo, the last magnet. */
  logMagnet: Float64Array;
  /** P pi_{t-1} (omwu, exact), or null before the first step. */
  prevWinRates: Float64Array | null;
  /** The previous iteration's samples (omwu, sampled), or null before the first step. */
  prevSamples: Int32Array | null;
  /** Iterations done. */
  t: number;
}

export function newLastIterateState(logp1: Float64Array): LastIterateState {
  return { logMagnet: Float64Array.from(logp1), prevWinRates: null, prevSamples: null, t: 0 };
}

export interface LastIterateParams {
  eta: number;
  /** Strength of the KL toward the magnet (nash-md, mpo, extragradient). */
  tau: number;
  /** mpo: iterations between magnet updates (mu <- pi_{t+1}). */
  magnetEvery: number;
}

/** log of the geometric mixture pi^(1 - a) mu^a, normalised, into `out`. */
export function geometricMixtureLog(logp: ArrayLike<number>, logMu: ArrayLike<number>, a: number, out: Float64Array = new Float64Array(logp.length)): Float64Array {
  for (let i = 0; i < logp.length; i++) out[i] = (1 - a) * logp[i]! + a * logMu[i]!;
  return normalizeLog(out);
}

/** One exact Nash-MD step on `logp` (in place). Needs eta tau <= 1. */
export function nashMdExactStep(game: Game, logp: Float64Array, s: LastIterateState, p: LastIterateParams): void {
  const mix = geometricMixtureLog(logp, s.logMagnet, p.eta * p.tau);
  const w = winRates(game, softmax(mix));
  for (let y = 0; y < game.n; y++) logp[y] = mix[y]! + p.eta * w[y]!;
  normalizeLog(logp);
  advanceMagnet(logp, s, p);
}

/** One exact magnetic mirror descent step (mpo) on `logp`, with pi = softmax(logp); updates the magnet every magnetEvery steps. */
export function mpoExactStep(game: Game, logp: Float64Array, pi: Float64Array, s: LastIterateState, p: LastIterateParams): void {
  const w = winRates(game, pi);
  const et = p.eta * p.tau;
  for (let y = 0; y < game.n; y++) logp[y] = (logp[y]! + et * s.logMagnet[y]! + p.eta * w[y]!) / (1 + et);
  normalizeLog(logp);
  advanceMagnet(logp, s, p);
}

/** One exact optimistic multiplicative-weights step on `logp`, with pi = softmax(logp). */
export function omwuExactStep(game: Game, logp: Float64Array, pi: Float64Array, s: LastIterateState, p: LastIterateParams): void {
  const w = winRates(game, pi);
  const prev = s.prevWinRates ?? w;
  for (let y = 0; y < game.n; y++) logp[y] = logp[y]! + p.eta * (2 * w[y]! - prev[y]!);
  normalizeLog(logp);
  s.prevWinRates = w;
  s.t++;
}

/** The regularised mirror step from logp with the given win rates: (1 - eta tau) log pi + eta tau log mu + eta w. */
export function regularizedStepLog(logp: ArrayLike<number>, logMu: ArrayLike<number>, w: ArrayLike<number>, eta: number, tau: number, out: Float64Array = new Float64Array(logp.length)): Float64Array {
  const et = eta * tau;
  for (let y = 0; y < logp.length; y++) out[y] = (1 - et) * logp[y]! + et * logMu[y]! + eta * w[y]!;
  return normalizeLog(out);
}

/** One exact extragradient (mirror prox) step on `logp`, with pi = softmax(logp). */
export function extragradientExactStep(game: Game, logp: Float64Array, pi: Float64Array, s: LastIterateState, p: LastIterateParams): void {
  const half = regularizedStepLog(logp, s.logMagnet, winRates(game, pi), p.eta, p.tau);
  const wHalf = winRates(game, softmax(half));
  regularizedStepLog(Float64Array.from(logp), s.logMagnet, wHalf, p.eta, p.tau, logp);
  advanceMagnet(logp, s, p);
}

/** Counts the iteration and, every `magnetEvery` iterations (0: never), moves the magnet to the current policy. */
export function advanceMagnet(logp: Float64Array, s: LastIterateState, p: LastIterateParams): void {
  s.t++;
  if (p.magnetEvery > 0 && s.t % p.magnetEvery === 0) s.logMagnet.set(logp);
}

/** KL(p || q) of two log-policies. */
export function klLog(logp: ArrayLike<number>, logq: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < logp.length; i++) {
    const pi = Math.exp(logp[i]!);
    if (pi > 0) s += pi * (logp[i]! - logq[i]!);
  }
  return s;
}
