// A reward-model judge: an HF <Arch>ForSequenceClassification folder with one label. Each (prompt, response) is
// rendered as a user turn and an assistant turn with the folder's chat template (prompt + response when it has
// none), scored r = score of the last non-pad token (src/models/sequence_classification.ts), and
// P(a > b) = sigmoid(r_a - r_b). Responses are scored once per prefer() call however many pairs they are in.
import { ChatTemplate } from '../text/chat_template.js';
import { Tokenizer } from '../text/tokenizer.js';
import { loadRewardModel, type SequenceScorer } from '../models/sequence_classification.js';
import { JudgeError, judgeDtype, sigmoid, type PreferenceOracle, type PreferenceQuery } from './oracle.js';

export interface RewardModelJudgeOptions {
  dtype?: string;
  device?: string;
  /** Sequences per forward pass (default 8). */
  batchSize?: number;
  /** Tokens kept per sequence, from the right (default: the model's max_position_embeddings). */
  maxLength?: number;
}


export class RewardModelJudge implements PreferenceOracle {
  readonly positionBiased = false;
  readonly name: string;
  readonly batchSize: number;
  readonly maxLength: number;

  constructor(readonly scorer: SequenceScorer, readonly tokenizer: Tokenizer, readonly template: ChatTemplate | undefined, dir: string, opts: RewardModelJudgeOptions = {}) {
    if (scorer.numLabels !== 1) throw new JudgeError(`${dir}: a reward model has one label; this one has ${scorer.numLabels}`);
    this.name = `reward-model:${dir}`;
    this.batchSize = opts.batchSize ?? 8;
    this.maxLength = opts.maxLength ?? scorer.config.maxPositions;
  }

  static load(dir: string, opts: RewardModelJudgeOptions = {}): RewardModelJudge {
    const dtype = judgeDtype('reward model', opts.dtype);
    const scorer = loadRewardModel(dir, { dtype, device: opts.device });
    const tokenizer = Tokenizer.fromFolder(dir);
    const template = ChatTemplate.hasTemplate(dir) ? ChatTemplate.fromFolder(dir, { specialTokens: tokenizer.specialTokens }) : undefined;
    return new RewardModelJudge(scorer, tokenizer, template, dir, opts);
  }

  /** Token ids of one (prompt, response) as the reward model reads them. */
  encode(prompt: string, response: string): number[] {
    const ids = this.template
      ? this.tokenizer.encode(this.template.render([{ role: 'user', content: prompt }, { role: 'assistant', content: response }]), { addSpecialTokens: false })
      : this.tokenizer.encode(prompt + response, { addSpecialTokens: true });
    return ids.length > this.maxLength ? ids.slice(ids.length - this.maxLength) : ids;
  }

  /** Rewards of token sequences, batched by length. */
  scoreIds(seqs: number[][]): number[] {
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[a]!.length - seqs[b]!.length);
    const out = new Array<number>(seqs.length);
    for (let s = 0; s < order.length; s += this.batchSize) {
      const idx = order.slice(s, s + this.batchSize);
      const scores = this.scorer.score(idx.map((i) => seqs[i]!));
      idx.forEach((i, j) => (out[i] = scores[j]![0]!));
    }
    return out;
  }

  /** The reward of each response to a prompt. */
  rewards(prompt: string, responses: readonly string[]): number[] {
    return this.scoreIds(responses.map((r) => this.encode(prompt, r)));
  }

  async prefer(batch: PreferenceQuery[]): Promise<number[]> {
    const key = (p: string, r: string): string => JSON.stringify([p, r]);
    const unique = new Map<string, number>();
    const texts: [string, string][] = [];
    for (const q of batch) {
      for (const r of [q.a, q.b]) {
        const k = key(q.prompt, r);
        if (!unique.has(k)) {
          unique.set(k, texts.length);
          texts.push([q.prompt, r]);
        }
      }
    }
    const r = this.scoreIds(texts.map(([p, t]) => this.encode(p, t)));
    return batch.map((q) => sigmoid(r[unique.get(key(q.prompt, q.a))!]! - r[unique.get(key(q.prompt, q.b))!]!));
  }

  dispose(): void {
    this.scorer.dispose();
  }
}
