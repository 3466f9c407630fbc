// The leaf of src/judge: what a preference oracle is (PreferenceOracle, PreferenceQuery), its error
// (JudgeError), the check of its answers (probabilities: finite numbers in [0, 1]), and the arithmetic on
// them (sigmoid, symmetrize). The other judge files, and src/sppo and src/eval, import these from here; this
// file imports nothing.

export interface PreferenceQuery {
  prompt: string;
  a: string;
  b: string;
}

export interface PreferenceOracle {
  readonly name: string;
  /** P(a > b) in [0, 1] for each query, batched. */
  prefer(batch: PreferenceQuery[]): Promise<number[]>;
  /** true when the judge may favour a position: then both orders are queried and combined. */
  readonly positionBiased: boolean;
  dispose?(): void;
}

/** A judge answered something that is not a probability, or failed. */
export class JudgeError extends Error {
  override name = 'JudgeError';
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
