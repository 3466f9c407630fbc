// How a judge reads the gold judge's style cycle: on validation prompts (their own stream, never the held-out
// ones) the same answer rendered in two styles, P(style i > style j) averaged over the prompts, for correct
// answers and for wrong ones (a plausible mistake of the task's kind); the judge's own style game and its
// equilibrium (game lab solver) beside the gold judge's. A judge whose style game has a pure equilibrium pulls
// SPPO, whose self-play target is the equilibrium of its judge's game, to that style.
import type { PreferenceOracle } from '../judge/oracle.js';
import { makeGame } from '../game/game.js';
import { goldPreference } from './gold_judge.js';
import { render, STYLES, trainingPrompts, heldOutPrompts, type Task } from './tasks.js';
import { DEMO_STYLE_SAMPLES, HELD_OUT_COUNT, HELD_OUT_SEED, STREAM_VALID } from './constants.js';
import { sampledExploitability, solveStyleGame, styleExploitability, type SampledExploitability, type StyleMix } from './style_game.js';
import { createRng } from '../util/rng.js';

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
  /**
   * What the demo would measure for a policy exactly at the judge's equilibrium (the last iterate of a method that
   * converges in its judge's style game): its gold exploitability from the demo's style samples, and the chance that
   * one seed's figure, and every one of `seeds` seeds' figures, is at most `threshold` (issue 32's goal: 0.02, 5 seeds).
   */
  measuredJudgeEquilibrium: SampledExploitability;
}

/** How the judge's equilibrium would be measured: the demo's style samples (8 per held-out prompt), issue 32's goal. */
export const JUDGE_EQUILIBRIUM_MEASURE = { samples: DEMO_STYLE_SAMPLES * HELD_OUT_COUNT, draws: 4000, threshold: 0.02, seeds: 5 };

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
      measuredJudgeEquilibrium: sampledExploitability(goldGame, judgeEq, { ...JUDGE_EQUILIBRIUM_MEASURE, rng: createRng(answers === 'correct' ? 1 : 2) }),
    });
  }
  return out;
}
