// AlpacaEval 2.0's length-controlled (LC) win rate (Dubois et al. 2024, "Length-Controlled AlpacaEval"), as its
// code computes it (src/alpaca_eval/metrics/glm_winrate.py, GLM "length_controlled_v1"), implemented from that
// description with our own fit (l1_logistic.ts).
//
// Per model, over its n annotations (row i: the reference, AlpacaEval's output_1, against the model, output_2):
//   len_delta_i = len(reference_i) - len(model_i)           (code points; AlpacaEval's sign: baseline minus model)
//   s           = sample standard deviation (n - 1) of len_delta over all n rows (those without a preference too)
//   features    = [ tanh(len_delta_i / s), instruction_difficulty_i, 1 ]      (no other intercept)
//   q_i         = sigmoid(b_length * tanh(.) + b_difficulty * difficulty_i + b_not_gamed * 1)
// Training rows: the model's rows with a preference p_i in [0, 1] (weight 1), after the rows of the two length-gamed
// baselines (AlpacaEval's df_gamed.csv: gpt4_1106_preview_verbose and _concise against gpt4_1106_preview, their own
// std_delta_len and difficulty, the third feature 0, weight 0.2 / 2 = 0.1 each). The coefficients minimise the L1
// penalised soft-label log loss sum_j |b_j| + C sum_i w_i CE(p_i, q_i), C chosen over logspace(-4, 4, 10) by
// 5-fold grouped cross-validation and refitted on all rows (l1_logistic.ts, as scikit-learn's LogisticRegressionCV
// with liblinear). The LC win rate is the GLM's prediction with the length term at 0, over all n rows:
//   LC = mean_i sigmoid(b_not_gamed + b_difficulty * difficulty_i),   lc_standard_error = sem of those n values.
// A preference that is missing (NaN) leaves its row out of the fit only; one of exactly 0 (AlpacaEval's old tie) is
// the caller's to map to 1/2. Rates are fractions in [0, 1] (AlpacaEval prints them x 100).
//
// Without the gamed rows and the difficulties (the Hugging Face files AlpacaEval downloads), the same fit with the
// features [tanh(.), 1] is what AlpacaEval calls "length_controlled_minimal"; this project reports that LC as
// approximate (its measured distance from the leaderboard is in docs/eval.md). `penalty: 'none'` gives the plain
// maximum-likelihood fit instead (optionally L2-penalised), the form this project used before.
//
// This file's own convention: psi = -b_length (the coefficient of tanh((len(model) - len(reference)) / s), positive
// for a judge that favours longer outputs), theta = b_not_gamed, gamma = b_difficulty. If s = 0 (all length
// differences equal, or n < 2), AlpacaEval would divide by zero; here the length feature is 0 (psi = 0).

import { charLength, meanAndSem } from './winrate.js';
import { crossValidateL1Logistic, fitL1Logistic, type Design } from './l1_logistic.js';
import { isProbability } from '../judge/oracle.js';

/** One row of AlpacaEval's df_gamed.csv: an annotation of a length-gamed baseline against the baseline. */
export interface GamedRow {
  /** The instruction's index (0..804). */
  index: number;
  /** In [0, 1] (AlpacaEval's preference - 1); NaN: none. */
  preference: number;
  /** (len(baseline) - len(gamed output)) / sd, as stored. */
  stdDeltaLen: number;
  instructionDifficulty: number;
  /** False for the gamed baselines' rows (their third feature is 0). */
  notGamedBaseline: boolean;
}

/** The GLM of an LC win rate, named as this project reports it (`lc_method`). */
export type LcMethod = 'length_controlled_v1' | 'tanh+difficulty+baseline (approximate)' | 'tanh+baseline (approximate)';

export interface LengthControlledOptions {
  /** Per-row instruction difficulty (AlpacaEval's instruction_difficulty, looked up by row); adds gamma. */
  difficulties?: ArrayLike<number>;
  /** The gamed baselines' rows (AlpacaEval's df_gamed.csv); needs `difficulties`. */
  gamed?: readonly GamedRow[];
  /** AlpacaEval's regularize_to_baseline_lambda: the gamed rows weigh lambda / 2 each. Default 0.2. */
  gamedLambda?: number;
  /** 'l1-cv' (default): AlpacaEval's fit; 'none': the plain maximum-likelihood fit (optionally `l2`). */
  penalty?: 'l1-cv' | 'none';
  /** penalty 'none' only: L2 strength on psi and gamma (and theta if l2Intercept), on the mean loss. Default 0. */
  l2?: number;
  l2Intercept?: boolean;
  /** penalty 'l1-cv' only: a fixed C instead of the cross-validated choice (for the bootstrap). */
  C?: number;
  /** penalty 'none': Newton iterations. Default 100. */
  maxIterations?: number;
  /** penalty 'none': below this max |gradient| full Newton steps until the step is negligible. Default 1e-8. */
  gradientTolerance?: number;
}

export interface GlmWeights {
  /** Intercept (AlpacaEval's not_gamed_baseline coefficient). */
  theta: number;
  /** Coefficient of tanh((len(model) - len(reference)) / sd): minus AlpacaEval's length coefficient. */
  psi: number;
  /** Coefficient of the instruction difficulty (0 when not used). */
  gamma: number;
}

export interface LengthControlledResult extends GlmWeights {
  /** Rows (annotations), with or without a preference. */
  n: number;
  /** Rows with a preference (the model's rows of the fit). */
  nScored: number;
  method: LcMethod | 'mle';
  /** The coefficients in AlpacaEval's names and signs (its weights CSV columns). */
  coefficients: { 'np.tanh(std_delta_len)': number; instruction_difficulty: number; 'not_gamed_baseline.astype(float)': number };
  /** Length-controlled win rate, in [0, 1]: the mean of glmPreferences. */
  lcWinRate: number;
  /** Sample standard error (n - 1) of glmPreferences, AlpacaEval's lc_standard_error / 100. */
  lcStandardError: number;
  /** Raw win rate mean(p) over the rows with a preference, in [0, 1]. */
  winRate: number;
  /** Standard error of the raw win rate (sample sd / sqrt(n)). */
  standardError: number;
  /** Sample standard deviation (n - 1) of the length differences over all rows. */
  sdDeltaLen: number;
  /** Whether the length feature was used (false when sd is 0 or undefined). */
  usesLength: boolean;
  usesDifficulty: boolean;
  /** Rows of the gamed baselines in the fit. */
  nGamed: number;
  /** Per-row GLM preference with the length term set to 0 (mean = lcWinRate), all n rows. */
  glmPreferences: Float64Array;
  /** penalty 'l1-cv': the chosen C, the grid and the fold scores (scores[fold][c]). */
  C?: number;
  Cs?: number[];
  cvScores?: number[][];
  /** Final value of the objective. */
  loss: number;
  iterations: number;
  /**
   * What was checked: 'l1-cv': every fit (5 folds x 10 Cs and the refit) reached its optimality tolerance within
   * its iteration limit; 'none': Newton converged and no fitted probability saturated at 0 or 1.
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

/** The plain (optionally L2-penalised) maximum-likelihood fit: minimises (1/n) sum w_i CE(p_i, q_i) + (l2/2) |b|^2. */
function fitMle(d: Design, penalty: number[], maxIter: number, gradTol: number): { w: number[]; loss: number; iterations: number; converged: boolean } {
  const { cols, p: y, w: sw } = d;
  const n = y.length;
  const p = cols.length;
  const w = new Array<number>(p).fill(0);
  const objective = (wt: number[]): number => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      let z = 0;
      for (let c = 0; c < p; c++) z += wt[c]! * cols[c]![i]!;
      s += sw[i]! * (y[i]! * softplus(-z) + (1 - y[i]!) * softplus(z));
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
      const r = sw[i]! * (q - y[i]!);
      const v = sw[i]! * q * (1 - q);
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
      // Quadratic region: full Newton steps (loss differences are below floating-point resolution here) until
      // the step itself is negligible.
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
  // Saturation: a fitted probability that rounds to exactly 0 or 1 means the optimum is at infinity (e.g. all
  // p = 1); the gradient then vanishes in floating point without a true minimiser.
  for (let i = 0; i < n && converged; i++) {
    let z = 0;
    for (let c = 0; c < p; c++) z += w[c]! * cols[c]![i]!;
    const q = sigmoid(z);
    if (q === 0 || q === 1) converged = false;
  }
  return { w, loss, iterations, converged };
}

/**
 * The length-controlled win rate (see the file's head).
 * @param preferences p_i in [0, 1] that the model's output beats the reference; NaN: no preference (row kept for
 *   the length sd and the LC average, left out of the fit)
 * @param modelLengths lengths of the model outputs (code points)
 * @param referenceLengths lengths of the reference outputs (code points)
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
  const scored: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = preferences[i]!;
    if (Number.isNaN(v)) continue;
    if (!isProbability(v)) throw new RangeError(`preferences[${i}] = ${v} is not a probability in [0, 1] (NaN: none)`);
    scored.push(i);
  }
  if (scored.length === 0) throw new RangeError('lengthControlledWinRate: no preference to fit (all NaN)');
  const diff = opts.difficulties;
  if (diff !== undefined && diff.length !== n) throw new RangeError(`lengthControlledWinRate: ${diff.length} difficulties for ${n} preferences`);
  const gamed = opts.gamed ?? [];
  if (gamed.length > 0 && diff === undefined) throw new RangeError('lengthControlledWinRate: the gamed baselines need the instruction difficulties');
  const penaltyKind = opts.penalty ?? 'l1-cv';
  const l2 = opts.l2 ?? 0;
  if (!(l2 >= 0)) throw new RangeError(`l2 must be >= 0, got ${l2}`);
  if (l2 > 0 && penaltyKind !== 'none') throw new RangeError("l2 applies to penalty 'none' only");
  const lambda = opts.gamedLambda ?? 0.2;

  // AlpacaEval's sign: reference minus model.
  const delta = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const d = referenceLengths[i]! - modelLengths[i]!;
    if (!Number.isFinite(d)) throw new RangeError(`lengthControlledWinRate: non-finite length at row ${i}`);
    delta[i] = d;
  }
  const sd = meanAndSem(delta).sd; // NaN when n < 2
  const usesLength = sd > 0;
  const usesDifficulty = diff !== undefined;
  if (usesDifficulty) {
    for (let i = 0; i < n; i++) if (!Number.isFinite(diff[i]!)) throw new RangeError(`lengthControlledWinRate: difficulty[${i}] = ${diff[i]} is not finite`);
  }
  const gamedRows = gamed.filter((g) => !Number.isNaN(g.preference));
  gamedRows.forEach((g, k) => {
    if (!isProbability(g.preference)) throw new RangeError(`gamed row ${k}: preference ${g.preference} is not in [0, 1]`);
    if (!Number.isFinite(g.stdDeltaLen) || !Number.isFinite(g.instructionDifficulty)) throw new RangeError(`gamed row ${k}: non-finite std_delta_len or instruction_difficulty`);
  });

  // The training design: the gamed rows first, then the model's scored rows (AlpacaEval's concat order).
  const m = gamedRows.length + scored.length;
  const colLen = new Float64Array(m);
  const colDiff = new Float64Array(m);
  const colNb = new Float64Array(m);
  const y = new Float64Array(m);
  const w = new Float64Array(m);
  gamedRows.forEach((g, r) => {
    colLen[r] = Math.tanh(g.stdDeltaLen);
    colDiff[r] = g.instructionDifficulty;
    colNb[r] = g.notGamedBaseline ? 1 : 0;
    y[r] = g.preference;
    w[r] = g.notGamedBaseline ? 1 : lambda / 2;
  });
  scored.forEach((i, k) => {
    const r = gamedRows.length + k;
    colLen[r] = usesLength ? Math.tanh(delta[i]! / sd) : 0;
    colDiff[r] = usesDifficulty ? diff[i]! : 0;
    colNb[r] = 1;
    y[r] = preferences[i]!;
    w[r] = 1;
  });
  const cols = [colLen, ...(usesDifficulty ? [colDiff] : []), colNb];
  const design: Design = { cols, p: y, w };

  let coef: number[];
  let loss: number;
  let iterations: number;
  let converged: boolean;
  let cv: { C: number; Cs?: number[]; cvScores?: number[][] } | undefined;
  if (penaltyKind === 'l1-cv') {
    if (opts.C !== undefined) {
      const fit = fitL1Logistic(design, opts.C);
      ({ coef, objective: loss, iterations, converged } = fit);
      cv = { C: opts.C };
    } else {
      const r = crossValidateL1Logistic(design);
      ({ coef, objective: loss, iterations } = r.fit);
      converged = r.converged;
      cv = { C: r.fit.C, Cs: r.Cs, cvScores: r.scores };
    }
  } else {
    const pen = cols.map((_, c) => (c === cols.length - 1 ? (opts.l2Intercept ? l2 : 0) : l2));
    const r = fitMle(design, pen, opts.maxIterations ?? 100, opts.gradientTolerance ?? 1e-8);
    ({ w: coef, loss, iterations, converged } = r);
  }
  const bLen = usesLength ? coef[0]! : 0;
  const bDiff = usesDifficulty ? coef[1]! : 0;
  const bNb = coef[cols.length - 1]!;

  const glmPreferences = new Float64Array(n);
  let lc = 0;
  for (let i = 0; i < n; i++) {
    const q = sigmoid(bNb + (usesDifficulty ? bDiff * diff[i]! : 0));
    glmPreferences[i] = q;
    lc += q;
  }
  const raw = meanAndSem(scored.map((i) => preferences[i]!));
  const lcSem = meanAndSem(glmPreferences).sem;
  const method: LengthControlledResult['method'] =
    penaltyKind === 'none' ? 'mle' : gamedRows.length > 0 ? 'length_controlled_v1' : usesDifficulty ? 'tanh+difficulty+baseline (approximate)' : 'tanh+baseline (approximate)';
  return {
    n,
    nScored: scored.length,
    method,
    theta: bNb,
    psi: bLen === 0 ? 0 : -bLen,
    gamma: bDiff,
    coefficients: { 'np.tanh(std_delta_len)': bLen, instruction_difficulty: bDiff, 'not_gamed_baseline.astype(float)': bNb },
    lcWinRate: lc / n,
    lcStandardError: Number.isFinite(lcSem) ? lcSem : 0,
    winRate: raw.mean,
    standardError: raw.sem,
    sdDeltaLen: sd,
    usesLength,
    usesDifficulty,
    nGamed: gamedRows.length,
    glmPreferences,
    ...(cv ? { C: cv.C, ...(cv.Cs ? { Cs: cv.Cs, cvScores: cv.cvScores } : {}) } : {}),
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
