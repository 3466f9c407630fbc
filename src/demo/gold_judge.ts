// The demo's gold judge: a programmatic preference between two responses to a prompt of the task family
// (src/demo/tasks.ts). Its rules (also in docs/demo.md and the README, written before any result):
//
//   1. Correctness. A response is correct when it is written in one of the three styles and its answer is the
//      task's answer. If exactly one of a, b is correct: P(a > b) = 0.95 (a correct) or 0.05 (b correct).
//   2. Otherwise (equal correctness) P(a > b) = clamp(S + L, 0.02, 0.98) with
//      S, the style term, a deliberate 3-cycle:  terse "8"  >  sentence "It is 8."  >  formatted "Answer: 8"
//        >  terse, each won with probability 0.7 (so S = 0.7 or 0.3); a styled response beats
//        one in no style ('other') with 0.8; same style (or both 'other'): S = 0.5;
//      L, a mild length term in favour of the longer response: L = 0.1 * clamp((len(a) - len(b)) / 20, -1, 1),
//        lengths in characters (Unicode code points).
//
// P(a > b) + P(b > a) = 1 exactly, P(a > a) = 1/2, and it does not depend on the order of presentation. The
// style cycle means no reward r(x, y) with P = sigmoid(r(a) - r(b)) explains it (rule 2 on three correct
// answers in the three styles: r(terse) > r(sentence) > r(formatted) > r(terse) is impossible).
import type { PreferenceOracle, PreferenceQuery } from '../judge/judge.js';
import { parseResponse, STYLES, taskOf, type Style } from './tasks.js';

export const GOLD_RULES = {
  correctWins: 0.95,
  cycleWins: 0.7,
  styledBeatsOther: 0.8,
  lengthWeight: 0.1,
  lengthScale: 20,
  clamp: [0.02, 0.98] as const,
};

/** The cycle: the style each style beats. */
export const BEATS: Record<Style, Style> = { terse: 'sentence', sentence: 'formatted', formatted: 'terse' };

export interface Verdict {
  p: number;
  aCorrect: boolean;
  bCorrect: boolean;
  aStyle: Style | 'other';
  bStyle: Style | 'other';
}

const len = (s: string): number => [...s].length;

/** Whether a response answers the prompt correctly (in one of the three styles). */
export function isCorrect(prompt: string, response: string): boolean {
  const task = taskOf(prompt);
  if (!task) throw new Error(`gold judge: '${prompt}' is not a prompt of the demo's task family`);
  const r = parseResponse(response);
  return r.style !== 'other' && r.payload === task.answer;
}

export function styleTerm(a: Style | 'other', b: Style | 'other'): number {
  if (a === b) return 0.5;
  if (a === 'other') return 1 - GOLD_RULES.styledBeatsOther;
  if (b === 'other') return GOLD_RULES.styledBeatsOther;
  return BEATS[a] === b ? GOLD_RULES.cycleWins : 1 - GOLD_RULES.cycleWins;
}

/** The length term L for two responses of lengths `lenA`, `lenB` (characters). */
export function lengthTermOf(lenA: number, lenB: number): number {
  const d = (lenA - lenB) / GOLD_RULES.lengthScale;
  return GOLD_RULES.lengthWeight * Math.max(-1, Math.min(1, d));
}

export function lengthTerm(a: string, b: string): number {
  return lengthTermOf(len(a), len(b));
}

/** P(a > b | prompt) under the gold rules, with what it was based on. */
export function goldVerdict(prompt: string, a: string, b: string): Verdict {
  const task = taskOf(prompt);
  if (!task) throw new Error(`gold judge: '${prompt}' is not a prompt of the demo's task family`);
  const pa = parseResponse(a);
  const pb = parseResponse(b);
  const aCorrect = pa.style !== 'other' && pa.payload === task.answer;
  const bCorrect = pb.style !== 'other' && pb.payload === task.answer;
  let p: number;
  if (aCorrect !== bCorrect) p = aCorrect ? GOLD_RULES.correctWins : 1 - GOLD_RULES.correctWins;
  else {
    const [lo, hi] = GOLD_RULES.clamp;
    p = Math.max(lo, Math.min(hi, styleTerm(pa.style, pb.style) + lengthTerm(a, b)));
  }
  return { p, aCorrect, bCorrect, aStyle: pa.style, bStyle: pb.style };
}

export function goldPreference(prompt: string, a: string, b: string): number {
  return goldVerdict(prompt, a, b).p;
}

// This file is also a judge module (src/judge/js_module_judge.ts): `judge: { kind: module, path:
// dist/src/demo/gold_judge.js }` trains on the gold judge itself (`sppo demo --judge gold`, the oracle ablation).
export const name = 'gold judge (src/demo/gold_judge.ts)';
export const positionBiased = false;
export function prefer(q: PreferenceQuery): number {
  return goldPreference(q.prompt, q.a, q.b);
}

/** The gold judge as a preference oracle (not position-biased: one query per pair). */
export class GoldJudge implements PreferenceOracle {
  readonly name = 'gold';
  readonly positionBiased = false;
  async prefer(batch: PreferenceQuery[]): Promise<number[]> {
    return batch.map(prefer);
  }
}

/** Share of each style (and 'other') and of correct answers among responses. */
export function responseStats(prompts: readonly string[], responses: readonly string[]): { correct: number; styles: Record<Style | 'other', number> } {
  const styles = Object.fromEntries([...STYLES, 'other'].map((s) => [s, 0])) as Record<Style | 'other', number>;
  let correct = 0;
  responses.forEach((r, i) => {
    styles[parseResponse(r).style]++;
    if (isCorrect(prompts[i]!, r)) correct++;
  });
  const n = Math.max(1, responses.length);
  for (const k of Object.keys(styles) as (Style | 'other')[]) styles[k] /= n;
  return { correct: correct / n, styles };
}
