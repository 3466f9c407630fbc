// How a judge reads the gold judge's style cycle: on validation prompts (their own stream, never the held-out
// ones) the same answer rendered in two styles, P(style i > style j) averaged over the prompts, for correct
// answers and for wrong ones (a plausible mistake of the task's kind); the judge's own style game and its
// equilibrium (game lab solver) beside the gold judge's. A judge whose style game has a pure equilibrium pulls
// SPPO, whose self-play target is the equilibrium of its judge's game, to that style.
import type { PreferenceOracle } from '../judge/oracle.js';
import { makeGame } from '../game/game.js';
import { goldPreference } from './gold_judge.js';
import { render, STYLES, trainingPrompts, heldOutPrompts, type Task } from './tasks.js';
import { HELD_OUT_COUNT, HELD_OUT_SEED, STREAM_VALID } from './constants.js';
import { solveStyleGame, styleExploitability, type StyleMix } from './style_game.js';

/** A wrong answer of the same shape: a number plus one, a word reversed (or with an x appended when a palindrome). */
export function wrongAnswer(answer: string): string {
  if (/^\d+$/.test(answer)) return String(Number(answer) + 1);
  const r = [...answer].reverse().join('');
  return r === answer ? `${answer}x` : r;
}

export interface JudgeStyleReading {
  answers: 'correct' | 'wrong';
  /** 3 x 3, rows and columns terse, sentence, formatted: mean P(row > column). */
  judge: number[][];
  gold: number[][];
  /** Share of the ordered pairs where the judge and the gold judge prefer the same style. */
  agreement: number;
  /** The judge's style game's equilibrium (over the three styles, 'other' 0), and its exploitability in the gold game. */
  judgeEquilibrium: StyleMix;
  goldExploitabilityOfJudgeEquilibrium: number;
  goldEquilibrium: StyleMix;
}

/** The judge's and the gold judge's mean style preferences on `count` validation prompts. */
export async function judgeStyleReading(judge: PreferenceOracle, count = 256): Promise<JudgeStyleReading[]> {
  const tasks: Task[] = trainingPrompts(count, 0, heldOutPrompts(HELD_OUT_COUNT, HELD_OUT_SEED), STREAM_VALID);
  const out: JudgeStyleReading[] = [];
  for (const answers of ['correct', 'wrong'] as const) {
    const queries: { prompt: string; a: string; b: string; i: number; j: number }[] = [];
    for (const t of tasks) {
      const payload = answers === 'correct' ? t.answer : wrongAnswer(t.answer);
      for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) if (i !== j) queries.push({ prompt: t.prompt, a: render(STYLES[i]!, payload), b: render(STYLES[j]!, payload), i, j });
    }
    const p = await judge.prefer(queries.map(({ prompt, a, b }) => ({ prompt, a, b })));
    const J = [0, 1, 2].map(() => [0, 0, 0]);
    const G = [0, 1, 2].map(() => [0, 0, 0]);
    let agree = 0;
    queries.forEach((q, k) => {
      const g = goldPreference(q.prompt, q.a, q.b);
      J[q.i]![q.j]! += p[k]! / tasks.length;
      G[q.i]![q.j]! += g / tasks.length;
      if (p[k]! > 0.5 === g > 0.5) agree++;
    });
    // each ordered pair was asked both ways: symmetrize so that P + P^T = 1 exactly (the judge is order-free up to rounding)
    for (let i = 0; i < 3; i++) {
      J[i]![i] = 0.5;
      G[i]![i] = 0.5;
      for (let j = i + 1; j < 3; j++) {
        for (const M of [J, G]) {
          const v = (M[i]![j]! + 1 - M[j]![i]!) / 2;
          M[i]![j] = v;
          M[j]![i] = 1 - v;
        }
      }
    }
    // 'other' (not asked about here) as in the gold rules: beaten by every style with 0.8
    const withOther = (M: number[][]): number[][] => [...M.map((r) => [...r, 0.8]), [0.2, 0.2, 0.2, 0.5]];
    const judgeEq = solveStyleGame(makeGame('judge style game', withOther(J))).mix;
    const goldGame = makeGame('gold style game', withOther(G));
    out.push({
      answers,
      judge: J,
      gold: G,
      agreement: agree / queries.length,
      judgeEquilibrium: judgeEq,
      goldExploitabilityOfJudgeEquilibrium: styleExploitability(goldGame, judgeEq),
      goldEquilibrium: solveStyleGame(goldGame).mix,
    });
  }
  return out;
}
