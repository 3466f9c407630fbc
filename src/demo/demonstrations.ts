// Demonstrations of mixed quality for the starter policy's supervised fine-tuning: for each task, the
// response is correct with a probability that depends on the task kind (otherwise a plausible wrong answer),
// written in a style drawn from a skewed distribution, and now and then in no style at all. The starter
// trained on them solves some tasks, fails others and varies in style, which leaves SPPO room to improve.
import { createRng, type Rng } from '../util/rng.js';
import { makeTask, render, TASK_KINDS, type Style, type Task, type TaskKind } from './tasks.js';

/** Probability that a demonstration's answer is correct, per kind. */
export const DEMO_CORRECT: Record<TaskKind, number> = {
  add: 0.45, next: 0.55, sort: 0.45, reverse: 0.45, upper: 0.6, count: 0.5, max: 0.55, first: 0.6,
};

/** Style shares of the demonstrations ('other': a malformed answer such as "8." or "answer is 8"). */
export const DEMO_STYLES: Record<Style | 'other', number> = { terse: 0.2, sentence: 0.45, formatted: 0.3, other: 0.05 };

/**
 * The style shares of the starter's last SFT run (demo/make-starter.sh, run g): the equilibrium of the gold
 * judge's style game at the starter's answer lengths (terse / sentence / formatted / other 32.5 / 40 / 27.5 / 0 %,
 * the hand-derived equilibrium of test/demo_style_game.test.ts), so that the starter's mix of styles starts
 * at the point SPPO's self-play update keeps fixed (docs/demo.md, "Style equilibrium").
 */
export const DEMO_STYLES_EQUILIBRIUM: Record<Style | 'other', number> = { terse: 0.325, sentence: 0.4, formatted: 0.275, other: 0 };

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

function mutateLetter(rng: Rng, w: string, upper = false): string {
  const i = rng.int(w.length);
  let c = String.fromCharCode(97 + rng.int(26));
  if (upper) c = c.toUpperCase();
  if (c === w[i]) c = upper ? (c === 'Z' ? 'A' : String.fromCharCode(c.charCodeAt(0) + 1)) : c === 'z' ? 'a' : String.fromCharCode(c.charCodeAt(0) + 1);
  return w.slice(0, i) + c + w.slice(i + 1);
}

function swapAdjacent(rng: Rng, xs: string[]): string[] {
  const out = [...xs];
  if (out.length < 2) return out;
  const i = rng.int(out.length - 1);
  [out[i], out[i + 1]] = [out[i + 1]!, out[i]!];
  return out;
}

/** A plausible wrong answer to a task (never the correct one). */
export function wrongAnswer(task: Task, rng: Rng): string {
  for (let tries = 0; tries < 20; tries++) {
    const w = wrongCandidate(task, rng);
    if (w !== task.answer && w !== '') return w;
  }
  return task.answer + '0';
}

function wrongCandidate(task: Task, rng: Rng): string {
  const n = Number(task.answer);
  const m = /(\d+)\+(\d)|after (\d+)|Sort ([\d ]+)\.|Reverse ([a-z]+)\.|Capitalize ([a-z]+)\.|Length of ([a-z]+)\?|Max of (\d+), (\d+)|letter of ([a-z]+)\?/.exec(task.prompt)!;
  switch (task.kind) {
    case 'add':
      return pick(rng, [String(n + 1), String(n - 1), String(n + 2), String(Math.abs(n - 10)), String(Number(m[1]) * Number(m[2]) % 30), String(rng.int(29))]);
    case 'next':
      return pick(rng, [m[3]!, String(n + 1), String(n - 2), String(n + 10)]);
    case 'sort': {
      const digits = m[4]!.split(' ');
      const sorted = task.answer.split(' ');
      return pick(rng, [digits.join(' '), swapAdjacent(rng, sorted).join(' '), [...sorted].reverse().join(' '), sorted.slice(0, -1).join(' ')]);
    }
    case 'reverse': {
      const w = m[5]!;
      return pick(rng, [w, mutateLetter(rng, task.answer), swapAdjacent(rng, [...task.answer]).join(''), task.answer.slice(1)]);
    }
    case 'upper': {
      const w = m[6]!;
      return pick(rng, [w, mutateLetter(rng, task.answer, true), w[0]!.toUpperCase() + w.slice(1), task.answer.slice(0, -1)]);
    }
    case 'count':
      return pick(rng, [String(n + 1), String(n - 1), String(n + 2)]);
    case 'max': {
      const a = Number(m[8]), b = Number(m[9]);
      return pick(rng, [String(Math.min(a, b)), String(n + 1), String(n - 1), String(a + b)]);
    }
    case 'first': {
      const w = m[10]!;
      return pick(rng, [w[w.length - 1]!, w[1]!, w[0]!.toUpperCase(), String.fromCharCode(97 + rng.int(26))]);
    }
  }
}

function drawStyle(rng: Rng, shares: Record<Style | 'other', number>): Style | 'other' {
  let u = rng.next();
  for (const [s, p] of Object.entries(shares) as [Style | 'other', number][]) {
    if (u < p) return s;
    u -= p;
  }
  return 'sentence';
}

/** Parses "T,S,F,O" (terse, sentence, formatted, other shares, each >= 0, summing to 1) or throws naming the field. */
export function parseStyleShares(text: string): Record<Style | 'other', number> {
  const names = ['terse', 'sentence', 'formatted', 'other'] as const;
  const parts = text.split(',');
  if (parts.length !== 4) throw new Error(`style shares '${text}': expected 4 comma-separated numbers (terse,sentence,formatted,other), got ${parts.length}`);
  const out = {} as Record<Style | 'other', number>;
  parts.forEach((p, i) => {
    const x = Number(p);
    if (p.trim() === '' || !Number.isFinite(x) || x < 0) throw new Error(`style shares '${text}': ${names[i]} must be a number >= 0, got '${p}'`);
    out[names[i]!] = x;
  });
  const sum = names.reduce((a, n) => a + out[n], 0);
  if (Math.abs(sum - 1) > 1e-6) throw new Error(`style shares '${text}': the shares must sum to 1, got ${sum}`);
  return out;
}

/** A response in no style: "8.", "it is 8", "Answer 8", "It is: 8". */
function malformed(rng: Rng, payload: string): string {
  return pick(rng, [`${payload}.`, `it is ${payload}`, `Answer ${payload}`, `It is: ${payload}`]);
}

export interface Demonstration {
  prompt: string;
  response: string;
  kind: TaskKind;
  correct: boolean;
  style: Style | 'other';
}

/**
 * `n` demonstrations for prompts drawn with stream (seed, 0xde30), kinds in rotation, none equal to a
 * prompt in `exclude` (the held-out evaluation prompts), styles drawn with `styles`' shares (default
 * DEMO_STYLES). Prompts may repeat (with different answers).
 */
export function demonstrations(n: number, seed: number, exclude: ReadonlySet<string>, styles: Record<Style | 'other', number> = DEMO_STYLES): Demonstration[] {
  const rng = createRng(seed, 0xde30);
  const out: Demonstration[] = [];
  while (out.length < n) {
    const kind = TASK_KINDS[out.length % TASK_KINDS.length]!;
    const task = makeTask(kind, rng);
    if (exclude.has(task.prompt)) continue;
    const correct = rng.next() < DEMO_CORRECT[kind];
    const payload = correct ? task.answer : wrongAnswer(task, rng);
    const style = drawStyle(rng, styles);
    const response = style === 'other' ? malformed(rng, payload) : render(style, payload);
    out.push({ prompt: task.prompt, response, kind, correct: correct && style !== 'other', style });
  }
  return out;
}
