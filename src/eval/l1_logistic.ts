// L1-penalised logistic regression with soft labels and sample weights, without an intercept, and the choice of
// its penalty by grouped K-fold cross-validation: the fit AlpacaEval 2.0's length-controlled win rate makes with
// scikit-learn (LogisticRegressionCV(penalty="l1", solver="liblinear", fit_intercept=False, Cs=10, cv=GroupKFold(5))
// on rows duplicated as label 1 with weight p * w and label 0 with weight (1 - p) * w; see length_controlled.ts).
//
// fitL1Logistic(X, p, w, C) minimises, over the coefficients b (one per column of X),
//   F(b) = sum_j |b_j| + C * sum_i w_i * [ p_i * log(1 + e^(-z_i)) + (1 - p_i) * log(1 + e^(z_i)) ],  z_i = x_i . b
// which is liblinear's L1-regularised logistic objective for the duplicated rows. liblinear stops early (tol 1e-4
// on the norm of the minimum-norm subgradient, relative to its value at b = 0); this fit goes to the minimiser
// (proximal Newton: each step minimises the second-order model plus the L1 term by coordinate descent, then an
// Armijo line search on F), so it and scikit-learn differ by liblinear's stopping error only.
//
// crossValidateL1Logistic: C over logspace(-4, 4, 10) (LogisticRegressionCV's Cs=10); the folds of GroupKFold(5)
// with one group per row (scikit-learn >= 1.6 sorts the equal group sizes stably, so row r of m goes to fold
// (m - 1 - r) mod 5); each fold's score is minus the mean over its test rows of w_i * (soft-label log loss of
// clip(q_i, 1e-15, 1 - 1e-15)), AlpacaEval's logloss_continuous; the C of the largest sum of fold scores (the first
// on a tie) is refitted on all rows.

export interface L1LogisticFit {
  /** The coefficients, one per column. */
  coef: number[];
  /** The penalty's C. */
  C: number;
  /** F at coef. */
  objective: number;
  iterations: number;
  /**
   * Whether the fit reached the minimiser: the largest minimum-norm subgradient fell below 1e-9 of its value at b = 0
   * (or 1e-12), or the proximal Newton step fell below 1e-10 (1 + max |b|), or below 1e-8 (1 + max |b|) where F's
   * rounding hides any further decrease, within the iteration limit.
   */
  converged: boolean;
}

/** Rows of features as columns (Float64Array per column), for speed. */
export interface Design {
  /** cols[c][i]: feature c of row i. */
  cols: Float64Array[];
  /** Soft label in [0, 1] per row. */
  p: Float64Array;
  /** Sample weight per row (>= 0). */
  w: Float64Array;
}

function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

function linear(cols: Float64Array[], b: readonly number[], i: number): number {
  let z = 0;
  for (let c = 0; c < cols.length; c++) z += b[c]! * cols[c]![i]!;
  return z;
}

/** The rows of `d` whose indices are in `rows`. */
export function subset(d: Design, rows: readonly number[]): Design {
  const pick = (a: Float64Array): Float64Array => Float64Array.from(rows, (r) => a[r]!);
  return { cols: d.cols.map(pick), p: pick(d.p), w: pick(d.w) };
}

function objective(d: Design, b: readonly number[], C: number): number {
  let s = 0;
  const n = d.p.length;
  for (let i = 0; i < n; i++) {
    const wi = d.w[i]!;
    if (wi === 0) continue;
    const z = linear(d.cols, b, i);
    s += wi * (d.p[i]! * softplus(-z) + (1 - d.p[i]!) * softplus(z));
  }
  let l1 = 0;
  for (const x of b) l1 += Math.abs(x);
  return l1 + C * s;
}

/** Largest |minimum-norm subgradient| of F at b, given the loss gradient g (already times C). */
function optimality(b: readonly number[], g: readonly number[]): number {
  let m = 0;
  for (let j = 0; j < b.length; j++) {
    const v = b[j]! > 0 ? g[j]! + 1 : b[j]! < 0 ? g[j]! - 1 : Math.max(0, Math.abs(g[j]!) - 1);
    m = Math.max(m, Math.abs(v));
  }
  return m;
}

/** The exact minimiser of F (see the file's head). */
export function fitL1Logistic(d: Design, C: number, opts: { maxIterations?: number } = {}): L1LogisticFit {
  const k = d.cols.length;
  const n = d.p.length;
  const maxIter = opts.maxIterations ?? 200;
  const b = new Array<number>(k).fill(0);
  let F = objective(d, b, C);
  let opt0 = NaN;
  let converged = false;
  let iterations = 0;
  for (; iterations < maxIter; iterations++) {
    const g = new Array<number>(k).fill(0);
    const H: number[][] = Array.from({ length: k }, () => new Array<number>(k).fill(0));
    for (let i = 0; i < n; i++) {
      const wi = d.w[i]!;
      if (wi === 0) continue;
      const q = sigmoid(linear(d.cols, b, i));
      const r = wi * (q - d.p[i]!);
      const v = wi * q * (1 - q);
      for (let a = 0; a < k; a++) {
        const xa = d.cols[a]![i]!;
        g[a] += r * xa;
        for (let c = 0; c <= a; c++) H[a]![c] += v * xa * d.cols[c]![i]!;
      }
    }
    for (let a = 0; a < k; a++) {
      g[a] = g[a]! * C;
      for (let c = 0; c <= a; c++) {
        H[a]![c] = H[a]![c]! * C;
        H[c]![a] = H[a]![c]!;
      }
    }
    const opt = optimality(b, g);
    if (iterations === 0) opt0 = opt;
    if (opt <= Math.max(1e-12, 1e-9 * opt0)) {
      converged = true;
      break;
    }
    // The step: minimise g.s + s'Hs/2 + |b + s|_1 by cyclic coordinate descent (k is small).
    const s = new Array<number>(k).fill(0);
    const Hs = new Array<number>(k).fill(0);
    for (let sweep = 0; sweep < 1000; sweep++) {
      let change = 0;
      for (let j = 0; j < k; j++) {
        const hjj = H[j]![j]! + 1e-300;
        const lin = g[j]! + Hs[j]! - H[j]![j]! * s[j]!;
        const u0 = b[j]! - lin / hjj; // unpenalised minimiser of the coordinate's quadratic in u = b_j + s_j
        const u = Math.sign(u0) * Math.max(0, Math.abs(u0) - 1 / hjj);
        const ds = u - b[j]! - s[j]!;
        if (ds !== 0) {
          s[j] = s[j]! + ds;
          for (let a = 0; a < k; a++) Hs[a] = Hs[a]! + H[a]![j]! * ds;
          change = Math.max(change, Math.abs(ds) / (1 + Math.abs(b[j]!)));
        }
      }
      if (change <= 1e-15) break;
    }
    let l1 = 0;
    let l1New = 0;
    let gs = 0;
    let stepMax = 0;
    let bMax = 0;
    for (let j = 0; j < k; j++) {
      l1 += Math.abs(b[j]!);
      l1New += Math.abs(b[j]! + s[j]!);
      gs += g[j]! * s[j]!;
      stepMax = Math.max(stepMax, Math.abs(s[j]!));
      bMax = Math.max(bMax, Math.abs(b[j]!));
    }
    // The step that minimises the local model is negligible: b is the minimiser to within rounding (the gradient's
    // rounding error, about 1e-16 * C * sum |w x|, can keep the subgradient test above its threshold).
    if (stepMax <= 1e-10 * (1 + bMax)) {
      converged = true;
      break;
    }
    const delta = gs + l1New - l1; // the model's predicted decrease (<= 0)
    if (!(delta < 0)) {
      converged = stepMax <= 1e-8 * (1 + bMax);
      break;
    }
    if (-delta <= 1e-10 * (1 + Math.abs(F))) {
      // Near the minimiser F's rounding hides the decrease a line search would test: take the full step (the
      // quadratic model is exact to far better than that here) and test again.
      for (let j = 0; j < k; j++) b[j] = b[j]! + s[j]!;
      F = objective(d, b, C);
      continue;
    }
    let t = 1;
    let next = b.map((x, j) => x + s[j]!);
    let Fn = objective(d, next, C);
    while (!(Fn <= F + 1e-4 * t * delta) && t > 1e-10) {
      t /= 2;
      next = b.map((x, j) => x + t * s[j]!);
      Fn = objective(d, next, C);
    }
    if (!(Fn < F)) {
      // No decrease that F's rounding can show: the minimiser, if the step that would reach it is small.
      converged = stepMax <= 1e-8 * (1 + bMax);
      break;
    }
    for (let j = 0; j < k; j++) b[j] = next[j]!;
    F = Fn;
  }
  return { coef: b, C, objective: F, iterations, converged };
}

/** numpy.logspace(-4, 4, n). */
export function defaultCs(n = 10): number[] {
  return Array.from({ length: n }, (_, i) => 10 ** (-4 + (8 * i) / (n - 1)));
}

/** The fold of each row under GroupKFold(nSplits) with one group per row (scikit-learn >= 1.6). */
export function groupKFoldOfRows(m: number, nSplits = 5): Int32Array {
  if (m < nSplits) throw new RangeError(`the ${nSplits}-fold cross-validation of the length-controlled GLM needs at least ${nSplits} rows with a preference, got ${m}`);
  return Int32Array.from({ length: m }, (_, r) => (m - 1 - r) % nSplits);
}

/** AlpacaEval's logloss_continuous: mean over rows of w_i times the soft-label log loss of the clipped prediction. */
export function weightedSoftLogLoss(d: Design, coef: readonly number[]): number {
  const n = d.p.length;
  let s = 0;
  for (let i = 0; i < n; i++) {
    const q = Math.min(1 - 1e-15, Math.max(1e-15, sigmoid(linear(d.cols, coef, i))));
    s += d.w[i]! * (d.p[i]! * Math.log(q) + (1 - d.p[i]!) * Math.log(1 - q));
  }
  return -s / n;
}

export interface L1CrossValidation {
  /** The refit on all rows with the chosen C. */
  fit: L1LogisticFit;
  Cs: number[];
  /** scores[f][c]: minus the weighted soft log loss of fold f's test rows, fitted on the others with Cs[c]. */
  scores: number[][];
  /** Index of the chosen C in Cs. */
  bestIndex: number;
  /** Whether every fit (all folds and Cs, and the refit) converged. */
  converged: boolean;
}

/** Grouped K-fold choice of C and the refit (see the file's head). */
export function crossValidateL1Logistic(d: Design, opts: { Cs?: number[]; nSplits?: number } = {}): L1CrossValidation {
  const Cs = opts.Cs ?? defaultCs();
  const nSplits = opts.nSplits ?? 5;
  const m = d.p.length;
  const fold = groupKFoldOfRows(m, nSplits);
  const scores: number[][] = [];
  let converged = true;
  for (let f = 0; f < nSplits; f++) {
    const train: number[] = [];
    const test: number[] = [];
    for (let r = 0; r < m; r++) (fold[r] === f ? test : train).push(r);
    const dTrain = subset(d, train);
    const dTest = subset(d, test);
    scores.push(
      Cs.map((C) => {
        const fit = fitL1Logistic(dTrain, C);
        converged &&= fit.converged;
        return -weightedSoftLogLoss(dTest, fit.coef);
      }),
    );
  }
  let bestIndex = 0;
  let best = -Infinity;
  for (let c = 0; c < Cs.length; c++) {
    let s = 0;
    for (let f = 0; f < nSplits; f++) s += scores[f]![c]!;
    if (s > best) {
      best = s;
      bestIndex = c;
    }
  }
  const fit = fitL1Logistic(d, Cs[bestIndex]!);
  return { fit, Cs, scores, bestIndex, converged: converged && fit.converged };
}
