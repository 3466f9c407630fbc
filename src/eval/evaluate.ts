// Evaluation of a model's responses against reference responses by a pairwise judge: win rate (ties
// count half) with its standard error, AlpacaEval 2.0's length-controlled win rate, and average
// lengths. Used by `sppo eval` and by the evaluation stage of `sppo run`.
//
// The judge is any object with the shape of src/judge's PreferenceOracle (`prefer(batch)` gives, per
// query {prompt, a, b}, the probability that a beats b). The model's response is shown as `a`; a
// position-biased judge is also asked with the two swapped, and the two answers are combined as
// p = (P(a > b) + 1 - P(b > a)) / 2 (symmetrize in src/sppo/winrates.ts).
import { existsSync } from 'node:fs';
import { isProbability } from '../judge/oracle.js';
import { readJsonRecords } from '../util/records.js';
import { computeWinRate, type WinRateSummary } from './winrate.js';
import { lengthControlledWinRateFromTexts } from './length_controlled.js';

/** The part of a judge (src/judge's PreferenceOracle) that evaluation uses. */
export interface PairwiseJudge {
  readonly name: string;
  readonly positionBiased: boolean;
  prefer(batch: { prompt: string; a: string; b: string }[]): Promise<number[]>;
}

export interface EvalItem {
  /** The prompt as the judge sees it (plain text). */
  prompt: string;
  /** The evaluated model's response. */
  output: string;
  /** The reference response. */
  reference: string;
}

export interface EvalReport extends WinRateSummary {
  /** Length-controlled win rate (AlpacaEval 2.0's GLM; NaN when it cannot be fitted). */
  lcWinRate: number;
  /** Whether the length-controlled fit converged (false e.g. when the judge always prefers one side). */
  lcConverged: boolean;
  avgLength: number;
  avgReferenceLength: number;
  judge: string;
  /** p_i = P(output_i beats reference_i), one per item. */
  preferences: number[];
}

/** A judge's failure or invalid answer; the message names the judge and the item. */
export class EvalJudgeError extends Error {
  override name = 'EvalJudgeError';
}

function check(judge: PairwiseJudge, got: unknown, expected: number, first: number): number[] {
  if (!Array.isArray(got) || got.length !== expected) {
    throw new EvalJudgeError(`judge '${judge.name}': prefer() returned ${Array.isArray(got) ? `${got.length} values` : typeof got} for a batch of ${expected} (items ${first}..${first + expected - 1})`);
  }
  got.forEach((v, i) => {
    if (!isProbability(v)) {
      throw new EvalJudgeError(`judge '${judge.name}': returned ${String(v)} for item ${first + i}, not a probability in [0, 1]`);
    }
  });
  return got as number[];
}

export interface JudgeOptions {
  /** Items per call of prefer() (default 32). */
  batchSize?: number;
  /** Called with the number of items judged so far. */
  onProgress?: (done: number) => void;
}

/** P(output_i beats reference_i) for every item. */
export async function judgeAgainstReference(judge: PairwiseJudge, items: readonly EvalItem[], opts: JudgeOptions = {}): Promise<number[]> {
  const bs = opts.batchSize ?? 32;
  const out: number[] = [];
  for (let s = 0; s < items.length; s += bs) {
    const chunk = items.slice(s, s + bs);
    const call = async (q: { prompt: string; a: string; b: string }[]): Promise<number[]> => {
      let got: unknown;
      try {
        got = await judge.prefer(q);
      } catch (e) {
        throw new EvalJudgeError(`judge '${judge.name}' failed on items ${s}..${s + chunk.length - 1}: ${(e as Error).message ?? String(e)}`);
      }
      return check(judge, got, q.length, s);
    };
    const fwd = await call(chunk.map((it) => ({ prompt: it.prompt, a: it.output, b: it.reference })));
    if (judge.positionBiased) {
      const bwd = await call(chunk.map((it) => ({ prompt: it.prompt, a: it.reference, b: it.output })));
      fwd.forEach((p, i) => out.push((p + 1 - bwd[i]!) / 2));
    } else {
      out.push(...fwd);
    }
    opts.onProgress?.(out.length);
  }
  return out;
}

/** Win rate, standard error, counts, lengths and the length-controlled win rate of given preferences. */
export function summarizeEval(preferences: readonly number[], outputs: readonly string[], references: readonly string[], judgeName = ''): EvalReport {
  const base = computeWinRate(preferences, { outputs, references });
  let lcWinRate = NaN;
  let lcConverged = false;
  try {
    // The plain maximum-likelihood fit of tanh + intercept: these evaluations compare two policies of this project on
    // its own prompts, so AlpacaEval's gamed-baseline rows and instruction difficulties (and its L1 / CV fit, which
    // needs 5 rows or more) do not apply; figures measured before that fit existed stay comparable.
    const lc = lengthControlledWinRateFromTexts(preferences, outputs, references, { penalty: 'none' });
    lcWinRate = lc.lcWinRate;
    lcConverged = lc.converged;
  } catch {
    /* the GLM could not be fitted: reported as NaN (null in JSON) */
  }
  return {
    ...base,
    lcWinRate,
    lcConverged,
    avgLength: base.avgLength!,
    avgReferenceLength: base.avgReferenceLength!,
    judge: judgeName,
    preferences: [...preferences],
  };
}

/** judgeAgainstReference + summarizeEval. */
export async function evaluate(judge: PairwiseJudge, items: readonly EvalItem[], opts: JudgeOptions = {}): Promise<EvalReport> {
  if (items.length === 0) throw new RangeError('evaluate: no items');
  const prefs = await judgeAgainstReference(judge, items, opts);
  return summarizeEval(prefs, items.map((i) => i.output), items.map((i) => i.reference), judge.name);
}

/** A model output for an instruction (AlpacaEval's layout). */
export interface OutputRecord {
  instruction: string;
  output: string;
  generator?: string;
}

export class OutputsFileError extends Error {
  override name = 'OutputsFileError';
}

/** Where each record read from a file stands (`file:line`, or `file: record N`), for errors about it later. */
const recordWhere = new WeakMap<OutputRecord, string>();

function recordOf(v: unknown, where: string): OutputRecord {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new OutputsFileError(`${where}: expected an object`);
  const o = v as Record<string, unknown>;
  const instruction = typeof o.instruction === 'string' ? o.instruction : typeof o.prompt === 'string' ? o.prompt : undefined;
  if (instruction === undefined) throw new OutputsFileError(`${where}: no "instruction" (or "prompt") string`);
  let output: string | undefined;
  if (typeof o.output === 'string') output = o.output;
  else if (Array.isArray(o.responses) && o.responses.length > 0) {
    const r = o.responses[0] as unknown;
    output = typeof r === 'string' ? r : r && typeof r === 'object' && typeof (r as { text?: unknown }).text === 'string' ? (r as { text: string }).text : undefined;
  }
  if (output === undefined) throw new OutputsFileError(`${where}: no "output" string (or "responses"[0].text)`);
  const record: OutputRecord = { instruction, output, ...(typeof o.generator === 'string' ? { generator: o.generator } : {}) };
  recordWhere.set(record, where);
  return record;
}

/**
 * Reads model outputs: AlpacaEval's JSON array of {instruction, output, generator}, or JSONL with
 * {instruction | prompt, output} or `sppo generate`'s lines ({prompt, responses: [{text}, ...]}: the first response).
 */
export function readOutputsFile(path: string): OutputRecord[] {
  if (!existsSync(path)) throw new OutputsFileError(`${path}: no such file`);
  const out = readJsonRecords(path, OutputsFileError).map(({ value, where }) => recordOf(value, where));
  if (out.length === 0) throw new OutputsFileError(`${path}: no outputs`);
  return out;
}

/**
 * Pairs outputs with references by instruction text (the first reference of each instruction); an
 * instruction with no reference is an error naming it.
 */
export function pairByInstruction(outputs: readonly OutputRecord[], references: readonly OutputRecord[]): EvalItem[] {
  const ref = new Map<string, string>();
  for (const r of references) if (!ref.has(r.instruction)) ref.set(r.instruction, r.output);
  return outputs.map((o, i) => {
    const r = ref.get(o.instruction);
    if (r === undefined) {
      const where = recordWhere.get(o) ?? `output ${i + 1}`;
      const refs = references.length > 0 ? recordWhere.get(references[0]!)?.replace(/(:\d+|: record \d+)$/, '') : undefined;
      throw new OutputsFileError(`${where}: no reference output${refs ? ` in ${refs}` : ''} for the instruction ${JSON.stringify(o.instruction.slice(0, 80))}`);
    }
    return { prompt: o.instruction, output: o.output, reference: r };
  });
}

/** The report as JSON (NaN written as null). */
export function reportJson(r: EvalReport, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const fix = (x: number): number | null => (Number.isFinite(x) ? x : null);
  return {
    ...extra,
    judge: r.judge,
    n: r.n,
    winRate: fix(r.winRate),
    standardError: fix(r.standardError),
    lcWinRate: fix(r.lcWinRate),
    lcConverged: r.lcConverged,
    nWins: r.nWins,
    nLosses: r.nLosses,
    nTies: r.nTies,
    avgLength: fix(r.avgLength),
    avgReferenceLength: fix(r.avgReferenceLength),
    preferences: r.preferences,
  };
}
