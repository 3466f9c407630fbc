// Choosing the next token from logits [B, V]: greedy, or sampling after temperature, min-p (the server's
// min_p; off in process), top-k and top-p (in that order, as transformers' warpers), with a libtorch Generator for reproducible draws.
//
// A draw is the exponential race: token = argmax(probs / q) with q ~ Exp(1) per vocabulary entry, which
// picks token i with probability probs[i] / sum(probs). That is what libtorch's multinomial(probs, 1)
// computes itself (ATen's one-sample fast path: exponential_ into empty_like(probs), divide, argmax), so the
// tokens are the same for the same generator state; but multinomial first checks the probabilities, and
// libtorch 1.13 and the 2.x releases before the check became an asynchronous device assert read it back
// on the host (an .item(), a device sync on a GPU), which a CUDA graph cannot contain. This composition
// has no host read on any version: the decoding step (decode_step.ts) can be captured and replayed.
import { emptyLike, tidy, zeros, type Generator, type Tensor } from '../torch/index.js';

export interface SamplingOptions {
  /** 0 means greedy. Default 1. */
  temperature?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches top_p (1 = off). */
  topP?: number;
  /** Keep the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the tokens whose probability (after temperature) is at least minP times the most likely one's (0 = off; vLLM's and SGLang's min_p). */
  minP?: number;
}

export const isGreedy = (o: SamplingOptions): boolean => (o.temperature ?? 1) === 0;

/** The logits after temperature, top-k and top-p (removed tokens at -inf), float32 [B, V]. */
export function warpLogits(logits: Tensor, o: SamplingOptions): Tensor {
  return tidy(() => {
    let x = logits.dtype === 'float32' ? logits : logits.float();
    const t = o.temperature ?? 1;
    if (t !== 1 && t > 0) x = x.div(t);
    const v = x.size(-1);
    const minP = o.minP ?? 0;
    if (minP > 0) {
      // p_i < minP * p_max  <=>  x_i < x_max + log(minP) (the softmax's normalizer cancels).
      x = x.maskedFill(x.lt(x.amax(-1, true).add(Math.log(minP))), -Infinity);
    }
    const k = o.topK ?? 0;
    if (k > 0 && k < v) {
      const [vals] = x.topk(k, -1);
      const kth = vals.narrow(-1, k - 1, 1);
      x = x.maskedFill(x.lt(kth), -Infinity);
    }
    const p = o.topP ?? 1;
    if (p < 1) {
      // As transformers: sort ascending, drop tokens whose cumulative probability stays <= 1 - p, keep the top one.
      const [sorted, idx] = x.sort(-1, false);
      const cum = sorted.softmax(-1).cumsum(-1);
      const drop = cum.le(1 - p);
      drop.narrow(-1, v - 1, 1).fill_(false);
      const remove = drop.scatter(-1, idx, drop);
      x = x.maskedFill(remove, -Infinity);
    }
    return x;
  });
}

/** The next token of each row: argmax when greedy, else a draw from softmax(warped logits) (the exponential race). int64 [B]. */
export function sampleNext(logits: Tensor, o: SamplingOptions, generator?: Generator): Tensor {
  return tidy(() => {
    if (isGreedy(o)) return logits.argmax(-1);
    const probs = warpLogits(logits, o).softmax(-1);
    return probs.div(emptyLike(probs).exponential_(1, generator)).argmax(-1);
  });
}

/** bool [1, V]: true at the given token ids (ids outside [0, V), a tokenizer's added tokens, are never drawn: left out). */
export function tokenMask(ids: Iterable<number>, vocabSize: number, device: string): Tensor {
  return tidy(() => {
    const mask = zeros([vocabSize], { dtype: 'bool', device });
    for (const id of new Set(ids)) {
      if (!Number.isInteger(id)) throw new RangeError(`token id ${id} is not an integer`);
      if (id >= 0 && id < vocabSize) mask.narrow(0, id, 1).fill_(true);
    }
    return mask.unsqueeze(0);
  });
}

export interface SampleStepInput {
  /** [rows, V] raw logits (any float dtype; float32 is used as is). */
  logits: Tensor;
  /** bool, broadcast to [rows, V]: tokens forbidden at this step (-inf before drawing; e.g. EOS under min tokens), or null. */
  ban?: Tensor | null;
  /** Draws the tokens, int64 [rows], from the scores [rows, V]: the only random draw of the step. */
  draw: (scores: Tensor) => Tensor;
  /** bool [rows]: rows already finished (they get padTokenId, log-prob 0, and never end again), or null. */
  finished?: Tensor | null;
  padTokenId?: number;
  /** bool [1, V]: the tokens that end a row (`ended`), or null. */
  endMask?: Tensor | null;
}

export interface SampleStepOutput {
  /** int64 [rows]: the tokens (padding for finished rows). */
  token: Tensor;
  /** float32 [rows]: their log-probs under the untempered policy, log_softmax(raw logits) (0 for finished rows). */
  logprob: Tensor;
  /** float32 [rows, V]: log_softmax(raw logits) (top alternatives are read from it). */
  logp: Tensor;
  /** bool [rows]: rows that drew an end token at this step (null without endMask). */
  ended: Tensor | null;
}

/**
 * One sampling step, the one rule of every decoding path (the op-by-op loop, the static step, the server
 * engine): ban, draw, pad finished rows, untempered log-prob, ended. Device operations only (no host read),
 * so the static step can be captured as a CUDA graph; tensors are the caller's scope's.
 */
export function sampleStep(x: SampleStepInput): SampleStepOutput {
  const raw = x.logits.dtype === 'float32' ? x.logits : x.logits.float();
  const logp = raw.logSoftmax(-1);
  const scores = x.ban ? raw.maskedFill(x.ban, -Infinity) : raw;
  let token = x.draw(scores);
  if (x.finished) token = token.maskedFill(x.finished, x.padTokenId ?? 0);
  let logprob = logp.gather(1, token.unsqueeze(1)).squeeze(1);
  if (x.finished) logprob = logprob.maskedFill(x.finished, 0);
  let ended: Tensor | null = null;
  if (x.endMask) {
    ended = x.endMask.squeeze(0).index([token]);
    if (x.finished) ended = ended.logicalAnd(x.finished.logicalNot());
  }
  return { token, logprob, logp, ended };
}
