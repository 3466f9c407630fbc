// MT-Bench's judge (lm-sys/FastChat, fastchat/llm_judge): the judge prompts of judge_prompts.jsonl (read
// from the benchmark's data folder, not shipped here), temperature 0, max_tokens 2048.
//  * Single-answer grading: "single-v1" for turn 1 and "single-v1-multi-turn" for turn 2; for the categories
//    with reference answers (math, reasoning, coding) "single-math-v1" and "single-math-v1-multi-turn" with
//    GPT-4's reference answers. The system message is the prompt's system_prompt, the user message its
//    prompt_template filled in. The rating is the first match of \[\[(\d+\.?\d*)\]\], else of \[(\d+\.?\d*)\],
//    else -1 (no rating; show_result.py leaves those out).
//  * The pairwise form: "pair-v2" / "pair-math-v1" (and their -multi-turn versions); the verdict is "[[A]]",
//    "[[B]]" or "[[C]]" (a tie), looked for in that order, else an error.
import { readFileSync } from 'node:fs';
import { JudgeError } from '../oracle.js';
import type { JudgeRequest, JudgeTemplate, PreferenceVerdict } from './template.js';

export const MT_BENCH_TEMPLATE_ID = 'mt_bench/fastchat';

/** The categories graded against a reference answer (FastChat's NEED_REF_CATS, less arena-hard-200). */
export const NEED_REF_CATS = ['math', 'reasoning', 'coding'] as const;

export interface MtBenchJudgePrompt {
  name: string;
  type: 'single' | 'pairwise';
  system_prompt: string;
  prompt_template: string;
  output_format: string;
}

export class JudgePromptsError extends Error {
  override name = 'JudgePromptsError';
}

/** FastChat's judge_prompts.jsonl, by name; errors name the file and line. */
export function readMtBenchJudgePrompts(path: string): Map<string, MtBenchJudgePrompt> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new JudgePromptsError(`${path}: cannot read the MT-Bench judge prompts (${(e as Error).message})`);
  }
  const out = new Map<string, MtBenchJudgePrompt>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch (e) {
      throw new JudgePromptsError(`${path}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    for (const k of ['name', 'type', 'system_prompt', 'prompt_template', 'output_format']) {
      if (typeof o[k] !== 'string') throw new JudgePromptsError(`${path}:${i + 1}: no "${k}" string`);
    }
    out.set(o.name as string, o as unknown as MtBenchJudgePrompt);
  });
  return out;
}

/** Fills {name} fields of a FastChat template (every field used must be given). */
export function fillTemplate(template: string, fields: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => {
    const v = fields[k];
    if (v === undefined) throw new JudgePromptsError(`judge prompt field {${k}} has no value`);
    return v;
  });
}

function prompt(prompts: Map<string, MtBenchJudgePrompt>, name: string): MtBenchJudgePrompt {
  const p = prompts.get(name);
  if (!p) throw new JudgePromptsError(`the MT-Bench judge prompts have no "${name}"`);
  return p;
}

export function needsReference(category: string): boolean {
  return (NEED_REF_CATS as readonly string[]).includes(category);
}

export interface SingleInput {
  category: string;
  /** The question's turns. */
  questions: string[];
  /** The model's answers, one per turn (as many as judged). */
  answers: string[];
  /** The reference answers (for math, reasoning, coding). */
  references?: string[];
  /** 1 or 2. */
  turn: 1 | 2;
}

/** The single-answer grading request of one turn, and the judge prompt's name. */
export function mtBenchSingleRequest(prompts: Map<string, MtBenchJudgePrompt>, x: SingleInput, opts: { maxTokens?: number } = {}): { request: JudgeRequest; name: string } {
  const ref = needsReference(x.category);
  if (ref && (!x.references || x.references.length < x.turn)) throw new JudgePromptsError(`category ${x.category} needs reference answers`);
  const name = `single${ref ? '-math' : ''}-v1${x.turn === 2 ? '-multi-turn' : ''}`;
  const p = prompt(prompts, name);
  const fields: Record<string, string> =
    x.turn === 1
      ? { question: x.questions[0]!, answer: x.answers[0]!, ...(ref ? { ref_answer_1: x.references![0]! } : {}) }
      : {
          question_1: x.questions[0]!, question_2: x.questions[1]!, answer_1: x.answers[0]!, answer_2: x.answers[1]!,
          ...(ref ? { ref_answer_1: x.references![0]!, ref_answer_2: x.references![1]! } : {}),
        };
  return { name, request: judgeRequest(p, fields, opts.maxTokens) };
}

/** A judge prompt filled in: FastChat's system prompt and template, greedy, 2048 tokens by default. */
function judgeRequest(p: MtBenchJudgePrompt, fields: Record<string, string>, maxTokens = 2048): JudgeRequest {
  return {
    messages: [
      { role: 'system', content: p.system_prompt },
      { role: 'user', content: fillTemplate(p.prompt_template, fields) },
    ],
    maxTokens,
    temperature: 0,
  };
}

/** The rating of a judgment (FastChat's [[rating]] then [rating]); -1 when there is none. */
export function parseMtBenchRating(judgment: string): number {
  const m = /\[\[(\d+\.?\d*)\]\]/.exec(judgment) ?? /\[(\d+\.?\d*)\]/.exec(judgment);
  if (!m) return -1;
  const v = Number(m[1]);
  return Number.isFinite(v) ? v : -1;
}

export interface PairInput {
  category?: string;
  questions: string[];
  answersA: string[];
  answersB: string[];
  references?: string[];
  turn: 1 | 2;
}

/** The pairwise request ("pair-v2" family) of one turn, and the judge prompt's name. */
export function mtBenchPairRequest(prompts: Map<string, MtBenchJudgePrompt>, x: PairInput, opts: { maxTokens?: number } = {}): { request: JudgeRequest; name: string } {
  const ref = x.category !== undefined && needsReference(x.category) && !!x.references && x.references.length >= x.turn;
  const name = `pair${ref ? '-math-v1' : '-v2'}${x.turn === 2 ? '-multi-turn' : ''}`;
  const p = prompt(prompts, name);
  const fields: Record<string, string> =
    x.turn === 1
      ? { question: x.questions[0]!, answer_a: x.answersA[0]!, answer_b: x.answersB[0]!, ...(ref ? { ref_answer_1: x.references![0]! } : {}) }
      : {
          question_1: x.questions[0]!, question_2: x.questions[1]!, answer_a_1: x.answersA[0]!, answer_a_2: x.answersA[1]!, answer_b_1: x.answersB[0]!, answer_b_2: x.answersB[1]!,
          ...(ref ? { ref_answer_1: x.references![0]!, ref_answer_2: x.references![1]! } : {}),
        };
  return { name, request: judgeRequest(p, fields, opts.maxTokens) };
}

/** FastChat's pairwise verdict: [[A]] -> 1, [[B]] -> 0, [[C]] -> 1/2 (looked for in that order). */
export function parseMtBenchPair(judgment: string): PreferenceVerdict {
  if (judgment.includes('[[A]]')) return { p: 1, method: 'text', label: 'A', raw: judgment };
  if (judgment.includes('[[B]]')) return { p: 0, method: 'text', label: 'B', raw: judgment };
  if (judgment.includes('[[C]]')) return { p: 0.5, method: 'text', label: 'tie', raw: judgment };
  return { p: null, method: null, raw: judgment };
}

/** The template of OpenAIJudge (template mt_bench): the pairwise form of turn 1, with the judge prompts of opts.judgePrompts. */
export const mtBenchTemplate: JudgeTemplate<Map<string, MtBenchJudgePrompt>> = {
  id: MT_BENCH_TEMPLATE_ID,
  prepare(opts) {
    if (!opts.judgePrompts) throw new JudgeError('the mt_bench template needs the MT-Bench judge prompts file (judgePrompts / --judge-prompts: mt_bench_judge_prompts.jsonl of the data folder)');
    return readMtBenchJudgePrompts(opts.judgePrompts);
  },
  async verdict(complete, q, prompts, opts) {
    const { request } = mtBenchPairRequest(prompts, { questions: [q.prompt], answersA: [q.a], answersB: [q.b], turn: 1 }, opts);
    return parseMtBenchPair((await complete(request)).content);
  },
};
