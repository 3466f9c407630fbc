// Head-to-head win rate of a model against reference outputs (AlpacaEval-style).
//
// Input: one preference per instruction, p_i in [0, 1] = probability (or verdict) that the model's
// output beats the reference output (1 = model wins, 0 = reference wins, 0.5 = tie; a judge's
// soft probability can be used as is, as AlpacaEval 2.0's weighted annotator does).
//   win rate        = mean_i p_i                          (a fraction in [0, 1]; AlpacaEval prints x100)
//   standard error  = sd(p) / sqrt(n),  sd with n - 1 in the denominator (pandas .sem(), as AlpacaEval)
//   n_wins / n_losses / n_ties = #{p > 1/2} / #{p < 1/2} / #{p = 1/2}
// Lengths are counted in Unicode code points (Python's len(str), which AlpacaEval uses), not UTF-16
// code units.
import { isProbability } from '../judge/oracle.js';

export type Verdict = 'model' | 'reference' | 'tie';

/** A judge verdict as a preference: model = 1, reference = 0, tie = 1/2. */
export function verdictToPreference(v: Verdict): number {
  switch (v) {
    case 'model':
      return 1;
    case 'reference':
      return 0;
    case 'tie':
      return 0.5;
    default:
      throw new RangeError(`unknown verdict ${JSON.stringify(v)}`);
  }
}

/** Length of a string in Unicode code points (Python len()). */
export function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export interface WinRateSummary {
  n: number;
  /** mean p_i, in [0, 1]. */
  winRate: number;
  /** sample standard deviation of p / sqrt(n); NaN when n < 2. */
  standardError: number;
  nWins: number;
  nLosses: number;
  nTies: number;
  /** Mean length (code points) of the model outputs, when given. */
  avgLength?: number;
  /** Mean length (code points) of the reference outputs, when given. */
  avgReferenceLength?: number;
}

export interface WinRateOptions {
  /** The model's outputs (for avgLength); must have one per preference. */
  outputs?: ReadonlyArray<string>;
  /** The reference outputs (for avgReferenceLength); must have one per preference. */
  references?: ReadonlyArray<string>;
}

export function checkPreferences(preferences: ArrayLike<number>, what = 'preferences'): void {
  for (let i = 0; i < preferences.length; i++) {
    const p = preferences[i]!;
    if (!isProbability(p)) throw new RangeError(`${what}[${i}] = ${p} is not a probability in [0, 1]`);
  }
}

/** Mean, sample standard deviation (n - 1) and standard error of the mean. */
export function meanAndSem(xs: ArrayLike<number>): { mean: number; sd: number; sem: number } {
  const n = xs.length;
  if (n === 0) return { mean: NaN, sd: NaN, sem: NaN };
  let s = 0;
  for (let i = 0; i < n; i++) s += xs[i]!;
  const mean = s / n;
  if (n < 2) return { mean, sd: NaN, sem: NaN };
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (xs[i]! - mean) ** 2;
  const sd = Math.sqrt(ss / (n - 1));
  return { mean, sd, sem: sd / Math.sqrt(n) };
}

function meanLength(texts: ReadonlyArray<string>, n: number, what: string): number {
  if (texts.length !== n) throw new RangeError(`${what}: ${texts.length} texts for ${n} preferences`);
  let s = 0;
  for (const t of texts) s += charLength(t);
  return s / n;
}

/** Wins, losses and ties of preferences: #{p > 1/2}, #{p < 1/2} and the rest (p = 1/2). */
export function countVerdicts(preferences: ArrayLike<number>): { nWins: number; nLosses: number; nTies: number } {
  let nWins = 0;
  let nLosses = 0;
  let nTies = 0;
  for (let i = 0; i < preferences.length; i++) {
    const p = preferences[i]!;
    if (p > 0.5) nWins++;
    else if (p < 0.5) nLosses++;
    else nTies++;
  }
  return { nWins, nLosses, nTies };
}

export function computeWinRate(preferences: ArrayLike<number>, opts?: WinRateOptions): WinRateSummary {
  const n = preferences.length;
  if (n === 0) throw new RangeError('computeWinRate: no preferences');
  checkPreferences(preferences);
  const { mean, sem } = meanAndSem(preferences);
  const { nWins, nLosses, nTies } = countVerdicts(preferences);
  const out: WinRateSummary = { n, winRate: mean, standardError: sem, nWins, nLosses, nTies };
  if (opts?.outputs !== undefined) out.avgLength = meanLength(opts.outputs, n, 'outputs');
  if (opts?.references !== undefined) out.avgReferenceLength = meanLength(opts.references, n, 'references');
  return out;
}
