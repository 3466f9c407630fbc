// How well a policy of the demo solves the task family, by the gold judge's correctness rule: K samples per
// prompt (temperature 1, as the demo samples), the mean correctness of a sample, pass@K (some sample among
// the K is correct), per task kind, and the style shares. Used to measure the starter (demo/starter/RECIPE.md).
// With an opponent (`vs`, one sample per prompt of another policy): the gold win rate of the best of K, a correct
// sample wherever there is one — what a policy that always picked right among its own K samples would win, the
// ceiling of reweighting them (docs/demo.md, "What it does not show").
import { loadModel } from '../models/registry.js';
import { generate } from '../generate/generate.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, promptIds } from '../text/chat_template.js';
import { goldPreference, isCorrect, responseStats } from './gold_judge.js';
import { TASK_KINDS, type Style, type Task, type TaskKind } from './tasks.js';

export interface PolicyEval {
  prompts: number;
  k: number;
  /** Mean correctness of one sample. */
  correct: number;
  /** Share of prompts with at least one correct sample among K. */
  passAtK: number;
  byKind: Record<TaskKind, { correct: number; passAtK: number }>;
  styles: Record<Style | 'other', number>;
  /** With an opponent: the best of the K samples (a correct one when there is one) against its response, per prompt. */
  bestOfK?: BestOfK;
}

export interface BestOfK {
  /** Share of prompts whose best of K is correct (= pass@K). */
  correct: number;
  /** Mean gold P(best of K > the opponent's response), with its standard error over prompts. */
  winRate: number;
  winRateSe: number;
}

/** Per prompt the first correct sample (else the first sample), judged by the gold judge against `opponent[i]`. */
export function bestOfK(tasks: readonly Task[], samples: readonly (readonly string[])[], opponent: readonly string[]): BestOfK {
  if (samples.length !== tasks.length || opponent.length !== tasks.length) throw new Error(`bestOfK: ${tasks.length} prompts, ${samples.length} sample lists, ${opponent.length} opponent responses`);
  if (tasks.length === 0) throw new Error('bestOfK: no prompts');
  const p: number[] = [];
  let correct = 0;
  tasks.forEach((t, i) => {
    const best = samples[i]!.find((r) => isCorrect(t.prompt, r)) ?? samples[i]![0] ?? '';
    if (isCorrect(t.prompt, best)) correct++;
    p.push(goldPreference(t.prompt, best, opponent[i]!));
  });
  const n = p.length;
  const mean = p.reduce((a, b) => a + b, 0) / n;
  const varr = n > 1 ? p.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return { correct: correct / n, winRate: mean, winRateSe: Math.sqrt(varr / n) };
}

/** K samples per task of the policy in `dir` (its chat template, float32 on the CPU), seeded per batch of 32 prompts. */
export async function samplePolicy(dir: string, tasks: readonly Task[], k: number, o: { temperature: number; topP: number; seed: number; maxNewTokens: number }): Promise<string[][]> {
  const tok = Tokenizer.fromFolder(dir);
  const chat = ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens });
  const model = loadModel(dir, { dtype: 'float32', device: 'cpu' });
  const texts: string[][] = [];
  try {
    const bs = 32;
    for (let s = 0; s < tasks.length; s += bs) {
      const part = tasks.slice(s, s + bs);
      const ids = part.map((t) => promptIds(tok, t.prompt, chat));
      const gens = generate(model, ids, { n: k, temperature: o.temperature, topP: o.topP, maxNewTokens: o.maxNewTokens, seed: o.seed * 1000003 + s, tokenizer: tok });
      part.forEach((_, i) => texts.push(gens.slice(i * k, (i + 1) * k).map((g) => g.text)));
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    model.dispose();
  }
  return texts;
}

export async function evaluatePolicy(o: { model: string; tasks: readonly Task[]; k: number; temperature?: number; topP?: number; seed?: number; maxNewTokens?: number; vs?: string }): Promise<PolicyEval> {
  const sampling = { temperature: o.temperature ?? 1, topP: o.topP ?? 1, maxNewTokens: o.maxNewTokens ?? 24 };
  const texts = await samplePolicy(o.model, o.tasks, o.k, { ...sampling, seed: o.seed ?? 0 });
  // The opponent's one response per prompt: its own seed stream, so that it is not the policy's first sample when vs = model.
  const opponent = o.vs === undefined ? undefined : (await samplePolicy(o.vs, o.tasks, 1, { ...sampling, seed: (o.seed ?? 0) + 0x5eed })).map((r) => r[0]!);
  const acc = Object.fromEntries(TASK_KINDS.map((k) => [k, { n: 0, correct: 0, pass: 0 }])) as Record<TaskKind, { n: number; correct: number; pass: number }>;
  let correct = 0;
  let pass = 0;
  o.tasks.forEach((t, i) => {
    const c = texts[i]!.filter((r) => isCorrect(t.prompt, r)).length;
    correct += c / o.k;
    pass += c > 0 ? 1 : 0;
    const a = acc[t.kind];
    a.n++;
    a.correct += c / o.k;
    a.pass += c > 0 ? 1 : 0;
  });
  const n = Math.max(1, o.tasks.length);
  const byKind = Object.fromEntries(TASK_KINDS.map((k) => [k, { correct: acc[k].correct / Math.max(1, acc[k].n), passAtK: acc[k].pass / Math.max(1, acc[k].n) }])) as PolicyEval['byKind'];
  const flatPrompts = o.tasks.flatMap((t) => Array<string>(o.k).fill(t.prompt));
  return {
    prompts: o.tasks.length, k: o.k, correct: correct / n, passAtK: pass / n, byKind, styles: responseStats(flatPrompts, texts.flat()).styles,
    ...(opponent ? { bestOfK: bestOfK(o.tasks, texts, opponent) } : {}),
  };
}

export function formatPolicyEval(e: PolicyEval): string {
  const pct = (x: number): string => (100 * x).toFixed(1);
  const kinds = TASK_KINDS.map((k) => `${k} ${pct(e.byKind[k].correct)}/${pct(e.byKind[k].passAtK)}`).join(', ');
  const st = Object.entries(e.styles).map(([s, v]) => `${s} ${pct(v)}`).join(', ');
  const best = e.bestOfK ? `\nbest of ${e.k} (a correct sample where there is one) vs one sample of the opponent: gold win rate ${pct(e.bestOfK.winRate)} ± ${pct(e.bestOfK.winRateSe)} %` : '';
  return `${e.prompts} prompts x ${e.k} samples: correct ${pct(e.correct)} %, pass@${e.k} ${pct(e.passAtK)} %\nper kind (correct/pass@${e.k} %): ${kinds}\nstyles (%): ${st}${best}`;
}
