// AlpacaEval 2.0's length-controlled (LC) win rate (Dubois et al. 2024, "Length-Controlled
// AlpacaEval"), implemented from its definition with our own Newton / IRLS fit.
//
// Per model, over the n instructions with preference p_i in [0, 1] (model beats reference):
//   delta_i = len(model output_i) - len(reference output_i)           (characters = code points)
//   s       = sample standard deviation of delta over the n instructions (n - 1 denominator)
//   q_i     = sigmoid(theta + psi * tanh(delta_i / s) [+ gamma * difficulty_i])
// fitted by minimising the soft-label logistic loss (cross-entropy)
//   L(w) = -(1/n) sum_i [ p_i log q_i + (1 - p_i) log(1 - q_i) ]  +  (l2 / 2) * (psi^2 + gamma^2)
// (l2 = 0 by default; `l2Intercept: true` also penalises theta). The LC win rate is the GLM's
// prediction with the length term set to zero, averaged over instructions:
//   LC = (1/n) sum_i sigmoid(theta [+ gamma * difficulty_i])
// All rates are fractions in [0, 1] (AlpacaEval prints them x100).
//
// Relation to AlpacaEval's code (src/alpaca_eval/metrics/glm_winrate.py, "length_controlled_v1"):
//  * Its feature is tanh((len(baseline) - len(model)) / sd), i.e. the opposite sign: its length
//    coefficient is -psi. `fromAlpacaEvalWeights` converts. Its sd is pandas .std() (n - 1) over the
//    model's instructions, as here.
//  * instruction_difficulty is a fixed per-instruction covariate that AlpacaEval precomputed once
//    (downloaded from its Hugging Face data set); gamma is fitted per model. Pass `difficulties`
//    to include it; without it the model is sigmoid(theta + psi * tanh(.)) and LC = sigmoid(theta).
//  * Its regularisation differs: it fits with scikit-learn's L1-penalised LogisticRegressionCV
//    (liblinear, no separate intercept, C chosen by 5-fold grouped CV) and "regularises to the
//    baseline" by adding the annotations of two length-gamed versions of the baseline (verbose /
//    concise prompts) with sample weight 0.2 / 2 each, which anchor psi and gamma. Those extra
//    annotations are not available here, so this is the plain (optionally L2-penalised) maximum-
//    likelihood fit of the same GLM; results match AlpacaEval only approximately.
//  * If sd = 0 (all length differences equal, or n < 2), AlpacaEval would divide by zero; here the
//    length feature is dropped (psi = 0), so LC = raw win rate when there is no difficulty term.

import { charLength, checkPreferences, meanAndSem } from './winrate.js';

export interface LengthControlledOptions {
  /** Per-instruction difficulty covariate (AlpacaEval's instruction_difficulty); adds gamma. */
  difficulties?: ArrayLike<number>;
  /** L2 penalty strength on psi and gamma (and theta if l2Intercept). Default 0. */
  l2?: number;
  /** Also penalise theta (shrinks LC towards 1/2). Default false. */
  l2Intercept?: boolean;
  /** Newton iterations. Default 100. */
  maxIterations?: number;
  /**
   * Below this max |gradient| the full Newton step is taken without line search, until the step
   * is negligible (|step| <= 1e-13 (1 + |w|)), which is the convergence test. Default 1e-8.
   */
  gradientTolerance?: number;
}

export interface GlmWeights {
  /** Intercept. */
  theta: number;
  /** Coefficient of tanh((len(model) - len(reference)) / sd). */
  psi: number;
  /** Coefficient of the instruction difficulty (0 when not used). */
  gamma: number;
}

export interface LengthControlledResult extends GlmWeights {
  n: number;
  /** Length-controlled win rate, in [0, 1]. */
  lcWinRate: number;
  /** Raw win rate mean(p), in [0, 1]. */
  winRate: number;
  /** Standard error of the raw win rate (sample sd / sqrt(n)). */
  standardError: number;
  /** Sample standard deviation (n - 1) of the length differences. */
  sdDeltaLen: number;
  /** Whether the length feature was used (false when sd is 0 or undefined). */
  usesLength: boolean;
  usesDifficulty: boolean;
  /** Per-instruction GLM preference with the length term set to 0 (mean = lcWinRate). */
  glmPreferences: Float64Array;
  /** Final value of the (penalised) objective. */
  loss: number;
  iterations: number;
  /**
   * False if Newton did not converge within maxIterations, or the fit saturated (a fitted probability
   * rounds to exactly 0 or 1, as with separable labels such as all p = 1: the optimum is at infinity).
   */
  converged: boolean;
}

export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/** log(1 + e^z), stable. */
function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

/** Solve the small symmetric positive (semi)definite system A x = b (Cholesky, adding jitter if needed). */
function solveSpd(a: number[][], b: number[]): number[] {
  const p = b.length;
  let scale = 0;
  for (let i = 0; i < p; i++) scale = Math.max(scale, Math.abs(a[i]![i]!));
  for (let attempt = 0; attempt < 12; attempt++) {
    const jitter = attempt === 0 ? 0 : (scale || 1) * 10 ** (attempt - 14);
    const l: number[][] = Array.from({ length: p }, () => new Array<number>(p).fill(0));
    let ok = true;
    for (let i = 0; i < p && ok; i++) {
      for (let j = 0; j <= i; j++) {
        let s = a[i]![j]! + (i === j ? jitter : 0);
        for (let k = 0; k < j; k++) s -= l[i]![k]! * l[j]![k]!;
        if (i === j) {
          if (!(s > 0)) {
            ok = false;
            break;
          }
          l[i]![i] = Math.sqrt(s);
        } else {
          l[i]![j] = s / l[j]![j]!;
        }
      }
    }
    if (!ok) continue;
    const y = new Array<number>(p).fill(0);
    for (let i = 0; i < p; i++) {
      let s = b[i]!;
      for (let k = 0; k < i; k++) s -= l[i]![k]! * y[k]!;
      y[i] = s / l[i]![i]!;
    }
    const x = new Array<number>(p).fill(0);
    for (let i = p - 1; i >= 0; i--) {
      let s = y[i]!;
      for (let k = i + 1; k < p; k++) s -= l[k]![i]! * x[k]!;
      x[i] = s / l[i]![i]!;
    }
    return x;
  }
  throw new Error('length-controlled GLM: Hessian is not positive definite');
}

/**
 * Fit the LC GLM and return the length-controlled win rate.
 * @param preferences p_i in [0, 1], probability that the model's output beats the reference
 * @param modelLengths lengths of the model outputs (characters)
 * @param referenceLengths lengths of the reference outputs (characters)
 */
export function lengthControlledWinRate(
  preferences: ArrayLike<number>,
  modelLengths: ArrayLike<number>,
  referenceLengths: ArrayLike<number>,
  opts: LengthControlledOptions = {},
): LengthControlledResult {
  const n = preferences.length;
  if (n === 0) throw new RangeError('lengthControlledWinRate: no preferences');
  if (modelLengths.length !== n || referenceLengths.length !== n) {
    throw new RangeError(`lengthControlledWinRate: ${n} preferences but ${modelLengths.length} model lengths and ${referenceLengths.length} reference lengths`);
  }
  checkPreferences(preferences);
  const diff = opts.difficulties;
  if (diff !== undefined && diff.length !== n) throw new RangeError(`lengthControlledWinRate: ${diff.length} difficulties for ${n} preferences`);
  const l2 = opts.l2 ?? 0;
  if (!(l2 >= 0)) throw new RangeError(`l2 must be >= 0, got ${l2}`);
  const maxIter = opts.maxIterations ?? 100;
  const gradTol = opts.gradientTolerance ?? 1e-8;

  const delta = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const d = modelLengths[i]! - referenceLengths[i]!;
    if (!Number.isFinite(d)) throw new RangeError(`lengthControlledWinRate: non-finite length at instruction ${i}`);
    delta[i] = d;
  }
  const sd = meanAndSem(delta).sd; // NaN when n < 2
  const usesLength = sd > 0;
  const usesDifficulty = diff !== undefined;

  // Design matrix columns: intercept, [length feature], [difficulty].
  const cols: Float64Array[] = [new Float64Array(n).fill(1)];
  const penalty: number[] = [opts.l2Intercept ? l2 : 0];
  if (usesLength) {
    cols.push(Float64Array.from(delta, (d) => Math.tanh(d / sd)));
    penalty.push(l2);
  }
  if (usesDifficulty) {
    const dc = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const v = diff[i]!;
      if (!Number.isFinite(v)) throw new RangeError(`lengthControlledWinRate: difficulty[${i}] = ${v} is not finite`);
      dc[i] = v;
    }
    cols.push(dc);
    penalty.push(l2);
  }
  const p = cols.length;
  const w = new Array<number>(p).fill(0);

  const objective = (wt: number[]): number => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      let z = 0;
      for (let c = 0; c < p; c++) z += wt[c]! * cols[c]![i]!;
      const y = preferences[i]!;
      s += y * softplus(-z) + (1 - y) * softplus(z);
    }
    let pen = 0;
    for (let c = 0; c < p; c++) pen += penalty[c]! * wt[c]! * wt[c]!;
    return s / n + pen / 2;
  };

  let loss = objective(w);
  let converged = false;
  let iterations = 0;
  for (; iterations < maxIter; ) {
    const g = new Array<number>(p).fill(0);
    const h: number[][] = Array.from({ length: p }, () => new Array<number>(p).fill(0));
    for (let i = 0; i < n; i++) {
      let z = 0;
      for (let c = 0; c < p; c++) z += w[c]! * cols[c]![i]!;
      const q = sigmoid(z);
      const r = q - preferences[i]!;
      const v = q * (1 - q);
      for (let a = 0; a < p; a++) {
        const xa = cols[a]![i]!;
        g[a] += r * xa;
        for (let b = 0; b <= a; b++) h[a]![b] += v * xa * cols[b]![i]!;
      }
    }
    for (let a = 0; a < p; a++) {
      g[a] = g[a]! / n + penalty[a]! * w[a]!;
      for (let b = 0; b <= a; b++) {
        h[a]![b] = h[a]![b]! / n + (a === b ? penalty[a]! : 0);
        h[b]![a] = h[a]![b]!;
      }
    }
    const gMax = Math.max(...g.map(Math.abs));
    if (gMax === 0) {
      converged = true;
      break;
    }
    iterations++;
    const step = solveSpd(h, g);
    const stepMax = Math.max(...step.map(Math.abs));
    if (gMax < gradTol || stepMax <= 1e-13 * (1 + Math.max(...w.map(Math.abs)))) {
      // Quadratic region: take the full Newton step without a line search (loss differences are
      // below floating-point resolution here); stop once the step itself is negligible.
      for (let a = 0; a < p; a++) w[a] = w[a]! - step[a]!;
      loss = objective(w);
      if (stepMax <= 1e-13 * (1 + Math.max(...w.map(Math.abs)))) {
        converged = true;
        break;
      }
      continue;
    }
    let slope = 0;
    for (let a = 0; a < p; a++) slope += g[a]! * step[a]!;
    // Backtracking (Armijo) line search on the Newton direction -step.
    let t = 1;
    let next = w.map((x, a) => x - step[a]!);
    let nextLoss = objective(next);
    while (!(nextLoss <= loss - 1e-4 * t * slope) && t > 1e-12) {
      t /= 2;
      next = w.map((x, a) => x - t * step[a]!);
      nextLoss = objective(next);
    }
    if (!(nextLoss <= loss)) break; // no progress possible at machine precision
    for (let a = 0; a < p; a++) w[a] = next[a]!;
    loss = nextLoss;
  }

  // Saturation: a fitted probability that rounds to exactly 0 or 1 means the optimum is at infinity
  // (e.g. all p = 1); the gradient then vanishes in floating point without a true minimiser.
  for (let i = 0; i < n && converged; i++) {
    let z = 0;
    for (let c = 0; c < p; c++) z += w[c]! * cols[c]![i]!;
    const q = sigmoid(z);
    if (q === 0 || q === 1) converged = false;
  }
  const theta = w[0]!;
  const psi = usesLength ? w[1]! : 0;
  const gamma = usesDifficulty ? w[p - 1]! : 0;
  const glmPreferences = new Float64Array(n);
  let lc = 0;
  for (let i = 0; i < n; i++) {
    const q = sigmoid(theta + (usesDifficulty ? gamma * diff[i]! : 0));
    glmPreferences[i] = q;
    lc += q;
  }
  const raw = meanAndSem(preferences);
  return {
    n,
    theta,
    psi,
    gamma,
    lcWinRate: lc / n,
    winRate: raw.mean,
    standardError: raw.sem,
    sdDeltaLen: sd,
    usesLength,
    usesDifficulty,
    glmPreferences,
    loss,
    iterations,
    converged,
  };
}

/** lengthControlledWinRate with lengths measured on the texts (code points, as Python len()). */
export function lengthControlledWinRateFromTexts(
  preferences: ArrayLike<number>,
  outputs: ReadonlyArray<string>,
  references: ReadonlyArray<string>,
  opts?: LengthControlledOptions,
): LengthControlledResult {
  return lengthControlledWinRate(preferences, outputs.map(charLength), references.map(charLength), opts);
}

/** LC win rate from given GLM weights: mean_i sigmoid(theta + gamma * difficulty_i) (or sigmoid(theta)). */
export function predictLcWinRate(weights: Pick<GlmWeights, 'theta' | 'gamma'>, difficulties?: ArrayLike<number>): number {
  if (difficulties === undefined || difficulties.length === 0) return sigmoid(weights.theta);
  let s = 0;
  for (let i = 0; i < difficulties.length; i++) s += sigmoid(weights.theta + weights.gamma * difficulties[i]!);
  return s / difficulties.length;
}

/** Column names of AlpacaEval's saved weights (length_controlled_v1). */
export const ALPACA_EVAL_COLUMNS = {
  length: 'np.tanh(std_delta_len)',
  difficulty: 'instruction_difficulty',
  intercept: 'not_gamed_baseline.astype(float)',
} as const;

/**
 * Convert one row of AlpacaEval's saved GLM weights to ours. AlpacaEval's length feature is
 * tanh((len(baseline) - len(model)) / sd), ours tanh((len(model) - len(baseline)) / sd), so psi flips sign.
 * The weights are relative to the baseline's row (all zero for the baseline itself).
 */
export function fromAlpacaEvalWeights(row: Readonly<Record<string, number>>): GlmWeights {
  const get = (k: string): number => {
    const v = row[k];
    if (v === undefined || !Number.isFinite(v)) throw new RangeError(`AlpacaEval weights: missing or non-finite column ${JSON.stringify(k)}`);
    return v;
  };
  return { theta: get(ALPACA_EVAL_COLUMNS.intercept), psi: -get(ALPACA_EVAL_COLUMNS.length), gamma: get(ALPACA_EVAL_COLUMNS.difficulty) };
}

/** Parse AlpacaEval's weights CSV (first column: model name; header row with column names). */
export function parseAlpacaEvalWeightsCsv(text: string): Map<string, GlmWeights> {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new RangeError('AlpacaEval weights CSV is empty');
  const header = lines[0]!.split(',');
  const out = new Map<string, GlmWeights>();
  for (const line of lines.slice(1)) {
    const cells = line.split(',');
    if (cells.length !== header.length) throw new RangeError(`AlpacaEval weights CSV: expected ${header.length} cells, got ${cells.length}: ${line}`);
    const row: Record<string, number> = {};
    for (let c = 1; c < header.length; c++) row[header[c]!] = Number(cells[c]);
    out.set(cells[0]!, fromAlpacaEvalWeights(row));
  }
  return out;
}
