// The options of an LLM judge over HTTP that every command taking --judge shares (sppo judge, eval, bench):
// --judge openai:URL#MODEL with --judge-template, --judge-cache, --judge-prompts, --judge-api-key-env,
// --judge-concurrency, --judge-max-tokens, --judge-top-logprobs, --judge-max-retries, --judge-timeout.
import type { JudgeSpec } from '../judge/spec.js';
import { JUDGE_TEMPLATE_NAMES } from '../judge/spec.js';
import { choice, optNum } from './args.js';
import { UsageError } from './usage.js';

export const JUDGE_OPTIONS = {
  'judge-template': { type: 'string' },
  'judge-cache': { type: 'string' },
  'judge-prompts': { type: 'string' },
  'judge-api-key-env': { type: 'string' },
  'judge-concurrency': { type: 'string' },
  'judge-max-tokens': { type: 'string' },
  'judge-top-logprobs': { type: 'string' },
  'judge-max-retries': { type: 'string' },
  'judge-timeout': { type: 'string' },
} as const;

export const JUDGE_OPTIONS_HELP = `the LLM judge over HTTP (--judge openai:URL#MODEL; openai:URL takes the server's first model):
  --judge-template T         alpaca_eval | arena_hard | mt_bench | pairwise (default: the benchmark's, else pairwise)
  --judge-cache FILE         the verdict cache (JSONL; a rerun reuses every verdict in it)
  --judge-prompts FILE       MT-Bench's judge_prompts.jsonl (template mt_bench)
  --judge-api-key-env VAR    the environment variable holding the API key
  --judge-concurrency N      requests in flight (default 8)
  --judge-max-tokens N       overrides the template's max_tokens
  --judge-top-logprobs N     overrides the template's top_logprobs (alpaca_eval 5, pairwise 20)
  --judge-max-retries N      retries of a failed request (default 6)
  --judge-timeout S          seconds per request (default 600)`;

type Values = Partial<Record<keyof typeof JUDGE_OPTIONS, string | undefined>>;

/** Adds the --judge-* options to an openai spec; they are a usage error with any other judge. */
export function withJudgeOptions(spec: JudgeSpec, v: Values, defaults: { template?: (typeof JUDGE_TEMPLATE_NAMES)[number]; cache?: string; judgePrompts?: string } = {}): JudgeSpec {
  const given = (Object.keys(JUDGE_OPTIONS) as (keyof typeof JUDGE_OPTIONS)[]).filter((k) => v[k] !== undefined);
  if (spec.kind !== 'openai') {
    if (given.length) throw new UsageError(`--${given[0]} applies to an openai:URL judge only`);
    return spec;
  }
  const template = choice('judge-template', v['judge-template'], JUDGE_TEMPLATE_NAMES) ?? defaults.template ?? spec.template;
  const int = { integer: true, min: 1 };
  const n = (k: keyof typeof JUDGE_OPTIONS, o = int): number | undefined => optNum(k, v[k], o);
  const cache = v['judge-cache'] ?? defaults.cache;
  const judgePrompts = v['judge-prompts'] ?? defaults.judgePrompts;
  const out: JudgeSpec = { ...spec, template };
  if (cache) out.cache = cache;
  if (judgePrompts) out.judgePrompts = judgePrompts;
  if (v['judge-api-key-env']) out.apiKeyEnv = v['judge-api-key-env'];
  const c = n('judge-concurrency');
  if (c !== undefined) out.concurrency = c;
  const mt = n('judge-max-tokens');
  if (mt !== undefined) out.maxTokens = mt;
  const tl = n('judge-top-logprobs', { integer: true, min: 1, max: 20 } as typeof int);
  if (tl !== undefined) out.topLogprobs = tl;
  const mr = n('judge-max-retries', { integer: true, min: 0 } as typeof int);
  if (mr !== undefined) out.maxRetries = mr;
  const to = optNum('judge-timeout', v['judge-timeout'], { min: 0, open: true });
  if (to !== undefined) out.timeoutS = to;
  return out;
}
