// Stage 2, judging: the K x K preference matrix of each prompt's responses and their win rates
// (iter-t/preferences.jsonl), in chunks of `judgeChunk` prompts, each saved (a unit of resumption). With several
// ranks, chunk c is rank c mod worldSize's; rank 0 writes the stage's file.
import { existsSync } from 'node:fs';
import { preferenceMatrices, preferenceMatrix } from '../../judge/judge.js';
import { isProbability, type PreferenceItem, type PreferenceOracle, type PreferenceQuery } from '../../judge/oracle.js';
import { readJsonl, writeJsonlAtomic } from '../run_dir.js';
import { winRates } from '../winrates.js';
import { idOf, isLeader, ownsChunk, promptLabel, sync, timing, type GenerationLine, type Item, type PreferenceLine, type StageContext } from './context.js';

/** A judge's failure or invalid answer during a run; the message names the judge and the prompt. */
export class JudgeStageError extends Error {
  override name = 'JudgeStageError';
}

/**
 * The judge with its answers checked: one probability per query, else JudgeStageError naming the judge. A judge
 * that makes whole matrices (preferenceMatrices) keeps that method; its matrices are checked by preferenceMatrices().
 */
export function checkedOracle(judge: PreferenceOracle): PreferenceOracle {
  const matrices = judge.preferenceMatrices
    ? { preferenceMatrices: (items: PreferenceItem[]): Promise<number[][][]> => judge.preferenceMatrices!(items) }
    : {};
  return {
    ...matrices,
    get name() {
      return judge.name;
    },
    get positionBiased() {
      return judge.positionBiased;
    },
    async prefer(batch: PreferenceQuery[]): Promise<number[]> {
      const got: unknown = await judge.prefer(batch);
      if (!Array.isArray(got) || got.length !== batch.length) {
        throw new JudgeStageError(`judge '${judge.name}': prefer() returned ${Array.isArray(got) ? `${got.length} values` : String(got)} for ${batch.length} queries`);
      }
      got.forEach((v, i) => {
        if (!isProbability(v)) {
          throw new JudgeStageError(`judge '${judge.name}': returned ${String(v)} for query ${i} of a batch, not a probability in [0, 1]`);
        }
      });
      return got as number[];
    },
    dispose() {
      judge.dispose?.();
    },
  };
}

export interface JudgeInput {
  t: number;
  /** The iteration's generations that were not skipped. */
  used: GenerationLine[];
  itemByIndex: Map<number, Item>;
  /** The judge, loaded on first use (a finished stage loads none). */
  judge: () => Promise<PreferenceOracle>;
}

/** Iteration t's preferences: iter-t/preferences.jsonl, read back when finished. */
export async function judgeIteration(ctx: StageContext, input: JudgeInput): Promise<PreferenceLine[]> {
  const { rd, progress, cfg } = ctx;
  const { t, used, itemByIndex } = input;
  const prefPath = rd.path(t, 'preferences.jsonl');
  if (existsSync(prefPath)) return readJsonl<PreferenceLine>(prefPath);
  const t0 = performance.now();
  const nChunks = Math.ceil(used.length / cfg.judgeChunk);
  const prefs: PreferenceLine[] = [];
  // The judge is loaded by a rank with a chunk to judge.
  let j: PreferenceOracle | undefined;
  progress.start(`iter ${t} judge`, used.length, 0);
  try {
    for (let c = 0; c < nChunks; c++) {
      const path = rd.chunkPath(t, 'judge', c);
      let lines: PreferenceLine[];
      if (!ownsChunk(ctx, c)) continue;
      if (existsSync(path)) lines = readJsonl<PreferenceLine>(path);
      else {
        j ??= await input.judge();
        lines = [];
        const chunk = used.slice(c * cfg.judgeChunk, (c + 1) * cfg.judgeChunk);
        // A judge that makes whole matrices gets the chunk's prompts in one call (batched across prompts).
        let batched: number[][][] | undefined;
        if (j.preferenceMatrices) {
          try {
            batched = await preferenceMatrices(j, chunk.map((g) => ({ prompt: itemByIndex.get(g.index)!.judgePrompt, responses: g.responses.map((r) => r.text) })));
          } catch (e) {
            const first = chunk[0]!;
            const last = chunk[chunk.length - 1]!;
            throw new JudgeStageError(`iteration ${t}, ${promptLabel(first.index, first.id)} to ${promptLabel(last.index, last.id)}: ${(e as Error).message ?? String(e)}`);
          }
        }
        for (const [n, g] of chunk.entries()) {
          const item = itemByIndex.get(g.index)!;
          let matrix: number[][];
          try {
            matrix = batched ? batched[n]! : await preferenceMatrix(j, item.judgePrompt, g.responses.map((r) => r.text));
          } catch (e) {
            throw new JudgeStageError(`iteration ${t}, ${promptLabel(g.index, g.id)}: ${(e as Error).message ?? String(e)}`);
          }
          let wr: Float64Array;
          try {
            wr = winRates(matrix, { promptIndex: g.index, ...(g.id !== undefined ? { promptId: g.id } : {}) });
          } catch (e) {
            throw new JudgeStageError(`iteration ${t}, judge '${j.name}': ${(e as Error).message}`);
          }
          lines.push({ index: g.index, ...idOf(g), matrix: matrix.map((row) => Array.from(row)), win_rates: Array.from(wr) });
          progress.update(prefs.length + lines.length);
        }
        writeJsonlAtomic(path, lines);
        ctx.kill(t, 'judge', c + 1);
      }
      prefs.push(...lines);
      progress.update(prefs.length);
    }
  } finally {
    progress.stop();
  }
  if (ctx.dist) {
    // All ranks' chunks, in chunk order.
    await sync(ctx);
    prefs.length = 0;
    for (let c = 0; c < nChunks; c++) prefs.push(...readJsonl<PreferenceLine>(rd.chunkPath(t, 'judge', c)));
    await sync(ctx);
  }
  if (isLeader(ctx)) {
    writeJsonlAtomic(prefPath, prefs);
    rd.dropPartial(t, 'judge');
  }
  timing(ctx, t, 'judge', t0);
  return prefs;
}
