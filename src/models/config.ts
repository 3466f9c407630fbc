// config.json of a Hugging Face causal LM, normalised: transformers 4 layout (`rope_theta` and
// `rope_scaling` at the top level, `torch_dtype`) and transformers 5 layout (`rope_parameters`, `dtype`)
// give the same ModelConfig. The original JSON is kept to be written back unchanged on save.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DType } from '../torch/index.js';
import { jsonErrorMessage, readText } from '../util/files.js';

export type LayerType = 'full_attention' | 'sliding_attention';

export interface RopeConfig {
  /** default | linear | llama3 | longrope (others are refused at load). */
  type: string;
  theta: number;
  factor?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
  /** The fraction of each head's dimensions that rotate (Phi-4-mini's 0.75); the rest pass through. Default 1. */
  partialRotaryFactor?: number;
  /** longrope (Phi-3.5, Phi-4-mini): per-frequency divisors for sequences up to originalMaxPositions, and beyond. */
  shortFactor?: number[];
  longFactor?: number[];
  /** longrope: cos and sin are multiplied by it (default sqrt(1 + ln(factor) / ln(originalMaxPositions))). */
  attentionFactor?: number;
}

/**
 * A sparse mixture-of-experts feed-forward (sparse_moe.ts): a router picks `topK` of `numExperts` gated MLPs per token
 * and sums their outputs weighted by the router's softmax (renormalised over the chosen ones with `normTopkProb`).
 */
export interface MoeConfig {
  numExperts: number;
  topK: number;
  /** Each expert's intermediate size (Qwen3-MoE's moe_intermediate_size; Mixtral's intermediate_size). */
  expertIntermediateSize: number;
  normTopkProb: boolean;
  /** Per layer, whether its feed-forward is the mixture (else a dense MLP of intermediateSize: Qwen3-MoE's mlp_only_layers, decoder_sparse_step). */
  sparseLayers: boolean[];
  /** The router's load-balancing loss (Switch Transformer's), added to the training loss times router_aux_loss_coef when output_router_logits is true. */
  outputRouterLogits: boolean;
  routerAuxLossCoef: number;
}

export interface ModelConfig {
  architecture: string;
  /**
   * The multimodal architecture whose language model this is (Gemma3ForConditionalGeneration: its text_config, its
   * `language_model` tensors); the model is read as, and saved as, the text-only architecture.
   */
  multimodalSource?: string;
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** RMSNorm / LayerNorm epsilon. */
  normEps: number;
  maxPositions: number;
  hiddenAct: string;
  rope: RopeConfig;
  /** Sliding-window layers' own rope (Gemma 3: rope_local_base_freq, 10000, where full layers take rope_theta); else `rope`. */
  slidingRope?: RopeConfig;
  tieWordEmbeddings: boolean;
  /** q/k/v/o biases (Llama's attention_bias); Qwen2 has q/k/v biases only (qkvBias). */
  attentionBias: boolean;
  qkvBias: boolean;
  mlpBias: boolean;
  /**
   * RMSNorms on q and k before the rotary embedding: over each head's dimensions ('head': Qwen3's and Gemma 3's
   * q_norm, k_norm [head_dim]), or over the whole projection ('projection': OLMo 2's [heads * head_dim]).
   */
  qkNorm?: 'head' | 'projection';
  /** Phi-3's fused projections: qkv_proj ([q; k; v] rows) for q_proj, k_proj, v_proj, gate_up_proj ([gate; up]) for gate_proj, up_proj. */
  fusedProjections?: boolean;
  /** Qwen3-MoE's and Mixtral's sparse mixture-of-experts feed-forward; absent: dense MLPs. */
  moe?: MoeConfig;
  /** Per layer, whether it rotates q and k (SmolLM3's no_rope_layers: 0 marks a NoPE layer); absent: every layer. */
  ropeLayers?: boolean[];
  slidingWindow: number | null;
  /** Per layer: full or sliding-window attention. */
  layerTypes: LayerType[];
  queryPreAttnScalar: number | null;
  attnLogitSoftcapping: number | null;
  finalLogitSoftcapping: number | null;
  /** The dtype the checkpoint was saved in (`dtype` or `torch_dtype`), when stated. */
  dtype: DType | undefined;
  bosTokenId: number | undefined;
  eosTokenIds: number[];
  padTokenId: number | undefined;
  /** config.json as read. */
  raw: Record<string, unknown>;
}

type Json = Record<string, unknown>;

const SIZE: NumRule = { integer: true, positive: true };
const POSITIVE: NumRule = { positive: true };
const TOKEN_ID: NumRule = { integer: true };

const TORCH_DTYPES: Record<string, DType> = {
  float32: 'float32', float: 'float32', float16: 'float16', half: 'float16', bfloat16: 'bfloat16', float64: 'float64',
};

export function parseDType(v: unknown): DType | undefined {
  if (typeof v !== 'string') return undefined;
  return TORCH_DTYPES[v.replace(/^torch\./, '')];
}

/** What a config number must be: a whole number (sizes, counts, ids), and above 0 (sizes, eps, theta). */
interface NumRule {
  integer?: boolean;
  positive?: boolean;
}

/** A field's value checked against its rule: an error names the file and the field, and says what it holds. */
function checked(v: number, key: string, where: string, rule: NumRule): number {
  if (!Number.isFinite(v) || (rule.integer && !Number.isInteger(v)) || (rule.positive && v <= 0)) {
    throw new Error(`${where}: ${key} must be ${rule.positive ? 'a positive ' : 'a '}${rule.integer ? 'whole number' : 'number'}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * The first of `keys` that the config has (null counts as absent, as transformers reads it), else `dflt`;
 * a value of another type (`"rope_theta": "500000.0"`) is an error naming the file and the field, never
 * silently the default.
 */
function num(raw: Json, keys: string[], where: string, rule: NumRule, dflt?: number): number {
  for (const k of keys) {
    const v = raw[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number') throw new Error(`${where}: ${k} must be a number, got ${JSON.stringify(v)}`);
    return checked(v, k, where, rule);
  }
  if (dflt !== undefined) return dflt;
  throw new Error(`${where}: missing ${keys.join(' / ')}`);
}
function optNum(raw: Json, key: string, where: string, rule: NumRule): number | null {
  const v = raw[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number') throw new Error(`${where}: ${key} must be a number or null, got ${JSON.stringify(v)}`);
  return checked(v, key, where, rule);
}
function ids(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/**
 * The rope parameters: transformers 5's `rope_parameters`, or transformers 4's `rope_theta` + `rope_scaling`. Gemma 3's
 * are per layer type ({full_attention, sliding_attention} in transformers 5; `rope_theta` + `rope_scaling` for the full
 * layers and `rope_local_base_freq` for the sliding ones in 4): `layerType` picks one.
 */
function ropeOf(raw: Json, dfltTheta: number, where: string, layerType: LayerType = 'full_attention'): RopeConfig {
  let p = raw.rope_parameters as Json | null | undefined;
  let field = 'rope_parameters';
  if (p && typeof p === 'object' && !('rope_type' in p) && !('rope_theta' in p) && typeof p[layerType] === 'object') {
    p = p[layerType] as Json;
    field = `rope_parameters.${layerType}`;
  }
  if (layerType === 'sliding_attention' && !(raw.rope_parameters && field !== 'rope_parameters')) {
    // transformers 4's form: the sliding layers' base frequency, no scaling.
    return { type: 'default', theta: num(raw, ['rope_local_base_freq'], where, POSITIVE, dfltTheta) };
  }
  const scaling = (p ?? (raw.rope_scaling as Json | null | undefined) ?? {}) as Json;
  const theta = p && p.rope_theta !== undefined && p.rope_theta !== null ? num(p, ['rope_theta'], `${where}: ${field}`, POSITIVE) : num(raw, ['rope_theta'], where, POSITIVE, dfltTheta);
  let type = String(scaling.rope_type ?? scaling.type ?? 'default');
  // Phi-3's earlier names for LongRoPE (transformers maps them so for Phi-3 only).
  if (raw.model_type === 'phi3' && (type === 'su' || type === 'yarn')) type = 'longrope';
  const rope: RopeConfig = { type, theta };
  if (typeof scaling.factor === 'number') rope.factor = scaling.factor;
  if (typeof scaling.low_freq_factor === 'number') rope.lowFreqFactor = scaling.low_freq_factor;
  if (typeof scaling.high_freq_factor === 'number') rope.highFreqFactor = scaling.high_freq_factor;
  if (typeof scaling.original_max_position_embeddings === 'number') rope.originalMaxPositions = scaling.original_max_position_embeddings;
  // Phi-3 keeps these at the top level (transformers 5 moves them into rope_parameters).
  const partial = (p && p.partial_rotary_factor !== undefined ? p : raw).partial_rotary_factor;
  if (partial !== undefined && partial !== null) {
    if (typeof partial !== 'number' || !(partial > 0 && partial <= 1)) throw new Error(`${where}: partial_rotary_factor must be a number in (0, 1], got ${JSON.stringify(partial)}`);
    if (partial !== 1) rope.partialRotaryFactor = partial;
  }
  if (!['default', 'linear', 'llama3', 'longrope'].includes(type)) throw new Error(`${where}: rope type '${type}' is not supported (supported: default, linear, llama3, longrope)`);
  if (type === 'longrope') {
    const orig = rope.originalMaxPositions ?? (typeof raw.original_max_position_embeddings === 'number' ? raw.original_max_position_embeddings : undefined);
    if (orig === undefined) throw new Error(`${where}: rope type 'longrope' needs original_max_position_embeddings`);
    rope.originalMaxPositions = orig;
    const list = (k: string): number[] => {
      const v = scaling[k];
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && x > 0)) throw new Error(`${where}: rope ${k} must be a list of positive numbers, got ${JSON.stringify(v)}`);
      return v as number[];
    };
    rope.shortFactor = list('short_factor');
    rope.longFactor = list('long_factor');
    if (typeof scaling.attention_factor === 'number') rope.attentionFactor = scaling.attention_factor;
    // Phi-3's factor is the ratio of the context lengths when the config gives none.
    if (rope.factor === undefined) rope.factor = num(raw, ['max_position_embeddings'], where, SIZE, 2048) / orig;
  }
  return rope;
}

/**
 * Gemma3TextConfig's defaults (transformers), for the fields a multimodal Gemma 3 folder's text_config leaves out
 * (google/gemma-3-4b-it's gives only its sizes, sliding window and rope scaling).
 */
const GEMMA3_TEXT_DEFAULTS: Json = {
  vocab_size: 262208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh', max_position_embeddings: 131072,
  rms_norm_eps: 1e-6, rope_theta: 1_000_000.0, rope_local_base_freq: 10_000.0, query_pre_attn_scalar: 256,
  sliding_window: 4096, sliding_window_pattern: 6, final_logit_softcapping: null, attn_logit_softcapping: null,
  attention_bias: false, pad_token_id: 0, eos_token_id: 1, bos_token_id: 2, tie_word_embeddings: true,
};

/** The text-only config of a multimodal folder's language model (Gemma3ForConditionalGeneration), as Gemma3ForCausalLM's. */
function languageModelConfig(raw: Json, where: string): Json {
  const text = raw.text_config;
  if (!text || typeof text !== 'object' || Array.isArray(text)) throw new Error(`${where}: Gemma3ForConditionalGeneration without a text_config object`);
  const out: Json = { ...GEMMA3_TEXT_DEFAULTS, ...(text as Json), architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text' };
  // The outer config's dtype and token ids where the text config has none.
  for (const k of ['dtype', 'torch_dtype', 'bos_token_id', 'eos_token_id', 'pad_token_id']) if ((text as Json)[k] === undefined && raw[k] !== undefined) out[k] = raw[k];
  return out;
}

/** The mixture-of-experts fields of Qwen3-MoE (qwen3_moe) and Mixtral (mixtral) configs, with their configs' defaults. */
function moeOf(raw: Json, modelType: string, numLayers: number, where: string): MoeConfig | undefined {
  if (modelType !== 'qwen3_moe' && modelType !== 'mixtral') return undefined;
  const qwen = modelType === 'qwen3_moe';
  // Qwen3MoeConfig and MixtralConfig each read the other's name for the expert count too (attribute_map).
  const numExperts = num(raw, qwen ? ['num_experts', 'num_local_experts'] : ['num_local_experts', 'num_experts'], where, SIZE, qwen ? 128 : 8);
  const topK = num(raw, ['num_experts_per_tok'], where, SIZE, qwen ? 8 : 2);
  if (topK > numExperts) throw new Error(`${where}: num_experts_per_tok (${topK}) must be at most the number of experts (${numExperts})`);
  let sparseLayers = Array.from({ length: numLayers }, () => true);
  if (qwen) {
    const step = num(raw, ['decoder_sparse_step'], where, SIZE, 1);
    const only = raw.mlp_only_layers ?? [];
    if (!Array.isArray(only) || !only.every((i) => Number.isInteger(i))) throw new Error(`${where}: mlp_only_layers must be a list of layer indices, got ${JSON.stringify(only)}`);
    sparseLayers = sparseLayers.map((_, i) => !only.includes(i) && (i + 1) % step === 0);
  }
  if (!qwen && typeof raw.router_jitter_noise === 'number' && raw.router_jitter_noise > 0) {
    // transformers multiplies the hidden states by uniform noise in training; sppo's training leaves it out.
    process.emitWarning(`${where}: router_jitter_noise ${raw.router_jitter_noise} is not applied: sppo trains without the router's jitter`, { code: 'SPPO_ROUTER_JITTER' });
  }
  return {
    numExperts,
    topK,
    expertIntermediateSize: qwen ? num(raw, ['moe_intermediate_size'], where, SIZE, 768) : num(raw, ['intermediate_size'], where, SIZE),
    normTopkProb: qwen ? raw.norm_topk_prob === true : true,
    sparseLayers,
    outputRouterLogits: raw.output_router_logits === true,
    routerAuxLossCoef: num(raw, ['router_aux_loss_coef'], where, { positive: false }, 0.001),
  };
}

export function parseConfig(raw: Json, where = 'config.json'): ModelConfig {
  const archs = raw.architectures;
  const architecture = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : '';
  if (!architecture) throw new Error(`${where}: no "architectures" entry: cannot tell which model this is`);
  if (architecture === 'Gemma3ForConditionalGeneration') return { ...parseConfig(languageModelConfig(raw, where), `${where}: text_config`), multimodalSource: architecture };
  const modelType = String(raw.model_type ?? '');
  const isGpt2 = modelType === 'gpt2' || architecture.startsWith('GPT2');
  const hiddenSize = num(raw, ['hidden_size', 'n_embd'], where, SIZE);
  const numHeads = num(raw, ['num_attention_heads', 'n_head'], where, SIZE);
  const numLayers = num(raw, ['num_hidden_layers', 'n_layer'], where, SIZE);
  const headDim = optNum(raw, 'head_dim', where, SIZE) ?? Math.floor(hiddenSize / numHeads);
  const numKvHeads = optNum(raw, 'num_key_value_heads', where, SIZE) ?? numHeads;
  if (numHeads % numKvHeads !== 0) throw new Error(`${where}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  if (headDim < 1 || (isGpt2 && hiddenSize % numHeads !== 0)) throw new Error(`${where}: hidden_size (${hiddenSize}) must be a multiple of num_attention_heads (${numHeads})`);
  const isGemma2 = modelType === 'gemma2';
  // Gemma 3's text model: Gemma 2's decoder with q/k norms and a rope per layer type (gemma3.ts).
  const isGemma3 = modelType === 'gemma3_text';
  if (isGemma3 && raw.use_bidirectional_attention === true) throw new Error(`${where}: use_bidirectional_attention (an embedding model's encoder) is not supported: sppo's models are causal`);
  // Qwen3 takes Qwen2's sliding-window rule (use_sliding_window, max_window_layers).
  const isQwen2 = modelType === 'qwen2' || modelType === 'qwen3';
  // SmolLM3: Llama's decoder with a NoPE layer every no_rope_layer_interval-th (no_rope_layers: 1 rope, 0 none).
  const isSmolLM3 = modelType === 'smollm3';
  let ropeLayers: boolean[] | undefined;
  if (isSmolLM3) {
    const given = raw.no_rope_layers;
    if (given !== undefined && given !== null) {
      if (!Array.isArray(given) || given.length !== numLayers || !given.every((x) => x === 0 || x === 1)) throw new Error(`${where}: no_rope_layers must be a list of ${numLayers} values 0 or 1, got ${JSON.stringify(given)}`);
      ropeLayers = given.map((x) => x === 1);
    } else {
      const interval = num(raw, ['no_rope_layer_interval'], where, SIZE, 4);
      ropeLayers = Array.from({ length: numLayers }, (_, i) => (i + 1) % interval !== 0);
    }
  }

  const moe = moeOf(raw, modelType, numLayers, where);
  // Sliding window: Mistral (and Mixtral) applies it to every layer when set, Qwen3-MoE too with use_sliding_window; Qwen2 only with use_sliding_window, to layers
  // from max_window_layers on; Gemma 2 alternates (sliding on even layers) unless layer_types says otherwise.
  let slidingWindow = optNum(raw, 'sliding_window', where, SIZE);
  if ((isQwen2 || isSmolLM3 || modelType === 'qwen3_moe') && raw.use_sliding_window !== true) slidingWindow = null;
  let layerTypes: LayerType[];
  if (Array.isArray(raw.layer_types) && raw.layer_types.length === numLayers) {
    layerTypes = raw.layer_types.map((t) => (t === 'sliding_attention' ? 'sliding_attention' : 'full_attention'));
  } else if (isGemma2) {
    layerTypes = Array.from({ length: numLayers }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention'));
  } else if (isGemma3) {
    // transformers 4's form: every sliding_window_pattern-th layer full, the others sliding.
    const pattern = num(raw, ['sliding_window_pattern'], where, SIZE, 6);
    layerTypes = Array.from({ length: numLayers }, (_, i) => ((i + 1) % pattern === 0 ? 'full_attention' : 'sliding_attention'));
  } else if (isSmolLM3) {
    // Sliding windows (use_sliding_window) only on the NoPE layers.
    layerTypes = ropeLayers!.map((rope) => (slidingWindow !== null && !rope ? 'sliding_attention' : 'full_attention'));
  } else if (isQwen2) {
    const maxWindow = num(raw, ['max_window_layers'], where, { integer: true }, numLayers);
    layerTypes = Array.from({ length: numLayers }, (_, i) => (slidingWindow !== null && i >= maxWindow ? 'sliding_attention' : 'full_attention'));
  } else {
    layerTypes = Array.from({ length: numLayers }, () => (slidingWindow !== null ? 'sliding_attention' : 'full_attention'));
  }
  if (slidingWindow === null) layerTypes = layerTypes.map(() => 'full_attention');

  const gen = raw as Json;
  return {
    architecture,
    modelType,
    vocabSize: num(raw, ['vocab_size'], where, SIZE),
    hiddenSize,
    intermediateSize: isGpt2 ? (optNum(raw, 'n_inner', where, SIZE) ?? 4 * hiddenSize) : num(raw, ['intermediate_size'], where, SIZE),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    normEps: num(raw, ['rms_norm_eps', 'layer_norm_epsilon', 'layer_norm_eps'], where, POSITIVE, 1e-6),
    maxPositions: num(raw, ['max_position_embeddings', 'n_positions'], where, SIZE, 2048),
    hiddenAct: String(raw.hidden_activation ?? raw.hidden_act ?? raw.activation_function ?? 'silu'),
    rope: isGpt2 ? { type: 'none', theta: 0 } : ropeOf(raw, isGemma3 ? 1_000_000 : 10000, where),
    ...(isGemma3 ? { slidingRope: ropeOf(raw, 10000, where, 'sliding_attention') } : {}),
    ...(ropeLayers ? { ropeLayers } : {}),
    ...(moe ? { moe } : {}),
    tieWordEmbeddings: raw.tie_word_embeddings === undefined ? isGemma2 || isGemma3 || isGpt2 : raw.tie_word_embeddings === true,
    attentionBias: raw.attention_bias === true,
    qkvBias: modelType === 'qwen2' || raw.attention_bias === true,
    mlpBias: raw.mlp_bias === true,
    slidingWindow,
    layerTypes,
    // Gemma 2's defaults where the config leaves the field out (Gemma2Config: 256, 50, 30; null turns capping off).
    queryPreAttnScalar: optNum(raw, 'query_pre_attn_scalar', where, POSITIVE) ?? (isGemma2 && !('query_pre_attn_scalar' in raw) ? 256 : null),
    attnLogitSoftcapping: optNum(raw, 'attn_logit_softcapping', where, POSITIVE) ?? (isGemma2 && !('attn_logit_softcapping' in raw) ? 50 : null),
    finalLogitSoftcapping: optNum(raw, 'final_logit_softcapping', where, POSITIVE) ?? (isGemma2 && !('final_logit_softcapping' in raw) ? 30 : null),
    dtype: parseDType(raw.dtype ?? raw.torch_dtype),
    bosTokenId: optNum(gen, 'bos_token_id', where, TOKEN_ID) ?? undefined,
    eosTokenIds: ids(gen.eos_token_id),
    padTokenId: optNum(gen, 'pad_token_id', where, TOKEN_ID) ?? undefined,
    raw,
  };
}

export function readConfig(dir: string): ModelConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir}: no config.json (not a Hugging Face model folder)`);
  const text = readText(path, Error);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: malformed JSON: ${jsonErrorMessage(text, e)}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${path}: expected a JSON object`);
  return parseConfig(raw as Json, path);
}

/**
 * Fields Hugging Face configs type as floats even where the value is whole (transformers 5's strict config
 * dataclasses refuse `"final_logit_softcapping": 30` for a float field): written as `30.0` when no source
 * config says otherwise.
 */
const FLOAT_FIELDS = ['final_logit_softcapping', 'attn_logit_softcapping', 'rope_theta', 'rms_norm_eps', 'layer_norm_eps',
  'layer_norm_epsilon', 'initializer_range', 'attention_dropout', 'resid_pdrop', 'embd_pdrop', 'attn_pdrop', 'factor',
  'low_freq_factor', 'high_freq_factor'];

/**
 * config.json's text for `raw`, keeping floats floats: JavaScript numbers do not remember that `30.0` was a
 * float, so a whole number under a key that the source config.json wrote with a decimal point or exponent (or a
 * key of FLOAT_FIELDS) is written as `30.0`. Python's json then reads a float where transformers expects one.
 */
export function configJsonText(raw: unknown, sourceText?: string): string {
  const floatKeys = new Set(FLOAT_FIELDS);
  if (sourceText) {
    // Keys the source wrote with a float literal become float keys; keys it wrote only as integers stay integers.
    const asFloat = new Set<string>();
    const asInt = new Set<string>();
    for (const m of sourceText.matchAll(/"((?:[^"\\]|\\.)*)"\s*:\s*(-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)/g)) {
      (/[.eE]/.test(m[2]!) ? asFloat : asInt).add(m[1]!);
    }
    for (const k of asInt) if (!asFloat.has(k)) floatKeys.delete(k);
    for (const k of asFloat) floatKeys.add(k);
  }
  const MARK = '\u0000float:';
  const text = JSON.stringify(raw, function (key, value) {
    if (typeof value === 'number' && Number.isInteger(value) && floatKeys.has(key) && !Array.isArray(this)) return `${MARK}${value}`;
    return value;
  }, 2);
  return text.replace(/"\\u0000float:(-?\d+)"/g, '$1.0') + '\n';
}

/** Whether the positions are learned embeddings (GPT-2's wpe, maxPositions rows), not rotary. */
export function hasLearnedPositions(cfg: Pick<ModelConfig, 'rope'>): boolean {
  return cfg.rope.type === 'none';
}

/**
 * Sequence length against the model's positions. A model with learned position embeddings (GPT-2's wpe)
 * has none past maxPositions: a longer sequence is an error, which this message states. A rotary model
 * runs past max_position_embeddings, untrained there (transformers warns, and so does sppo).
 */
export function positionLimit(cfg: Pick<ModelConfig, 'maxPositions' | 'rope' | 'architecture'>, length: number): { learned: boolean; message: string } | null {
  if (length <= cfg.maxPositions) return null;
  const learned = hasLearnedPositions(cfg);
  const field = learned ? 'n_positions' : 'max_position_embeddings';
  return {
    learned,
    message: learned
      ? `${length} positions, more than the ${cfg.maxPositions} the model has (${cfg.architecture}'s learned position embeddings, config.json ${field})`
      : `${length} positions, more than the model's ${field} (${cfg.maxPositions}): it runs past it, but was not trained there`,
  };
}
