// The configuration of an SPPO run (`sppo run CONFIG`, `runSppo(config)`): one JSON or YAML file,
// validated with zod. Every field has a default except `model`, `prompts`, `runDir` and `judge`; an
// unknown field, a wrong type or an out-of-range value is an error naming the field (dotted path).
// Relative paths are resolved against the config file's folder (or `baseDir` for the library API).
// docs/sppo-loop.md is the reference of every field.
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PAIR_MODES } from './pairs.js';
import { deviceSchema, judgeSpecSchema, MODEL_DTYPES, type JudgeSpec } from '../judge/spec.js';
import { lossTypeSchema, usesBaseline, usesMagnet } from './losses.js';
import { parseHubName } from '../hub/cache.js';
import { REPORT_TARGETS } from './tracking.js';
import { jsonErrorMessage, readText } from '../util/files.js';

const DTYPES = MODEL_DTYPES;
const int = (min: number): z.ZodNumber => z.number().int().min(min);
const device = deviceSchema;

// The judge's schema lives with the judges (src/judge/spec.ts); re-exported here, where it always was.
export { judgeSpecSchema };

/** Generation over OpenAI-compatible servers instead of in process (src/sppo/remote_generation.ts). */
export const backendSchema = z
  .object({
    kind: z.literal('openai'),
    /** Base URLs of running servers (http://host:port/v1); or none with serverCommand. */
    urls: z.array(z.string().url()).default([]),
    /** The requests' `model` (default: the checkpoint's path with serverCommand, else the first of GET /v1/models). */
    model: z.string().min(1).optional(),
    /** Environment variable holding the API key. */
    apiKeyEnv: z.string().min(1).optional(),
    /** Requests in flight per server. */
    concurrency: int(1).default(8),
    /** Per request. */
    timeoutS: z.number().gt(0).default(600),
    /** Started on each iteration's checkpoint: {checkpoint}, {port} (a free port) and {index} are filled in. */
    serverCommand: z.string().min(1).optional(),
    /** Servers started with serverCommand. */
    servers: int(1).default(1),
    /** Seconds each started server has to answer GET /v1/models. */
    startTimeoutS: z.number().gt(0).default(300),
  })
  .strict()
  .refine((b) => (b.urls.length > 0) !== (b.serverCommand !== undefined), { message: 'give either urls or serverCommand (one of them)', path: ['urls'] });

export const generationSchema = z
  .object({
    /** In-process generation when absent. */
    backend: backendSchema.optional(),
    /** Samples per prompt (K). */
    k: int(2).default(5),
    temperature: z.number().min(0).default(0.7),
    topP: z.number().gt(0).max(1).default(0.9),
    topK: int(0).default(0),
    maxNewTokens: int(1).default(1024),
    minNewTokens: int(0).default(0),
    stop: z.array(z.string().min(1)).default([]),
    /** Prompts per generation batch (batchSize * k sequences decode together). */
    batchSize: int(1).default(8),
    /** Decoding loop (GenerateOptions.graph): CUDA graph per batch bucket on a GPU ('auto', 'on') or the op-by-op loop ('off'). */
    graph: z.enum(['auto', 'on', 'off']).default('auto'),
  })
  .strict();

/** LoRA adapters instead of full fine-tuning (src/nn/lora.ts; PEFT's LoraConfig fields in camelCase). */
export const loraSchema = z
  .object({
    /** Rank. */
    r: int(1),
    /** Scaling alpha / r (alpha / sqrt(r) with rslora). */
    alpha: z.number().gt(0),
    /** Dropout on the adapters' input. */
    dropout: z.number().min(0).lt(1).default(0),
    /** Layer names (q_proj, v_proj, ..., GPT-2's c_attn, c_proj, c_fc), a regular expression over the dotted module path, or 'all-linear'. */
    targetModules: z.union([z.array(z.string().min(1)).min(1), z.string().min(1)]).default('all-linear'),
    /** rsLoRA: scaling alpha / sqrt(r). */
    rslora: z.boolean().default(false),
  })
  .strict();

export const trainingSchema = z
  .object({
    loss: lossTypeSchema.default('sppo'),
    beta: z.number().gt(0).default(0.001),
    /** mpo, nash-md, extragradient: the KL strength toward the magnet (losses.ts); required by mpo and nash-md. */
    tau: z.number().min(0).optional(),
    /** mpo: the magnet is pi_0, then moves to the current policy every `magnetEvery` iterations (pi_{magnetEvery}, ...). */
    magnetEvery: int(1).default(2),
    /**
     * nash-md: whom the responses are judged against from iteration 2 on. 'mixture' (the default, Nash-MD's): K samples
     * per prompt from the token-level geometric mixture pi_{t-1}^(1 - eta tau) pi_0^(eta tau); 'policy': pi_{t-1}'s own
     * samples (the K x K matrix; no extra samples or judging, equal to first order in eta tau).
     */
    opponent: z.enum(['mixture', 'policy']).optional(),
    /**
     * omwu, extragradient, nash-md: the per-prompt constant the log-ratio targets subtract from eta P(y > opponent),
     * an estimate of the exact update's log-normaliser log E_{pi_t} exp(eta P(y > opponent)) to first order.
     * 'samples': eta times the mean win rate of pi_t's K samples against the opponent; 'half': eta / 2, SPPO's
     * constant, exact to first order only when the opponent is pi_t itself (last_iterate.ts, docs/sppo-loop.md).
     */
    baseline: z.enum(['samples', 'half']).optional(),
    /** cDPO label smoothing, in [0, 0.5); dpo only (checked below). */
    labelSmoothing: z.number().min(0).lt(0.5).default(0),
    lr: z.number().gt(0).default(5e-7),
    epochs: int(1).default(1),
    batchSize: int(1).default(8),
    gradAccum: int(1).default(1),
    optimizer: z.enum(['rmsprop', 'adamw']).default('rmsprop'),
    weightDecay: z.number().min(0).default(0),
    warmupRatio: z.number().min(0).max(1).default(0.1),
    schedule: z.enum(['linear', 'cosine', 'constant']).default('linear'),
    maxLength: int(2).default(2048),
    maxPromptLength: int(1).default(1024),
    maxGradNorm: z.number().gte(0).default(1), // 0: no clipping, as train() and sppo train --max-grad-norm take it
    gradientCheckpointing: z.boolean().default(false),
    /** Mixture-of-experts policies: the load-balancing loss's weight (trainer.ts TrainOptions.routerAuxLossCoef; TRL's 0.001); 0: off. */
    routerAuxLossCoef: z.number().min(0).default(0.001),
    /** With bfloat16/float16 weights: the optimizer steps float32 master copies (trainer.ts TrainOptions.masterWeights). */
    masterWeights: z.boolean().default(true),
    /** Sequences packed end to end into rows without padding (trainer.ts TrainOptions.packing). */
    packing: z.boolean().default(true),
    /** Train LoRA adapters (merged into pi_t after each iteration) instead of every weight. */
    lora: loraSchema.optional(),
  })
  .strict()
  // The rule of preferenceLoss (src/sppo/losses.ts), checked here so that a run fails before it generates.
  .refine((t) => t.labelSmoothing === 0 || t.loss === 'dpo', {
    path: ['labelSmoothing'],
    message: 'applies to loss dpo only (training.loss is not dpo)',
  })
  .refine((t) => t.tau === undefined || usesMagnet(t.loss), {
    path: ['tau'],
    message: 'applies to losses mpo, nash-md and extragradient only',
  })
  .refine((t) => !['mpo', 'nash-md'].includes(t.loss) || (t.tau !== undefined && t.tau > 0), {
    path: ['tau'],
    message: 'loss mpo and nash-md need tau > 0 (the KL strength toward the magnet)',
  })
  .refine((t) => t.loss !== 'nash-md' || t.tau === undefined || t.tau <= t.beta, {
    path: ['tau'],
    message: 'loss nash-md needs eta tau = tau / beta <= 1 (the geometric mixture pi^(1 - eta tau) mu^(eta tau))',
  })
  .refine((t) => t.baseline === undefined || usesBaseline(t.loss), {
    path: ['baseline'],
    message: 'applies to losses omwu, extragradient and nash-md only (the others judge pi_t against itself)',
  })
  .refine((t) => t.opponent === undefined || t.loss === 'nash-md', {
    path: ['opponent'],
    message: 'applies to loss nash-md only',
  });

/** Prompts by data set name (src/sppo/dataset_prompts.ts): a split's Parquet files from the Hugging Face cache. */
export const datasetPromptsSchema = z
  .object({
    /** org/name[@revision] on the Hub. */
    dataset: z.string().min(1),
    split: z.string().min(1).default('train'),
    /** The column holding the prompt (default: prompt, messages or instruction). */
    field: z.string().min(1).optional(),
    /** The data set's configuration (subset), when it has several. */
    config: z.string().min(1).optional(),
  })
  .strict();

export const evalSchema = z
  .object({
    /** Held-out prompts taken from `prompts` (0: no evaluation), unless `prompts` below is given. */
    count: int(0).default(100),
    /** A separate file of evaluation prompts (JSONL or Parquet), or a data set split; its first `count` prompts are used. */
    prompts: z.union([z.string().min(1), datasetPromptsSchema]).optional(),
    /** Sampling of the evaluated responses (one per prompt); defaults: the generation's. */
    temperature: z.number().min(0).optional(),
    topP: z.number().gt(0).max(1).optional(),
    maxNewTokens: int(1).optional(),
    batchSize: int(1).optional(),
  })
  .strict();

export const configSchema = z
  .object({
    /** pi_0: a Hugging Face model folder. */
    model: z.string().min(1),
    /** Training prompts: JSONL or Parquet with `prompt` or chat `messages`, or a data set split by its Hub name. */
    prompts: z.union([z.string().min(1), datasetPromptsSchema]),
    /** Where every artifact goes (created if missing; rerunning resumes). */
    runDir: z.string().min(1),
    judge: judgeSpecSchema,
    /** Judge of the evaluation stage (default: `judge`). */
    evalJudge: judgeSpecSchema.optional(),
    iterations: int(1).default(3),
    /** Prompts per iteration (default: the non-held-out prompts split evenly over the iterations). */
    promptsPerIteration: int(1).optional(),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(0),
    /** Model dtype for generation and training (default: the checkpoint's). */
    dtype: z.enum(DTYPES).optional(),
    /** Default: cuda when available, else cpu. */
    device: device.optional(),
    /** Use plain-text prompts as they are, without the chat template. */
    raw: z.boolean().default(false),
    /**
     * Variables given to every rendering of the policy's chat template (transformers' `apply_chat_template(**kwargs)`),
     * e.g. `{ enable_thinking: false }` for Qwen3. None by default.
     */
    chatTemplateKwargs: z.record(z.string(), z.unknown()).optional(),
    /** Experiment tracking (src/sppo/tracking.ts): TensorBoard event files under runDir/tensorboard/ ('wandb': the same files, with the `wandb sync --sync-tensorboard` command logged). */
    report: z.array(z.enum(REPORT_TARGETS)).default([]),
    /**
     * Each iteration's checkpoint uploaded to the Hub once written (src/sppo/stages/push.ts): `repo` is the
     * repository, `{t}` in it the iteration (UCLA-AGI's layout: one repository per iteration, ...-Iter{t}); without
     * `{t}` each iteration is a new commit of one repository. HF_TOKEN gives the write access.
     */
    push: z.object({ repo: z.string().regex(/^[\w.{}-]+\/[\w.{}-]+$/, 'a repository name namespace/name ({t}: the iteration)'), private: z.boolean().default(false) }).strict().optional(),
    /** Reference log-probs: summed from generation, or recomputed by a forward pass (default: generation in float32, else recompute). */
    refLogprobs: z.enum(['generation', 'recompute']).optional(),
    /** Prompts per judging chunk (the unit of resumption within the judge stage). */
    judgeChunk: int(1).default(16),
    /**
     * The prompt as the judges see it: 'plain' (the prompt's text) or 'template' (as the policy's chat template
     * renders it up to the assistant turn: what the official SPPO pipeline hands PairRM).
     */
    judgePromptFormat: z.enum(['plain', 'template']).default('plain'),
    /**
     * Training pairs per prompt (src/sppo/pairs.ts): 'best-worst' (one: the highest and the lowest win rate, the
     * paper's practice) or 'ranked' (best with worst, second best with second worst, ...). Optional without a
     * default so that run directories started before it existed resume unchanged; absent = 'best-worst'.
     */
    pairs: z.enum(PAIR_MODES).optional(),
    generation: generationSchema.prefault({}),
    training: trainingSchema.prefault({}),
    eval: evalSchema.prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.training.maxPromptLength + c.generation.maxNewTokens > c.training.maxLength) {
      ctx.addIssue({
        code: 'custom',
        path: ['training', 'maxLength'],
        message: `must be at least training.maxPromptLength + generation.maxNewTokens = ${c.training.maxPromptLength} + ${c.generation.maxNewTokens} (responses are never truncated in training)`,
      });
    }
  });

export type JudgeSpecConfig = JudgeSpec;
export type SppoConfigInput = z.input<typeof configSchema>;
export type SppoConfig = z.output<typeof configSchema>;

/** A configuration error; the message names each offending field. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    readonly fields: string[] = [],
  ) {
    super(message);
  }
}

function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s;
}

/** One line per issue: `field: message` (unknown fields: `field: unknown field`). */
export function formatIssues(issues: ReadonlyArray<z.core.$ZodIssue>, source?: string): { message: string; fields: string[] } {
  const lines: string[] = [];
  const fields: string[] = [];
  for (const is of issues) {
    if (is.code === 'unrecognized_keys') {
      for (const k of is.keys) {
        const f = fieldPath([...is.path, k]);
        fields.push(f);
        lines.push(`${f}: unknown field`);
      }
    } else {
      const f = fieldPath(is.path) || '(config)';
      fields.push(f);
      lines.push(`${f}: ${is.message}`);
    }
  }
  const head = source ? `${source}: invalid configuration` : 'invalid configuration';
  return { message: `${head}\n  ${lines.join('\n  ')}`, fields };
}

export interface ParseConfigOptions {
  /** Relative paths are resolved against this folder (default: process.cwd()). */
  baseDir?: string;
  /** Named in error messages (the config file). */
  source?: string;
}

function resolvePath(base: string, p: string): string {
  return isAbsolute(p) ? p : resolve(base, p);
}

/** A model: a folder (relative to `base`), or a Hub name org/name[@revision] kept as it is (src/hub). */
function resolveModelPath(base: string, p: string): string {
  return isAbsolute(p) || existsSync(resolve(base, p)) || !parseHubName(p) ? resolvePath(base, p) : p;
}

function resolveJudge(base: string, j: JudgeSpecConfig): JudgeSpecConfig {
  if (j.kind === 'openai') {
    return { ...j, ...(j.cache ? { cache: resolvePath(base, j.cache) } : {}), ...(j.judgePrompts ? { judgePrompts: resolvePath(base, j.judgePrompts) } : {}) };
  }
  return j.kind === 'module' ? { ...j, path: resolvePath(base, j.path) } : { ...j, dir: resolveModelPath(base, j.dir) };
}

/** Validates a configuration object, fills in defaults and resolves relative paths. */
export function parseConfig(input: unknown, opts: ParseConfigOptions = {}): SppoConfig {
  const r = configSchema.safeParse(input);
  if (!r.success) {
    const { message, fields } = formatIssues(r.error.issues, opts.source);
    throw new ConfigError(message, fields);
  }
  const base = resolve(opts.baseDir ?? process.cwd());
  const c = r.data;
  const out: SppoConfig = {
    ...c,
    model: resolveModelPath(base, c.model),
    prompts: typeof c.prompts === 'string' ? resolvePath(base, c.prompts) : c.prompts,
    runDir: resolvePath(base, c.runDir),
    judge: resolveJudge(base, c.judge),
    eval: { ...c.eval, ...(typeof c.eval.prompts === 'string' ? { prompts: resolvePath(base, c.eval.prompts) } : {}) },
  };
  if (c.evalJudge) out.evalJudge = resolveJudge(base, c.evalJudge);
  return out;
}

/** Reads a JSON (.json) or YAML (anything else) config file and validates it. */
export function loadConfigFile(path: string): SppoConfig {
  const file = resolve(path);
  if (!existsSync(file)) throw new ConfigError(`${path}: no such config file`);
  const text = readText(file, ConfigError);
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'} (${jsonErrorMessage(text, e)})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${path}: expected a mapping of fields at the top level`);
  return parseConfig(raw, { baseDir: dirname(file), source: path });
}

/** The reference log-prob source actually used: `refLogprobs`, else generation for float32 and recompute otherwise. */
export function refLogprobSource(cfg: SppoConfig, modelDtype: string): 'generation' | 'recompute' {
  return cfg.refLogprobs ?? (modelDtype === 'float32' ? 'generation' : 'recompute');
}
