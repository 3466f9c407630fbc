// Running a method on a game and measuring it per iteration.
import type { Game } from './game.js';
import { dualityGap, l1 } from './measures.js';
import { newLastIterateState } from './last_iterate.js';
import { DEFAULT_FIT_STEPS, DEFAULT_ITERS, DEFAULT_LR, DEFAULT_SAMPLES, defaultEta, defaultMagnetEvery, defaultTau, step, type Method } from './methods.js';
import { normalizeLog, softmax, uniformLog } from './policy.js';
import { Rng, hashString } from './rng.js';
import type { Judge, Keep } from './sampled.js';

export type Init = 'uniform' | 'random';

export interface RunOptions {
  iters?: number;
  eta?: number;
  /** KL strength toward the magnet (nash-md, mpo, extragradient); per-method default. */
  tau?: number;
  /** mpo: iterations between magnet updates (0: never); per-method default. */
  magnetEvery?: number;
  samples?: number;
  seed?: number;
  judge?: Judge;
  keep?: Keep;
  fitSteps?: number;
  lr?: number;
  /** pi_1: uniform, or softmax of standard normal logits drawn from the seed. */
  init?: Init;
  /** Keep the per-iteration measures (default true). */
  trace?: boolean;
}

export interface Trace {
  /** After iteration t (index t-1): gap of the average of pi_1..pi_t, gap of pi_{t+1}, L1 of the average to the given equilibrium. */
  averageGap: Float64Array;
  lastGap: Float64Array;
  l1ToNash: Float64Array | null;
}

export interface RunResult {
  name: string;
  method: Method;
  iters: number;
  eta: number;
  tau: number;
  magnetEvery: number;
  averagePolicy: Float64Array;
  lastPolicy: Float64Array;
  averageGap: number;
  lastGap: number;
  l1ToNash: number | null;
  trace: Trace | null;
}

/** The seed of a game's stream: the same game gets the same draws whatever else the file holds. */
export function gameSeed(seed: number, name: string, salt = ''): number {
  return (hashString(`${name}\u0000${salt}`) ^ Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.floor(seed / 2 ** 32)) >>> 0;
}

export function initialLogPolicy(game: Game, init: Init, seed: number): Float64Array {
  if (init === 'uniform') return uniformLog(game.n);
  const rng = new Rng(gameSeed(seed, game.name, 'init'));
  const logp = new Float64Array(game.n);
  for (let i = 0; i < game.n; i++) logp[i] = rng.normal();
  return normalizeLog(logp);
}

/**
 * Runs T iterations of `method` from pi_1 and returns the average policy (1/T) sum_{t=1..T} pi_t, as in
 * the SPPO paper's Theorem 4.1, the last policy pi_{T+1}, their gaps and the average's L1 to the equilibrium.
 */
export function runGame(game: Game, method: Method, opts: RunOptions = {}): RunResult {
  const iters = opts.iters ?? DEFAULT_ITERS[method];
  if (!Number.isInteger(iters) || iters < 1) throw new RangeError(`iters must be a positive integer, got ${iters}`);
  const eta = opts.eta ?? defaultEta(method, game.n, iters);
  const seed = opts.seed ?? 0;
  const tau = opts.tau ?? defaultTau(method);
  const magnetEvery = opts.magnetEvery ?? defaultMagnetEvery(method);
  const so = {
    eta,
    tau,
    magnetEvery,
    samples: opts.samples ?? DEFAULT_SAMPLES,
    judge: opts.judge ?? 'exact',
    keep: opts.keep ?? 'best-worst',
    fitSteps: opts.fitSteps ?? DEFAULT_FIT_STEPS,
    lr: opts.lr ?? DEFAULT_LR,
  } as const;
  const n = game.n;
  const rng = new Rng(gameSeed(seed, game.name, method));
  const logp = initialLogPolicy(game, opts.init ?? 'uniform', seed);
  const pi = softmax(logp);
  const state = newLastIterateState(logp);
  const sum = new Float64Array(n);
  const avg = new Float64Array(n);
  const scratch = new Float64Array(n);
  const keepTrace = opts.trace ?? true;
  const trace: Trace | null = keepTrace
    ? { averageGap: new Float64Array(iters), lastGap: new Float64Array(iters), l1ToNash: game.nash ? new Float64Array(iters) : null }
    : null;
  for (let t = 0; t < iters; t++) {
    for (let i = 0; i < n; i++) sum[i] = sum[i]! + pi[i]!;
    step(method, game, logp, pi, so, rng, state);
    softmax(logp, pi);
    if (trace) {
      for (let i = 0; i < n; i++) avg[i] = sum[i]! / (t + 1);
      trace.averageGap[t] = dualityGap(game, avg, scratch);
      trace.lastGap[t] = dualityGap(game, pi, scratch);
      if (trace.l1ToNash) trace.l1ToNash[t] = l1(avg, game.nash!);
    }
  }
  for (let i = 0; i < n; i++) avg[i] = sum[i]! / iters;
  return {
    name: game.name,
    method,
    iters,
    eta,
    tau,
    magnetEvery,
    averagePolicy: avg,
    lastPolicy: Float64Array.from(pi),
    averageGap: dualityGap(game, avg),
    lastGap: dualityGap(game, pi),
    l1ToNash: game.nash ? l1(avg, game.nash) : null,
    trace,
  };
}
