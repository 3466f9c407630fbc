// PairRM, the SPPO paper's judge: llm-blender's pairwise ranker (DeBERTa-v3-large, 0.4B) loaded from a folder in
// the layout of `llm-blender/PairRM-hf` (model in src/models/pairrm.ts; facts and sources in docs/pairrm.md).
//
// One ordered pair (x, a, b) is asked as llm-blender asks it (CrossCompareCollator + CrossCompareReranker, the
// same ids as the PairRM-hf card's tokenize_pair):
//   source = enc("<|source|>" + x)       truncated to sourceMaxLength (1224) tokens
//   c1     = enc("<|candidate1|>" + a)   truncated to (sourceMaxLength + 2 candidateMaxLength - |source|) / 2
//   c2     = enc("<|candidate2|>" + b)   the same
//   ids    = source ++ c1 ++ c2
// where enc is the tokenizer with its special tokens ([CLS] ... [SEP] for DeBERTa-v3) and truncation keeps the
// first tokens and the special ones, as transformers' encode(max_length=N, truncation=True); the sep token's text
// ("[SEP]") inside the texts is replaced by a space first, as llm-blender's collator does. The model gives
// C(a, b) = head(h_source, h_c1) - head(h_source, h_c2), the logit of "a is better" (> 0: a).
//
// Probabilities, from the K(K-1) ordered pairs of a prompt's K responses:
//   pairwise (default)  P(y_i > y_j) = sigmoid(C(i, j) - C(j, i)): llm-blender's compare() in its default
//                       "[A,B]+[B,A]" mode, read as TRL's PairRMJudge reads it (softmax of the two rank scores)
//   rank                llm-blender's rank() scores s_i = (1/K) sum_j (C(i, j) - C(j, i)) and the official SPPO
//                       compute_prob.py's P(y_i > y_j) = sigmoid(s_i - s_j): each probability depends on all K
//                       responses (uclaml/SPPO issue #15). With K = 2 the two modes agree.
// Both orders are inside each probability, so the judge is not position-biased: M + M^T = 1 by construction.
// All ordered pairs of all prompts of a call go through the model together, sorted by length, batchSize
// sequences per forward pass.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadPairRMModel, readPairRMConfig, type DebertaV2PairRM, type PairSequence } from '../models/pairrm.js';
import { Tokenizer } from '../text/tokenizer.js';
import { JudgeError, judgeDtype, sigmoid, type PreferenceItem, type PreferenceOracle, type PreferenceQuery } from './oracle.js';
import type { PairRMMode } from './spec.js';

/** llm-blender's special tokens of the source and the two candidates (PairRM-hf's tokenizer has them). */
export const PAIRRM_TOKENS = { source: '<|source|>', cand1: '<|candidate1|>', cand2: '<|candidate2|>' } as const;
/** PairRM's lengths (its model card and llm-blender's ranker config): 1224 + 2 x 412 = 2048 tokens at most. */
export const PAIRRM_SOURCE_MAX_LENGTH = 1224;
export const PAIRRM_CANDIDATE_MAX_LENGTH = 412;

export interface PairRMJudgeOptions {
  /** Default: bfloat16 on a GPU, float32 on the CPU. */
  dtype?: string;
  /** Default 'cpu'. */
  device?: string;
  /** Sequences (ordered pairs) per forward pass (default 8). */
  batchSize?: number;
  /** 'pairwise' (default) or 'rank'. */
  mode?: PairRMMode;
  sourceMaxLength?: number;
  candidateMaxLength?: number;
}

export class PairRMJudge implements PreferenceOracle {
  readonly positionBiased = false;
  readonly name: string;
  readonly mode: PairRMMode;
  readonly batchSize: number;
  readonly sourceMaxLength: number;
  readonly candidateMaxLength: number;
  /** The ids the tokenizer puts before and after a text ([CLS] and [SEP] for DeBERTa-v3). */
  readonly templatePrefix: readonly number[];
  readonly templateSuffix: readonly number[];
  readonly tokenIds: { source: number; cand1: number; cand2: number };
  readonly padId: number;
  private readonly sepText: string | undefined;

  constructor(readonly model: DebertaV2PairRM, readonly tokenizer: Tokenizer, dir: string, opts: PairRMJudgeOptions = {}) {
    this.mode = opts.mode ?? 'pairwise';
    if (this.mode !== 'pairwise' && this.mode !== 'rank') throw new JudgeError(`pairrm: mode must be pairwise or rank, got '${String(this.mode)}'`);
    this.name = `pairrm${this.mode === 'rank' ? '-rank' : ''}:${dir}`;
    this.batchSize = opts.batchSize ?? 8;
    this.sourceMaxLength = opts.sourceMaxLength ?? PAIRRM_SOURCE_MAX_LENGTH;
    this.candidateMaxLength = opts.candidateMaxLength ?? PAIRRM_CANDIDATE_MAX_LENGTH;
    const cfg = model.config;
    const tokPath = join(dir, 'tokenizer.json');
    const ids = {} as { source: number; cand1: number; cand2: number };
    for (const [key, token] of Object.entries(PAIRRM_TOKENS) as [keyof typeof PAIRRM_TOKENS, string][]) {
      const id = tokenizer.tokenToId(token);
      if (id === undefined) throw new JudgeError(`${tokPath}: no token '${token}' (PairRM's tokenizer has ${Object.values(PAIRRM_TOKENS).join(', ')})`);
      const want = key === 'source' ? cfg.sourcePrefixId : key === 'cand1' ? cfg.cand1PrefixId : cfg.cand2PrefixId;
      if (id !== want) {
        const field = key === 'source' ? 'source_prefix_id' : `${key}_prefix_id`;
        throw new JudgeError(`${tokPath}: '${token}' is id ${id}, but config.json's ${field} is ${want}`);
      }
      const alone = tokenizer.encode(token, { addSpecialTokens: false });
      if (alone.length !== 1 || alone[0] !== id) throw new JudgeError(`${tokPath}: '${token}' is not encoded as the single token ${id} (got [${alone.join(', ')}])`);
      ids[key] = id;
    }
    this.tokenIds = ids;
    // The post-processor's ids around a text: encode the source token with and without them.
    const wrapped = tokenizer.encode(PAIRRM_TOKENS.source, { addSpecialTokens: true });
    const at = wrapped.indexOf(ids.source);
    this.templatePrefix = wrapped.slice(0, at);
    this.templateSuffix = wrapped.slice(at + 1);
    const special = this.templatePrefix.length + this.templateSuffix.length;
    if (this.sourceMaxLength < special + 1 || this.candidateMaxLength < special + 1) {
      throw new JudgeError(`pairrm: sourceMaxLength and candidateMaxLength must leave room for a prefix token and the ${special} special tokens`);
    }
    const sep = tokenizer.specialTokens.sep_token;
    this.sepText = typeof sep === 'string' ? sep : undefined;
    this.padId = cfg.raw.pad_token_id === undefined ? (tokenizer.padTokenId ?? 0) : cfg.padTokenId;
  }

  static load(dir: string, opts: PairRMJudgeOptions = {}): PairRMJudge {
    const folder = resolve(dir);
    if (!existsSync(folder)) throw new JudgeError(`pairrm: ${folder} does not exist`);
    const dtype = judgeDtype('pairrm', opts.dtype);
    readPairRMConfig(folder); // config errors before the tokenizer's
    const tokenizer = Tokenizer.fromFolder(folder);
    const device = opts.device ?? 'cpu';
    const model = loadPairRMModel(folder, { dtype: dtype ?? (device.startsWith('cuda') ? 'bfloat16' : 'float32'), device });
    try {
      return new PairRMJudge(model, tokenizer, folder, opts);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }

  /**
   * One part's ids: enc(prefix + text) with the tokenizer's special tokens, at most maxLength of them: the text's
   * first tokens are kept (transformers' encode(max_length, truncation=True), truncation side right).
   */
  encodePart(prefixToken: string, text: string, maxLength: number): number[] {
    const clean = this.sepText ? text.split(this.sepText).join(' ') : text;
    const body = this.tokenizer.encode(prefixToken + clean, { addSpecialTokens: false });
    const room = maxLength - this.templatePrefix.length - this.templateSuffix.length;
    return [...this.templatePrefix, ...body.slice(0, Math.max(room, 0)), ...this.templateSuffix];
  }

  /** The candidate budget after a source of `sourceLength` tokens: llm-blender's candidate_maxlength + remaining / 2. */
  candidateBudget(sourceLength: number): number {
    return Math.floor((this.sourceMaxLength + 2 * this.candidateMaxLength - sourceLength) / 2);
  }

  /** The sequence of an ordered pair (a shown as candidate 1), with the positions the head reads. */
  encodePair(prompt: string, a: string, b: string, source?: number[]): PairSequence {
    const src = source ?? this.encodePart(PAIRRM_TOKENS.source, prompt, this.sourceMaxLength);
    const budget = this.candidateBudget(src.length);
    const c1 = this.encodePart(PAIRRM_TOKENS.cand1, a, budget);
    const c2 = this.encodePart(PAIRRM_TOKENS.cand2, b, budget);
    const p = this.templatePrefix.length;
    const seq: PairSequence = { ids: [...src, ...c1, ...c2], source: p, cand1: src.length + p, cand2: src.length + c1.length + p };
    if (seq.ids[seq.source] !== this.tokenIds.source || seq.ids[seq.cand1] !== this.tokenIds.cand1 || seq.ids[seq.cand2] !== this.tokenIds.cand2) {
      throw new JudgeError(`${this.name}: the tokenizer did not keep ${Object.values(PAIRRM_TOKENS).join(', ')} at the start of their parts`);
    }
    return seq;
  }

  /** C(a, b) for each sequence: all in batches of batchSize, shortest first. */
  logitsOf(seqs: PairSequence[]): number[] {
    const order = seqs.map((_, i) => i).sort((x, y) => seqs[x]!.ids.length - seqs[y]!.ids.length);
    const out = new Array<number>(seqs.length);
    for (let s = 0; s < order.length; s += this.batchSize) {
      const idx = order.slice(s, s + this.batchSize);
      const logits = this.model.logits(idx.map((i) => seqs[i]!), this.padId);
      idx.forEach((i, j) => (out[i] = logits[j]!));
    }
    return out;
  }

  /** P(a > b) = sigmoid(C(a, b) - C(b, a)) for each query (both modes: a pair alone is rank mode with K = 2). */
  async prefer(batch: PreferenceQuery[]): Promise<number[]> {
    const seqs: PairSequence[] = [];
    for (const q of batch) {
      const src = this.encodePart(PAIRRM_TOKENS.source, q.prompt, this.sourceMaxLength);
      seqs.push(this.encodePair(q.prompt, q.a, q.b, src), this.encodePair(q.prompt, q.b, q.a, src));
    }
    const c = this.logitsOf(seqs);
    return batch.map((_, i) => sigmoid(c[2 * i]! - c[2 * i + 1]!));
  }

  /** The logits C[i][j] (diagonal 0) of every item's K(K-1) ordered pairs, all items in one batched pass. */
  logitMatrices(items: PreferenceItem[]): number[][][] {
    const seqs: PairSequence[] = [];
    const slots: [number, number, number][] = [];
    items.forEach((it, n) => {
      const src = this.encodePart(PAIRRM_TOKENS.source, it.prompt, this.sourceMaxLength);
      const k = it.responses.length;
      for (let i = 0; i < k; i++) {
        for (let j = 0; j < k; j++) {
          if (i === j) continue;
          seqs.push(this.encodePair(it.prompt, it.responses[i]!, it.responses[j]!, src));
          slots.push([n, i, j]);
        }
      }
    });
    const c = this.logitsOf(seqs);
    const out = items.map((it) => Array.from({ length: it.responses.length }, () => new Array<number>(it.responses.length).fill(0)));
    slots.forEach(([n, i, j], q) => (out[n]![i]![j] = c[q]!));
    return out;
  }

  async preferenceMatrices(items: PreferenceItem[]): Promise<number[][][]> {
    return this.logitMatrices(items).map((c) => matrixFromLogits(c, this.mode));
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * The K x K preference matrix from PairRM's logit matrix C (C[i][j]: candidate i shown first against j):
 * pairwise: M[i][j] = sigmoid(C[i][j] - C[j][i]); rank: M[i][j] = sigmoid(s_i - s_j) with llm-blender's scores
 * s_i = mean_j (C[i][j] - C[j][i]) (get_scores_from_cmps, max_logits). M[j][i] = 1 - M[i][j], diagonal 1/2.
 */
export function matrixFromLogits(c: number[][], mode: PairRMMode): number[][] {
  const k = c.length;
  const s = c.map((row, i) => row.reduce((acc, v, j) => acc + (v - c[j]![i]!), 0) / k);
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0.5));
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const v = sigmoid(mode === 'rank' ? s[i]! - s[j]! : c[i]![j]! - c[j]![i]!);
      m[i]![j] = v;
      m[j]![i] = 1 - v;
    }
  }
  return m;
}
