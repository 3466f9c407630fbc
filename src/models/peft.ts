// LoRA adapters in PEFT's files, which PEFT (PeftModel.from_pretrained), transformers (load_adapter) and vLLM
// (LoRARequest) load:
//
//   adapter_config.json         {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r", "lora_alpha", "lora_dropout",
//                                "target_modules", "use_rslora", "bias": "none", "fan_in_fan_out", ...}
//   adapter_model.safetensors   base_model.model.<module path>.lora_A.weight [r, in]
//                               base_model.model.<module path>.lora_B.weight [out, r]
//
// (PEFT's get_peft_model_state_dict: the PeftModel's state-dict keys, `base_model.model.` + the module path of
// the transformers model, with the adapter name taken out; safetensors metadata {"format": "pt"}.) Loading
// also takes keys with the adapter name left in (`lora_A.default.weight`). loadAdapter applies a plain LoRA as a
// live adapter; PEFT's variants (DoRA, trained biases, per-module ranks, embedding adapters, modules_to_save,
// trainable tokens) are merged by `sppo merge` (peft_merge.ts), and loadAdapter refuses them naming the field.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadSafetensors, saveSafetensors, type DType, type Tensor } from '../torch/index.js';
import { ALL_LINEAR, Lora, type LoraOptions } from '../nn/lora.js';
import { Conv1D } from '../nn/layers.js';
import type { CausalLMBase } from './causal_lm.js';
import { QWEN3_MOE_EXPERT_NAMES } from './qwen3_moe.js';
import { MIXTRAL_EXPERT_NAMES } from './mixtral.js';
import { writeJsonAtomic } from '../util/files.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** PEFT's key prefix of a causal LM's modules (PeftModelForCausalLM -> LoraModel -> the transformers model). */
export const PEFT_PREFIX = 'base_model.model.';

export class AdapterError extends Error {
  override name = 'AdapterError';
}

/** The fields of adapter_config.json that sppo reads and writes (PEFT's LoraConfig; PEFT fills in the rest). */
export interface PeftLoraConfig {
  peft_type: 'LORA';
  task_type: string | null;
  base_model_name_or_path: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[] | string;
  use_rslora: boolean;
  bias: 'none';
  fan_in_fan_out: boolean;
  [k: string]: unknown;
}

/** The adapter_config.json PEFT writes for these adapters. */
export function peftConfigOf(lora: Lora, baseModel: string | null): PeftLoraConfig {
  const fanInFanOut = lora.layers.some((l) => l.layer instanceof Conv1D);
  // PEFT stores 'all-linear' resolved into the names of the layers it matched.
  const targets = lora.targetModules === ALL_LINEAR
    ? [...new Set(lora.layers.map((l) => l.name.split('.').at(-1)!))].sort()
    : Array.isArray(lora.targetModules) ? [...lora.targetModules].sort() : lora.targetModules;
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    revision: null,
    inference_mode: true,
    r: lora.r,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    target_modules: targets,
    exclude_modules: null,
    use_rslora: lora.rslora,
    bias: 'none',
    fan_in_fan_out: fanInFanOut,
    modules_to_save: null,
    init_lora_weights: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    use_dora: false,
    lora_bias: false,
  };
}

export interface SaveAdapterOptions {
  /** base_model_name_or_path: the model folder (or hub id) the adapter applies to. */
  baseModel?: string | null;
  /** dtype of the saved A and B (default: theirs). */
  dtype?: DType;
}

/** Writes adapter_config.json and adapter_model.safetensors (PEFT's layout) into `dir`; returns the file names. */
export function saveAdapter(lora: Lora, dir: string, opts: SaveAdapterOptions = {}): string[] {
  const out = resolve(dir);
  const caveats = fusedExpertCaveats(lora.layers.map((l) => l.name), lora.rslora);
  if (caveats.length) {
    process.emitWarning(`${out}: this adapter adapts a mixture of experts' projections one expert at a time (transformers 4's layout, which PEFT on transformers 4 loads as trained); PEFT 0.21 on transformers 5, which fuses the experts, ${caveats.join('; and ')}. \`sppo merge\` writes a full checkpoint that both load`, { code: 'SPPO_PEFT_MOE' });
  }
  mkdirSync(out, { recursive: true });
  const tensors = new Map<string, Tensor>();
  const temps: Tensor[] = [];
  try {
    for (const [name, t] of lora.namedParameters()) {
      let x = t.detach();
      temps.push(x);
      if (opts.dtype && x.dtype !== opts.dtype) temps.push((x = x.to(opts.dtype)));
      if (x.device !== 'cpu') temps.push((x = x.to('cpu')));
      tensors.set(PEFT_PREFIX + name, x);
    }
    saveSafetensors(join(out, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  } finally {
    for (const t of temps) t.dispose();
  }
  writeJsonAtomic(join(out, ADAPTER_CONFIG), peftConfigOf(lora, opts.baseModel ?? null));
  return [ADAPTER_CONFIG, ADAPTER_WEIGHTS];
}

/** Each expert's projections that transformers 5 fuses into one parameter (gate_up_proj): Qwen3-MoE's, Mixtral's. */
const FUSED_EXPERT_PAIRS: [string, string][] = [QWEN3_MOE_EXPERT_NAMES, MIXTRAL_EXPERT_NAMES].map((n) => [n.gate, n.up]);

/**
 * What PEFT 0.21 gets wrong when it converts an adapter on per-expert projections (`...experts.3.gate_proj`) to
 * transformers 5's fused experts (measured by scripts/peft-interop.mjs): it refuses one half of a fused pair without
 * the other, scales rsLoRA on a fused pair by sqrt(2) (it doubles r and alpha), and leaves a dense MLP beside the experts
 * (Qwen3-MoE's mlp_only_layers), whose projections share the experts' names, without its LoRA. Empty when none applies.
 */
export function fusedExpertCaveats(layerNames: string[], rslora: boolean): string[] {
  const expert = layerNames.filter((n) => /\.experts\.\d+\./.test(n));
  if (!expert.length) return [];
  const leaf = (n: string): string => n.slice(n.lastIndexOf('.') + 1);
  const adapted = new Set(expert.map(leaf));
  const out: string[] = [];
  for (const [a, b] of FUSED_EXPERT_PAIRS) {
    if (adapted.has(a) !== adapted.has(b)) out.push(`refuses to load it: it adapts the experts' ${adapted.has(a) ? a : b} without their ${adapted.has(a) ? b : a} (add it to target_modules)`);
    else if (adapted.has(a) && rslora) out.push(`scales the experts' rsLoRA by sqrt(2) (it doubles r and alpha for the fused ${a} and ${b})`);
  }
  const dense = layerNames.filter((n) => !/\.experts\.\d+\./.test(n) && adapted.has(leaf(n)) && /\.mlp\.[^.]+$/.test(n));
  if (dense.length) out.push(`leaves the dense MLP layers beside the experts (${dense[0]}${dense.length > 1 ? `, and ${dense.length - 1} more` : ''}) without their LoRA`);
  return out;
}

/** What adapter_config.json describes: the LoRA options, and the variants PEFT adds to a plain LoRA. */
export interface AdapterSpec {
  options: LoraOptions;
  raw: Record<string, unknown>;
  /** Per-module ranks and alphas: regular expressions matched against the end of the module's name. */
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  /** Biases trained with the adapter (saved beside it). */
  bias: 'none' | 'all' | 'lora_only';
  /** lora_B has a bias, merged into the base layer's. */
  loraBias: boolean;
  /** DoRA: a magnitude per output row. */
  useDora: boolean;
  /** Modules trained whole and saved as copies. */
  modulesToSave: string[];
  /** Rows of the embeddings trained (a list: the input embeddings; an object: per module). */
  trainableTokens: number[] | Record<string, number[]> | null;
  /**
   * PEFT's LoRA on parameters (target_parameters): on transformers 5's fused experts of a mixture of experts
   * (`mlp.experts.gate_up_proj` / `down_proj`, [experts * r]-rank A and B), or a router (`gate.weight`).
   */
  targetParameters: string[];
}

/** The fields of `spec` that make it more than a plain LoRA (what loadAdapter does not compute), with their values. */
export function variantFields(spec: AdapterSpec): string[] {
  const v: string[] = [];
  if (Object.keys(spec.rankPattern).length) v.push('rank_pattern');
  if (Object.keys(spec.alphaPattern).length) v.push('alpha_pattern');
  if (spec.bias !== 'none') v.push(`bias ${JSON.stringify(spec.bias)}`);
  if (spec.loraBias) v.push('lora_bias');
  if (spec.useDora) v.push('use_dora (DoRA)');
  if (spec.modulesToSave.length) v.push(`modules_to_save ${JSON.stringify(spec.modulesToSave)}`);
  if (spec.trainableTokens) v.push('trainable_token_indices');
  if (spec.targetParameters.length) v.push(`target_parameters ${JSON.stringify(spec.targetParameters)} (a LoRA on parameters: fused experts, a router)`);
  return v;
}

/** Reads and checks adapter_config.json: the LoRA options it describes. Errors name the file and field. */
export function readAdapterConfig(dir: string): AdapterSpec {
  const path = join(resolve(dir), ADAPTER_CONFIG);
  if (!existsSync(path)) throw new AdapterError(`${dir}: no ${ADAPTER_CONFIG} (not a PEFT adapter folder)`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new AdapterError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new AdapterError(`${path}: not a JSON object`);
  const bad = (field: string, msg: string): never => {
    throw new AdapterError(`${path}: ${field}: ${msg}`);
  };
  if (raw.peft_type !== 'LORA') bad('peft_type', `${JSON.stringify(raw.peft_type)} is not supported (only "LORA")`);
  const r = raw.r ?? 8;
  if (!Number.isInteger(r) || (r as number) < 1) bad('r', `must be an integer >= 1, got ${JSON.stringify(r)}`);
  const alpha = raw.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !(alpha > 0)) bad('lora_alpha', `must be a number > 0, got ${JSON.stringify(alpha)}`);
  const dropout = raw.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) bad('lora_dropout', `must be in [0, 1), got ${JSON.stringify(dropout)}`);
  const tm = raw.target_modules;
  if (!(typeof tm === 'string' || (Array.isArray(tm) && tm.every((x) => typeof x === 'string')))) bad('target_modules', `must be a list of names or a regular expression, got ${JSON.stringify(tm)}`);
  const bias = raw.bias ?? 'none';
  if (!(bias === 'none' || bias === 'all' || bias === 'lora_only')) bad('bias', `must be "none", "all" or "lora_only", got ${JSON.stringify(bias)}`);
  const flag = (k: string): boolean => {
    const v = raw[k] ?? false;
    if (typeof v !== 'boolean') bad(k, `must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const pattern = (k: string, integer: boolean): Record<string, number> => {
    const v = raw[k] ?? {};
    if (typeof v !== 'object' || Array.isArray(v) || v === null) bad(k, `must be an object of module patterns, got ${JSON.stringify(v)}`);
    for (const [key, x] of Object.entries(v as object)) {
      if (typeof x !== 'number' || !(x > 0) || (integer && !Number.isInteger(x))) bad(`${k}.${key}`, `must be ${integer ? 'an integer >= 1' : 'a number > 0'}, got ${JSON.stringify(x)}`);
      try {
        new RegExp(key);
      } catch (e) {
        bad(`${k}.${key}`, `not a valid regular expression (${(e as Error).message})`);
      }
    }
    return v as Record<string, number>;
  };
  const mts = raw.modules_to_save ?? [];
  if (!(Array.isArray(mts) && mts.every((x) => typeof x === 'string'))) bad('modules_to_save', `must be a list of module names or null, got ${JSON.stringify(mts)}`);
  const tt = raw.trainable_token_indices ?? null;
  const indexList = (x: unknown): boolean => Array.isArray(x) && x.every((i) => Number.isInteger(i) && i >= 0);
  if (!(tt === null || indexList(tt) || (typeof tt === 'object' && !Array.isArray(tt) && Object.values(tt as object).every(indexList)))) {
    bad('trainable_token_indices', `must be a list of token ids, or an object of such lists by module, got ${JSON.stringify(tt)}`);
  }
  const tp = raw.target_parameters ?? [];
  if (!(Array.isArray(tp) && tp.every((x) => typeof x === 'string'))) bad('target_parameters', `must be a list of parameter names or null, got ${JSON.stringify(tp)}`);
  const rslora = flag('use_rslora');
  // Initialisations that change the base weights (PiSSA, OLoRA, LoftQ, CorDA): an adapter saved without PEFT's
  // conversion applies to the residual base PEFT made, not to the model it names; merged onto that, it is wrong.
  const init = raw.init_lora_weights ?? true;
  if (!(typeof init === 'boolean' || init === 'gaussian' || init === 'eva')) {
    bad('init_lora_weights', `${JSON.stringify(init)} changes the base weights at initialisation: this adapter applies to that changed base, not to the model it names. Save it converted (PEFT's save_pretrained(..., path_initial_model_for_weight_conversion=...)), which gives a plain LoRA of the original base`);
  }
  // Every other field of PEFT's LoraConfig: known metadata, or a value that changes nothing (null, false, empty).
  // A field not known here with any other value is refused, naming it, rather than ignored (aLoRA's
  // alora_invocation_tokens, layer_replication, DoRA-like variants of later PEFT versions).
  for (const [k, v] of Object.entries(raw)) {
    if (HANDLED_FIELDS.has(k) || isNeutral(v)) continue;
    bad(k, `${JSON.stringify(v)} is not supported by sppo (a PEFT option that changes what the adapter computes; merge it with PEFT's merge_and_unload instead)`);
  }
  return {
    options: { r: r as number, alpha: alpha as number, dropout: dropout as number, targetModules: tm as string[] | string, rslora },
    raw,
    rankPattern: pattern('rank_pattern', true),
    alphaPattern: pattern('alpha_pattern', false),
    bias: bias as AdapterSpec['bias'],
    loraBias: flag('lora_bias'),
    useDora: flag('use_dora'),
    modulesToSave: mts as string[],
    trainableTokens: tt as AdapterSpec['trainableTokens'],
    targetParameters: tp as string[],
  };
}

/** adapter_config.json fields read above, or metadata that does not change what the saved tensors compute. */
const HANDLED_FIELDS = new Set([
  'peft_type', 'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'bias', 'lora_bias', 'use_dora', 'rank_pattern', 'alpha_pattern',
  'modules_to_save', 'use_rslora', 'init_lora_weights', 'trainable_token_indices',
  // Whether PEFT tied the copies of tied embeddings: the saved tensors say it.
  'ensure_weight_tying',
  // Metadata, or what only decides which modules get an adapter (the saved tensors say which did).
  'base_model_name_or_path', 'revision', 'task_type', 'inference_mode', 'auto_mapping', 'peft_version', 'fan_in_fan_out',
  'layers_to_transform', 'layers_pattern', 'exclude_modules', 'target_parameters', 'megatron_core', 'megatron_config',
  'qalora_group_size', 'runtime_config', 'loftq_config', 'eva_config', 'corda_config',
  // VeLoRA changes only the backward pass: the saved A and B merge as plain LoRA.
  'velora_config',
]);

/** A value that leaves an option off: null, false, an empty string, list or object, or an object of such values. */
function isNeutral(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.values(v as object).every(isNeutral);
  return false;
}

/** One key of adapter_model.safetensors, by what PEFT saved it for. */
export type AdapterKey =
  | { kind: 'lora'; module: string; which: 'A' | 'B' }
  | { kind: 'loraBias'; module: string }
  | { kind: 'magnitude'; module: string }
  | { kind: 'embedding'; module: string; which: 'A' | 'B' }
  | { kind: 'tokens'; module: string }
  | { kind: 'copy'; module: string; param: string }
  | { kind: 'base'; module: string; param: string };

/** Whether a module name is one of PEFT's modules_to_save entries (equal, or ending in "." + entry). */
export function inList(module: string, names: string[]): boolean {
  return names.some((n) => module === n || module.endsWith(`.${n}`));
}

/** The names of input embeddings and output layers (PEFT's EMBEDDING_LAYER_NAMES, and GPT-2's wte). */
const EMBEDDINGS = /(^|\.)(embed_tokens|lm_head|wte|embed_in|embed_out)$/;

/**
 * What a key of adapter_model.safetensors is, the one place that reads PEFT's tensor names (loadAdapter takes the
 * 'lora' keys, `sppo merge` all of them); an error naming the key for anything else.
 */
export function adapterKey(key: string, spec: AdapterSpec, where: string): AdapterKey {
  const name = key.startsWith(PEFT_PREFIX) ? key.slice(PEFT_PREFIX.length) : key;
  // The adapter's name (`.default`) may be left in by writers other than save_pretrained.
  let m = /^(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(name);
  if (m) return { kind: 'lora', module: m[1]!, which: m[2] as 'A' | 'B' };
  if ((m = /^(.+)\.lora_B(?:\.[^.]+)?\.bias$/.exec(name))) return { kind: 'loraBias', module: m[1]! };
  if ((m = /^(.+)\.lora_magnitude_vector(?:\.[^.]+)?(?:\.weight)?$/.exec(name))) return { kind: 'magnitude', module: m[1]! };
  if ((m = /^(.+)\.lora_embedding_([AB])(?:\.[^.]+)?$/.exec(name))) return { kind: 'embedding', module: m[1]!, which: m[2] as 'A' | 'B' };
  if ((m = /^(.+)\.token_adapter\.trainable_tokens_delta(?:\.[^.]+)?$/.exec(name))) return { kind: 'tokens', module: m[1]! };
  if ((m = /^(.+)\.modules_to_save(?:\.[^.]+)?\.([^.]+)$/.exec(name))) return { kind: 'copy', module: m[1]!, param: m[2]! };
  if ((m = /^(.+)\.(?:base_layer|original_module)\.([^.]+)$/.exec(name))) return { kind: 'base', module: m[1]!, param: m[2]! };
  if ((m = /^(.+)\.([^.]+)$/.exec(name))) {
    const [, module, param] = m as unknown as [string, string, string];
    if (inList(module, spec.modulesToSave)) return { kind: 'copy', module, param };
    // ensure_weight_tying: PEFT saves the tied partner of a modules_to_save embedding (or output layer) as a copy too.
    if (spec.raw.ensure_weight_tying === true && EMBEDDINGS.test(module) && spec.modulesToSave.some((n) => EMBEDDINGS.test(n))) return { kind: 'copy', module, param };
    if (param === 'bias' && spec.bias !== 'none') return { kind: 'base', module, param };
    if (EMBEDDINGS.test(module)) {
      throw new AdapterError(`${where}: tensor '${key}' is a whole embedding or output matrix, but adapter_config.json names neither it in modules_to_save nor a LoRA on it: it does not say how the tensor applies`);
    }
  }
  throw new AdapterError(`${where}: tensor '${key}' is not a tensor of a PEFT LoRA adapter (expected ${PEFT_PREFIX}<module>.lora_A.weight / .lora_B.weight, DoRA's lora_magnitude_vector, lora_embedding_A / _B, trainable tokens, modules_to_save copies or trained biases)`);
}

/** What each kind of key other than a LoRA's A and B is, for loadAdapter's refusal. */
const VARIANT_KEYS: Record<Exclude<AdapterKey['kind'], 'lora'>, string> = {
  embedding: 'a LoRA on an embedding layer',
  magnitude: "DoRA's magnitude",
  loraBias: 'a LoRA bias (lora_bias)',
  tokens: 'trainable_token_indices (trained rows of the embeddings)',
  copy: 'a trained copy of a module (modules_to_save)',
  base: "a base layer's own tensor (saved when the vocabulary was resized) or a trained bias",
};

/** adapter_model.safetensors of an adapter folder; an error naming the folder when it is missing. */
export function adapterWeightsPath(dir: string): string {
  const path = join(resolve(dir), ADAPTER_WEIGHTS);
  if (!existsSync(path)) {
    const bin = existsSync(join(resolve(dir), 'adapter_model.bin'));
    throw new AdapterError(`${dir}: no ${ADAPTER_WEIGHTS}${bin ? ' (adapter_model.bin, a pickle, is not read: save the adapter with safe_serialization=True)' : ''}`);
  }
  return path;
}

/**
 * Loads a PEFT LoRA adapter folder onto a model (adapters enabled, not merged). A and B load in float32
 * unless `dtype` says otherwise. Errors name the file and the key or field.
 */
export function loadAdapter(model: CausalLMBase, dir: string, opts: { dtype?: DType } = {}): Lora {
  const folder = resolve(dir);
  const spec = readAdapterConfig(folder);
  const variants = variantFields(spec);
  if (variants.length) throw new AdapterError(`${join(folder, ADAPTER_CONFIG)}: ${variants.join(', ')}: sppo loads a plain LoRA as a live adapter; \`sppo merge BASE ${dir} OUT\` merges this one into its base (as PEFT's merge_and_unload)`);
  const { options } = spec;
  const wpath = adapterWeightsPath(dir);
  const { tensors } = loadSafetensors(wpath, { dtype: opts.dtype ?? 'float32', device: 'cpu' });
  const pairs = new Map<string, { A?: Tensor; B?: Tensor }>();
  const variantKeys: [string, Exclude<AdapterKey['kind'], 'lora'>][] = [];
  try {
    for (const [key, t] of tensors) {
      const e = adapterKey(key, spec, wpath);
      if (e.kind !== 'lora') {
        variantKeys.push([key, e.kind]);
        continue;
      }
      const p = pairs.get(e.module) ?? {};
      p[e.which] = t;
      pairs.set(e.module, p);
    }
    // Named by the most telling key (an embedding's LoRA before the base matrix PEFT saves beside it).
    const order = Object.keys(VARIANT_KEYS);
    const [key, kind] = variantKeys.sort((a, b) => order.indexOf(a[1]) - order.indexOf(b[1]))[0] ?? [];
    if (key && kind) throw new AdapterError(`${wpath}: tensor '${key}' is ${VARIANT_KEYS[kind]}: sppo applies a plain LoRA as a live adapter; \`sppo merge\` merges this one into its base`);
    for (const [module, p] of pairs) {
      if (!p.A || !p.B) throw new AdapterError(`${wpath}: module '${module}' has lora_${p.A ? 'A' : 'B'} but no lora_${p.A ? 'B' : 'A'}`);
    }
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return Lora.fromWeights(model, { ...options, dtype: opts.dtype ?? 'float32' }, pairs as Map<string, { A: Tensor; B: Tensor }>, wpath);
}

/**
 * Why the adapter's base_model_name_or_path does not look like `baseDir` (undefined when it does, or cannot be told):
 * the last part of each name, compared case-insensitively (a Hub cache snapshot counts as its repository's name).
 * Models of one family share every LoRA shape (Llama-3-8B and Mistral-7B), so a wrong base would merge silently.
 */
export function baseMismatch(named: unknown, baseDir: string): string | undefined {
  if (typeof named !== 'string' || named === '') return undefined;
  const last = (s: string): string => {
    const cache = /(?:^|[\\/])models--([^\\/]+)--([^\\/]+)(?:[\\/]|$)/.exec(s);
    if (cache) return cache[2]!.toLowerCase();
    return s.replace(/[\\/]+$/, '').split(/[\\/]/).pop()!.replace(/@.*$/, '').toLowerCase();
  };
  const a = last(named);
  const b = last(resolve(baseDir));
  if (a === '' || b === '' || a === b || a.includes(b) || b.includes(a)) return undefined;
  return `the adapter was trained on ${JSON.stringify(named)} (base_model_name_or_path), and is merged into ${baseDir}: check that BASE is that model (models of one family share every LoRA shape, so a wrong base merges without an error)`;
}
