// The leaf of src/judge: what a preference oracle is (PreferenceOracle, PreferenceQuery), its error
// (JudgeError), the check of its answers (probabilities: finite numbers in [0, 1]), and the arithmetic on
// them (sigmoid, symmetrize). The other judge files, and src/sppo and src/eval, import these from here; this
// file imports nothing.

export interface PreferenceQuery {
  prompt: string;
  a: string;
  b: string;
}

/** One prompt and its K responses, for a judge that makes whole preference matrices. */
export interface PreferenceItem {
  prompt: string;
  responses: string[];
}

export interface PreferenceOracle {
  readonly name: string;
  /** P(a > b) in [0, 1] for each query, batched. */
  prefer(batch: PreferenceQuery[]): Promise<number[]>;
  /** true when the judge may favour a position: then both orders are queried and combined. */
  readonly positionBiased: boolean;
  /**
   * Optional: the K x K matrix M[i][j] = P(y_i > y_j) of each item at once (diagonal 1/2, M + M^T = 1), for a
   * judge that batches across prompts or whose probabilities depend on all K responses (PairRM's rank mode).
   * When present, preferenceMatrix() uses it instead of prefer().
   */
  preferenceMatrices?(items: PreferenceItem[]): Promise<number[][][]>;
  dispose?(): void;
}

/** A judge answered something that is not a probability, or failed. */
export class JudgeError extends Error {
  override name = 'JudgeError';
}

/** A model judge's dtype option, checked (the floating dtypes a judge's model runs in); `who` starts the error. */
export function judgeDtype(who: string, dtype: string | undefined): 'float32' | 'bfloat16' | 'float16' | undefined {
  if (dtype === undefined || dtype === '') return undefined;
  if (dtype === 'float32' || dtype === 'bfloat16' || dtype === 'float16') return dtype;
  throw new JudgeError(`${who}: dtype must be float32, bfloat16 or float16, got '${dtype}'`);
}

/** Whether a judge's answer is a probability: a finite number in [0, 1]. */
export function isProbability(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1;
}

/** Checks a judge's answers: one per query, each a finite number in [0, 1]. */
export function checkAnswers(judge: string, answers: unknown, n: number): number[] {
  if (!Array.isArray(answers)) throw new JudgeError(`${judge}: prefer() returned ${typeof answers}, expected an array of ${n} probabilities`);
  if (answers.length !== n) throw new JudgeError(`${judge}: prefer() returned ${answers.length} values for ${n} queries`);
  answers.forEach((v, i) => {
    if (!isProbability(v)) {
      throw new JudgeError(`${judge}: query ${i}: returned ${JSON.stringify(v) ?? String(v)}, expected a number in [0, 1]`);
    }
  });
  return answers as number[];
}

/**
 * Checks a judge's preference matrix for K responses: K rows of K probabilities, diagonal 1/2 and
 * M[i][j] + M[j][i] = 1 (to 1e-9: a judge computes one of the two as 1 minus the other).
 */
export function checkMatrix(judge: string, m: unknown, k: number, where = ''): number[][] {
  const at = where ? ` (${where})` : '';
  if (!Array.isArray(m) || m.length !== k || m.some((row) => !Array.isArray(row) || row.length !== k)) {
    throw new JudgeError(`${judge}: preferenceMatrices() returned a matrix that is not ${k} x ${k}${at}`);
  }
  const rows = m as unknown[][];
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const v = rows[i]![j];
      if (!isProbability(v)) throw new JudgeError(`${judge}: M[${i}][${j}] = ${JSON.stringify(v) ?? String(v)} is not a number in [0, 1]${at}`);
      if (i === j && v !== 0.5) throw new JudgeError(`${judge}: M[${i}][${i}] = ${v}, expected 1/2 on the diagonal${at}`);
      if (j > i && Math.abs(v + (rows[j]![i] as number) - 1) > 1e-9) throw new JudgeError(`${judge}: M[${i}][${j}] + M[${j}][${i}] = ${v + (rows[j]![i] as number)}, expected 1${at}`);
    }
  }
  return rows as number[][];
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/**
 * Combine a judge queried in both orders into one position-debiased probability.
 *
 *   forward  = P_fwd(a > b): the judge's probability that a wins when shown as (a, b);
 *   backward = P_bwd(b > a): the judge's probability that b wins when shown as (b, a).
 *
 * The backward query says P(a > b) = 1 - P_bwd(b > a); averaging the two estimates gives
 *   p = (P_fwd(a > b) + 1 - P_bwd(b > a)) / 2.
 * Swapping the roles (symmetrize(backward, forward)) gives exactly 1 - p (up to rounding), so
 * P(a > b) + P(b > a) = 1 holds by construction, and a constant position bias cancels to first order.
 */
export function symmetrize(forward: number, backward: number): number {
  for (const [name, v] of [['forward', forward], ['backward', backward]] as const) {
    if (!isProbability(v)) throw new RangeError(`symmetrize: ${name} = ${v} is not a probability in [0, 1]`);
  }
  return (forward + 1 - backward) / 2;
}
