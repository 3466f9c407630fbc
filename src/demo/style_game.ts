// The gold judge's style game: how far a policy's mix of answer styles is from the equilibrium of the gold
// judge's preferences between styles (rule 2 of src/demo/gold_judge.ts, the comparison of two answers of
// equal correctness).
//
// The game has four pure strategies, the three styles and 'other'. Its preference matrix is
//   P[i][j] = clamp(S(i, j) + L(len_i, len_j), 0.02, 0.98)
// with S the gold style term (the 0.7 cycle, 0.8 against 'other') and L the gold length term at the mean
// measured length of each style's answers (lengths in characters). L is linear in the length difference
// while it is within +-20 characters, so at the means it is the mean of the term over pairs of answers of the
// two styles whenever no pair differs by more than that (the demo's answers are at most 24 characters of
// which at most 8 are the style's; a payload differs from another by far less). The pure-cycle game leaves L
// out (S alone: the figure).
//
// A mix pi (shares of the four strategies) is measured by its exploitability, the game lab's duality gap
// 2 max_j (P pi)_j - 1: how much the best style beats the mix, 0 exactly at the game's equilibrium. The
// equilibrium itself is solved by the game lab's own solver (SPPO's exact update, the average iterate).
import { makeGame, type Game } from '../game/game.js';
import { dualityGap } from '../game/measures.js';
import { runGame } from '../game/lab.js';
import { sppoExactStep } from '../game/exact.js';
import { softmax } from '../game/policy.js';
import { GOLD_RULES, lengthTermOf, styleTerm } from './gold_judge.js';
import { parseResponse, render, STYLES, type Style } from './tasks.js';

export const STYLE_STRATEGIES = [...STYLES, 'other'] as const;
export type StyleStrategy = (typeof STYLE_STRATEGIES)[number];
export type StyleMix = Record<StyleStrategy, number>;

/** The style game with the gold length term at `lengths` (mean characters per strategy), or the pure cycle without them. */
export function styleGame(lengths?: StyleMix): Game {
  const [lo, hi] = GOLD_RULES.clamp;
  const rows = STYLE_STRATEGIES.map((a) =>
    STYLE_STRATEGIES.map((b) => {
      if (a === b) return 0.5;
      const s = styleTerm(a, b) + (lengths ? lengthTermOf(lengths[a], lengths[b]) : 0);
      return Math.max(lo, Math.min(hi, s));
    }),
  );
  return makeGame(lengths ? 'gold style game (with length term)' : 'gold style cycle', rows);
}

/** Iterations of the game lab's exact SPPO solver (a 4x4 game: milliseconds). */
export const SOLVER_ITERS = 200_000;

export interface StyleEquilibrium {
  /** The equilibrium mix (the solver's average policy). */
  mix: StyleMix;
  /** Its own exploitability: how far from exact the solver got (0 at an exact equilibrium). */
  residual: number;
}

export function toMix(v: ArrayLike<number>): StyleMix {
  return Object.fromEntries(STYLE_STRATEGIES.map((s, i) => [s, v[i]!])) as StyleMix;
}

export function fromMix(m: Partial<Record<string, number>>): Float64Array {
  return Float64Array.from(STYLE_STRATEGIES.map((s) => m[s] ?? 0));
}

/** The equilibrium of a style game by the game lab's solver (sppo-exact, average of pi_1..pi_T from uniform). */
export function solveStyleGame(game: Game, iters = SOLVER_ITERS): StyleEquilibrium {
  const r = runGame(game, 'sppo-exact', { iters, trace: false });
  return { mix: toMix(r.averagePolicy), residual: r.averageGap };
}

/** Exploitability of a mix in a style game: 2 max_j (P pi)_j - 1 (the game lab's duality gap). */
export function styleExploitability(game: Game, mix: Partial<Record<string, number>>): number {
  return dualityGap(game, fromMix(mix));
}

const chars = (s: string): number => [...s].length;

/**
 * Mean length (characters) of the answers of each style among `responses`. A style with no answer gets the
 * length it would have: the mean payload length of the styled answers (1 when there is none) plus the
 * style's own characters (terse 0, sentence 7, formatted 8); 'other' with no answer gets the mean length of
 * all responses (it is dominated, so with no 'other' answers this length moves no figure).
 */
export function styleLengths(responses: readonly string[]): StyleMix {
  const sum = Object.fromEntries(STYLE_STRATEGIES.map((s) => [s, 0])) as StyleMix;
  const count = { ...sum };
  let payload = 0;
  let styled = 0;
  let all = 0;
  for (const r of responses) {
    const p = parseResponse(r);
    sum[p.style] += chars(r);
    count[p.style]++;
    all += chars(r);
    if (p.style !== 'other') {
      payload += chars(p.payload!);
      styled++;
    }
  }
  const meanPayload = styled > 0 ? payload / styled : 1;
  const out = { ...sum };
  for (const s of STYLE_STRATEGIES) {
    if (count[s] > 0) out[s] = sum[s] / count[s];
    else if (s === 'other') out[s] = responses.length > 0 ? all / responses.length : 0;
    else out[s] = meanPayload + chars(render(s as Style, ''));
  }
  return out;
}

export interface StyleMeasure {
  /** Exploitability of the mix in the gold style game with the length term at the measured lengths. */
  style_exploitability: number;
  /** The equilibrium of that game (the mix the exploitability is measured against) and the solver's residual. */
  style_equilibrium: StyleMix;
  style_equilibrium_residual: number;
  /** The mean length of each style's answers the game was built with. */
  style_lengths: StyleMix;
  /** The same for the pure cycle (style term alone): its equilibrium is 1/3 per style, 'other' dominated. */
  style_exploitability_cycle: number;
  style_equilibrium_cycle: StyleMix;
}

let cycleCache: StyleEquilibrium | undefined;

/** Both exploitabilities of a mix of styles, with the equilibria they are measured against. */
export function measureStyles(mix: Partial<Record<string, number>>, responses: readonly string[]): StyleMeasure {
  const lengths = styleLengths(responses);
  const game = styleGame(lengths);
  const eq = solveStyleGame(game);
  const cycle = styleGame();
  cycleCache ??= solveStyleGame(cycle);
  return {
    style_exploitability: styleExploitability(game, mix),
    style_equilibrium: eq.mix,
    style_equilibrium_residual: eq.residual,
    style_lengths: lengths,
    style_exploitability_cycle: styleExploitability(cycle, mix),
    style_equilibrium_cycle: cycleCache.mix,
  };
}

export interface ExactSppoTrace {
  eta: number;
  /** Exploitability of pi_t (the last iterate) and of the average of pi_1..pi_t, t = 1..T. */
  last: number[];
  average: number[];
  /** The last iterate after T steps. */
  mix: StyleMix;
}

/**
 * SPPO's exact update (the game lab's sppoExactStep: pi_{t+1} ∝ pi_t exp(eta P(y > pi_t))) on a style game
 * from a starting mix, for T steps: what SPPO's own rule does to the style mix with a perfect judge and exact
 * win rates, the best the sampled, fitted demo can hope for.
 */
export function exactSppoFrom(game: Game, start: Partial<Record<string, number>>, eta: number, T: number): ExactSppoTrace {
  const pi = fromMix(start);
  const total = pi.reduce((a, b) => a + b, 0);
  for (let i = 0; i < pi.length; i++) pi[i] = pi[i]! / total;
  const logp = pi.map((p) => Math.log(p));
  const sum = new Float64Array(pi.length);
  const last: number[] = [];
  const average: number[] = [];
  for (let t = 1; t <= T; t++) {
    sppoExactStep(game, logp, pi, eta);
    softmax(logp, pi);
    for (let i = 0; i < pi.length; i++) sum[i] = sum[i]! + pi[i]!;
    last.push(dualityGap(game, pi));
    average.push(dualityGap(game, sum.map((x) => x / t)));
  }
  return { eta, last, average, mix: toMix(pi) };
}

export interface SampledExploitability {
  /** The mix's own exploitability (no sampling). */
  exact: number;
  /** Over the draws: mean, median and 90th percentile of the exploitability of the sampled mix. */
  mean: number;
  median: number;
  p90: number;
  /** Share of the draws measuring at most `threshold`, and that share to the power `seeds` (every one of that many seeds). */
  threshold: number;
  atMost: number;
  seeds: number;
  allSeedsAtMost: number;
}

/**
 * What the demo would measure for a policy whose styles are exactly `mix`: the exploitability of the shares among
 * `samples` styles drawn from it (the demo's style samples), over `draws` draws with `rng`. The measure is convex in
 * the mix, so sampling moves it up on average; `atMost` is the chance that one seed's figure is <= threshold.
 */
export function sampledExploitability(game: Game, mix: Partial<Record<string, number>>, o: { samples: number; draws: number; rng: { next(): number }; threshold: number; seeds: number }): SampledExploitability {
  if (!Number.isInteger(o.samples) || o.samples < 1 || !Number.isInteger(o.draws) || o.draws < 1) throw new RangeError(`sampledExploitability: samples and draws must be integers >= 1, got ${o.samples}, ${o.draws}`);
  const p = fromMix(mix);
  const total = p.reduce((a, b) => a + b, 0);
  const cdf = new Float64Array(p.length);
  let acc = 0;
  for (let i = 0; i < p.length; i++) cdf[i] = acc += p[i]! / total;
  const xs: number[] = [];
  const counts = new Float64Array(p.length);
  for (let d = 0; d < o.draws; d++) {
    counts.fill(0);
    for (let s = 0; s < o.samples; s++) {
      const u = o.rng.next();
      let i = 0;
      while (i < p.length - 1 && u >= cdf[i]!) i++;
      counts[i] = counts[i]! + 1;
    }
    xs.push(dualityGap(game, counts.map((c) => c / o.samples)));
  }
  xs.sort((a, b) => a - b);
  const atMost = xs.filter((x) => x <= o.threshold).length / xs.length;
  const q = (f: number): number => xs[Math.min(xs.length - 1, Math.floor(f * xs.length))]!;
  return {
    exact: dualityGap(game, p.map((x) => x / total)), mean: xs.reduce((a, b) => a + b, 0) / xs.length, median: q(0.5), p90: q(0.9),
    threshold: o.threshold, atMost, seeds: o.seeds, allSeedsAtMost: atMost ** o.seeds,
  };
}
