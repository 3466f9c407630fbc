// A pairwise judge (the PairRM kind): it reads the prompt and both responses together and gives the logit of
// P(A > B). Here: a causal-LM folder (any architecture of src/models) plus `pairwise_head.safetensors`, a linear
// head (`weight` [1, hidden], optional `bias` [1]) on the final hidden state of the last token of the text
//   template(prompt, A, B)     (PAIRWISE_TEMPLATE unless the head file's metadata has a `template`)
// tokenized with the tokenizer's special tokens. Such a judge sees the order of A and B, so it is position-biased:
// preferenceMatrix() asks both orders and combines them.
import { loadModel } from '../models/registry.js';
import { attachPairwiseHead, PAIRWISE_HEAD_FILE, type SequenceScorer } from '../models/sequence_classification.js';
import { Tokenizer } from '../text/tokenizer.js';
import { saveSafetensors, type Tensor } from '../torch/index.js';
import { join } from 'node:path';
import { judgeDtype, type PreferenceOracle, type PreferenceQuery } from './oracle.js';
import { sigmoid } from './oracle.js';

/** The default text: {prompt}, {a} and {b} are replaced (once each, in that order of precedence). */
export const PAIRWISE_TEMPLATE = '[Prompt]\n{prompt}\n\n[Response A]\n{a}\n\n[Response B]\n{b}\n\n[Is A better than B?]';

export interface PairwiseJudgeOptions {
  dtype?: string;
  device?: string;
  /** Sequences per forward pass (default 8). */
  batchSize?: number;
  /** Tokens kept per sequence, from the right (default: the model's max_position_embeddings). */
  maxLength?: number;
}

/** Fills the template; the placeholders are replaced in one pass, so response text containing "{b}" stays as it is. */
export function pairwiseText(template: string, q: PreferenceQuery): string {
  return template.replace(/\{(prompt|a|b)\}/g, (_, k: 'prompt' | 'a' | 'b') => q[k]);
}

/** Writes a pairwise head beside a causal-LM folder (for the demo that trains one). */
export function savePairwiseHead(dir: string, weight: Tensor, bias?: Tensor | null, template = PAIRWISE_TEMPLATE): void {
  const tensors = new Map<string, Tensor>([['weight', weight]]);
  if (bias) tensors.set('bias', bias);
  saveSafetensors(join(dir, PAIRWISE_HEAD_FILE), tensors, { template });
}

export class PairwiseJudge implements PreferenceOracle {
  readonly positionBiased = true;
  readonly name: string;
  readonly batchSize: number;
  readonly maxLength: number;

  constructor(readonly scorer: SequenceScorer, readonly tokenizer: Tokenizer, readonly template: string, dir: string, opts: PairwiseJudgeOptions = {}) {
    this.name = `pairwise:${dir}`;
    this.batchSize = opts.batchSize ?? 8;
    this.maxLength = opts.maxLength ?? scorer.config.maxPositions;
  }

  static load(dir: string, opts: PairwiseJudgeOptions = {}): PairwiseJudge {
    const dtype = judgeDtype('pairwise judge', opts.dtype);
    const backbone = loadModel(dir, { dtype, device: opts.device });
    try {
      const { scorer, metadata } = attachPairwiseHead(backbone, dir);
      return new PairwiseJudge(scorer, Tokenizer.fromFolder(dir), metadata.template ?? PAIRWISE_TEMPLATE, dir, opts);
    } catch (e) {
      backbone.dispose();
      throw e;
    }
  }

  /** Token ids of one query as the judge reads it (truncated from the left). */
  encode(q: PreferenceQuery): number[] {
    const ids = this.tokenizer.encode(pairwiseText(this.template, q), { addSpecialTokens: true });
    return ids.length > this.maxLength ? ids.slice(ids.length - this.maxLength) : ids;
  }

  /** The head's logits for the queries (P(A > B) = sigmoid(logit)). */
  logits(batch: PreferenceQuery[]): number[] {
    const seqs = batch.map((q) => this.encode(q));
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[a]!.length - seqs[b]!.length);
    const out = new Array<number>(seqs.length);
    for (let s = 0; s < order.length; s += this.batchSize) {
      const idx = order.slice(s, s + this.batchSize);
      const scores = this.scorer.score(idx.map((i) => seqs[i]!), { padTokenId: this.tokenizer.padTokenId });
      idx.forEach((i, j) => (out[i] = scores[j]![0]!));
    }
    return out;
  }

  async prefer(batch: PreferenceQuery[]): Promise<number[]> {
    return this.logits(batch).map(sigmoid);
  }

  dispose(): void {
    this.scorer.dispose();
  }
}
