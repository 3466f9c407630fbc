// The judge templates by name: the one place src/judge/openai.ts looks a template up (a spec's `template`, the
// names of spec.ts's JUDGE_TEMPLATE_NAMES; the compiler checks that every name has its template).
import type { JUDGE_TEMPLATE_NAMES } from '../spec.js';
import type { JudgeTemplate } from './template.js';
import { alpacaEvalTemplate } from './alpaca_eval.js';
import { arenaHardTemplate } from './arena_hard.js';
import { mtBenchTemplate } from './mt_bench.js';
import { pairwisePromptTemplate } from './pairwise_prompt.js';

export const JUDGE_TEMPLATE_REGISTRY = {
  alpaca_eval: alpacaEvalTemplate,
  arena_hard: arenaHardTemplate,
  mt_bench: mtBenchTemplate,
  pairwise: pairwisePromptTemplate,
} satisfies Record<(typeof JUDGE_TEMPLATE_NAMES)[number], JudgeTemplate<unknown>>;
