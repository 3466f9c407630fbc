// Arena-Hard-Auto v0.1 run locally: each question judged twice with Arena-Hard's judge prompt
// (src/judge/templates/arena_hard.ts), game 1 with the gpt-4-0314 baseline as assistant A and the model as B,
// game 2 swapped, and scored as show_result.py scores them:
//  * battles: each game's label is a battle between baseline and model: A=B a tie; A>B / B>A one win;
//    A>>B / B>>A a win counted WEIGHT = 3 times; no label (or an unknown one) counts for nothing;
//  * the Bradley-Terry fit (compute_mle_elo: logistic regression over the battles, each duplicated, a tie as
//    one win for each side) has, with the model and the baseline only, the closed form
//      P(model beats baseline) = (wins + ties / 2) / battles,
//    the score (x 100, two decimals, as get_win_rate_column rounds it);
//  * the 95 % interval: 100 bootstrap rounds, each resampling the battles with replacement and refitting,
//    and the 2.5 and 97.5 percentiles (numpy's linear interpolation); seeded here with our own generator, so
//    the interval's ends differ from a Python run's by the bootstrap's own noise.
import type { OpenAIJudge } from '../../judge/openai.js';
import { arenaHardGame, type ArenaHardGame } from '../../judge/templates/arena_hard.js';
import { bootstrap, percentile } from '../bootstrap.js';

export const ARENA_HARD_BASELINE = 'gpt-4-0314';
export const ARENA_HARD_WEIGHT = 3;

export interface ArenaHardItem {
  question_id: string;
  question: string;
  /** The model's answer. */
  answer: string;
  /** The baseline's answer. */
  baseline: string;
}

export interface ArenaHardJudgment {
  question_id: string;
  model: string;
  judge: string;
  games: ArenaHardGame[];
}

export async function judgeArenaHard(
  judge: OpenAIJudge,
  items: readonly ArenaHardItem[],
  opts: { model: string; maxTokens?: number; onProgress?: (done: number) => void },
): Promise<ArenaHardJudgment[]> {
  let done = 0;
  const o = opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {};
  return Promise.all(
    items.map(async (it) => {
      const [g1, g2] = await Promise.all([arenaHardGame(judge.completer, it.question, it.baseline, it.answer, o), arenaHardGame(judge.completer, it.question, it.answer, it.baseline, o)]);
      for (const g of [g1, g2]) judge.noteVerdict(g.score === null ? null : 'text');
      opts.onProgress?.(++done);
      return { question_id: it.question_id, model: opts.model, judge: judge.model, games: [g1, g2] };
    }),
  );
}

/** One battle per counted game outcome: 1 = the model won, 0 = the baseline won, 0.5 = a tie. */
export function arenaHardBattles(judgments: readonly ArenaHardJudgment[], weight = ARENA_HARD_WEIGHT): number[] {
  const out: number[] = [];
  const add = (label: string | null, modelIs: 'A' | 'B'): void => {
    const win = modelIs === 'B' ? { 'B>A': 1, 'B>>A': 1, 'A>B': 0, 'A>>B': 0 } : { 'A>B': 1, 'A>>B': 1, 'B>A': 0, 'B>>A': 0 };
    if (label === 'A=B') out.push(0.5);
    else if (label !== null && label in win) {
      const w = label.includes('>>') ? weight : 1;
      for (let i = 0; i < w; i++) out.push(win[label as keyof typeof win]);
    }
  };
  for (const j of judgments) {
    add(j.games[0]?.score ?? null, 'B');
    if (j.games[1]) add(j.games[1].score, 'A');
  }
  return out;
}

export interface ArenaHardScore {
  model: string;
  /** P(model beats the baseline) x 100. */
  score: number;
  /** The bootstrap 2.5 / 97.5 percentiles x 100. */
  lower: number;
  upper: number;
  battles: number;
  /** Games without a verdict. */
  unparseable: number;
  avg_tokens: number | null;
}

const round2 = (x: number): number => Math.round(x * 100 * 100) / 100;

export function arenaHardScore(judgments: readonly ArenaHardJudgment[], opts: { model: string; rounds?: number; seed?: number; avgTokens?: number | null }): ArenaHardScore {
  const battles = arenaHardBattles(judgments);
  // No battle (no game has a verdict): NaN score and interval.
  const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
  const boots = bootstrap(battles.length, { rounds: opts.rounds ?? 100, seed: opts.seed ?? 42 }, (idx) => {
    let s = 0;
    for (const i of idx) s += battles[i]!;
    return s / battles.length;
  });
  const unparseable = judgments.reduce((n, j) => n + j.games.filter((g) => g.score === null).length, 0);
  return {
    model: opts.model,
    score: round2(mean(battles)),
    lower: round2(percentile(boots, 2.5)),
    upper: round2(percentile(boots, 97.5)),
    battles: battles.length,
    unparseable,
    avg_tokens: opts.avgTokens ?? null,
  };
}

/** show_result.py's line: `model | score: S | 95% CI: (-l, +u) | average #tokens: N`. */
export function arenaHardLine(s: ArenaHardScore): string {
  const r1 = (x: number): string => String(Math.round(x * 10) / 10);
  const interval = `(${r1(s.lower - s.score)}, ${r1(s.upper - s.score)})`;
  return `${s.model.padEnd(30)} | score: ${r1(s.score).padStart(4)} | 95% CI: ${interval.padStart(12)} | average #tokens: ${s.avg_tokens === null ? 'n/a' : Math.trunc(s.avg_tokens)}`;
}

/** The leaderboard CSV of show_result.py --output: model,score,rating_q025,rating_q975,CI,avg_tokens,date (baseline row included). */
export function arenaHardCsv(rows: readonly ArenaHardScore[], date: string): string {
  const lines = ['model,score,rating_q025,rating_q975,CI,avg_tokens,date'];
  for (const s of [...rows].sort((a, b) => (Number.isFinite(b.score) ? b.score : -1) - (Number.isFinite(a.score) ? a.score : -1))) {
    const ci = Number.isFinite(s.score) ? `"(-${(s.score - s.lower).toFixed(2)}, +${(s.upper - s.score).toFixed(2)})"` : '';
    const c = (x: number): string => (Number.isFinite(x) ? String(x) : '');
    lines.push([s.model.includes(',') ? `"${s.model}"` : s.model, c(s.score), c(s.lower), c(s.upper), ci, s.avg_tokens === null ? '' : Math.trunc(s.avg_tokens).toFixed(1), date].join(','));
  }
  return lines.join('\n') + '\n';
}
