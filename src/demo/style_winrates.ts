// What each style of answer wins in a demo run's own training samples: per iteration, the style shares of the K
// samples per prompt, how often each style's answers are correct, and each style's mean win rate against the other
// samples of its prompt (the row means of the K x K matrix, as the loop's win rates) under the run's judge (its
// stored preferences.jsonl) and under the gold judge (recomputed on the same pairs). The style exploitability of
// docs/demo.md measures the style mix in the style game of equally correct answers; these win rates are the
// incentive the judges actually give the policy, correctness included: when one style's answers are wrong more
// often, both judges rate that style below 1/2, and a method that follows its judge moves away from the style
// game's equilibrium (`sppo demo style-game --run DIR`).
//
// playedStyleGame reads the same incentive off a checkpoint's style samples (iter-t/style-samples.jsonl: n samples
// per held-out prompt) and turns it into an exploitability in the game the policy actually plays: a deviator that
// answers every prompt in one style s, with the policy's own skill in that style (its style-s answers), against the
// policy. Its gold win rate W_s, doubled minus one, maximised over the styles, is that game's duality gap, on the
// scale of the style exploitability (2 max_j P(j > mix) - 1): 0 when no style's answers beat the policy's mix.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonl } from '../util/files.js';
import { createRng } from '../util/rng.js';
import type { GenerationLine, PreferenceLine } from '../sppo/loop.js';
import { goldPreference, isCorrect } from './gold_judge.js';
import { parseResponse, STYLES, type Style } from './tasks.js';
import { STYLE_STRATEGIES } from './style_game.js';

/** Per style: its share of the samples read and the share of its answers that are correct. */
interface StyleShares {
  /** Samples read. */
  samples: number;
  share: Record<Style, number>;
  correct: Record<Style, number>;
}

export interface StyleWinRates extends StyleShares {
  iteration: number;
  /** Per style: mean win rate under the run's judge and the gold judge (K x K row means, as the loop's). */
  judge: Record<Style, number>;
  gold: Record<Style, number>;
}

const zero = (): Record<Style, number> => ({ terse: 0, sentence: 0, formatted: 0 });

/** The iterations of a run folder (`OUT/<method>` of the demo) whose generations and preferences are written. */
export function styleWinRates(runDir: string): StyleWinRates[] {
  const runJson = join(runDir, 'run.json');
  if (!existsSync(runJson)) throw new Error(`${runDir}: no run.json (give a run folder of the demo, OUT/<method>)`);
  const cfg = (JSON.parse(readFileSync(runJson, 'utf8')) as { config: { prompts: string; iterations: number } }).config;
  const prompts = readJsonl<{ prompt: string }>(cfg.prompts).map((p) => p.prompt);
  const out: StyleWinRates[] = [];
  for (let t = 1; t <= cfg.iterations; t++) {
    const gen = join(runDir, `iter-${t}`, 'generations.jsonl');
    const pref = join(runDir, `iter-${t}`, 'preferences.jsonl');
    if (!existsSync(gen) || !existsSync(pref)) break;
    const matrices = new Map(readJsonl<PreferenceLine>(pref).map((p) => [p.index, p.matrix]));
    const n = zero(), c = zero(), j = zero(), g = zero();
    let samples = 0;
    for (const line of readJsonl<GenerationLine>(gen)) {
      const M = matrices.get(line.index);
      const prompt = prompts[line.index];
      if (!M || line.responses.length === 0) continue;
      if (prompt === undefined) throw new Error(`${gen}: prompt index ${line.index} is not in ${cfg.prompts}`);
      const texts = line.responses.map((r) => r.text);
      const K = texts.length;
      texts.forEach((a, i) => {
        samples++;
        const s = parseResponse(a).style;
        if (s === 'other') return;
        n[s]++;
        if (isCorrect(prompt, a)) c[s]++;
        j[s] += M[i]!.reduce((x, y) => x + y, 0) / K;
        g[s] += texts.reduce((x, b, k) => x + (k === i ? 0.5 : goldPreference(prompt, a, b)), 0) / K;
      });
    }
    const per = (x: Record<Style, number>, d: (s: Style) => number): Record<Style, number> =>
      Object.fromEntries(STYLES.map((s) => [s, d(s) > 0 ? x[s] / d(s) : NaN])) as Record<Style, number>;
    out.push({ iteration: t, samples, share: per(n, () => samples), correct: per(c, (s) => n[s]), judge: per(j, (s) => n[s]), gold: per(g, (s) => n[s]) });
  }
  return out;
}

export interface PlayedStyleGame extends StyleShares {
  /** Prompts with at least two samples (only their samples are read). */
  prompts: number;
  /** Per style: W_s, the mean gold win rate of its answers against the other samples of their prompt. */
  winRate: Record<Style, number>;
  /** 2 max_s W_s - 1 over the styles and 'other' (>= 0: the samples' mean win rate is exactly 1/2). */
  exploitability: number;
  /** Its standard error: the standard deviation over `boot` resamples of the prompts (with replacement). */
  se: number;
}

/** Resamples of the prompts behind PlayedStyleGame.se, and their seed. */
export const PLAYED_GAME_BOOTSTRAP = { boot: 400, seed: 0x91a7 };

/**
 * The game played, read from samples of one policy: for each prompt its samples (n >= 2; a prompt with fewer is
 * skipped), each sample's gold win rate against the prompt's other samples, averaged per style over all prompts.
 * W_s estimates P(y_s > y') for y_s the policy's answer in style s and y' an independent answer of the policy: the
 * win rate of a deviator that always answers in style s, as well as the policy does in that style. Correctness is
 * part of it (a correct answer beats a wrong one with 0.95), which the style game of equally correct answers leaves
 * out. The estimate pools a style's answers over the prompts where the policy gives them, so a style used more on
 * easy prompts reads stronger; and the maximum of noisy means reads high: the starter, at the style game's
 * equilibrium, is the reference (docs/demo.md).
 */
export function playedStyleGame(prompts: readonly string[], samples: ReadonlyArray<readonly string[]>, o: { boot?: number; seed?: number } = {}): PlayedStyleGame {
  if (prompts.length !== samples.length) throw new Error(`playedStyleGame: ${prompts.length} prompts but ${samples.length} sample lists`);
  const S = STYLE_STRATEGIES.length;
  const idx = new Map<string, number>(STYLE_STRATEGIES.map((s, i) => [s, i]));
  // Per prompt: count, correct count and win-rate sum of each strategy.
  const per: { n: Float64Array; c: Float64Array; w: Float64Array }[] = [];
  let total = 0;
  samples.forEach((texts, p) => {
    const k = texts.length;
    if (k < 2) return;
    const prompt = prompts[p]!;
    const row = { n: new Float64Array(S), c: new Float64Array(S), w: new Float64Array(S) };
    // Each pair judged once: the gold judge is order-free, P(b > a) = 1 - P(a > b).
    const wins = new Float64Array(k);
    for (let i = 0; i < k; i++)
      for (let j = i + 1; j < k; j++) {
        const p = goldPreference(prompt, texts[i]!, texts[j]!);
        wins[i]! += p;
        wins[j]! += 1 - p;
      }
    texts.forEach((a, i) => {
      const s = idx.get(parseResponse(a).style)!;
      row.n[s]!++;
      if (isCorrect(prompt, a)) row.c[s]!++;
      row.w[s]! += wins[i]! / (k - 1);
    });
    total += k;
    per.push(row);
  });
  if (per.length === 0) throw new Error('playedStyleGame: no prompt has two samples or more');
  const gap = (pick: (f: (r: (typeof per)[number]) => void) => void): { n: Float64Array; c: Float64Array; w: Float64Array; ex: number } => {
    const n = new Float64Array(S), c = new Float64Array(S), w = new Float64Array(S);
    pick((r) => {
      for (let s = 0; s < S; s++) {
        n[s]! += r.n[s]!;
        c[s]! += r.c[s]!;
        w[s]! += r.w[s]!;
      }
    });
    let best = -Infinity;
    for (let s = 0; s < S; s++) if (n[s]! > 0) best = Math.max(best, w[s]! / n[s]!);
    return { n, c, w, ex: Math.max(0, 2 * best - 1) };
  };
  const all = gap((f) => per.forEach(f));
  const { boot, seed } = { ...PLAYED_GAME_BOOTSTRAP, ...o };
  const rng = createRng(seed);
  const xs: number[] = [];
  for (let b = 0; b < boot; b++)
    xs.push(gap((f) => {
      for (let i = 0; i < per.length; i++) f(per[rng.int(per.length)]!);
    }).ex);
  const mean = xs.reduce((a, x) => a + x, 0) / boot;
  const se = boot > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (boot - 1)) : NaN;
  const rec = (v: (s: number) => number): Record<Style, number> => Object.fromEntries(STYLES.map((s) => [s, v(idx.get(s)!)])) as Record<Style, number>;
  return {
    prompts: per.length,
    samples: total,
    share: rec((s) => all.n[s]! / total),
    correct: rec((s) => (all.n[s]! > 0 ? all.c[s]! / all.n[s]! : NaN)),
    winRate: rec((s) => (all.n[s]! > 0 ? all.w[s]! / all.n[s]! : NaN)),
    exploitability: all.ex,
    se,
  };
}

/** playedStyleGame of each checkpoint of a demo run folder (OUT/<method>): iter-t/style-samples.jsonl on the run's held-out prompts, t = 0 (the starter) on. */
export function checkpointStyleGames(runDir: string): (PlayedStyleGame & { iteration: number })[] {
  const runJson = join(runDir, 'run.json');
  if (!existsSync(runJson)) throw new Error(`${runDir}: no run.json (give a run folder of the demo, OUT/<method>)`);
  const cfg = (JSON.parse(readFileSync(runJson, 'utf8')) as { config: { iterations: number; eval?: { prompts?: string } } }).config;
  const files: string[] = [];
  for (let t = 0; t <= cfg.iterations && existsSync(join(runDir, `iter-${t}`, 'style-samples.jsonl')); t++) files.push(join(runDir, `iter-${t}`, 'style-samples.jsonl'));
  if (files.length === 0) return [];
  const file = cfg.eval?.prompts;
  if (!file) throw new Error(`${runJson}: config.eval.prompts is not set, so ${files[0]} cannot be read (a demo run evaluates on held-out prompts)`);
  const prompts = readJsonl<{ prompt: string }>(file).map((p) => p.prompt);
  const out: (PlayedStyleGame & { iteration: number })[] = [];
  for (const [t, f] of files.entries()) {
    const rows = readJsonl<{ index: number; responses: string[] }>(f);
    for (const r of rows) if (prompts[r.index] === undefined) throw new Error(`${f}: prompt index ${r.index} is not in ${file}`);
    out.push({ iteration: t, ...playedStyleGame(rows.map((r) => prompts[r.index]!), rows.map((r) => r.responses)) });
  }
  return out;
}
