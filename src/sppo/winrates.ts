// Win rates of sampled responses against the current policy, from a pairwise preference matrix.
//
// For one prompt x with K responses y_1..y_K sampled from pi_t, the judge gives the K x K matrix
//   M[i][j] = P(y_i > y_j | x),  with  M[i][j] + M[j][i] = 1  and  M[i][i] = 1/2.
// SPPO (Wu et al. 2024, Sec. 3 / Alg. 1) estimates the win rate of y_i against the policy by
//   P^(y_i > pi_t | x) = (1/K) * sum_{k=1..K} M[i][k],
// i.e. the average over the K samples *including y_i itself* (self term = 1/2), as the official
// code does (mean over each row of the probability matrix). Consequently sum_i P^(y_i) = K/2.
//
// Pure TypeScript (numbers / Float64Array), no tensors.

import { isProbability, symmetrize } from '../judge/oracle.js';

/** A K x K matrix as rows (arrays, Float64Arrays, ...). */
export type PreferenceMatrix = ReadonlyArray<ArrayLike<number>>;

export interface MatrixCheckOptions {
  /** Allowed |M[i][j] + M[j][i] - 1| and |M[i][i] - 1/2|. Default 1e-6. */
  tolerance?: number;
  /** Index of the prompt in its data set, used in error messages (and for seeding elsewhere). */
  promptIndex?: number;
  /** Id of the prompt, used in error messages in preference to the index. */
  promptId?: string | number;
}

export const DEFAULT_MATRIX_TOLERANCE = 1e-6;

/** Thrown for a malformed preference matrix; the message names the prompt and the entry. */
export class PreferenceMatrixError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PreferenceMatrixError';
  }
}

function promptLabel(opts: MatrixCheckOptions | undefined): string {
  if (opts?.promptId !== undefined) return `prompt ${JSON.stringify(opts.promptId)}`;
  if (opts?.promptIndex !== undefined) return `prompt #${opts.promptIndex}`;
  return 'preference matrix';
}

/**
 * Check that `m` is a square matrix of probabilities in [0, 1] with M + M^T = 1 (within
 * `tolerance`) and diagonal 1/2 (within `tolerance`). Returns K. Throws PreferenceMatrixError naming
 * the prompt (id, else index) and the offending entry.
 */
export function validatePreferenceMatrix(m: PreferenceMatrix, opts?: MatrixCheckOptions): number {
  const tol = opts?.tolerance ?? DEFAULT_MATRIX_TOLERANCE;
  const where = promptLabel(opts);
  if (!(tol >= 0)) throw new RangeError(`tolerance must be >= 0, got ${tol}`);
  const k = m.length;
  if (k === 0) throw new PreferenceMatrixError(`${where}: empty preference matrix (K = 0)`);
  for (let i = 0; i < k; i++) {
    const row = m[i];
    if (row === undefined || row.length !== k) {
      throw new PreferenceMatrixError(`${where}: preference matrix is not square: row ${i} has ${row === undefined ? 'no' : row.length} entries, expected K = ${k}`);
    }
  }
  for (let i = 0; i < k; i++) {
    const row = m[i]!;
    for (let j = 0; j < k; j++) {
      const v = row[j]!;
      if (!isProbability(v)) {
        throw new PreferenceMatrixError(`${where}: entry M[${i}][${j}] = ${v} is not a probability in [0, 1]`);
      }
    }
  }
  for (let i = 0; i < k; i++) {
    const d = m[i]![i]!;
    if (Math.abs(d - 0.5) > tol) {
      throw new PreferenceMatrixError(`${where}: diagonal entry M[${i}][${i}] = ${d} should be 1/2 (a response ties with itself), tolerance ${tol}`);
    }
    for (let j = i + 1; j < k; j++) {
      const a = m[i]![j]!;
      const b = m[j]![i]!;
      if (Math.abs(a + b - 1) > tol) {
        throw new PreferenceMatrixError(
          `${where}: M[${i}][${j}] + M[${j}][${i}] = ${a} + ${b} = ${a + b}, expected 1 (tolerance ${tol}); ` +
            'query the judge in both orders and combine with symmetrize()',
        );
      }
    }
  }
  return k;
}

/**
 * Win rates P^(y_i > pi_t | x) = (1/K) sum_k M[i][k] for one prompt (validated first). The self
 * term M[i][i] is taken as exactly 1/2.
 */
export function winRates(m: PreferenceMatrix, opts?: MatrixCheckOptions): Float64Array {
  const k = validatePreferenceMatrix(m, opts);
  const out = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    const row = m[i]!;
    let s = 0.5;
    for (let j = 0; j < k; j++) if (j !== i) s += row[j]!;
    out[i] = s / k;
  }
  return out;
}

/** Win rates for many prompts; prompt i is reported as promptIds?.[i] ?? index i in errors. */
export function winRatesBatch(
  matrices: ReadonlyArray<PreferenceMatrix>,
  opts?: { tolerance?: number; promptIds?: ReadonlyArray<string | number> },
): Float64Array[] {
  return matrices.map((m, i) => {
    const o: MatrixCheckOptions = { promptIndex: i };
    if (opts?.tolerance !== undefined) o.tolerance = opts.tolerance;
    const id = opts?.promptIds?.[i];
    if (id !== undefined) o.promptId = id;
    return winRates(m, o);
  });
}

// symmetrize lives with the judges (src/judge/oracle.ts); re-exported here, where it always was.
export { symmetrize };

/**
 * Full matrix version of symmetrize(): `ordered[i][j]` is the judge's probability that the response
 * shown first (y_i) beats the one shown second (y_j), for all i != j (diagonal ignored). Returns
 * M[i][j] = (ordered[i][j] + 1 - ordered[j][i]) / 2 for i < j, M[j][i] = 1 - M[i][j] and M[i][i] = 1/2,
 * so M + M^T = 1 exactly in floating point up to the rounding of 1 - x.
 */
export function symmetrizeOrdered(ordered: PreferenceMatrix): number[][] {
  const k = ordered.length;
  for (let i = 0; i < k; i++) {
    if (ordered[i]?.length !== k) throw new PreferenceMatrixError(`symmetrizeOrdered: matrix is not square: row ${i} has ${ordered[i]?.length ?? 0} entries, expected ${k}`);
  }
  const out: number[][] = Array.from({ length: k }, () => new Array<number>(k).fill(0.5));
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const p = symmetrize(ordered[i]![j]!, ordered[j]![i]!);
      out[i]![j] = p;
      out[j]![i] = 1 - p;
    }
  }
  return out;
}

/**
 * A Bradley-Terry preference matrix from per-response scores (e.g. reward-model logits):
 * M[i][j] = sigmoid((s_i - s_j) / temperature), diagonal 1/2.
 */
export function matrixFromScores(scores: ArrayLike<number>, temperature = 1): number[][] {
  if (!(temperature > 0)) throw new RangeError(`matrixFromScores: temperature must be > 0, got ${temperature}`);
  const k = scores.length;
  const out: number[][] = Array.from({ length: k }, () => new Array<number>(k).fill(0.5));
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const d = (scores[i]! - scores[j]!) / temperature;
      if (!Number.isFinite(d)) throw new RangeError(`matrixFromScores: non-finite score difference for (${i}, ${j})`);
      const p = d >= 0 ? 1 / (1 + Math.exp(-d)) : Math.exp(d) / (1 + Math.exp(d));
      out[i]![j] = p;
      out[j]![i] = 1 - p;
    }
  }
  return out;
}
