// How well a policy of the demo solves the task family, by the gold judge's correctness rule: K samples per
// prompt (temperature 1, as the demo samples), the mean correctness of a sample, pass@K (some sample among
// the K is correct), per task kind, and the style shares. Used to measure the starter (demo/starter/RECIPE.md).
import { loadModel } from '../models/registry.js';
import { generate } from '../generate/generate.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, promptText } from '../text/chat_template.js';
import { isCorrect, responseStats } from './gold_judge.js';
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
}

export async function evaluatePolicy(o: { model: string; tasks: readonly Task[]; k: number; temperature?: number; topP?: number; seed?: number; maxNewTokens?: number }): Promise<PolicyEval> {
  const tok = Tokenizer.fromFolder(o.model);
  const chat = ChatTemplate.fromFolder(o.model, { specialTokens: tok.specialTokens });
  const model = loadModel(o.model, { dtype: 'float32', device: 'cpu' });
  const texts: string[][] = [];
  try {
    const bs = 32;
    for (let s = 0; s < o.tasks.length; s += bs) {
      const part = o.tasks.slice(s, s + bs);
      const ids = part.map((t) => tok.encode(promptText(t.prompt, chat), { addSpecialTokens: false }));
      const gens = generate(model, ids, { n: o.k, temperature: o.temperature ?? 1, topP: o.topP ?? 1, maxNewTokens: o.maxNewTokens ?? 24, seed: (o.seed ?? 0) * 1000003 + s, tokenizer: tok });
      part.forEach((_, i) => texts.push(gens.slice(i * o.k, (i + 1) * o.k).map((g) => g.text)));
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    model.dispose();
  }
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
  return { prompts: o.tasks.length, k: o.k, correct: correct / n, passAtK: pass / n, byKind, styles: responseStats(flatPrompts, texts.flat()).styles };
}

export function formatPolicyEval(e: PolicyEval): string {
  const pct = (x: number): string => (100 * x).toFixed(1);
  const kinds = TASK_KINDS.map((k) => `${k} ${pct(e.byKind[k].correct)}/${pct(e.byKind[k].passAtK)}`).join(', ');
  const st = Object.entries(e.styles).map(([s, v]) => `${s} ${pct(v)}`).join(', ');
  return `${e.prompts} prompts x ${e.k} samples: correct ${pct(e.correct)} %, pass@${e.k} ${pct(e.passAtK)} %\nper kind (correct/pass@${e.k} %): ${kinds}\nstyles (%): ${st}`;
}
