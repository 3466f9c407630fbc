// The static decoding step: one token for every sequence of a batch bucket, with all per-step state in
// device tensors allocated once and updated in place, and no host read. Every call runs the same
// operations on the same tensors, which is what a CUDA graph needs (src/torch/cuda_graph.ts captures one
// call and replays it for every step); on the CPU it runs eagerly and gives the tokens and log-probs of the
// op-by-op loop in generate.ts (test/generate_decode_step.test.ts).
//
// One call, for step s (the device counter `step`):
//   sample the token of step s from `logits` with sampling.ts's sampleStep (EOS / stop ids banned while
//   s < minNewTokens; temperature, top-k, top-p; the exponential race for the draw); padding for finished
//   rows; its untempered log-prob; write both at column s of the [rows, maxNew] outputs (index_copy_);
//   rows that drew EOS or a stop id are finished;
//   run the model on the token at cache index promptLen + s (keys/values written with index_copy_,
//   attention over the whole capacity with the mask made from the device index and the prompt mask);
//   its logits into `logits`; positions, cache index and step + 1.
// The host reads `finished` every few steps between calls, never inside one.
import { arange, full, keep, noGrad, ones, tidy, zeros, type Generator, type Tensor } from '../torch/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import { stepMask } from '../nn/attention.js';
import type { KVCache } from './kv_cache.js';
import { StaticKVCache } from './static_kv_cache.js';
import { sampleNext, sampleStep, tokenMask, type SamplingOptions } from './sampling.js';

export interface DecodeStepOptions extends SamplingOptions {
  /** Sequences decoded together (prompts x samples). */
  rows: number;
  /** Prompt length of the bucket (left-padded). */
  promptLength: number;
  maxNewTokens: number;
  minNewTokens?: number;
  /** Tokens that finish a sequence (EOS and stop ids); banned before minNewTokens. */
  endTokenIds: readonly number[];
  padTokenId: number;
  /** The sampling generator (none when greedy). Draws are the same as the op-by-op loop's for the same state. */
  generator?: Generator;
}

/** What a prefill leaves for the decoding steps (the op-by-op loop's state before its first step). */
export interface PrefillState {
  /** Prefilled cache of `rows` sequences, `promptLength` positions. */
  cache: KVCache;
  /** [rows, promptLength] int64: 1 for prompt tokens, 0 for padding. */
  promptMask: Tensor;
  /** [rows, V] logits of the last prompt position (any float dtype). */
  logits: Tensor;
  /** [rows, 1] int64: the position of the first generated token. */
  positions: Tensor;
}

export class DecodeStep implements Disposable {
  readonly cache: StaticKVCache;
  readonly capacity: number;
  /** float32 [rows, V]: the logits the next call samples from. */
  readonly logits: Tensor;
  /** bool [rows]: sequences that drew EOS or a stop id. */
  readonly finished: Tensor;
  /** int64 [rows, 1]: the position of the token the next call feeds to the model. */
  readonly positions: Tensor;
  /** int64 [1]: the step index (output column) of the next call. */
  readonly step: Tensor;
  /** bool [rows, capacity]: keys that may be attended to (prompt mask, then every generated position). */
  readonly keyValid: Tensor;
  /** [rows, maxNew]: the generated tokens (padding after a row finished) and their untempered log-probs (0 there). */
  readonly tokens: Tensor;
  readonly logprobs: Tensor;
  readonly #keyPositions: Tensor;
  /** bool [1, V]: the end tokens (banned before minNewTokens; a drawn one finishes its row). */
  readonly #endMask: Tensor;
  readonly #ownTensors: Tensor[];

  constructor(readonly model: CausalLM, readonly opts: DecodeStepOptions) {
    const { rows, promptLength: p, maxNewTokens: maxNew } = opts;
    if (!(rows >= 1 && p >= 1 && maxNew >= 1)) throw new RangeError(`DecodeStep: rows ${rows}, promptLength ${p}, maxNewTokens ${maxNew} must be >= 1`);
    const device = model.device;
    const v = model.config.vocabSize;
    this.capacity = p + maxNew;
    this.cache = StaticKVCache.forModel(model, rows, this.capacity);
    const t = noGrad(() => tidy(() => {
      let endMask: Tensor;
      try {
        endMask = tokenMask(opts.endTokenIds, v, device);
      } catch (e) {
        throw new RangeError(`DecodeStep: ${(e as Error).message}`);
      }
      return {
        logits: zeros([rows, v], { device }),
        finished: zeros([rows], { dtype: 'bool', device }),
        positions: zeros([rows, 1], { dtype: 'int64', device }),
        step: zeros([1], { dtype: 'int64', device }),
        keyValid: ones([rows, this.capacity], { dtype: 'bool', device }),
        tokens: full([rows, maxNew], opts.padTokenId, { dtype: 'int64', device }),
        logprobs: zeros([rows, maxNew], { device }),
        keyPositions: arange(0, this.capacity, 1, { device }),
        endMask,
      };
    }));
    for (const x of Object.values(t)) keep(x);
    this.logits = t.logits;
    this.finished = t.finished;
    this.positions = t.positions;
    this.step = t.step;
    this.keyValid = t.keyValid;
    this.tokens = t.tokens;
    this.logprobs = t.logprobs;
    this.#keyPositions = t.keyPositions;
    this.#endMask = t.endMask;
    this.#ownTensors = Object.values(t);
  }

  /** Starts a batch from its prefill (in place: a captured graph keeps reading the same tensors). */
  load(prefill: PrefillState): void {
    const p = this.opts.promptLength;
    if (prefill.promptMask.size(1) !== p || prefill.cache.length !== p) {
      throw new RangeError(`DecodeStep.load: prompt length ${prefill.promptMask.size(1)} (cache ${prefill.cache.length}), the step was made for ${p}`);
    }
    this.cache.load(prefill.cache);
    noGrad(() => tidy(() => {
      this.logits.copy_(prefill.logits);
      this.finished.fill_(false);
      this.positions.copy_(prefill.positions);
      this.step.zero_();
      this.keyValid.narrow(1, 0, p).copy_(prefill.promptMask.ne(0));
      this.keyValid.narrow(1, p, this.opts.maxNewTokens).fill_(true);
      this.tokens.fill_(this.opts.padTokenId);
      this.logprobs.zero_();
    }));
  }

  /** One decoding step, on the device only (see the file's comment). */
  run(): void {
    const o = this.opts;
    const model = this.model;
    noGrad(() => tidy(() => {
      const minNew = o.minNewTokens ?? 0;
      // The end tokens are banned while step < minNewTokens (a device-side condition: no host read).
      const { token, logprob, ended } = sampleStep({
        logits: this.logits,
        ban: minNew > 0 ? this.#endMask.logicalAnd(this.step.lt(minNew).unsqueeze(0)) : null,
        draw: (scores) => sampleNext(scores, o, o.generator),
        finished: this.finished,
        padTokenId: o.padTokenId,
        endMask: this.#endMask,
      });
      const col = token.unsqueeze(1);
      this.tokens.indexCopy_(1, this.step, col);
      this.logprobs.indexCopy_(1, this.step, logprob.unsqueeze(1));
      this.finished.copy_(this.finished.logicalOr(ended!));

      const index = this.cache.index;
      const sliding = model.config.slidingWindow;
      const bias = {
        full: stepMask(this.keyValid, this.#keyPositions, index, model.dtype),
        sliding: sliding !== null ? stepMask(this.keyValid, this.#keyPositions, index, model.dtype, sliding) : null,
      };
      const logits = model.forward({ inputIds: col, positionIds: this.positions, cache: this.cache, attentionBias: bias });
      this.logits.copy_(logits.squeeze(1));
      this.positions.add_(1);
      index.add_(1);
      this.step.add_(1);
    }));
  }

  dispose(): void {
    this.cache.dispose();
    for (const t of this.#ownTensors) t.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
