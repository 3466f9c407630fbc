// Preference judges: anything that gives P(a > b | prompt) for pairs of responses. Five kinds:
//   module        a user's JavaScript module (src/judge/js_module_judge.ts)
//   reward-model  an HF sequence-classification reward model, P(a > b) = sigmoid(r_a - r_b) (reward_model.ts)
//   openai        an LLM judge behind an OpenAI-compatible endpoint, prompted with a benchmark's template (openai.ts)
//   pairwise      a causal-LM backbone with a pairwise head: a general preference model that reads the prompt
//                 with each response and compares them (general_preference.ts), or one that reads prompt, A and
//                 B together (pairwise_head.ts)
//   pairrm        llm-blender's PairRM (DeBERTa-v3 pairwise ranker, the SPPO paper's judge) from a PairRM-hf
//                 folder (pairrm.ts)
// preferenceMatrix() turns a judge into the K x K matrix of one prompt that src/sppo/winrates.ts expects.
import type { JudgeSpec, ModelDType } from './spec.js';
import type { JUDGE_TEMPLATE_NAMES } from './spec.js';

type JudgeTemplateName = (typeof JUDGE_TEMPLATE_NAMES)[number];
import { checkAnswers, checkMatrix, JudgeError, symmetrize, type PreferenceItem, type PreferenceOracle, type PreferenceQuery } from './oracle.js';
import { resolveModelDir } from '../hub/resolve.js';

export { checkAnswers, checkMatrix, JudgeError, type PreferenceItem, type PreferenceOracle, type PreferenceQuery } from './oracle.js';

export { judgeSpecSchema, type JudgeSpec } from './spec.js';

/**
 * Parses a judge given on the command line: `reward-model:DIR`, `pairwise:DIR`, `pairrm:DIR` (PairRM, pairwise
 * mode), `pairrm-rank:DIR` (PairRM, rank mode), `module:PATH`, a path to a .mjs / .js / .cjs file (a module judge),
 * or `openai:URL#MODEL` (`openai:URL`: the server's first model) with the template in `extra.template` (default pairwise).
 */
export function parseJudgeSpec(s: string, extra: { dtype?: ModelDType; device?: string; batchSize?: number; template?: JudgeTemplateName } = {}): JudgeSpec {
  const o = /^openai:(https?:\/\/[^#\s]+)(?:#(.+))?$/.exec(s);
  if (o) return { kind: 'openai', url: o[1]!, ...(o[2] ? { model: o[2] } : {}), template: extra.template ?? 'pairwise' };
  if (s.startsWith('openai:')) throw new JudgeError(`judge '${s}': expected openai:URL#MODEL with an http(s) URL, e.g. openai:http://127.0.0.1:8000/v1#my-judge`);
  const { template: _t, ...modelExtra } = extra;
  extra = modelExtra;
  const m = /^(reward-model|pairwise|pairrm|pairrm-rank|module):(.+)$/.exec(s);
  if (m) {
    const [, kind, rest] = m as unknown as [string, string, string];
    if (kind === 'module') return { kind: 'module', path: rest };
    if (kind === 'pairrm' || kind === 'pairrm-rank') return { kind: 'pairrm', dir: rest, mode: kind === 'pairrm' ? 'pairwise' : 'rank', ...extra };
    return { kind: kind as 'reward-model' | 'pairwise', dir: rest, ...extra };
  }
  if (/\.(mjs|cjs|js)$/.test(s)) return { kind: 'module', path: s };
  throw new JudgeError(`judge '${s}': expected a .mjs/.js module path, reward-model:DIR, pairwise:DIR, pairrm:DIR, pairrm-rank:DIR or openai:URL#MODEL`);
}

export async function loadJudge(spec: JudgeSpec, opts: { log?: (line: string) => void } = {}): Promise<PreferenceOracle> {
  // A model judge's dir may be a Hub name (org/name[@revision]): made the cached snapshot's folder (src/hub).
  if ('dir' in spec) spec = { ...spec, dir: await resolveModelDir(spec.dir) };
  switch (spec.kind) {
    case 'module': {
      const { loadModuleJudge } = await import('./js_module_judge.js');
      return loadModuleJudge(spec.path, spec.options);
    }
    case 'reward-model': {
      const { RewardModelJudge } = await import('./reward_model.js');
      return RewardModelJudge.load(spec.dir, spec);
    }
    case 'openai': {
      const { OpenAIJudge } = await import('./openai.js');
      let apiKey: string | undefined;
      if (spec.apiKeyEnv) {
        apiKey = process.env[spec.apiKeyEnv];
        if (!apiKey) throw new JudgeError(`judge.apiKeyEnv: the environment variable ${spec.apiKeyEnv} is not set`);
      }
      const { kind: _k, apiKeyEnv: _e, ...rest } = spec;
      return OpenAIJudge.create({ ...rest, ...(apiKey ? { apiKey } : {}), ...(opts.log ? { log: opts.log } : {}) });
    }
    case 'pairwise': {
      // Two heads: a general preference model (preference_head.safetensors, general_preference.ts) or a joint
      // reader of prompt, A and B (pairwise_head.safetensors, pairwise_head.ts).
      const { existsSync } = await import('node:fs');
      const { join } = await import('node:path');
      const { GeneralPreferenceJudge, PREFERENCE_HEAD_FILE } = await import('./general_preference.js');
      if (existsSync(join(spec.dir, PREFERENCE_HEAD_FILE))) return GeneralPreferenceJudge.load(spec.dir, spec);
      const { PairwiseJudge } = await import('./pairwise_head.js');
      return PairwiseJudge.load(spec.dir, spec);
    }
    case 'pairrm': {
      const { PairRMJudge } = await import('./pairrm.js');
      return PairRMJudge.load(spec.dir, spec);
    }
    default:
      throw new JudgeError(`unknown judge kind '${(spec as { kind: string }).kind}' (known: module, reward-model, pairwise, pairrm, openai)`);
  }
}

/**
 * The K x K matrix for one prompt: M[i][j] = P(y_i > y_j), diagonal 1/2, M + M^T = 1 exactly (both orders combined
 * for position-biased judges, see symmetrize in oracle.ts).
 */
export async function preferenceMatrix(judge: PreferenceOracle, prompt: string, responses: string[]): Promise<number[][]> {
  const k = responses.length;
  if (judge.preferenceMatrices) {
    const got: unknown = await judge.preferenceMatrices([{ prompt, responses }]);
    if (!Array.isArray(got) || got.length !== 1) throw new JudgeError(`${judge.name}: preferenceMatrices() returned ${Array.isArray(got) ? got.length : typeof got} matrices for 1 prompt`);
    return checkMatrix(judge.name, got[0], k);
  }
  const m: number[][] = Array.from({ length: k }, () => new Array<number>(k).fill(0.5));
  const pairs: [number, number][] = [];
  for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) pairs.push([i, j]);
  if (pairs.length === 0) return m;
  const queries: PreferenceQuery[] = pairs.map(([i, j]) => ({ prompt, a: responses[i]!, b: responses[j]! }));
  if (judge.positionBiased) for (const [i, j] of pairs) queries.push({ prompt, a: responses[j]!, b: responses[i]! });
  const p = checkAnswers(judge.name, await judge.prefer(queries), queries.length);
  pairs.forEach(([i, j], q) => {
    const v = judge.positionBiased ? symmetrize(p[q]!, p[pairs.length + q]!) : p[q]!;
    m[i]![j] = v;
    m[j]![i] = 1 - v;
  });
  return m;
}

/**
 * The matrices of several prompts: one preferenceMatrices() call when the judge has it (batched across prompts),
 * else preferenceMatrix() per prompt. Each matrix is checked (checkMatrix).
 */
export async function preferenceMatrices(judge: PreferenceOracle, items: PreferenceItem[]): Promise<number[][][]> {
  if (!judge.preferenceMatrices) {
    const out: number[][][] = [];
    for (const it of items) out.push(await preferenceMatrix(judge, it.prompt, it.responses));
    return out;
  }
  if (items.length === 0) return [];
  const got: unknown = await judge.preferenceMatrices(items);
  if (!Array.isArray(got) || got.length !== items.length) {
    throw new JudgeError(`${judge.name}: preferenceMatrices() returned ${Array.isArray(got) ? got.length : typeof got} matrices for ${items.length} prompts`);
  }
  return got.map((m, i) => checkMatrix(judge.name, m, items[i]!.responses.length, `prompt ${i} of the batch`));
}
