// Architectures by their Hugging Face name, and loading / saving model folders as transformers writes them.
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultDevice, saveWeights, WeightFolder, type DType, type Tensor } from '../torch/index.js';
import { configJsonText, readConfig, type ModelConfig } from './config.js';
import { copyTokenizerFiles, portableConfig } from './transformers4.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/files.js';
import type { AttentionImplementation, CausalLMBase } from './causal_lm.js';
import { LlamaForCausalLM } from './llama.js';
import { MistralForCausalLM } from './mistral.js';
import { Qwen2ForCausalLM } from './qwen2.js';
import { Qwen3ForCausalLM } from './qwen3.js';
import { Qwen3MoeForCausalLM } from './qwen3_moe.js';
import { MixtralForCausalLM } from './mixtral.js';
import { Gemma2ForCausalLM } from './gemma2.js';
import { Gemma3ForCausalLM } from './gemma3.js';
import { SmolLM3ForCausalLM } from './smollm3.js';
import { Olmo2ForCausalLM } from './olmo2.js';
import { Phi3ForCausalLM } from './phi3.js';
import { GPT2LMHeadModel } from './gpt2.js';

type ModelClass = new (cfg: ModelConfig) => CausalLMBase;

export const ARCHITECTURES: Record<string, ModelClass> = {
  LlamaForCausalLM,
  MistralForCausalLM,
  MixtralForCausalLM,
  Qwen2ForCausalLM,
  Qwen3ForCausalLM,
  Qwen3MoeForCausalLM,
  SmolLM3ForCausalLM,
  Olmo2ForCausalLM,
  Phi3ForCausalLM,
  Gemma2ForCausalLM,
  Gemma3ForCausalLM,
  GPT2LMHeadModel,
};

export class UnknownArchitectureError extends Error {
  override name = 'UnknownArchitectureError';
}

/** A model of the given configuration, its parameters declared but not loaded; `where` names its config in errors. */
export function createModel(cfg: ModelConfig, where?: string): CausalLMBase {
  const cls = ARCHITECTURES[cfg.architecture];
  if (!cls) {
    throw new UnknownArchitectureError(`${where ? `${where}: ` : ''}architecture '${cfg.architecture}' is not supported (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
  }
  return new cls(cfg);
}

export interface LoadModelOptions {
  /** Default: the checkpoint's own dtype (config.json `dtype` / `torch_dtype`), else float32. */
  dtype?: DType;
  /** Default: the default device ('cpu', or $SPPO_DEVICE). */
  device?: string;
  /** 'sdpa' (default: fused kernels on GPUs) or 'eager' (transformers' eager attention everywhere). */
  attention?: AttentionImplementation;
}

/** Checkpoint tensors that are not parameters: rotary buffers, GPT-2's causal-mask buffers, tied heads. */
function ignorable(cfg: ModelConfig): (name: string) => boolean {
  return (name) =>
    name.endsWith('.rotary_emb.inv_freq') ||
    /\.attn\.(masked_)?bias$/.test(name) ||
    (cfg.tieWordEmbeddings && name === 'lm_head.weight');
}

/**
 * How the parameters are named in the checkpoint: as they are, or, for a multimodal folder's language model, under
 * its prefix (transformers writes Gemma 3's as `language_model.model.*`; `model.language_model.*` is its module path),
 * with the vision tower and projector not read.
 */
function checkpointNames(cfg: ModelConfig, weights: WeightFolder): { ignore: (name: string) => boolean; rename?: (name: string) => string } {
  const ignore = ignorable(cfg);
  if (!cfg.multimodalSource) return { ignore };
  const legacy = weights.names.includes('language_model.model.embed_tokens.weight');
  const rename = (n: string): string => (legacy ? `language_model.${n}` : n.startsWith('model.') ? `model.language_model.${n.slice(6)}` : n);
  const other = /^(model\.)?(vision_tower|multi_modal_projector)\./;
  return { rename, ignore: (n) => other.test(n) || ignore(n.replace(/^language_model\.|^model\.language_model\./, (p) => (p.startsWith('model') ? 'model.' : ''))) };
}

const sources = new WeakMap<object, string>();
const warnedText = new Set<string>();

/** Loads a Hugging Face model folder (config.json + model.safetensors or a sharded index). */
export function loadModel(dir: string, opts: LoadModelOptions = {}): CausalLMBase {
  const folder = resolve(dir);
  const cfg = readConfig(folder);
  const model = createModel(cfg, join(folder, 'config.json'));
  const dtype = opts.dtype ?? cfg.dtype ?? 'float32';
  const device = opts.device ?? defaultDevice();
  if (cfg.multimodalSource && !warnedText.has(folder)) {
    warnedText.add(folder);
    process.emitWarning(`${folder}: ${cfg.multimodalSource}: sppo reads its language model (${cfg.architecture}) and not its vision tower; the checkpoints it writes from it are text-only ${cfg.architecture} folders`, { code: 'SPPO_TEXT_ONLY' });
  }
  const weights = new WeightFolder(folder);
  model.loadWeights(weights, { dtype, device, ...checkpointNames(model.config, weights) });
  model.to({ dtype, device });
  model.attention = opts.attention ?? 'sdpa';
  model.eval();
  sources.set(model, folder);
  return model;
}

/** The folder a model was loaded from (for its tokenizer files). */
export function sourceDir(model: CausalLMBase): string | undefined {
  return sources.get(model);
}

export interface SaveModelOptions {
  /** Where the tokenizer files and generation_config.json come from (default: the folder the model was loaded from). */
  tokenizerDir?: string;
  /** Shard the weights above this many bytes per file (default 5 GB, as transformers). */
  maxShardBytes?: number;
  /** Save in this dtype (default: the model's). */
  dtype?: DType;
  /**
   * A replacement for a parameter's tensor (e.g. the weight with a LoRA adapter merged, Lora.mergedWeight),
   * or undefined to save the parameter itself; what it returns is freed once written.
   */
  replace?: (name: string, t: Tensor) => Tensor | undefined;
  /** Tensors written beside the parameters (e.g. lm_head.weight of a model whose tied embeddings were untied); not freed. */
  extraTensors?: Map<string, Tensor>;
  /** Fields of config.json changed from the model's (e.g. vocab_size, tie_word_embeddings). */
  configPatch?: Record<string, unknown>;
  /** Where generation_config.json comes from (default: tokenizerDir). */
  generationConfigDir?: string;
}


/**
 * Writes a model as a Hugging Face folder that transformers (5 and 4: transformers4.ts) and vLLM load unchanged:
 * config.json (the one it was loaded with, dtype updated), model.safetensors (or shards with an index), and the
 * tokenizer files and generation_config.json of `tokenizerDir`.
 */
export function saveModel(model: CausalLMBase, dir: string, opts: SaveModelOptions = {}): string[] {
  const out = resolve(dir);
  mkdirSync(out, { recursive: true });
  const dtype = opts.dtype ?? model.dtype;
  const raw = { ...model.config.raw, ...opts.configPatch };
  const stDtype = dtype;
  if ('dtype' in raw || !('torch_dtype' in raw)) raw.dtype = stDtype;
  if ('torch_dtype' in raw) raw.torch_dtype = stDtype;
  const tensors = new Map<string, Tensor>();
  const temps: Tensor[] = [];
  try {
    for (const [name, t] of model.namedParameters()) {
      let x = t;
      const r = opts.replace?.(name, t);
      if (r) temps.push((x = r));
      if (x.dtype !== dtype) temps.push((x = x.to(dtype)));
      if (x.device !== 'cpu') temps.push((x = x.to('cpu')));
      tensors.set(name, x);
    }
    for (const [name, t] of opts.extraTensors ?? []) {
      let x = t;
      if (x.dtype !== dtype) temps.push((x = x.to(dtype)));
      if (x.device !== 'cpu') temps.push((x = x.to('cpu')));
      tensors.set(name, x);
    }
    const files = saveWeights(out, tensors, { maxShardBytes: opts.maxShardBytes });
    // Floats stay floats (transformers 5 refuses `30` for a float field): as the loaded config.json wrote them.
    const srcConfig = sources.get(model) && join(sources.get(model)!, 'config.json');
    writeFileAtomic(join(out, 'config.json'), configJsonText(portableConfig(raw), srcConfig && existsSync(srcConfig) ? readFileSync(srcConfig, 'utf8') : undefined));
    const src = opts.tokenizerDir ? resolve(opts.tokenizerDir) : sources.get(model);
    if (src && src !== out) files.push(...copyTokenizerFiles(src, out));
    const gen = opts.generationConfigDir ? resolve(opts.generationConfigDir) : src;
    if (gen && gen !== out && existsSync(join(gen, 'generation_config.json'))) {
      copyFileSync(join(gen, 'generation_config.json'), join(out, 'generation_config.json'));
      files.push('generation_config.json');
    }
    if (!existsSync(join(out, 'generation_config.json'))) {
      const c = model.config;
      writeJsonAtomic(join(out, 'generation_config.json'), {
        bos_token_id: c.bosTokenId,
        eos_token_id: c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds,
        pad_token_id: c.padTokenId,
      });
      files.push('generation_config.json');
    }
    return ['config.json', ...files];
  } finally {
    for (const t of temps) t.dispose();
  }
}
