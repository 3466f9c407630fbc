// Turning one prompt's preference matrix into SPPO training targets.
//
// Pair mode (default): chosen y_w = the response with the highest win rate P^(y > pi_t | x),
// rejected y_l = the one with the lowest. Both win rates are returned (the `sppo` loss regresses
// log(pi/pi_t) of y_w and y_l towards eta * (P^ - 1/2)) together with P(y_w > y_l) = M[w][l]
// (used by the `sppo_single` variant).
//
// Ranked mode (`selectPairs` with mode 'ranked'): the responses paired from the outside in by win rate,
// best with worst, then second best with second worst, ...; the first pair is the pair mode's.
//
// All-responses mode (`allResponses: true`): every response is a target with its own win rate.
//
// Ties (win rates within `tieTolerance`) are broken uniformly at random with a generator seeded by
// (seed, promptIndex) (see rng.ts), so the selection is deterministic for a given seed and prompt
// index and independent of the order in which prompts are processed.

import { createRng } from '../util/rng.js';
import { winRates, type MatrixCheckOptions, type PreferenceMatrix } from './winrates.js';

export interface SelectOptions extends MatrixCheckOptions {
  /** Tie-breaking seed (safe integer). */
  seed: number;
  /** Index of the prompt (safe integer); with `seed` it determines the tie-breaking stream. */
  promptIndex: number;
  /** The K response texts, if known: used to avoid and to detect pairs of identical texts. */
  responses?: ReadonlyArray<string>;
  /** Win rates closer than this count as tied. Default 1e-9 (absorbs summation-order rounding). */
  tieTolerance?: number;
}

export type DegenerateReason = 'single-response' | 'all-identical' | 'identical-pair';

export interface PreferencePair {
  kind: 'pair';
  promptIndex: number;
  promptId?: string | number;
  /** Index of the chosen response y_w (highest win rate). */
  chosen: number;
  /** Index of the rejected response y_l (lowest win rate). */
  rejected: number;
  /** P^(y_w > pi_t | x). */
  chosenWinRate: number;
  /** P^(y_l > pi_t | x). */
  rejectedWinRate: number;
  /** P(y_w > y_l | x) = M[w][l]. */
  chosenOverRejected: number;
  /** All K win rates. */
  winRates: Float64Array;
  /**
   * True when the pair carries no signal and the trainer should skip it: K < 2; or all responses
   * have the same win rate and the same text; or (with texts given) chosen and rejected texts are
   * identical even after preferring a different-text rejected among the tied candidates.
   */
  degenerate: boolean;
  degenerateReason?: DegenerateReason;
}

export interface ResponseTarget {
  index: number;
  winRate: number;
}

export interface AllResponseTargets {
  kind: 'all';
  promptIndex: number;
  promptId?: string | number;
  /** Every response, in input order, with its own win rate as target. */
  targets: ResponseTarget[];
  winRates: Float64Array;
  /** True when K < 2, or all responses have the same win rate and (texts given) the same text. */
  degenerate: boolean;
  degenerateReason?: DegenerateReason;
}

function checkOptions(k: number, opts: SelectOptions): number {
  if (!Number.isSafeInteger(opts.seed)) throw new RangeError(`seed must be a safe integer, got ${opts.seed}`);
  if (!Number.isSafeInteger(opts.promptIndex)) throw new RangeError(`promptIndex must be a safe integer, got ${opts.promptIndex}`);
  if (opts.responses !== undefined && opts.responses.length !== k) {
    throw new RangeError(`prompt ${opts.promptId !== undefined ? JSON.stringify(opts.promptId) : `#${opts.promptIndex}`}: ${opts.responses.length} response texts for a ${k} x ${k} matrix`);
  }
  const tol = opts.tieTolerance ?? 1e-9;
  if (!(tol >= 0)) throw new RangeError(`tieTolerance must be >= 0, got ${tol}`);
  return tol;
}

function allTextsIdentical(responses: ReadonlyArray<string> | undefined): boolean {
  return responses !== undefined && responses.every((r) => r === responses[0]);
}

function allTied(wr: Float64Array, tol: number): boolean {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of wr) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return hi - lo <= tol;
}

/** Chosen / rejected pair for one prompt (see module comment). */
export function selectPair(matrix: PreferenceMatrix, opts: SelectOptions): PreferencePair {
  return selectPairs(matrix, { ...opts, mode: 'best-worst' })[0]!;
}

/**
 * How many pairs a prompt gives: 'best-worst' (the paper's practice, one pair: highest and lowest win rate) or
 * 'ranked' (the responses paired from the outside in by win rate: best with worst, second best with second worst,
 * and so on; each response in at most one pair, the middle one of an odd K left out; the first pair is
 * 'best-worst''s own). With the `sppo` loss, which regresses each response of a pair on its own target, 'ranked'
 * trains on K - (K mod 2) responses per prompt, nearer Algorithm 1 of the paper (every sample with its win rate).
 */
export const PAIR_MODES = ['best-worst', 'ranked'] as const;
export type PairMode = (typeof PAIR_MODES)[number];

/** The pairs of one prompt under `mode` (see PairMode); degenerate pairs are marked, not dropped. */
export function selectPairs(matrix: PreferenceMatrix, opts: SelectOptions & { mode: PairMode }): PreferencePair[] {
  const wr = winRates(matrix, opts);
  const k = wr.length;
  const tol = checkOptions(k, opts);
  const base = { kind: 'pair' as const, promptIndex: opts.promptIndex, ...(opts.promptId !== undefined ? { promptId: opts.promptId } : {}), winRates: wr };
  if (k < 2) {
    return [{ ...base, chosen: 0, rejected: 0, chosenWinRate: wr[0]!, rejectedWinRate: wr[0]!, chosenOverRejected: 0.5, degenerate: true, degenerateReason: 'single-response' }];
  }
  const texts = opts.responses;
  const rng = createRng(opts.seed, opts.promptIndex);
  const pairs: PreferencePair[] = [];
  let pool = Array.from({ length: k }, (_, i) => i);
  while (pool.length >= 2) {
    let max = -Infinity;
    let min = Infinity;
    for (const i of pool) {
      max = Math.max(max, wr[i]!);
      min = Math.min(min, wr[i]!);
    }
    const top = pool.filter((i) => wr[i]! >= max - tol);
    const chosen = top[rng.int(top.length)]!;
    let bottom = pool.filter((i) => i !== chosen && wr[i]! <= min + tol);
    if (texts !== undefined) {
      const differing = bottom.filter((i) => texts[i] !== texts[chosen]);
      if (differing.length > 0) bottom = differing;
    }
    const rejected = bottom[rng.int(bottom.length)]!;

    let degenerateReason: DegenerateReason | undefined;
    if (pairs.length === 0 && allTied(wr, tol) && allTextsIdentical(texts)) degenerateReason = 'all-identical';
    else if (texts !== undefined && texts[chosen] === texts[rejected]) degenerateReason = 'identical-pair';
    pairs.push({
      ...base,
      chosen,
      rejected,
      chosenWinRate: wr[chosen]!,
      rejectedWinRate: wr[rejected]!,
      chosenOverRejected: matrix[chosen]![rejected]!,
      degenerate: degenerateReason !== undefined,
      ...(degenerateReason !== undefined ? { degenerateReason } : {}),
    });
    if (opts.mode === 'best-worst' || degenerateReason === 'all-identical') break;
    pool = pool.filter((i) => i !== chosen && i !== rejected);
  }
  return pairs;
}

/** Every response with its own win rate as target (the `allResponses: true` mode). */
export function allResponseTargets(matrix: PreferenceMatrix, opts: Omit<SelectOptions, 'seed'> & { seed?: number }): AllResponseTargets {
  const wr = winRates(matrix, opts);
  const k = wr.length;
  const tol = checkOptions(k, { ...opts, seed: opts.seed ?? 0 });
  let degenerateReason: DegenerateReason | undefined;
  if (k < 2) degenerateReason = 'single-response';
  else if (allTied(wr, tol) && allTextsIdentical(opts.responses)) degenerateReason = 'all-identical';
  return {
    kind: 'all',
    promptIndex: opts.promptIndex,
    ...(opts.promptId !== undefined ? { promptId: opts.promptId } : {}),
    targets: Array.from(wr, (winRate, index) => ({ index, winRate })),
    winRates: wr,
    degenerate: degenerateReason !== undefined,
    ...(degenerateReason !== undefined ? { degenerateReason } : {}),
  };
}

/** Dispatch on `allResponses`: a chosen/rejected pair (default) or all responses as targets. */
export function selectTargets(matrix: PreferenceMatrix, opts: SelectOptions & { allResponses: true }): AllResponseTargets;
export function selectTargets(matrix: PreferenceMatrix, opts: SelectOptions & { allResponses?: false }): PreferencePair;
export function selectTargets(matrix: PreferenceMatrix, opts: SelectOptions & { allResponses?: boolean }): PreferencePair | AllResponseTargets;
export function selectTargets(matrix: PreferenceMatrix, opts: SelectOptions & { allResponses?: boolean }): PreferencePair | AllResponseTargets {
  return opts.allResponses ? allResponseTargets(matrix, opts) : selectPair(matrix, opts);
}
