// Stage 5, evaluation: pi_t's responses to the held-out prompts against pi_0's (iter-0/eval-responses.jsonl,
// generated once), judged by the evaluation judge: win rate, its standard error, the length-controlled win
// rate (iter-t/eval.json). With several ranks the responses are generated sharded (generate.ts) and rank 0
// judges them and writes eval.json (the same numbers as one process: the responses are the same).
import { existsSync } from 'node:fs';
import type { PreferenceOracle } from '../../judge/oracle.js';
import { evaluate, reportJson } from '../../eval/evaluate.js';
import type { Tokenizer } from '../../text/tokenizer.js';
import { readJson, readJsonl, writeJsonAtomic } from '../run_dir.js';
import { generateStage } from './generate.js';
import { JudgeStageError } from './judge.js';
import { isLeader, SEED_EVAL, sync, timing, type GenerationLine, type Item, type SamplingConfig, type StageContext } from './context.js';

export interface EvalSummary {
  n: number;
  winRate: number | null;
  standardError: number | null;
  lcWinRate: number | null;
  avgLength: number | null;
  avgReferenceLength: number | null;
}

export interface EvalPrompts {
  items: Item[];
  itemByIndex: Map<number, Item>;
  sampling: SamplingConfig;
  tokenizer: Tokenizer;
}

/** The model's response to each held-out prompt (iteration 0: pi_0's, the reference), read back when finished. */
export async function evalResponses(ctx: StageContext, t: number, modelDir: string, prompts: EvalPrompts): Promise<GenerationLine[]> {
  const out = ctx.rd.path(t, 'eval-responses.jsonl');
  if (existsSync(out)) return readJsonl<GenerationLine>(out);
  return generateStage(ctx, { t, stage: 'eval-generate', modelDir, items: prompts.items, sampling: prompts.sampling, tokenizer: prompts.tokenizer, seedParts: [ctx.cfg.seed, SEED_EVAL], out });
}

export interface EvalInput {
  t: number;
  /** pi_t's folder. */
  checkpoint: string;
  prompts: EvalPrompts;
  /** pi_0's responses. */
  baseline: GenerationLine[];
  /** The evaluation judge, loaded on first use. */
  judge: () => Promise<PreferenceOracle>;
  /** The evaluation judge's usage and verdict counts, when it keeps them (an HTTP judge). */
  judgeStats?: () => Record<string, unknown> | undefined;
}

/** Evaluates iteration t's checkpoint against pi_0 unless iter-t/eval.json is finished; logs and returns the summary. */
export async function evalIteration(ctx: StageContext, input: EvalInput): Promise<EvalSummary> {
  const { cfg, rd, progress } = ctx;
  const { t } = input;
  const evalPath = rd.path(t, 'eval.json');
  let report: Record<string, unknown>;
  if (existsSync(evalPath)) report = readJson<Record<string, unknown>>(evalPath);
  else {
    const resp = await evalResponses(ctx, t, input.checkpoint, input.prompts);
    if (!isLeader(ctx)) {
      await sync(ctx);
      return summaryOf(ctx, t, readJson<Record<string, unknown>>(evalPath));
    }
    const t0 = performance.now();
    const ej = await input.judge();
    const base = new Map(input.baseline.map((b) => [b.index, b]));
    const evalItemsNow = resp
      .filter((r) => !r.skipped && !base.get(r.index)?.skipped)
      .map((r) => ({ prompt: input.prompts.itemByIndex.get(r.index)!.judgePrompt, output: r.responses[0]!.text, reference: base.get(r.index)!.responses[0]!.text }));
    if (evalItemsNow.length === 0) {
      throw new JudgeStageError(`iteration ${t}, evaluation: every one of the ${resp.length} held-out prompts was skipped (too long or empty: see ${rd.path(t, 'eval-responses.jsonl')} and iter-0's)`);
    }
    progress.start(`iter ${t} eval`, evalItemsNow.length, 0);
    let rep;
    try {
      rep = await evaluate(ej, evalItemsNow, { batchSize: cfg.judgeChunk, onProgress: (d) => progress.update(d) });
    } catch (e) {
      throw new JudgeStageError(`iteration ${t}, evaluation: ${(e as Error).message}`);
    } finally {
      progress.stop();
    }
    report = reportJson(rep, { iteration: t, model: `iter-${t}/checkpoint`, reference: 'iter-0/eval-responses.jsonl (pi_0)' });
    const stats = input.judgeStats?.();
    if (stats) {
      report.judgeStats = stats;
      const v = stats.verdicts as { total: number; unparseable: number } | undefined;
      if (v) ctx.log(`sppo run: iteration ${t}: evaluation judge: ${v.unparseable} unparseable verdicts of ${v.total} (counted as ties); ${JSON.stringify(stats.usage)}`);
    }
    writeJsonAtomic(evalPath, report);
    timing(ctx, t, 'eval', t0);
    await sync(ctx);
  }
  return summaryOf(ctx, t, report);
}

function summaryOf(ctx: StageContext, t: number, report: Record<string, unknown>): EvalSummary {
  const num = (k: string): number | null => (typeof report[k] === 'number' ? (report[k] as number) : null);
  const summary: EvalSummary = { n: Number(report.n), winRate: num('winRate'), standardError: num('standardError'), lcWinRate: num('lcWinRate'), avgLength: num('avgLength'), avgReferenceLength: num('avgReferenceLength') };
  const f = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(3));
  ctx.log(`sppo run: iteration ${t}: win rate vs pi_0 ${f(summary.winRate)} ± ${f(summary.standardError)} (LC ${f(summary.lcWinRate)}, n = ${summary.n})`);
  return summary;
}
