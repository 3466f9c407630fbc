// Stage 3, pairs: per prompt, the chosen and rejected responses (highest / lowest win rate, src/sppo/pairs.ts;
// with `pairs: ranked` also the next pairs inwards, one line each)
// with their token ids, win-rate targets and reference log-probs (iter-t/pairs.jsonl); the training examples.
import { existsSync } from 'node:fs';
import { mixSeed } from '../../util/rng.js';
import { forEachJsonl } from '../../util/files.js';
import { RunDirError, writeJsonlAtomic } from '../run_dir.js';
import { selectPairs } from '../pairs.js';
import type { TrainExample } from '../trainer.js';
import { idOf, isLeader, SEED_PAIRS, type GenerationLine, type PairLine, type PreferenceLine, type StageContext } from './context.js';

export interface PairsInput {
  t: number;
  /** The iteration's generations that were not skipped, and their preferences. */
  used: GenerationLine[];
  prefs: PreferenceLine[];
  /** Reference log-probs from generation (stored in the pairs) or recomputed by the trainer (left out). */
  refSource: 'generation' | 'recompute';
}

/** Iteration t's pairs: iter-t/pairs.jsonl, read back when finished. */
export function pairsIteration(ctx: StageContext, input: PairsInput): PairLine[] {
  const { cfg, rd } = ctx;
  const { t, used, prefs, refSource } = input;
  const pairsPath = rd.path(t, 'pairs.jsonl');
  if (existsSync(pairsPath)) return readPairLines(pairsPath);
  const byIndex = new Map(used.map((g) => [g.index, g]));
  const mode = cfg.pairs ?? 'best-worst';
  const pairs: PairLine[] = prefs.flatMap((p) => {
    const g = byIndex.get(p.index);
    if (!g) throw new RunDirError(`${rd.path(t, 'preferences.jsonl')}: prompt #${p.index} is not in ${rd.path(t, 'generations.jsonl')}`);
    const sels = selectPairs(p.matrix, { mode, seed: mixSeed(cfg.seed, t, SEED_PAIRS), promptIndex: p.index, responses: g.responses.map((r) => r.text), ...(p.id !== undefined ? { promptId: p.id } : {}) });
    return sels.map((sel): PairLine => {
      const w = g.responses[sel.chosen]!;
      const l = g.responses[sel.rejected]!;
      return {
        index: p.index,
        ...idOf(p),
        chosen: sel.chosen,
        rejected: sel.rejected,
        chosen_win_rate: sel.chosenWinRate,
        rejected_win_rate: sel.rejectedWinRate,
        chosen_over_rejected: sel.chosenOverRejected,
        degenerate: sel.degenerate,
        ...(sel.degenerateReason ? { degenerate_reason: sel.degenerateReason } : {}),
        prompt_ids: g.prompt_ids,
        chosen_ids: w.token_ids,
        rejected_ids: l.token_ids,
        ...(refSource === 'generation' ? { chosen_ref_logprob: w.logprob, rejected_ref_logprob: l.logprob } : {}),
      };
    });
  });
  // Every rank computes the same pairs (no randomness beyond the seeded tie-breaks); rank 0 writes them.
  if (isLeader(ctx)) writeJsonlAtomic(pairsPath, pairs);
  return pairs;
}

/**
 * iter-t/pairs.jsonl read back (a resumed run, or one whose pairs a user edited): every field the trainer uses
 * is checked, and an error names the file, the line and the field.
 */
export function readPairLines(path: string): PairLine[] {
  const out: PairLine[] = [];
  forEachJsonl(path, (v, where) => {
    const bad = (field: string, want: string): never => {
      const got = (v as Record<string, unknown>)[field];
      throw new RunDirError(`${where}: ${field} must be ${want}, ${got === undefined ? 'and is missing' : `got ${JSON.stringify(got).slice(0, 80)}`}`);
    };
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new RunDirError(`${where}: expected an object`);
    const o = v as Record<string, unknown>;
    const check = (keys: string[], ok: (x: unknown) => boolean, want: string): void => {
      for (const k of keys) if (!ok(o[k])) bad(k, want);
    };
    const isIds = (min: number) => (x: unknown): boolean => Array.isArray(x) && x.length >= min && x.every((id) => Number.isInteger(id) && id >= 0);
    check(['index', 'chosen', 'rejected'], (x) => Number.isInteger(x) && (x as number) >= 0, 'a whole number >= 0');
    check(['chosen_win_rate', 'rejected_win_rate', 'chosen_over_rejected'], (x) => typeof x === 'number' && x >= 0 && x <= 1, 'a number in [0, 1]');
    check(['degenerate'], (x) => typeof x === 'boolean', 'true or false');
    check(['prompt_ids'], isIds(1), 'a list of token ids (whole numbers >= 0), not empty');
    check(['chosen_ids', 'rejected_ids'], isIds(0), 'a list of token ids (whole numbers >= 0)');
    check(['chosen_ref_logprob', 'rejected_ref_logprob'], (x) => x === undefined || (typeof x === 'number' && Number.isFinite(x)), 'a finite number');
    out.push(o as unknown as PairLine);
  }, RunDirError);
  return out;
}

/** The trainer's examples: the pairs that are not degenerate. */
export function trainingExamples(pairs: PairLine[]): TrainExample[] {
  return pairs
    .filter((p) => !p.degenerate)
    .map((p) => ({
      promptIds: p.prompt_ids,
      chosenIds: p.chosen_ids,
      rejectedIds: p.rejected_ids,
      chosenWinRate: p.chosen_win_rate,
      rejectedWinRate: p.rejected_win_rate,
      chosenOverRejected: p.chosen_over_rejected,
      ...(p.chosen_ref_logprob !== undefined ? { chosenRefLogprob: p.chosen_ref_logprob, rejectedRefLogprob: p.rejected_ref_logprob! } : {}),
    }));
}
