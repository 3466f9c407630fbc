// MT-Bench run locally: single-answer grading of each question's two turns (FastChat's gen_judgment.py
// --mode single, the judge prompts of judge_prompts.jsonl, GPT-4's reference answers for math, reasoning and
// coding; src/judge/templates/mt_bench.ts), and FastChat's show_result.py table: the mean score of turn 1, of
// turn 2 and of both, judgments without a rating (score -1) left out; per category too (both turns).
import type { OpenAIJudge } from '../../judge/openai.js';
import { mtBenchSingleRequest, parseMtBenchRating, type MtBenchJudgePrompt } from '../../judge/templates/mt_bench.js';

export interface MtBenchQuestion {
  question_id: number;
  category: string;
  turns: string[];
}

export interface MtBenchItem {
  question: MtBenchQuestion;
  /** The model's answers to the two turns. */
  answers: string[];
  /** Reference answers (math, reasoning, coding). */
  references?: string[];
}

/** A line of FastChat's model_judgment/<judge>_single.jsonl. */
export interface MtBenchJudgment {
  question_id: number;
  model: string;
  judge: [string, string];
  user_prompt: string;
  judgment: string;
  score: number;
  turn: 1 | 2;
  tstamp: number;
}

export async function judgeMtBench(
  judge: OpenAIJudge,
  prompts: Map<string, MtBenchJudgePrompt>,
  items: readonly MtBenchItem[],
  opts: { model: string; maxTokens?: number; onProgress?: (done: number) => void },
): Promise<MtBenchJudgment[]> {
  let done = 0;
  const o = opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {};
  const jobs = items.flatMap((it) => ([1, 2] as const).filter((t) => it.question.turns.length >= t && it.answers.length >= t).map((turn) => ({ it, turn })));
  return Promise.all(
    jobs.map(async ({ it, turn }) => {
      const { request, name } = mtBenchSingleRequest(prompts, { category: it.question.category, questions: it.question.turns, answers: it.answers, ...(it.references ? { references: it.references } : {}), turn }, o);
      const r = await judge.complete(request);
      const score = parseMtBenchRating(r.content);
      judge.noteVerdict(score === -1 ? null : 'text');
      opts.onProgress?.(++done);
      return { question_id: it.question.question_id, model: opts.model, judge: [judge.model, name] as [string, string], user_prompt: request.messages[1]!.content, judgment: r.content, score, turn, tstamp: Date.now() / 1000 };
    }),
  );
}

export interface MtBenchResult {
  model: string;
  first_turn: number | null;
  second_turn: number | null;
  average: number | null;
  /** Mean score per category (both turns). */
  categories: Record<string, number>;
  /** Judgments with a rating, and without (-1, left out). */
  n_scored: number;
  n_unparseable: number;
}

const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null);

export function mtBenchResult(judgments: readonly MtBenchJudgment[], categoryOf: Map<number, string>, model: string): MtBenchResult {
  const ok = judgments.filter((j) => j.score !== -1);
  const cats: Record<string, number[]> = {};
  for (const j of ok) (cats[categoryOf.get(j.question_id) ?? 'unknown'] ??= []).push(j.score);
  return {
    model,
    first_turn: mean(ok.filter((j) => j.turn === 1).map((j) => j.score)),
    second_turn: mean(ok.filter((j) => j.turn === 2).map((j) => j.score)),
    average: mean(ok.map((j) => j.score)),
    categories: Object.fromEntries(Object.entries(cats).sort(([a], [b]) => a.localeCompare(b)).map(([c, xs]) => [c, mean(xs)!])),
    n_scored: ok.length,
    n_unparseable: judgments.length - ok.length,
  };
}

/** The tables of FastChat's show_result.py (single mode), plus the per-category means. */
export function mtBenchTable(r: MtBenchResult): string {
  const f = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(6));
  const w = Math.max(5, r.model.length);
  const lines: string[] = [];
  for (const [title, turn, x] of [['First turn', 1, r.first_turn], ['Second turn', 2, r.second_turn]] as const) {
    lines.push(`\n########## ${title} ##########`, `${''.padEnd(w)}       score`, `${'model'.padEnd(w)} turn`, `${r.model.padEnd(w)} ${String(turn).padEnd(5)} ${f(x)}`);
  }
  lines.push('\n########## Average ##########', `${''.padEnd(w)}    score`, `${'model'.padEnd(w)}`, `${r.model.padEnd(w)} ${f(r.average)}`);
  lines.push('\n########## Per category (both turns) ##########');
  for (const [c, x] of Object.entries(r.categories)) lines.push(`${c.padEnd(12)} ${f(x)}`);
  lines.push(`\n(${r.n_scored} judgments scored, ${r.n_unparseable} without a rating left out)`);
  return lines.join('\n').replace(/^\n/, '') + '\n';
}
