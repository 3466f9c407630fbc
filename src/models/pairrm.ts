// llm-blender's PairRM pairwise ranker in the layout of its Hugging Face folder `llm-blender/PairRM-hf`
// (class DebertaV2PairRM of llm_blender/pair_ranker/pairrm.py):
//   config.json   a DeBERTa-v2 config with architectures ["DebertaV2PairRM"] and the PairRM fields n_tasks,
//                 source_prefix_id, cand1_prefix_id, cand2_prefix_id (the ids of <|source|>, <|candidate1|>,
//                 <|candidate2|>), sep_token_id, drop_out
//   weights       the encoder under `pretrained_model.` (a DebertaV2Model) and the head
//                 head_layer = Sequential(Dropout, Linear(2H, H), Tanh, Dropout, Linear(H, n_tasks)), so
//                 `head_layer.1.weight` [H, 2H], `head_layer.1.bias` [H], `head_layer.4.weight` [n_tasks, H],
//                 `head_layer.4.bias` [n_tasks]
// A pair's logit: with h_s, h_1, h_2 the last hidden states at the <|source|>, <|candidate1|> and <|candidate2|>
// tokens, logit = mean over tasks of head([h_s; h_1]) - head([h_s; h_2]); > 0 means candidate 1 is better.
// How the text is joined and truncated, and how logits become probabilities, is src/judge/pairrm.ts.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cat, noGrad, tensor, tidy, WeightFolder, type DType, type Tensor } from '../torch/index.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import { DebertaV2Model, isDebertaBuffer, parseDebertaV2Config, type DebertaV2Config } from './deberta_v2.js';

export const PAIRRM_ARCHITECTURE = 'DebertaV2PairRM';

export interface PairRMConfig extends DebertaV2Config {
  nTasks: number;
  sourcePrefixId: number;
  cand1PrefixId: number;
  cand2PrefixId: number;
  sepTokenId: number | undefined;
}

/** A PairRM-hf config.json: refused (naming the file and the field) when it is not DebertaV2PairRM or lacks a PairRM field. */
export function parsePairRMConfig(raw: Record<string, unknown>, file = 'config.json'): PairRMConfig {
  const archs = Array.isArray(raw.architectures) ? raw.architectures.filter((a): a is string => typeof a === 'string') : [];
  if (!archs.includes(PAIRRM_ARCHITECTURE)) {
    throw new Error(`${file}: architectures is ${JSON.stringify(raw.architectures ?? null)}, not ["${PAIRRM_ARCHITECTURE}"] (a PairRM folder is laid out as llm-blender/PairRM-hf)`);
  }
  const base = parseDebertaV2Config(raw, file);
  const id = (key: string): number => {
    const v = raw[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= base.vocabSize) {
      throw new Error(`${file}: "${key}" must be a token id below vocab_size ${base.vocabSize}, got ${JSON.stringify(v ?? null)} (PairRM reads the hidden states at that token)`);
    }
    return v;
  };
  const nTasks = raw.n_tasks === undefined ? 1 : raw.n_tasks;
  if (typeof nTasks !== 'number' || !Number.isInteger(nTasks) || nTasks < 1) throw new Error(`${file}: "n_tasks" must be a positive integer, got ${JSON.stringify(nTasks)}`);
  return {
    ...base,
    architecture: PAIRRM_ARCHITECTURE,
    nTasks,
    sourcePrefixId: id('source_prefix_id'),
    cand1PrefixId: id('cand1_prefix_id'),
    cand2PrefixId: id('cand2_prefix_id'),
    sepTokenId: typeof raw.sep_token_id === 'number' ? raw.sep_token_id : undefined,
  };
}

export function readPairRMConfig(dir: string): PairRMConfig {
  const path = join(resolve(dir), 'config.json');
  if (!existsSync(path)) throw new Error(`${path} does not exist (a PairRM folder holds config.json, model.safetensors and tokenizer.json)`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parsePairRMConfig(raw, path);
}

/** head_layer: Linear(2H, H) -> tanh -> Linear(H, n_tasks), registered as '1' and '4' (the Sequential's indices). */
export class PairRMHead extends Module {
  first: Linear;
  second: Linear;
  constructor(hidden: number, nTasks: number) {
    super();
    this.first = this.module('1', new Linear(2 * hidden, hidden, true));
    this.second = this.module('4', new Linear(hidden, nTasks, true));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.second.forward(this.first.forward(x).tanh()));
  }
}

/** One sequence to score: its token ids and the positions of <|source|>, <|candidate1|>, <|candidate2|>. */
export interface PairSequence {
  ids: readonly number[];
  source: number;
  cand1: number;
  cand2: number;
}

export const HEAD_TENSORS = ['head_layer.1.weight', 'head_layer.1.bias', 'head_layer.4.weight', 'head_layer.4.bias'];

export class DebertaV2PairRM extends Module {
  pretrained_model: DebertaV2Model;
  head_layer: PairRMHead;
  constructor(readonly config: PairRMConfig) {
    super();
    this.pretrained_model = this.module('pretrained_model', new DebertaV2Model(config));
    this.head_layer = this.module('head_layer', new PairRMHead(config.hiddenSize, config.nTasks));
  }

  get dtype(): DType {
    return this.pretrained_model.dtype;
  }
  get device(): string {
    return this.pretrained_model.device;
  }

  /**
   * The logit of "candidate 1 is better" of each sequence (one batch, right-padded with `padId`): the mean
   * over tasks of head([h_s; h_1]) - head([h_s; h_2]).
   */
  logits(seqs: readonly PairSequence[], padId = this.config.padTokenId): number[] {
    if (seqs.length === 0) return [];
    const n = seqs.length;
    const l = Math.max(...seqs.map((s) => s.ids.length));
    const ids = new BigInt64Array(n * l).fill(BigInt(padId));
    const mask = new BigInt64Array(n * l);
    const at = (kind: 'source' | 'cand1' | 'cand2'): BigInt64Array => BigInt64Array.from(seqs.map((s, i) => BigInt(i * l + s[kind])));
    seqs.forEach((s, i) => {
      for (const k of ['source', 'cand1', 'cand2'] as const) {
        if (!(s[k] >= 0 && s[k] < s.ids.length)) throw new RangeError(`PairRM: sequence ${i}: ${k} position ${s[k]} is outside its ${s.ids.length} tokens`);
      }
      s.ids.forEach((t, j) => {
        ids[i * l + j] = BigInt(t);
        mask[i * l + j] = 1n;
      });
    });
    return tidy(() => noGrad(() => {
      const dev = this.device;
      const h = this.pretrained_model.forward({ inputIds: tensor(ids, { shape: [n, l], device: dev }), attentionMask: tensor(mask, { shape: [n, l], device: dev }) });
      const flat = h.reshape(n * l, h.size(2));
      const pick = (kind: 'source' | 'cand1' | 'cand2'): Tensor => flat.indexSelect(0, tensor(at(kind), { shape: [n], device: dev }));
      const src = pick('source');
      const left = this.head_layer.forward(cat([src, pick('cand1')], -1));
      const right = this.head_layer.forward(cat([src, pick('cand2')], -1));
      const out = left.sub(right).float().mean(-1);
      return Array.from(out.cpu().toTypedArray() as Float32Array);
    }));
  }
}

export interface LoadPairRMOptions {
  /** Default float32. */
  dtype?: DType;
  /** Default 'cpu'. */
  device?: string;
}

/** Loads a PairRM-hf folder's model (config.json + model.safetensors or shards): the encoder and the head. */
export function loadPairRMModel(dir: string, opts: LoadPairRMOptions = {}): DebertaV2PairRM {
  const folder = resolve(dir);
  const cfg = readPairRMConfig(folder);
  const weights = new WeightFolder(folder);
  const where = weights.files.map((f) => f.path).join(', ') || folder;
  const missing = HEAD_TENSORS.filter((n) => !weights.has(n));
  if (missing.length) {
    throw new Error(`${where}: no PairRM head: missing ${missing.join(', ')} (the head_layer of DebertaV2PairRM: Linear(2H, H), tanh, Linear(H, n_tasks))`);
  }
  if (!weights.names.some((n) => n.startsWith('pretrained_model.'))) {
    throw new Error(`${where}: no tensors under 'pretrained_model.' (PairRM-hf keeps its DeBERTa encoder there)`);
  }
  const model = new DebertaV2PairRM(cfg);
  noGrad(() => model.loadWeights(weights, { dtype: opts.dtype ?? 'float32', device: opts.device ?? 'cpu', ignore: isDebertaBuffer }));
  model.eval();
  return model;
}
