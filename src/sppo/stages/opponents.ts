// The extra stages of the last-iterate losses that judge the iteration's responses against another policy's
// samples (src/sppo/last_iterate.ts):
//   omwu           prev-generations.jsonl: K samples per prompt from pi_{t-2} (the previous iteration's policy);
//                  prev-preferences.jsonl: each response of pi_{t-1} judged against them (K x K cross matrix).
//   extragradient  lookahead-generations.jsonl: K samples per prompt from the look-ahead policy pi_{t-1/2};
//                  lookahead-preferences.jsonl: each response of pi_{t-1} judged against them.
//   nash-md        mixture-generations.jsonl: from t = 2, K samples per prompt from the token-level geometric
//                  mixture pi_{t-1}^(1 - eta tau) pi_0^(eta tau); mixture-preferences.jsonl: judged against them.
// Each row's mean is the response's win rate against that policy, as the K x K matrix's is against pi_{t-1}.
import { existsSync } from 'node:fs';
import { preferenceMatrices } from '../../judge/judge.js';
import { checkAnswers, symmetrize, type PreferenceOracle, type PreferenceQuery } from '../../judge/oracle.js';
import type { Tokenizer } from '../../text/tokenizer.js';
import { readJsonl, writeJsonlAtomic } from '../run_dir.js';
import { generateStage } from './generate.js';
import { JudgeStageError } from './judge.js';
import { idOf, isLeader, promptLabel, SEED_GENERATE, sync, timing, type GenerationLine, type Item, type SamplingConfig, type StageContext } from './context.js';

/** The opponents a response is judged against: the previous policy's samples, the look-ahead policy's, or the mixture's. */
export type OpponentKind = 'prev' | 'lookahead' | 'mixture';

const SALT: Record<OpponentKind, number> = { prev: 0x9e7, lookahead: 0x10a, mixture: 0x3d1 };

/** One prompt's cross judgments: matrix[i][k] = P(response i > opponent k), win_rates[i] = its row mean. */
export interface CrossLine {
  index: number;
  id?: string | number;
  matrix: number[][];
  win_rates: number[];
}

/** K samples per prompt from `modelDir` (mixed with `mixture`'s model when given): iter-t/<kind>-generations.jsonl, read back when finished. */
export async function opponentSamples(
  ctx: StageContext,
  input: { t: number; kind: OpponentKind; modelDir: string; mixture?: { modelDir: string; coef: number }; items: Item[]; sampling: SamplingConfig; tokenizer: Tokenizer },
): Promise<GenerationLine[]> {
  const { t, kind } = input;
  const out = ctx.rd.path(t, `${kind}-generations.jsonl`);
  if (existsSync(out)) return readJsonl<GenerationLine>(out);
  return generateStage(ctx, {
    t, stage: `${kind}-generate`, modelDir: input.modelDir, items: input.items, sampling: input.sampling, tokenizer: input.tokenizer, seedParts: [ctx.cfg.seed, t, SEED_GENERATE, SALT[kind]], out,
    ...(input.mixture ? { mixture: input.mixture } : {}),
  });
}

/**
 * P(a_i > b_k) for every pair of one prompt: a judge that makes whole matrices scores the union of both lists
 * (the cross block is kept); otherwise one query per pair, both orders for a position-biased judge (symmetrized as
 * preferenceMatrix does).
 */
export async function crossMatrix(judge: PreferenceOracle, prompt: string, a: string[], b: string[]): Promise<number[][]> {
  if (judge.preferenceMatrices) {
    const [m] = await preferenceMatrices(judge, [{ prompt, responses: [...a, ...b] }]);
    return a.map((_, i) => b.map((_, k) => m![i]![a.length + k]!));
  }
  const pairs: [number, number][] = [];
  for (let i = 0; i < a.length; i++) for (let k = 0; k < b.length; k++) pairs.push([i, k]);
  const queries: PreferenceQuery[] = pairs.map(([i, k]) => ({ prompt, a: a[i]!, b: b[k]! }));
  if (judge.positionBiased) for (const [i, k] of pairs) queries.push({ prompt, a: b[k]!, b: a[i]! });
  const p = checkAnswers(judge.name, await judge.prefer(queries), queries.length);
  const m = a.map(() => new Array<number>(b.length).fill(0.5));
  pairs.forEach(([i, k], q) => {
    m[i]![k] = judge.positionBiased ? symmetrize(p[q]!, p[pairs.length + q]!) : p[q]!;
  });
  return m;
}

/** The iteration's responses judged against the opponents' samples: iter-t/<kind>-preferences.jsonl (rank 0 judges). */
export async function crossJudge(
  ctx: StageContext,
  input: { t: number; kind: OpponentKind; used: GenerationLine[]; opponents: GenerationLine[]; itemByIndex: Map<number, Item>; judge: () => Promise<PreferenceOracle> },
): Promise<CrossLine[]> {
  const { t, kind } = input;
  const out = ctx.rd.path(t, `${kind}-preferences.jsonl`);
  if (!existsSync(out) && isLeader(ctx)) {
    const t0 = performance.now();
    const opp = new Map(input.opponents.map((g) => [g.index, g]));
    const j = await input.judge();
    const lines: CrossLine[] = [];
    ctx.progress.start(`iter ${t} ${kind}-judge`, input.used.length, 0);
    try {
      for (const g of input.used) {
        const o = opp.get(g.index);
        if (!o || o.skipped || o.responses.length === 0) throw new JudgeStageError(`iteration ${t}, ${promptLabel(g.index, g.id)}: no ${kind} samples to judge against (${ctx.rd.path(t, `${kind}-generations.jsonl`)})`);
        let m: number[][];
        try {
          m = await crossMatrix(j, input.itemByIndex.get(g.index)!.judgePrompt, g.responses.map((r) => r.text), o.responses.map((r) => r.text));
        } catch (e) {
          throw new JudgeStageError(`iteration ${t} ${kind}-judge, ${promptLabel(g.index, g.id)}: ${(e as Error).message ?? String(e)}`);
        }
        lines.push({ index: g.index, ...idOf(g), matrix: m, win_rates: m.map((row) => row.reduce((s, x) => s + x, 0) / row.length) });
        ctx.progress.update(lines.length);
      }
    } finally {
      ctx.progress.stop();
    }
    writeJsonlAtomic(out, lines);
    timing(ctx, t, `${kind}-judge`, t0);
  }
  await sync(ctx);
  return readJsonl<CrossLine>(out);
}
