// DebertaV2Model (DeBERTa-v2 / v3 encoders, the backbone of llm-blender's PairRM), as transformers'
// modeling_deberta_v2.py computes it (eval mode):
//   x = LayerNorm(word_embeddings(ids) [+ position_embeddings] [+ token_type_embeddings]) * mask
//   per layer: a = LayerNorm(dense(attn(x)) + x); x = LayerNorm(dense(act(dense(a))) + a)
// with disentangled attention: the content-to-content scores q k^T plus, over relative positions
// r = i - j (log-bucketed when position_buckets > 0), content-to-position (c2p) q . Kr[r] and
// position-to-content (p2c) k . Qr[-r] terms, each divided by sqrt(head_dim * (1 + number of terms)). The
// relative embeddings (encoder.rel_embeddings, LayerNorm'd when norm_rel_ebd has layer_norm) are projected by
// the layer's query/key projections (share_att_key) or its own pos_key_proj / pos_query_proj.
// Padding: a query and a key attend to each other only when both are real tokens (scores filled with the
// dtype's lowest value, as transformers, so a padding row attends uniformly and stays finite).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { arange, noGrad, scalarTensor, tidy, where, WeightFolder, type DType, type Tensor } from '../torch/index.js';
import { Module } from '../nn/module.js';
import { activation, Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { parseDType } from './config.js';

type Json = Record<string, unknown>;

export interface DebertaV2Config {
  architecture: string;
  vocabSize: number;
  hiddenSize: number;
  /** embedding_size (default hidden_size); an embed_proj maps it to hidden_size when they differ. */
  embeddingSize: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
  intermediateSize: number;
  hiddenAct: string;
  layerNormEps: number;
  maxPositions: number;
  typeVocabSize: number;
  positionBiasedInput: boolean;
  relativeAttention: boolean;
  /** max_relative_positions, or max_position_embeddings when < 1. */
  maxRelativePositions: number;
  /** position_buckets (-1: none). */
  positionBuckets: number;
  /** 'c2p' / 'p2c' (transformers 5: a list; transformers 4 configs may hold "p2c|c2p"). */
  posAttType: string[];
  shareAttKey: boolean;
  /** norm_rel_ebd split on '|' ('none', 'layer_norm'). */
  normRelEbd: string[];
  padTokenId: number;
  dtype: DType | undefined;
  /** config.json as read. */
  raw: Json;
}

const ATT_TYPES = ['c2p', 'p2c'];

function num(raw: Json, key: string, dflt: number, file: string): number {
  const v = raw[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${file}: "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** A DeBERTa-v2 config.json (transformers 4 or 5 layout), with transformers' defaults for absent fields. */
export function parseDebertaV2Config(raw: Json, file = 'config.json'): DebertaV2Config {
  const archs = raw.architectures;
  const architecture = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : 'DebertaV2Model';
  if (raw.model_type !== undefined && raw.model_type !== 'deberta-v2') {
    throw new Error(`${file}: model_type '${String(raw.model_type)}' is not deberta-v2`);
  }
  const hiddenSize = num(raw, 'hidden_size', 1536, file);
  const numHeads = num(raw, 'num_attention_heads', 24, file);
  if (raw.attention_head_size === undefined && hiddenSize % numHeads !== 0) {
    throw new Error(`${file}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numHeads}`);
  }
  const maxPositions = num(raw, 'max_position_embeddings', 512, file);
  let maxRel = num(raw, 'max_relative_positions', -1, file);
  if (maxRel < 1) maxRel = maxPositions;
  let pat = raw.pos_att_type;
  if (typeof pat === 'string') pat = pat.toLowerCase().split('|').map((s) => s.trim());
  if (pat === null || pat === undefined) pat = [];
  if (!Array.isArray(pat) || pat.some((p) => typeof p !== 'string')) throw new Error(`${file}: "pos_att_type" must be a list of strings or a "p2c|c2p" string`);
  const posAttType = (pat as string[]).filter((p) => p !== 'none' && p !== '');
  const unknown = posAttType.filter((p) => !ATT_TYPES.includes(p));
  if (unknown.length) throw new Error(`${file}: pos_att_type ${unknown.join(', ')} is not supported (supported: c2p, p2c)`);
  if (num(raw, 'conv_kernel_size', 0, file) > 0) throw new Error(`${file}: conv_kernel_size > 0 (the DeBERTa-v2 xlarge convolution layer) is not supported`);
  const normRelEbd = String(raw.norm_rel_ebd ?? 'none').toLowerCase().split('|').map((s) => s.trim());
  return {
    architecture,
    vocabSize: num(raw, 'vocab_size', 128100, file),
    hiddenSize,
    embeddingSize: num(raw, 'embedding_size', hiddenSize, file),
    numLayers: num(raw, 'num_hidden_layers', 24, file),
    numHeads,
    headDim: num(raw, 'attention_head_size', Math.floor(hiddenSize / numHeads), file),
    intermediateSize: num(raw, 'intermediate_size', 6144, file),
    hiddenAct: String(raw.hidden_act ?? 'gelu'),
    layerNormEps: num(raw, 'layer_norm_eps', 1e-7, file),
    maxPositions,
    typeVocabSize: num(raw, 'type_vocab_size', 0, file),
    positionBiasedInput: raw.position_biased_input === undefined ? true : raw.position_biased_input === true,
    relativeAttention: raw.relative_attention === true,
    maxRelativePositions: maxRel,
    positionBuckets: num(raw, 'position_buckets', -1, file),
    posAttType,
    shareAttKey: raw.share_att_key === true,
    normRelEbd,
    padTokenId: num(raw, 'pad_token_id', 0, file),
    dtype: parseDType(raw.dtype ?? raw.torch_dtype),
    raw,
  };
}

export function readDebertaV2Config(dir: string): DebertaV2Config {
  const path = join(resolve(dir), 'config.json');
  if (!existsSync(path)) throw new Error(`${path} does not exist`);
  let raw: Json;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as Json;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseDebertaV2Config(raw, path);
}

/** The lowest finite value of a floating dtype (torch.finfo(dtype).min). */
function lowest(dtype: DType): number {
  switch (dtype) {
    case 'bfloat16':
      return -3.3895313892515355e38;
    case 'float16':
      return -65504;
    case 'float64':
      return -Number.MAX_VALUE;
    default:
      return -3.4028234663852886e38;
  }
}

/**
 * The relative positions i - j of an L x L self-attention [L, L] (int64, CPU), log-bucketed as transformers'
 * make_log_bucket_position when bucketSize > 0: |r| < bucketSize/2 stays r, larger distances go to
 * sign(r) * (mid + ceil(log(|r|/mid) / log((maxPosition-1)/mid) * (mid-1))), computed in float32 as PyTorch does.
 */
export function relativePositions(length: number, bucketSize: number, maxPosition: number): Tensor {
  return tidy(() => {
    const idx = arange(length);
    const rel = idx.unsqueeze(1).sub(idx.unsqueeze(0));
    if (!(bucketSize > 0 && maxPosition > 0)) return rel;
    const mid = Math.floor(bucketSize / 2);
    const sign = rel.sign();
    const inner = rel.lt(mid).logicalAnd(rel.gt(-mid));
    const absPos = rel.abs().maskedFill(inner, mid - 1);
    const denom = scalarTensor(Math.fround((maxPosition - 1) / mid), { dtype: 'float32' }).log();
    const scaled = absPos.div(mid).log().div(denom).mul(mid - 1);
    const logPos = scaled.neg().floor().neg().add(mid); // ceil(x) = -floor(-x)
    return where(absPos.le(mid), rel.to('float32'), logPos.mul(sign.to('float32'))).to('int64');
  });
}

export class DebertaV2Embeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding | null;
  token_type_embeddings: Embedding | null;
  embed_proj: Linear | null;
  LayerNorm: LayerNorm;
  constructor(readonly cfg: DebertaV2Config) {
    super();
    this.word_embeddings = this.module('word_embeddings', new Embedding(cfg.vocabSize, cfg.embeddingSize));
    this.position_embeddings = cfg.positionBiasedInput ? this.module('position_embeddings', new Embedding(cfg.maxPositions, cfg.embeddingSize)) : null;
    this.token_type_embeddings = cfg.typeVocabSize > 0 ? this.module('token_type_embeddings', new Embedding(cfg.typeVocabSize, cfg.embeddingSize)) : null;
    this.embed_proj = cfg.embeddingSize !== cfg.hiddenSize ? this.module('embed_proj', new Linear(cfg.embeddingSize, cfg.hiddenSize, false)) : null;
    this.LayerNorm = this.module('LayerNorm', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
  }
  forward(ids: Tensor, mask: Tensor, tokenTypeIds: Tensor | null): Tensor {
    return tidy(() => {
      let x = this.word_embeddings.forward(ids);
      if (this.position_embeddings) {
        const l = ids.size(1);
        if (l > this.cfg.maxPositions) throw new RangeError(`DeBERTa-v2: ${l} tokens, the model has ${this.cfg.maxPositions} absolute positions`);
        x = x.add(this.position_embeddings.forward(arange(l, undefined, 1, { device: ids.device })).unsqueeze(0));
      }
      if (this.token_type_embeddings) {
        x = x.add(this.token_type_embeddings.forward(tokenTypeIds ?? ids.mul(0)));
      }
      if (this.embed_proj) x = this.embed_proj.forward(x);
      x = this.LayerNorm.forward(x);
      return x.mul(mask.unsqueeze(2).to(x.dtype));
    });
  }
}

/** What every layer of one forward pass shares: the pair mask, relative positions and relative embeddings. */
export interface DebertaContext {
  /** [B, 1, L, L] bool: true where the query or the key is padding (those scores are filled). */
  maskedPairs: Tensor;
  /** The gather indices of the relative (bucketed) positions on the device, or null without relative attention. */
  relIndex: RelIndices | null;
  /** [2 * span, hidden], normalised as norm_rel_ebd says, or null. */
  relEmbeddings: Tensor | null;
}

export class DisentangledSelfAttention extends Module {
  query_proj: Linear;
  key_proj: Linear;
  value_proj: Linear;
  pos_key_proj: Linear | null = null;
  pos_query_proj: Linear | null = null;
  readonly span: number;
  readonly scaleFactor: number;
  constructor(readonly cfg: DebertaV2Config) {
    super();
    const all = cfg.numHeads * cfg.headDim;
    this.query_proj = this.module('query_proj', new Linear(cfg.hiddenSize, all, true));
    this.key_proj = this.module('key_proj', new Linear(cfg.hiddenSize, all, true));
    this.value_proj = this.module('value_proj', new Linear(cfg.hiddenSize, all, true));
    this.span = cfg.positionBuckets > 0 ? cfg.positionBuckets : cfg.maxRelativePositions;
    if (cfg.relativeAttention && !cfg.shareAttKey) {
      if (cfg.posAttType.includes('c2p')) this.pos_key_proj = this.module('pos_key_proj', new Linear(cfg.hiddenSize, all, true));
      if (cfg.posAttType.includes('p2c')) this.pos_query_proj = this.module('pos_query_proj', new Linear(cfg.hiddenSize, all, true));
    }
    this.scaleFactor = 1 + cfg.posAttType.length;
  }

  forward(x: Tensor, ctx: DebertaContext): Tensor {
    return tidy(() => {
      const [b, l] = x.shape as [number, number];
      const { numHeads: h, headDim: d } = this.cfg;
      const heads = (t: Tensor): Tensor => t.view(t.size(0), t.size(1), h, d).transpose(1, 2); // [B, H, L, D]
      const q = heads(this.query_proj.forward(x));
      const k = heads(this.key_proj.forward(x));
      const v = heads(this.value_proj.forward(x));
      // transformers: sqrt(D * scale_factor) in float32, cast to the dtype; scores = q (k^T / scale).
      const scale = scalarTensor(Math.sqrt(Math.fround(d * this.scaleFactor)), { dtype: 'float32' }).to(q.dtype);
      let scores = q.matmul(k.transpose(-1, -2).div(scale));
      if (ctx.relEmbeddings && ctx.relIndex && (ctx.relIndex.c2p || ctx.relIndex.p2c)) {
        scores = scores.add_(this.relativeScores(q, k, ctx.relIndex, ctx.relEmbeddings, scale, b, l));
      }
      scores.maskedFill_(ctx.maskedPairs, lowest(scores.dtype));
      const probs = scores.softmax(-1);
      return probs.matmul(v).transpose(1, 2).reshape(b, l, h * d);
    });
  }

  /**
   * c2p + p2c scores [B, H, L, L]. transformers gathers c2p[b, h, i, c(i, j)] with c = clamp(r(i, j) + S) and
   * p2c[b, h, j, p(j, i)] with p = clamp(-r(j, i) + S), transposed; here both are one gather along the flattened
   * [L * 2S] rows with the precomputed flat indices of relIndices(), giving the query-major result directly
   * (the same numbers: a gather only picks entries, and the scale divides before it).
   */
  private relativeScores(q: Tensor, k: Tensor, index: RelIndices, relEmb: Tensor, scale: Tensor, b: number, l: number): Tensor {
    const { numHeads: h, headDim: d } = this.cfg;
    const span = this.span;
    const rel = relEmb.narrow(0, 0, Math.min(2 * span, relEmb.size(0))).unsqueeze(0);
    const posHeads = (t: Tensor): Tensor => t.view(1, t.size(1), h, d).transpose(1, 2); // [1, H, 2S, D]
    const pick = (src: Tensor, idx: Tensor): Tensor => src.reshape(b, h, l * 2 * span).gather(-1, idx.expand(b, h, l * l)).view(b, h, l, l);
    let score: Tensor | null = null;
    if (index.c2p) {
      const posKey = posHeads((this.cfg.shareAttKey ? this.key_proj : this.pos_key_proj!).forward(rel));
      score = pick(q.matmul(posKey.transpose(-1, -2)).div(scale), index.c2p); // from [B, H, L, 2S]
    }
    if (index.p2c) {
      const posQuery = posHeads((this.cfg.shareAttKey ? this.query_proj : this.pos_query_proj!).forward(rel));
      const p2c = pick(k.matmul(posQuery.transpose(-1, -2)).div(scale), index.p2c); // from [B, H, L(key), 2S]
      score = score ? score.add_(p2c) : p2c;
    }
    return score!;
  }
}

/** Flat gather indices [1, 1, L * L] into [L * 2S] rows for c2p and p2c (null when the term is off). */
export interface RelIndices {
  c2p: Tensor | null;
  p2c: Tensor | null;
}

/**
 * c2p: (i, j) -> i * 2S + clamp(r(i, j) + S, 0, 2S - 1); p2c, query-major: (j, i) -> i * 2S + clamp(-r(i, j) + S, 0, 2S - 1),
 * for the [L, L] relative positions r.
 */
export function relIndices(relPos: Tensor, span: number, types: string[]): RelIndices {
  return tidy(() => {
    const l = relPos.size(0);
    const rowBase = arange(l, undefined, 1, { device: relPos.device }).mul(2 * span);
    const flat = (t: Tensor): Tensor => t.contiguous().view(1, 1, l * l);
    const c2p = types.includes('c2p') ? flat(relPos.add(span).clamp(0, 2 * span - 1).add(rowBase.view(l, 1))) : null;
    const p2c = types.includes('p2c') ? flat(relPos.neg().add(span).clamp(0, 2 * span - 1).add(rowBase.view(l, 1)).transpose(0, 1)) : null;
    return { c2p, p2c };
  });
}

/** dense + residual + LayerNorm (DebertaV2SelfOutput / DebertaV2Output). */
export class DebertaV2ResidualOutput extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  constructor(inFeatures: number, cfg: DebertaV2Config) {
    super();
    this.dense = this.module('dense', new Linear(inFeatures, cfg.hiddenSize, true));
    this.LayerNorm = this.module('LayerNorm', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
  }
  forward(x: Tensor, residual: Tensor): Tensor {
    return tidy(() => this.LayerNorm.forward(this.dense.forward(x).add(residual)));
  }
}

export class DebertaV2Attention extends Module {
  self: DisentangledSelfAttention;
  output: DebertaV2ResidualOutput;
  constructor(cfg: DebertaV2Config) {
    super();
    this.self = this.module('self', new DisentangledSelfAttention(cfg));
    this.output = this.module('output', new DebertaV2ResidualOutput(cfg.numHeads * cfg.headDim, cfg));
  }
  forward(x: Tensor, ctx: DebertaContext): Tensor {
    return tidy(() => this.output.forward(this.self.forward(x, ctx), x));
  }
}

export class DebertaV2Intermediate extends Module {
  dense: Linear;
  readonly act: (x: Tensor) => Tensor;
  constructor(cfg: DebertaV2Config) {
    super();
    this.dense = this.module('dense', new Linear(cfg.hiddenSize, cfg.intermediateSize, true));
    this.act = activation(cfg.hiddenAct);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.act(this.dense.forward(x)));
  }
}

export class DebertaV2Layer extends Module {
  attention: DebertaV2Attention;
  intermediate: DebertaV2Intermediate;
  output: DebertaV2ResidualOutput;
  constructor(cfg: DebertaV2Config) {
    super();
    this.attention = this.module('attention', new DebertaV2Attention(cfg));
    this.intermediate = this.module('intermediate', new DebertaV2Intermediate(cfg));
    this.output = this.module('output', new DebertaV2ResidualOutput(cfg.intermediateSize, cfg));
  }
  forward(x: Tensor, ctx: DebertaContext): Tensor {
    return tidy(() => {
      const a = this.attention.forward(x, ctx);
      return this.output.forward(this.intermediate.forward(a), a);
    });
  }
}

export class DebertaV2Encoder extends Module {
  layer: DebertaV2Layer[];
  rel_embeddings: Embedding | null = null;
  LayerNorm: LayerNorm | null = null;
  constructor(readonly cfg: DebertaV2Config) {
    super();
    this.layer = this.moduleList('layer', Array.from({ length: cfg.numLayers }, () => new DebertaV2Layer(cfg)));
    if (cfg.relativeAttention) {
      const size = cfg.positionBuckets > 0 ? cfg.positionBuckets * 2 : cfg.maxRelativePositions * 2;
      this.rel_embeddings = this.module('rel_embeddings', new Embedding(size, cfg.hiddenSize));
    }
    if (cfg.normRelEbd.includes('layer_norm')) this.LayerNorm = this.module('LayerNorm', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
  }

  relEmbeddings(): Tensor | null {
    if (!this.rel_embeddings) return null;
    const w = this.rel_embeddings.weight;
    return this.LayerNorm ? this.LayerNorm.forward(w) : w.mul(1);
  }
}

export interface DebertaInput {
  /** [B, L] int64. */
  inputIds: Tensor;
  /** [B, L], 1 for real tokens, 0 for padding (default all ones). */
  attentionMask?: Tensor;
  tokenTypeIds?: Tensor;
}

export class DebertaV2Model extends Module {
  embeddings: DebertaV2Embeddings;
  encoder: DebertaV2Encoder;
  constructor(readonly config: DebertaV2Config) {
    super();
    this.embeddings = this.module('embeddings', new DebertaV2Embeddings(config));
    this.encoder = this.module('encoder', new DebertaV2Encoder(config));
  }

  get dtype(): DType {
    return this.embeddings.word_embeddings.weight.dtype;
  }
  get device(): string {
    return this.embeddings.word_embeddings.weight.device;
  }

  /** The last hidden states [B, L, hidden]. */
  forward(input: DebertaInput): Tensor {
    return tidy(() => {
      const ids = input.inputIds;
      const [b, l] = ids.shape as [number, number];
      const mask = input.attentionMask ?? ids.mul(0).add(1);
      const m = mask.ne(0);
      const maskedPairs = m.view(b, 1, 1, l).logicalAnd(m.view(b, 1, l, 1)).logicalNot();
      const cfg = this.config;
      const relIndex = cfg.relativeAttention
        ? relIndices(relativePositions(l, cfg.positionBuckets, cfg.maxRelativePositions).to(ids.device), cfg.positionBuckets > 0 ? cfg.positionBuckets : cfg.maxRelativePositions, cfg.posAttType)
        : null;
      const ctx: DebertaContext = { maskedPairs, relIndex, relEmbeddings: this.encoder.relEmbeddings() };
      let x = this.embeddings.forward(ids, mask, input.tokenTypeIds ?? null);
      for (const layer of this.encoder.layer) x = layer.forward(x, ctx);
      return x;
    });
  }
}

/** Checkpoint tensors that are buffers, not parameters. */
export const isDebertaBuffer = (name: string): boolean => name.endsWith('embeddings.position_ids');

/** Loads a DebertaV2Model folder (config.json + model.safetensors), as transformers' AutoModel does. */
export function loadDebertaV2Model(dir: string, opts: { dtype?: DType; device?: string } = {}): DebertaV2Model {
  const cfg = readDebertaV2Config(dir);
  const model = new DebertaV2Model(cfg);
  const dtype = opts.dtype ?? cfg.dtype ?? 'float32';
  noGrad(() => model.loadWeights(new WeightFolder(resolve(dir)), { dtype, device: opts.device, ignore: isDebertaBuffer }));
  model.eval();
  return model;
}
