// Arena-Hard-Auto v0.1's judge (lm-sys/arena-hard-auto, config/judge_config.yaml and gen_judgment.py): the
// system prompt below, the user prompt "<|User Prompt|> ... <|The Start of Assistant A's Answer|> ...",
// temperature 0, max_tokens 4096, and five verdict labels [[A>>B]], [[A>B]], [[A=B]], [[B>A]], [[B>>A]] found
// with the regex \[\[([AB<>=]+)\]\]. As gen_judgment.py does: every match is collected; no match -> the
// judge is asked once more ("continue your judgment and finish by outputting a final verdict label", the
// second of number_of_judgment_attempts = 2) and the two answers read together; one distinct label -> the
// verdict; several different labels -> no verdict. A label outside the five (say "A") counts for nothing, as
// show_result.py gives it weight 0.
import type { Complete, JudgeMessage, JudgeRequest, JudgeTemplate } from './template.js';

export const ARENA_HARD_TEMPLATE_ID = 'arena_hard/v0.1';

export const ARENA_HARD_SYSTEM =
  "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user prompt displayed below. You will be given assistant A's answer and assistant B's answer. Your job is to evaluate which assistant's answer is better.\n\nBegin your evaluation by generating your own answer to the prompt. You must provide your answers before judging any answers.\n\nWhen evaluating the assistants' answers, compare both assistants' answers with your answer. You must identify and correct any mistakes or inaccurate information.\n\nThen consider if the assistant's answers are helpful, relevant, and concise. Helpful means the answer correctly responds to the prompt or follows the instructions. Note when user prompt has any ambiguity or more than one interpretation, it is more helpful and appropriate to ask for clarifications or more information from the user than providing an answer based on assumptions. Relevant means all parts of the response closely connect or are appropriate to what is being asked. Concise means the response is clear and not verbose or excessive.\n\nThen consider the creativity and novelty of the assistant's answers when needed. Finally, identify any missing important information in the assistants' answers that would be beneficial to include when responding to the user prompt.\n\nAfter providing your explanation, you must output only one of the following choices as your final verdict with a label:\n\n1. Assistant A is significantly better: [[A>>B]]\n2. Assistant A is slightly better: [[A>B]]\n3. Tie, relatively the same: [[A=B]]\n4. Assistant B is slightly better: [[B>A]]\n5. Assistant B is significantly better: [[B>>A]]\n\nExample output: \"My final verdict is tie: [[A=B]]\".";

export const ARENA_HARD_CONTINUE = 'continue your judgment and finish by outputting a final verdict label';

export const ARENA_HARD_LABELS = ['A>>B', 'A>B', 'A=B', 'B>A', 'B>>A'] as const;
export type ArenaHardLabel = (typeof ARENA_HARD_LABELS)[number];

export function arenaHardUserPrompt(question: string, answerA: string, answerB: string): string {
  return `<|User Prompt|>\n${question}\n\n<|The Start of Assistant A's Answer|>\n${answerA}\n<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n${answerB}\n<|The End of Assistant B's Answer|>`;
}

export function arenaHardRequest(messages: JudgeMessage[], opts: { maxTokens?: number } = {}): JudgeRequest {
  return { messages, maxTokens: opts.maxTokens ?? 4096, temperature: 0 };
}

/**
 * The verdict of a judgment text: `label` when every match of [[...]] is the same string, `retry` when there
 * is none (ask again), null when the matches disagree.
 */
export function parseArenaHard(judgment: string): { label: string } | 'retry' | null {
  const matches = [...judgment.matchAll(/\[\[([AB<>=]+)\]\]/g)].map((m) => m[1]!).filter((m) => m !== '');
  const distinct = new Set(matches);
  if (distinct.size === 0) return 'retry';
  if (distinct.size === 1) return { label: matches[0]!.replace(/^\n+|\n+$/g, '') };
  return null;
}

export interface ArenaHardGame {
  /** The user prompt as sent. */
  user_prompt: string;
  /** The judge's answers (two when it was asked to continue), joined as gen_judgment.py joins them. */
  judgment: string;
  /** The verdict label, or null when there was none. */
  score: string | null;
}

/** One game: the question with answer A and answer B, judged in up to two attempts. */
export async function arenaHardGame(complete: Complete, question: string, answerA: string, answerB: string, opts: { maxTokens?: number; attempts?: number } = {}): Promise<ArenaHardGame> {
  const user = arenaHardUserPrompt(question, answerA, answerB);
  const conv: JudgeMessage[] = [
    { role: 'system', content: ARENA_HARD_SYSTEM },
    { role: 'user', content: user },
  ];
  let judgment = '';
  let score: string | null = null;
  const attempts = opts.attempts ?? 2;
  for (let a = 0; a < attempts; a++) {
    const r = await complete(arenaHardRequest(conv.slice(), opts));
    judgment += '\n' + r.content;
    const v = parseArenaHard(judgment);
    conv.push({ role: 'assistant', content: r.content });
    if (v !== 'retry') {
      score = v?.label ?? null;
      break;
    }
    conv.push({ role: 'user', content: ARENA_HARD_CONTINUE });
  }
  return { user_prompt: user, judgment, score };
}

/**
 * A label as P(A better), for using Arena-Hard's judge inside the SPPO loop: A>>B 1, A>B 0.75, A=B 0.5,
 * B>A 0.25, B>>A 0 (our mapping; the benchmark itself scores labels as show_result.py does); null for any
 * other label.
 */
export function arenaHardProbability(label: string | null): number | null {
  switch (label) {
    case 'A>>B':
      return 1;
    case 'A>B':
      return 0.75;
    case 'A=B':
      return 0.5;
    case 'B>A':
      return 0.25;
    case 'B>>A':
      return 0;
    default:
      return null;
  }
}

/** The template of OpenAIJudge (template arena_hard): one game, q.a as assistant A, its label as P(A better). */
export const arenaHardTemplate: JudgeTemplate<void> = {
  id: ARENA_HARD_TEMPLATE_ID,
  prepare: () => undefined,
  async verdict(complete, q, _context, opts) {
    const g = await arenaHardGame(complete, q.prompt, q.a, q.b, opts);
    const p = arenaHardProbability(g.score);
    return { p, method: p === null ? null : 'text', ...(g.score ? { label: g.score } : {}), raw: g.judgment };
  },
};
