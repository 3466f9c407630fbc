// Sequence scorers on top of the causal-LM backbones: a linear head on the final hidden state of each
// sequence's last non-padding token.
//
// - Reward models in transformers' <Arch>ForSequenceClassification layout (Llama, Mistral, Qwen2, Qwen3, Gemma 2):
//   the backbone's tensors under `model.*` and `score.weight` [num_labels, hidden] (no bias). As transformers
//   does, the pooled position is the rightmost token that is not config.pad_token_id (the last position when
//   the config has no pad token), and the score is score.weight @ h there.
// - A pairwise scorer (see src/judge/pairwise_head.ts): any causal-LM folder plus `pairwise_head.safetensors`
//   (`weight` [1, hidden], optional `bias` [1]), pooled at the last token.
//
// Sequences are right-padded here, so positions are 0..n-1 as for an unpadded sequence.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { keep, linear, noGrad, SafetensorsFile, tensor, tidy, WeightFolder, type DType, type Tensor } from '../torch/index.js';
import type { CausalLMBase } from './causal_lm.js';
import { readConfig, type ModelConfig } from './config.js';
import { createModel, UnknownArchitectureError } from './registry.js';

/** Sequence-classification architectures and the causal LM whose backbone they share. */
export const SEQUENCE_CLASSIFICATION_ARCHITECTURES: Record<string, string> = {
  LlamaForSequenceClassification: 'LlamaForCausalLM',
  MistralForSequenceClassification: 'MistralForCausalLM',
  Qwen2ForSequenceClassification: 'Qwen2ForCausalLM',
  Qwen3ForSequenceClassification: 'Qwen3ForCausalLM',
  Gemma2ForSequenceClassification: 'Gemma2ForCausalLM',
};

export interface ScoreOptions {
  /** Pad id used to right-pad the batch (default: the config's pad, else 0). */
  padTokenId?: number;
}

/** A backbone plus a linear head [numLabels, hidden] on one pooled position per sequence. */
export class SequenceScorer {
  constructor(
    readonly backbone: CausalLMBase,
    readonly weight: Tensor,
    readonly bias: Tensor | null,
    /** The token id that marks padding for pooling (transformers' config.pad_token_id); undefined: pool at the last real token. */
    readonly poolPadTokenId: number | undefined,
  ) {}

  get numLabels(): number {
    return this.weight.size(0);
  }
  get config(): ModelConfig {
    return this.backbone.config;
  }
  get device(): string {
    return this.backbone.device;
  }

  /** Index of the pooled token of each sequence (token lists, unpadded). */
  pooledIndex(ids: readonly number[]): number {
    if (ids.length === 0) throw new RangeError('cannot score an empty sequence');
    if (this.poolPadTokenId === undefined) return ids.length - 1;
    for (let i = ids.length - 1; i >= 0; i--) if (ids[i] !== this.poolPadTokenId) return i;
    return 0; // all padding: transformers' argmax of zeros
  }

  /** Scores [B, numLabels] as float32 numbers, one row per sequence; batched by the caller. */
  score(seqs: readonly (readonly number[])[], opts: ScoreOptions = {}): number[][] {
    if (seqs.length === 0) return [];
    const pad = opts.padTokenId ?? this.config.padTokenId ?? 0;
    const n = seqs.length;
    const flat = tidy(() => noGrad(() => {
      const rows = pooledHidden(this.backbone, seqs, pad, (s) => this.pooledIndex(s));
      const logits = linear(rows, this.weight, this.bias).float();
      return Array.from(logits.cpu().toTypedArray() as Float32Array);
    }));
    const k = this.numLabels;
    return Array.from({ length: n }, (_, i) => flat.slice(i * k, (i + 1) * k));
  }

  dispose(): void {
    this.backbone.dispose();
    this.weight.dispose();
    this.bias?.dispose();
  }
}

/**
 * The backbone's final hidden state [B, H] of each sequence at one position (`index(seq)`, by default its
 * last token), with the sequences right-padded with `pad` into one batch on the backbone's device.
 */
export function pooledHidden(backbone: CausalLMBase, seqs: readonly (readonly number[])[], pad: number, index: (seq: readonly number[]) => number = (s) => s.length - 1): Tensor {
  const n = seqs.length;
  const l = Math.max(...seqs.map((s) => s.length));
  const ids = new BigInt64Array(n * l).fill(BigInt(pad));
  const mask = new BigInt64Array(n * l);
  const pooled = new BigInt64Array(n);
  seqs.forEach((s, i) => {
    s.forEach((t, j) => {
      ids[i * l + j] = BigInt(t);
      mask[i * l + j] = 1n;
    });
    pooled[i] = BigInt(i * l + index(s));
  });
  return tidy(() => {
    const dev = backbone.device;
    const h = backbone.hidden({ inputIds: tensor(ids, { shape: [n, l], device: dev }), attentionMask: tensor(mask, { shape: [n, l], device: dev }) });
    return h.reshape(n * l, h.size(2)).indexSelect(0, tensor(pooled, { shape: [n], device: dev }));
  });
}

export interface LoadScorerOptions {
  /** Default: the checkpoint's dtype, else float32. */
  dtype?: DType;
  /** Default 'cpu'. */
  device?: string;
}

const ignorable = (name: string): boolean => name.endsWith('.rotary_emb.inv_freq') || /\.attn\.(masked_)?bias$/.test(name);

/**
 * Loads an HF <Arch>ForSequenceClassification folder (a reward model when num_labels is 1): config.json with
 * `architectures` [LlamaForSequenceClassification | MistralForSequenceClassification |
 * Qwen2ForSequenceClassification | Gemma2ForSequenceClassification], `model.*` and `score.weight`.
 */
export function loadRewardModel(dir: string, opts: LoadScorerOptions = {}): SequenceScorer {
  const folder = resolve(dir);
  const cfg = readConfig(folder);
  const causal = SEQUENCE_CLASSIFICATION_ARCHITECTURES[cfg.architecture];
  if (!causal) {
    throw new UnknownArchitectureError(`${folder}: architecture '${cfg.architecture}' is not a supported sequence-classification model ` +
      `(supported: ${Object.keys(SEQUENCE_CLASSIFICATION_ARCHITECTURES).join(', ')})`);
  }
  // The backbone without an LM head: declared tied, so no lm_head parameter is expected.
  const backbone = createModel({ ...cfg, architecture: causal, tieWordEmbeddings: true });
  const weights = new WeightFolder(folder);
  const dtype = opts.dtype ?? cfg.dtype ?? 'float32';
  const device = opts.device ?? 'cpu';
  const entry = weights.entry('score.weight');
  if (!entry) throw new Error(`${folder}: the checkpoint has no 'score.weight' (not a sequence-classification model)`);
  if (entry.shape.length !== 2 || entry.shape[1] !== cfg.hiddenSize) {
    throw new Error(`${folder}: 'score.weight' has shape [${entry.shape.join(', ')}], expected [num_labels, ${cfg.hiddenSize}]`);
  }
  backbone.loadWeights(weights, { dtype, device, ignore: (n) => n === 'score.weight' || n === 'score.bias' || n === 'lm_head.weight' || ignorable(n) });
  backbone.to({ dtype, device });
  backbone.eval();
  const weight = keep(weights.load('score.weight', { dtype, device }));
  const bias = weights.has('score.bias') ? keep(weights.load('score.bias', { dtype, device })) : null;
  return new SequenceScorer(backbone, weight, bias, cfg.padTokenId);
}

export const PAIRWISE_HEAD_FILE = 'pairwise_head.safetensors';

/**
 * A pairwise scorer: a causal-LM backbone (`backbone`, already loaded) with the head of
 * `<dir>/pairwise_head.safetensors` (`weight` [1, hidden], optional `bias` [1]), pooled at the last token.
 * Returns the scorer and the head file's metadata (e.g. its text template).
 */
export function attachPairwiseHead(backbone: CausalLMBase, dir: string): { scorer: SequenceScorer; metadata: Record<string, string> } {
  const path = join(resolve(dir), PAIRWISE_HEAD_FILE);
  if (!existsSync(path)) throw new Error(`${path}: no pairwise head (a pairwise judge folder is a causal-LM folder plus ${PAIRWISE_HEAD_FILE}, or preference_head.safetensors for a general preference model)`);
  const f = SafetensorsFile.open(path);
  const e = f.entries.get('weight');
  if (!e || e.shape.length !== 2 || e.shape[0] !== 1 || e.shape[1] !== backbone.config.hiddenSize) {
    throw new Error(`${path}: expected a tensor 'weight' of shape [1, ${backbone.config.hiddenSize}]${e ? `, got [${e.shape.join(', ')}]` : ''}`);
  }
  const weight = keep(f.load('weight', { dtype: backbone.dtype, device: backbone.device }));
  const bias = f.entries.has('bias') ? keep(f.load('bias', { dtype: backbone.dtype, device: backbone.device })) : null;
  return { scorer: new SequenceScorer(backbone, weight, bias, undefined), metadata: { ...f.metadata } };
}
