// What each style of answer wins in a demo run's own training samples: per iteration, the style shares of the K
// samples per prompt, how often each style's answers are correct, and each style's mean win rate against the other
// samples of its prompt (the row means of the K x K matrix, as the loop's win rates) under the run's judge (its
// stored preferences.jsonl) and under the gold judge (recomputed on the same pairs). The style exploitability of
// docs/demo.md measures the style mix in the style game of equally correct answers; these win rates are the
// incentive the judges actually give the policy, correctness included: when one style's answers are wrong more
// often, both judges rate that style below 1/2, and a method that follows its judge moves away from the style
// game's equilibrium (`sppo demo style-game --run DIR`).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonl } from '../util/files.js';
import type { GenerationLine, PreferenceLine } from '../sppo/loop.js';
import { goldPreference, isCorrect } from './gold_judge.js';
import { parseResponse, STYLES, type Style } from './tasks.js';

export interface StyleWinRates {
  iteration: number;
  /** Samples read (prompts x K). */
  samples: number;
  /** Per style: share of the samples, share of its answers that are correct, mean win rate under the run's judge and the gold judge. */
  share: Record<Style, number>;
  correct: Record<Style, number>;
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
