// AlpacaEval 2.0 run locally: a model's outputs against the gpt4_1106_preview reference outputs, judged by the
// weighted_alpaca_eval_gpt4_turbo annotator's prompt (src/judge/templates/alpaca_eval.ts) on any
// OpenAI-compatible endpoint. As AlpacaEval does (annotators/pairwise_evaluator.py, metrics/):
//  * output_1 is the reference (generator_1), output_2 the model (generator_2); the order shown to the judge
//    is randomized per instruction (seeded by the instruction text here), and the preference mapped back;
//  * preference in [1, 2] (2 = the model's output is better), 1.5 for identical outputs without asking the
//    judge; an answer with no verdict is NaN (null in the annotations) and is left out of the win rate;
//  * win_rate = mean(preference - 1) x 100, standard_error = its sem x 100, n_wins / n_wins_base / n_draws
//    counted on > / < / = 1/2, discrete_win_rate = (n_wins + n_draws / 2) / n_total x 100, avg_length =
//    int(mean len(output)) in code points, mode 'community';
//  * length_controlled_winrate and lc_standard_error from the length-controlled GLM of ../length_controlled.ts
//    (lc_standard_error as AlpacaEval computes it: the sem of the GLM's per-instruction predictions with the
//    length term at 0 -- constant without instruction difficulties, so 0 here; see docs/eval.md), plus a
//    bootstrap standard error of the LC win rate, which this project adds.
import type { OpenAIJudge } from '../../judge/openai.js';
import { alpacaEvalRequest, parseAlpacaEval } from '../../judge/templates/alpaca_eval.js';
import { charLength, countVerdicts, meanAndSem } from '../winrate.js';
import { lengthControlledWinRate, type LcMethod } from '../length_controlled.js';
import { alpacaEvalPreference, type GamedBaselines } from './alpaca_eval_files.js';
import { createRng, mixSeed } from '../../util/rng.js';
import { bootstrap } from '../bootstrap.js';
import type { VerdictMethod } from '../../judge/templates/template.js';

export const ALPACA_EVAL_ANNOTATOR = 'weighted_alpaca_eval_gpt4_turbo';
export const ALPACA_EVAL_REFERENCE_FILE = 'alpaca_eval2_ref_gpt4_1106_preview_outputs.json';

export interface AlpacaEvalItem {
  instruction: string;
  dataset?: string;
  /** The model's output. */
  output: string;
  /** The reference (gpt4_1106_preview) output. */
  reference: string;
}

export interface AlpacaEvalAnnotation {
  dataset?: string;
  instruction: string;
  output_1: string;
  generator_1: string;
  output_2: string;
  generator_2: string;
  annotator: string;
  /** In [1, 2]: 2 = output_2 (the model) better; null: no verdict. */
  preference: number | null;
  /** How the verdict was read: logprobs, text, identical (no call) or null (none). */
  verdict_method: VerdictMethod | 'identical' | null;
  /** Whether the model's output was shown first (as "m"). */
  model_shown_first: boolean;
  raw_completion: string;
}

export interface AlpacaEvalLeaderboardRow {
  name: string;
  win_rate: number;
  standard_error: number;
  n_wins: number;
  n_wins_base: number;
  n_draws: number;
  n_total: number;
  discrete_win_rate: number;
  mode: string;
  avg_length: number;
  length_controlled_winrate: number;
  lc_standard_error: number;
}

export interface AlpacaEvalResult {
  annotations: AlpacaEvalAnnotation[];
  leaderboard: AlpacaEvalLeaderboardRow;
  /** What this project adds to the row. */
  extra: {
    /**
     * Which GLM gave the LC win rate: 'length_controlled_v1' (AlpacaEval's, with the gamed baselines and the
     * difficulties), or an approximate form without AlpacaEval's Hugging Face files (see docs/eval.md).
     */
    lc_method: LcMethod;
    /** Bootstrap standard error (x 100) of the LC win rate over the annotations (200 resamples, seeded, C fixed). */
    lc_standard_error_bootstrap: number;
    /**
     * Only that the optimiser converged: every fit of the cross-validation and the refit reached its optimality
     * tolerance. It says nothing of whether the GLM describes the judge, nor of lc_method's approximation.
     */
    lc_converged: boolean;
    /** The L1 penalty's C that the cross-validation chose. */
    lc_C: number;
    /** The GLM's coefficients in AlpacaEval's names and signs (its weights CSV), or null without a fit. */
    lc_coefficients: Record<string, number> | null;
    /** Why there is no LC win rate (e.g. fewer preferences than the 5 folds). */
    lc_error?: string;
    n_unparseable: number;
    verdict_methods: Record<string, number>;
  };
}

/** Whether the model's output is shown first for this instruction (AlpacaEval randomizes, seeded by instruction). */
export function modelShownFirst(instruction: string, seed = 0): boolean {
  let h = 0;
  for (const ch of instruction) h = mixSeed(h, ch.codePointAt(0)!);
  return (createRng(seed, h).nextUint32() & 1) === 1;
}

/** Judges every item; identical outputs are ties without a call. */
export async function annotateAlpacaEval(
  judge: OpenAIJudge,
  items: readonly AlpacaEvalItem[],
  opts: { generator: string; referenceGenerator?: string; maxTokens?: number; topLogprobs?: number; onProgress?: (done: number) => void } = { generator: 'model' },
): Promise<AlpacaEvalAnnotation[]> {
  let done = 0;
  const ro = { ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}), ...(opts.topLogprobs !== undefined ? { topLogprobs: opts.topLogprobs } : {}) };
  return Promise.all(
    items.map(async (it) => {
      const first = modelShownFirst(it.instruction);
      const base: Omit<AlpacaEvalAnnotation, 'preference' | 'verdict_method' | 'raw_completion'> = {
        ...(it.dataset !== undefined ? { dataset: it.dataset } : {}),
        instruction: it.instruction,
        output_1: it.reference,
        generator_1: opts.referenceGenerator ?? 'gpt4_1106_preview',
        output_2: it.output,
        generator_2: opts.generator,
        annotator: ALPACA_EVAL_ANNOTATOR,
        model_shown_first: first,
      };
      let a: AlpacaEvalAnnotation;
      if (it.output === it.reference) {
        a = { ...base, preference: 1.5, verdict_method: 'identical', raw_completion: '' };
        judge.noteVerdict('identical');
      } else {
        const [m, M] = first ? [it.output, it.reference] : [it.reference, it.output];
        const v = parseAlpacaEval(await judge.complete(alpacaEvalRequest(it.instruction, m, M, ro)));
        judge.noteVerdict(v.p === null ? null : v.method);
        // v.p = P(the output shown as "m" is better); preference = 1 + P(model better).
        const pModel = v.p === null ? null : first ? v.p : 1 - v.p;
        a = { ...base, preference: pModel === null ? null : 1 + pModel, verdict_method: v.p === null ? null : v.method, raw_completion: v.raw };
      }
      opts.onProgress?.(++done);
      return a;
    }),
  );
}

/** The inputs of AlpacaEval's length_controlled_v1 GLM that AlpacaEval downloads from the Hugging Face Hub. */
export interface AlpacaEvalGlmInputs {
  /** df_gamed.csv's rows and its per-row difficulty lookup (parseGamedBaselinesCsv). */
  gamed?: GamedBaselines;
  /** instruction_difficulty.csv (parseInstructionDifficultyCsv); used when `gamed` is absent. */
  instructionDifficulty?: Map<number, number>;
}

/**
 * The leaderboard row of the annotations (and what this project adds). The annotations are in AlpacaEval's format
 * (output_1 the reference, output_2 the model, preference 1..2, 0 a tie, null none), in the evaluation set's order:
 * the instruction difficulty of annotation i is looked up by its row number i, as AlpacaEval does.
 */
export function alpacaEvalMetrics(annotations: readonly AlpacaEvalAnnotation[], name: string, modelOutputs: readonly string[], glm: AlpacaEvalGlmInputs = {}): AlpacaEvalResult {
  const pAll = annotations.map((a, i) => alpacaEvalPreference(a.preference, `annotations[${i}].preference`));
  const scoredIdx = pAll.flatMap((p, i) => (Number.isNaN(p) ? [] : [i]));
  const methods: Record<string, number> = {};
  for (const a of annotations) methods[String(a.verdict_method)] = (methods[String(a.verdict_method)] ?? 0) + 1;
  let len = 0;
  for (const o of modelOutputs) len += charLength(o);
  const avgLength = Math.trunc(len / Math.max(1, modelOutputs.length));
  const lcMethod: LcMethod = glm.gamed ? 'length_controlled_v1' : glm.instructionDifficulty ? 'tanh+difficulty+baseline (approximate)' : 'tanh+baseline (approximate)';
  if (scoredIdx.length === 0) {
    // No verdict at all (a judge whose answers cannot be parsed): the row says so with NaN, as AlpacaEval's would.
    return {
      annotations: [...annotations],
      leaderboard: { name, win_rate: NaN, standard_error: NaN, n_wins: 0, n_wins_base: 0, n_draws: 0, n_total: 0, discrete_win_rate: NaN, mode: 'community', avg_length: avgLength, length_controlled_winrate: NaN, lc_standard_error: NaN },
      extra: { lc_method: lcMethod, lc_standard_error_bootstrap: NaN, lc_converged: false, lc_C: NaN, lc_coefficients: null, n_unparseable: annotations.length, verdict_methods: methods },
    };
  }
  const p = scoredIdx.map((i) => pAll[i]!);
  const { mean, sem } = meanAndSem(p);
  const { nWins, nLosses: nBase, nTies: nDraws } = countVerdicts(p);
  // The difficulty of each row, looked up by row number.
  let difficulties: number[] | undefined;
  const lookup = glm.gamed?.difficultyByRow ?? glm.instructionDifficulty;
  if (lookup) {
    const what = glm.gamed ? 'the gamed-baselines file (df_gamed.csv: its row numbers of the first row of each index)' : 'the instruction-difficulty file';
    difficulties = annotations.map((_, i) => {
      const d = lookup.get(i);
      if (d === undefined) throw new RangeError(`annotation ${i}: ${what} has no instruction_difficulty for row ${i} (AlpacaEval looks it up by the annotation's row number)`);
      return d;
    });
  }
  const refLens = annotations.map((a) => charLength(a.output_1));
  const modelLens = annotations.map((a) => charLength(a.output_2));
  const isBaseline = annotations.length > 0 && annotations.every((a) => a.generator_2 === a.generator_1);
  const opts = { ...(difficulties ? { difficulties } : {}), ...(glm.gamed ? { gamed: glm.gamed.rows } : {}) };
  let lcRate: number;
  let lcSe: number;
  let lcConverged: boolean;
  let lcC = NaN;
  let coefficients: Record<string, number> | null;
  let boots: number[] = [];
  let lcError: string | undefined;
  if (isBaseline) {
    // AlpacaEval: the baseline against itself is 50 by construction (weights 0).
    lcRate = 0.5;
    lcSe = 0;
    lcConverged = true;
    coefficients = { 'np.tanh(std_delta_len)': 0, instruction_difficulty: 0, 'not_gamed_baseline.astype(float)': 0 };
  } else {
    let lc: ReturnType<typeof lengthControlledWinRate> | undefined;
    try {
      lc = lengthControlledWinRate(pAll, modelLens, refLens, opts);
    } catch (e) {
      // Too few preferences for the 5-fold cross-validation (AlpacaEval's fit raises there too): LC is NaN.
      lcError = (e as Error).message;
    }
    lcRate = lc?.lcWinRate ?? NaN;
    lcSe = lc?.lcStandardError ?? NaN;
    lcConverged = lc?.converged ?? false;
    lcC = lc?.C ?? NaN;
    coefficients = lc ? { ...lc.coefficients } : null;
    // Bootstrap over the model's annotations, the gamed rows fixed, C fixed at the one chosen on all rows.
    if (lc) {
      boots = bootstrap(annotations.length, { rounds: annotations.length > 1 ? 200 : 0, seed: 0x1c }, (idx) => {
        try {
          return lengthControlledWinRate(idx.map((i) => pAll[i]!), idx.map((i) => modelLens[i]!), idx.map((i) => refLens[i]!), {
            ...(difficulties ? { difficulties: idx.map((i) => difficulties![i]!) } : {}),
            ...(glm.gamed ? { gamed: glm.gamed.rows } : {}),
            C: lcC,
          }).lcWinRate;
        } catch {
          return undefined; // a resample without any preference
        }
      });
    }
  }
  return {
    annotations: [...annotations],
    leaderboard: {
      name,
      win_rate: mean * 100,
      standard_error: (Number.isFinite(sem) ? sem : 0) * 100,
      n_wins: nWins,
      n_wins_base: nBase,
      n_draws: nDraws,
      n_total: p.length,
      discrete_win_rate: ((nWins + nDraws / 2) / p.length) * 100,
      mode: 'community',
      avg_length: avgLength,
      length_controlled_winrate: lcRate * 100,
      lc_standard_error: lcSe * 100,
    },
    extra: {
      lc_method: lcMethod,
      lc_standard_error_bootstrap: boots.length > 1 ? meanAndSem(boots).sd * 100 : 0,
      lc_converged: lcConverged,
      lc_C: lcC,
      lc_coefficients: coefficients,
      ...(lcError !== undefined ? { lc_error: lcError } : {}),
      n_unparseable: annotations.length - p.length,
      verdict_methods: methods,
    },
  };
}

const LEADERBOARD_COLUMNS = ['win_rate', 'standard_error', 'n_wins', 'n_wins_base', 'n_draws', 'n_total', 'discrete_win_rate', 'mode', 'avg_length', 'length_controlled_winrate', 'lc_standard_error'] as const;

/** AlpacaEval's leaderboard CSV (its header; one row). */
export function alpacaEvalLeaderboardCsv(row: AlpacaEvalLeaderboardRow): string {
  // NaN is an empty cell, as pandas writes it.
  const cell = (v: string | number): string => (typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return `,${LEADERBOARD_COLUMNS.join(',')}\n${[cell(row.name), ...LEADERBOARD_COLUMNS.map((c) => cell(row[c]))].join(',')}\n`;
}
