// The demo's task family: short instructions generated from a seed, each with one correct answer, and the
// three answer styles the gold judge cares about. Pure TypeScript (no tensors).
//
//   kind     prompt                  answer
//   add      Add 13+5.               18
//   next     Number after 47?        48
//   sort     Sort 4 1 3.             1 3 4
//   reverse  Reverse cat.            tac
//   upper    Capitalize dog.         DOG
//   count    Length of apple?        5
//   max      Max of 12, 31?          31
//   first    First letter of lemon?  l
//
// (Prompts and answers are short on purpose: the demo runs on two CPU cores.)
//
// Words are random lowercase strings of 3-5 letters (so no task can be answered from memory of a word list).
// Held-out evaluation prompts: `heldOutPrompts(n, seed)` draws them first from their own stream; training
// prompts (`trainingPrompts`) are drawn from another stream and never include a held-out prompt's text.
import { createRng, permutation, type Rng } from '../util/rng.js';

export const TASK_KINDS = ['add', 'next', 'sort', 'reverse', 'upper', 'count', 'max', 'first'] as const;
export type TaskKind = (typeof TASK_KINDS)[number];

export interface Task {
  kind: TaskKind;
  prompt: string;
  /** The correct answer (the payload of a response). */
  answer: string;
}

export const STYLES = ['terse', 'sentence', 'formatted'] as const;
export type Style = (typeof STYLES)[number];

/** A response in a style: terse "8", sentence "It is 8.", formatted "Answer: 8". */
export function render(style: Style, payload: string): string {
  switch (style) {
    case 'terse':
      return payload;
    case 'sentence':
      return `It is ${payload}.`;
    case 'formatted':
      return `Answer: ${payload}`;
  }
}

export interface Parsed {
  /** The style the response is written in, or 'other' when it is none of the three. */
  style: Style | 'other';
  /** The answer it gives (undefined for 'other'). */
  payload?: string;
}

const PAYLOAD = /^[A-Za-z0-9]+( [A-Za-z0-9]+)*$/;

/** Reads a response back: which style, and which answer. Anything else (garbled, empty, extra text) is 'other'. */
export function parseResponse(text: string): Parsed {
  let m = /^It is (.+)\.$/.exec(text);
  if (m && PAYLOAD.test(m[1]!)) return { style: 'sentence', payload: m[1]! };
  m = /^Answer: (.+)$/.exec(text);
  if (m && PAYLOAD.test(m[1]!)) return { style: 'formatted', payload: m[1]! };
  if (PAYLOAD.test(text) && !/^(it is|answer)\b/i.test(text)) return { style: 'terse', payload: text };
  return { style: 'other' };
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

function word(rng: Rng): string {
  const n = 3 + rng.int(3);
  let s = '';
  for (let i = 0; i < n; i++) s += LETTERS[rng.int(26)];
  return s;
}

function distinctDigits(rng: Rng, n: number): number[] {
  return permutation(10, rng).slice(0, n);
}

/** One task of a kind, drawn with `rng`. */
export function makeTask(kind: TaskKind, rng: Rng): Task {
  switch (kind) {
    case 'add': {
      const a = rng.int(20), b = rng.int(10);
      return { kind, prompt: `Add ${a}+${b}.`, answer: String(a + b) };
    }
    case 'next': {
      const n = rng.int(199);
      return { kind, prompt: `Number after ${n}?`, answer: String(n + 1) };
    }
    case 'sort': {
      const d = distinctDigits(rng, 3 + rng.int(2));
      return { kind, prompt: `Sort ${d.join(' ')}.`, answer: [...d].sort((x, y) => x - y).join(' ') };
    }
    case 'reverse': {
      const w = word(rng);
      return { kind, prompt: `Reverse ${w}.`, answer: [...w].reverse().join('') };
    }
    case 'upper': {
      const w = word(rng);
      return { kind, prompt: `Capitalize ${w}.`, answer: w.toUpperCase() };
    }
    case 'count': {
      const w = word(rng);
      return { kind, prompt: `Length of ${w}?`, answer: String(w.length) };
    }
    case 'max': {
      let a = rng.int(100), b = rng.int(100);
      while (b === a) b = rng.int(100);
      return { kind, prompt: `Max of ${a}, ${b}?`, answer: String(Math.max(a, b)) };
    }
    case 'first': {
      const w = word(rng);
      return { kind, prompt: `First letter of ${w}?`, answer: w[0]! };
    }
  }
}

/** Parses a prompt of the family back into its task (the gold judge works from the prompt alone). */
export function taskOf(prompt: string): Task | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^Add (\d+)\+(\d)\.$/.exec(prompt))) return { kind: 'add', prompt, answer: String(Number(m[1]) + Number(m[2])) };
  if ((m = /^Number after (\d+)\?$/.exec(prompt))) return { kind: 'next', prompt, answer: String(Number(m[1]) + 1) };
  if ((m = /^Sort ((?:\d )*\d)\.$/.exec(prompt))) return { kind: 'sort', prompt, answer: m[1]!.split(' ').map(Number).sort((x, y) => x - y).join(' ') };
  if ((m = /^Reverse ([a-z]+)\.$/.exec(prompt))) return { kind: 'reverse', prompt, answer: [...m[1]!].reverse().join('') };
  if ((m = /^Capitalize ([a-z]+)\.$/.exec(prompt))) return { kind: 'upper', prompt, answer: m[1]!.toUpperCase() };
  if ((m = /^Length of ([a-z]+)\?$/.exec(prompt))) return { kind: 'count', prompt, answer: String(m[1]!.length) };
  if ((m = /^Max of (\d+), (\d+)\?$/.exec(prompt))) return { kind: 'max', prompt, answer: String(Math.max(Number(m[1]), Number(m[2]))) };
  if ((m = /^First letter of ([a-z]+)\?$/.exec(prompt))) return { kind: 'first', prompt, answer: m[1]![0]! };
  return undefined;
}

/**
 * `n` tasks, kinds in rotation (so every kind is equally represented), from stream (seed, stream), none in
 * `exclude`; with `distinct`, no prompt twice.
 */
function draw(n: number, seed: number, stream: number, exclude: ReadonlySet<string>, distinct: boolean): Task[] {
  const rng = createRng(seed, stream);
  const out: Task[] = [];
  const seen = new Set<string>(exclude);
  let tries = 0;
  while (out.length < n) {
    const t = makeTask(TASK_KINDS[out.length % TASK_KINDS.length]!, rng);
    if (++tries > n * 1000 + 10000) throw new Error(`tasks: cannot draw ${n} ${distinct ? 'distinct ' : ''}prompts outside the held-out set`);
    if (seen.has(t.prompt)) continue;
    if (distinct) seen.add(t.prompt);
    out.push(t);
  }
  return out;
}

const HELD_OUT_STREAM = 0x4e1d;
const TRAIN_STREAM = 0x7a15;

/** The held-out evaluation prompts (distinct). */
export function heldOutPrompts(n: number, seed: number): Task[] {
  return draw(n, seed, HELD_OUT_STREAM, new Set(), true);
}

/**
 * Training prompts, none equal to a held-out prompt of `heldOut`; `stream` separates their uses (SFT, proxy
 * judge, SPPO); `distinct` (default true) draws no prompt twice.
 */
export function trainingPrompts(n: number, seed: number, heldOut: readonly Task[], stream = 0, distinct = true): Task[] {
  return draw(n, seed, TRAIN_STREAM + stream * 0x10000, new Set(heldOut.map((t) => t.prompt)), distinct);
}
