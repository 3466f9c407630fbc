// The four methods of the game lab, each one step per iteration, and their defaults.
import { defaultExactEta, sppoExactStep } from './exact.js';
import { fitPairs, fitSppo } from './fit.js';
import type { Game } from './game.js';
import type { Rng } from './rng.js';
import { drawAndJudge, bestAndWorst, preferencePairs, type Judge, type Keep } from './sampled.js';

export const METHODS = ['sppo-exact', 'sppo-sampled', 'dpo', 'ipo'] as const;
export type Method = (typeof METHODS)[number];

export function isMethod(s: string): s is Method {
  return (METHODS as readonly string[]).includes(s);
}

export interface StepOptions {
  /** Step size of the exact update; 1/beta of the sampled losses. */
  eta: number;
  /** K, responses drawn per iteration (sampled methods). */
  samples: number;
  judge: Judge;
  keep: Keep;
  /** Gradient steps per iteration when fitting the next log-policy, and the base learning rate. */
  fitSteps: number;
  lr: number;
}

export const DEFAULT_ITERS: Record<Method, number> = {
  'sppo-exact': 20000,
  'sppo-sampled': 2000,
  dpo: 2000,
  ipo: 2000,
};

/** The sampled methods' fixed eta (= 1/beta); on the fixture games 0.05-0.2 do best at T = 2000 (docs/game-lab.md). */
export const DEFAULT_SAMPLED_ETA = 0.1;
export const DEFAULT_SAMPLES = 5;
export const DEFAULT_FIT_STEPS = 20;
export const DEFAULT_LR = 0.5;

/** eta when none is given: 30/sqrt(T) for sppo-exact (of order 1/sqrt T), a constant for the others. */
export function defaultEta(method: Method, n: number, iters: number): number {
  return method === 'sppo-exact' ? defaultExactEta(iters) : DEFAULT_SAMPLED_ETA;
}

/**
 * One iteration: from pi_t (log-policy `logp`, probabilities `pi`) to pi_{t+1}, written into `logp`.
 * The exact method uses no randomness; the others draw from `rng`.
 */
export function step(method: Method, game: Game, logp: Float64Array, pi: Float64Array, o: StepOptions, rng: Rng): void {
  if (method === 'sppo-exact') {
    sppoExactStep(game, logp, pi, o.eta);
    return;
  }
  const draw = drawAndJudge(game, pi, o.samples, o.judge, rng);
  const fit = { eta: o.eta, steps: o.fitSteps, lr: o.lr };
  let next: Float64Array;
  if (method === 'sppo-sampled') {
    if (o.keep === 'all') {
      next = fitSppo(logp, draw.ys, draw.winRate, fit);
    } else {
      const [b, w] = bestAndWorst(draw);
      next = fitSppo(logp, [draw.ys[b]!, draw.ys[w]!], [draw.winRate[b]!, draw.winRate[w]!], fit);
    }
  } else {
    next = fitPairs(method, logp, preferencePairs(draw, o.keep), fit);
  }
  logp.set(next);
}
