// The methods of the game lab, each one step per iteration, and their defaults.
import { defaultExactEta, sppoExactStep } from './exact.js';
import { fitPairs, fitSppo, fitTargets } from './fit.js';
import type { Game } from './game.js';
import {
  extragradientExactStep,
  geometricMixtureLog,
  mpoExactStep,
  nashMdExactStep,
  omwuExactStep,
  type LastIterateState,
} from './last_iterate.js';
import { softmax } from './policy.js';
import type { Rng } from './rng.js';
import { drawAndJudge, bestAndWorst, judgeAgainst, preferencePairs, sampleFrom, type Draw, type Judge, type Keep } from './sampled.js';

/** The families of `--method`: a bare family name runs its exact and its sampled form. */
export const LAST_ITERATE_FAMILIES = ['nash-md', 'mpo', 'omwu', 'extragradient'] as const;
export type LastIterateFamily = (typeof LAST_ITERATE_FAMILIES)[number];

export const METHODS = [
  'sppo-exact',
  'sppo-sampled',
  'dpo',
  'ipo',
  'nash-md-exact',
  'nash-md-sampled',
  'mpo-exact',
  'mpo-sampled',
  'omwu-exact',
  'omwu-sampled',
  'extragradient-exact',
  'extragradient-sampled',
] as const;
export type Method = (typeof METHODS)[number];

export function isMethod(s: string): s is Method {
  return (METHODS as readonly string[]).includes(s);
}

/** The family of a method ('sppo', 'dpo', 'ipo' or a last-iterate family) and whether it is the exact form. */
export function methodFamily(m: Method): { family: string; exact: boolean } {
  if (m === 'dpo' || m === 'ipo') return { family: m, exact: false };
  const exact = m.endsWith('-exact');
  return { family: m.replace(/-(exact|sampled)$/, ''), exact };
}

export interface StepOptions {
  /** Step size of the exact update; 1/beta of the sampled losses. */
  eta: number;
  /** KL strength toward the magnet / reference (nash-md, mpo, extragradient). */
  tau: number;
  /** mpo: iterations between magnet updates. */
  magnetEvery: number;
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
  'nash-md-exact': 500,
  'nash-md-sampled': 2000,
  'mpo-exact': 500,
  'mpo-sampled': 2000,
  'omwu-exact': 500,
  'omwu-sampled': 2000,
  'extragradient-exact': 500,
  'extragradient-sampled': 2000,
};

/** The sampled methods' fixed eta (= 1/beta); on the fixture games 0.05-0.2 do best at T = 2000 (docs/game-lab.md). */
export const DEFAULT_SAMPLED_ETA = 0.1;
export const DEFAULT_SAMPLES = 5;
export const DEFAULT_FIT_STEPS = 20;
export const DEFAULT_LR = 0.5;

/** The exact last-iterate methods' defaults (docs/game-lab.md, "Last-iterate methods", how they were chosen). */
export const LAST_ITERATE_DEFAULTS: Record<LastIterateFamily, { eta: number; tau: number; magnetEvery: number }> = {
  'nash-md': { eta: 1, tau: 0.1, magnetEvery: 0 },
  mpo: { eta: 10, tau: 0.1, magnetEvery: 10 },
  omwu: { eta: 3, tau: 0, magnetEvery: 0 },
  extragradient: { eta: 5, tau: 0.005, magnetEvery: 60 },
};

export function isLastIterate(m: Method): boolean {
  return (LAST_ITERATE_FAMILIES as readonly string[]).includes(methodFamily(m).family);
}

/** eta when none is given: 30/sqrt(T) for sppo-exact (of order 1/sqrt T), per-family constants for the exact last-iterate methods, DEFAULT_SAMPLED_ETA for the sampled ones. */
export function defaultEta(method: Method, n: number, iters: number): number {
  if (method === 'sppo-exact') return defaultExactEta(iters);
  const { family, exact } = methodFamily(method);
  if (exact && isLastIterate(method)) return LAST_ITERATE_DEFAULTS[family as LastIterateFamily].eta;
  return DEFAULT_SAMPLED_ETA;
}

export function defaultTau(method: Method): number {
  return isLastIterate(method) ? LAST_ITERATE_DEFAULTS[methodFamily(method).family as LastIterateFamily].tau : 0;
}

export function defaultMagnetEvery(method: Method): number {
  return isLastIterate(method) ? LAST_ITERATE_DEFAULTS[methodFamily(method).family as LastIterateFamily].magnetEvery : 0;
}

/** The positions of a draw that enter the loss: the best and the worst by `score`, or all. */
function keptPositions(scores: Float64Array, keep: Keep): number[] {
  if (keep === 'all') return Array.from(scores, (_, i) => i);
  const [b, w] = bestAndWorst({ ys: new Int32Array(scores.length), winRate: scores });
  return [b, w];
}

/** Fits pi_{t+1} from pi_t (`logp`) on the kept positions of `draw`, with target(i) for position i. */
function fitKept(logp: Float64Array, draw: Draw, scores: Float64Array, target: (i: number) => number, o: StepOptions): Float64Array {
  const kept = keptPositions(scores, o.keep);
  return fitTargets(logp, kept.map((i) => draw.ys[i]!), kept.map(target), { steps: o.fitSteps, lr: o.lr });
}

/**
 * One iteration: from pi_t (log-policy `logp`, probabilities `pi`) to pi_{t+1}, written into `logp`.
 * The exact methods use no randomness; the others draw from `rng`. `state` carries the magnet and what
 * the optimistic method remembers (last_iterate.ts).
 */
export function step(method: Method, game: Game, logp: Float64Array, pi: Float64Array, o: StepOptions, rng: Rng, state: LastIterateState): void {
  const p = { eta: o.eta, tau: o.tau, magnetEvery: o.magnetEvery };
  const et = o.eta * o.tau;
  const mu = state.logMagnet;
  switch (method) {
    case 'sppo-exact':
      sppoExactStep(game, logp, pi, o.eta);
      return;
    case 'nash-md-exact':
      nashMdExactStep(game, logp, state, p);
      return;
    case 'mpo-exact':
      mpoExactStep(game, logp, pi, state, p);
      return;
    case 'omwu-exact':
      omwuExactStep(game, logp, pi, state, p);
      return;
    case 'extragradient-exact':
      extragradientExactStep(game, logp, pi, state, p);
      return;
    case 'nash-md-sampled': {
      // K responses from pi_t, judged against K responses from the geometric mixture pi_t^mu.
      const draw = drawAndJudge(game, pi, o.samples, o.judge, rng);
      const mix = softmax(geometricMixtureLog(logp, mu, et));
      const w = judgeAgainst(game, draw.ys, sampleFrom(mix, o.samples, rng), o.judge, rng);
      logp.set(fitKept(logp, draw, w, (i) => et * (mu[draw.ys[i]!]! - logp[draw.ys[i]!]!) + o.eta * (w[i]! - 0.5), o));
      return;
    }
    case 'mpo-sampled': {
      const draw = drawAndJudge(game, pi, o.samples, o.judge, rng);
      const w = draw.winRate;
      logp.set(fitKept(logp, draw, w, (i) => (et * (mu[draw.ys[i]!]! - logp[draw.ys[i]!]!) + o.eta * (w[i]! - 0.5)) / (1 + et), o));
      state.t++;
      if (o.magnetEvery > 0 && state.t % o.magnetEvery === 0) state.logMagnet.set(logp);
      return;
    }
    case 'omwu-sampled': {
      // Win rates against pi_t (the K x K matrix) and against the previous iteration's K samples (pi_{t-1}).
      const draw = drawAndJudge(game, pi, o.samples, o.judge, rng);
      const w = draw.winRate;
      const prev = state.prevSamples ? judgeAgainst(game, draw.ys, state.prevSamples, o.judge, rng) : w;
      logp.set(fitKept(logp, draw, w, (i) => o.eta * (2 * w[i]! - prev[i]! - 0.5), o));
      state.prevSamples = draw.ys;
      state.t++;
      return;
    }
    case 'extragradient-sampled': {
      // Look-ahead pi_{t+1/2} fitted from pi_t; then pi_{t+1} fitted from pi_t on the same responses,
      // judged against K responses drawn from pi_{t+1/2}.
      const draw = drawAndJudge(game, pi, o.samples, o.judge, rng);
      const reg = (i: number): number => et * (mu[draw.ys[i]!]! - logp[draw.ys[i]!]!);
      const half = fitKept(logp, draw, draw.winRate, (i) => reg(i) + o.eta * (draw.winRate[i]! - 0.5), o);
      const wHalf = judgeAgainst(game, draw.ys, sampleFrom(softmax(half), o.samples, rng), o.judge, rng);
      logp.set(fitKept(logp, draw, wHalf, (i) => reg(i) + o.eta * (wHalf[i]! - 0.5), o));
      state.t++;
      return;
    }
    default:
      break;
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
