// Which judge to load: the zod schema of a judge specification (a run's `judge` / `evalJudge` fields, and what
// `--judge` parses into), and its type, derived from the schema. The schema of the model dtypes and devices it
// names are here too, for the run configuration (src/sppo/config.ts) to use the same.
import { z } from 'zod';

/** The dtypes a model (policy or judge) may be loaded in. */
export const MODEL_DTYPES = ['float32', 'bfloat16', 'float16'] as const;
export type ModelDType = (typeof MODEL_DTYPES)[number];
export const deviceSchema = z.string().regex(/^(cpu|cuda(:\d+)?)$/, 'expected cpu, cuda or cuda:N');

const moduleJudge = z.object({ kind: z.literal('module'), path: z.string().min(1), options: z.unknown().optional() }).strict();
const modelJudge = <K extends 'reward-model' | 'pairwise'>(kind: K) =>
  z
    .object({
      kind: z.literal(kind),
      dir: z.string().min(1),
      dtype: z.enum(MODEL_DTYPES).optional(),
      device: deviceSchema.optional(),
      batchSize: z.number().int().min(1).optional(),
    })
    .strict();

/** How PairRM's matrix is made: each pair judged alone (pairwise) or llm-blender's rank scores over all K (rank). */
export const PAIRRM_MODES = ['pairwise', 'rank'] as const;
export type PairRMMode = (typeof PAIRRM_MODES)[number];

/** llm-blender's PairRM in its PairRM-hf folder layout (src/judge/pairrm.ts). */
const pairrmJudge = z
  .object({
    kind: z.literal('pairrm'),
    dir: z.string().min(1),
    dtype: z.enum(MODEL_DTYPES).optional(),
    device: deviceSchema.optional(),
    batchSize: z.number().int().min(1).optional(),
    mode: z.enum(PAIRRM_MODES).optional(),
    sourceMaxLength: z.number().int().min(3).optional(),
    candidateMaxLength: z.number().int().min(3).optional(),
  })
  .strict();

/** The templates of the HTTP judge (src/judge/templates/). */
export const JUDGE_TEMPLATE_NAMES = ['alpaca_eval', 'arena_hard', 'mt_bench', 'pairwise'] as const;

/** An LLM judge behind an OpenAI-compatible endpoint (src/judge/openai.ts). */
const openaiJudge = z
  .object({
    kind: z.literal('openai'),
    /** Base URL of the OpenAI API, e.g. http://127.0.0.1:8000/v1. */
    url: z.string().regex(/^https?:\/\/\S+$/, 'expected an http(s):// URL'),
    /** Default: the first model the server lists. */
    model: z.string().min(1).optional(),
    /** The environment variable holding the API key. */
    apiKeyEnv: z.string().min(1).optional(),
    template: z.enum(JUDGE_TEMPLATE_NAMES).default('pairwise'),
    concurrency: z.number().int().min(1).optional(),
    maxRetries: z.number().int().min(0).optional(),
    timeoutS: z.number().positive().optional(),
    maxTokens: z.number().int().min(1).optional(),
    topLogprobs: z.number().int().min(1).max(20).optional(),
    /** The verdict cache file (default in `sppo run`: judge-cache.jsonl of the run directory). */
    cache: z.string().min(1).optional(),
    /** MT-Bench's judge_prompts.jsonl (template mt_bench). */
    judgePrompts: z.string().min(1).optional(),
    /** An unparseable verdict counts 1/2 ('tie') or stops the run ('error'). */
    unparseable: z.enum(['tie', 'error']).optional(),
  })
  .strict();

/** The judge: a JS module, a reward model (Bradley-Terry scores), a pairwise preference model, PairRM, or an LLM over HTTP. */
export const judgeSpecSchema = z.discriminatedUnion('kind', [moduleJudge, modelJudge('reward-model'), modelJudge('pairwise'), pairrmJudge, openaiJudge]);

export type JudgeSpec = z.infer<typeof judgeSpecSchema>;
