// Choosing the next token from logits [B, V]: greedy, or sampling after temperature, min-p (the server's
// min_p; off in process), top-k and top-p (in that order, as transformers' warpers), with a libtorch Generator for reproducible draws.
// Before either, when asked: a logit bias and the repetition, frequency and presence penalties (vLLM's order and
// formulas; transformers' repetition_penalty), over each row's TokenHistory.
//
// A draw is the exponential race: token = argmax(probs / q) with q ~ Exp(1) per vocabulary entry, which
// picks token i with probability probs[i] / sum(probs). That is what libtorch's multinomial(probs, 1)
// computes itself (ATen's one-sample fast path: exponential_ into empty_like(probs), divide, argmax), so the
// tokens are the same for the same generator state; but multinomial first checks the probabilities, and
// libtorch 1.13 and the 2.x releases before the check became an asynchronous device assert read it back
// on the host (an .item(), a device sync on a GPU), which a CUDA graph cannot contain. This composition
// has no host read on any version: the decoding step (decode_step.ts) can be captured and replayed.
import { emptyLike, ones, tensor, tidy, where, zeros, type Generator, type Tensor } from '../torch/index.js';

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

/**
 * What changes the logits before the draw, as vLLM's sampler applies it (and transformers' logits processors for
 * repetition_penalty): the bias first, then the repetition, frequency and presence penalties. Greedy decoding takes
 * the argmax of the changed logits; the log-probs returned stay those of the raw logits (vLLM's default
 * raw_logprobs), so a penalised sample's log-probs are the policy's, not those of the distribution it was drawn from.
 */
export interface PenaltyOptions {
  /** > 0; 1 = off. The logit of every token already in the prompt or the output is divided by it where positive and
   * multiplied by it where negative (CTRL's penalty; transformers' and vLLM's repetition_penalty). */
  repetitionPenalty?: number;
  /** In [-2, 2]; 0 = off. Subtracted once from the logit of every token already in the output (OpenAI's and vLLM's). */
  presencePenalty?: number;
  /** In [-2, 2]; 0 = off. Subtracted from a token's logit once per time it is already in the output. */
  frequencyPenalty?: number;
  /** Token id -> added to its logit, in [-100, 100] (OpenAI's logit_bias). */
  logitBias?: Readonly<Record<number, number>>;
}

/** Whether any of the options changes the logits. */
export function hasPenalties(o: PenaltyOptions): boolean {
  return (o.repetitionPenalty ?? 1) !== 1 || (o.presencePenalty ?? 0) !== 0 || (o.frequencyPenalty ?? 0) !== 0 || Object.keys(o.logitBias ?? {}).length > 0;
}

/** Checks the options' ranges (vLLM's and OpenAI's); `where` names the caller in the message. */
export function checkPenalties(o: PenaltyOptions, vocabSize: number, where: string): void {
  const r = o.repetitionPenalty ?? 1;
  if (!(Number.isFinite(r) && r > 0)) throw new RangeError(`${where}: repetitionPenalty must be a number > 0 (got ${r})`);
  for (const k of ['presencePenalty', 'frequencyPenalty'] as const) {
    const v = o[k] ?? 0;
    if (!(v >= -2 && v <= 2)) throw new RangeError(`${where}: ${k} must be in [-2, 2] (got ${v})`);
  }
  for (const [id, b] of Object.entries(o.logitBias ?? {})) {
    const t = Number(id);
    if (!(Number.isInteger(t) && t >= 0 && t < vocabSize)) throw new RangeError(`${where}: logitBias names token ${id}, outside the vocabulary [0, ${vocabSize})`);
    if (!(typeof b === 'number' && b >= -100 && b <= 100)) throw new RangeError(`${where}: logitBias of token ${id} must be in [-100, 100] (got ${b})`);
  }
}

/**
 * The tokens each row has seen, which the penalties read: bool [rows, V] for the prompt's (padding left out) and
 * float32 [rows, V] counts of the generated ones. Owned by whoever made it (dispose both).
 */
export interface TokenHistory {
  prompt: Tensor;
  counts: Tensor;
}

/**
 * Per-row id lists as int64 [rows, width], each row padded with the id V: scattered into [rows, V + 1] and cut back to
 * V columns, the padding lands in the column cut off (the one way per-row id sets become masks and counts here).
 */
export function paddedIds(lists: readonly (readonly number[])[], vocabSize: number, device: string): Tensor {
  const w = Math.max(1, ...lists.map((l) => l.length));
  const a = new BigInt64Array(lists.length * w).fill(BigInt(vocabSize));
  lists.forEach((l, i) => l.forEach((t, j) => (a[i * w + j] = BigInt(t))));
  return tensor(a, { shape: [lists.length, w], device });
}

/** bool [rows, V]: true at each row's ids (ids in [0, V)). */
export function rowMask(lists: readonly (readonly number[])[], vocabSize: number, device: string): Tensor {
  return tidy(() => zeros([lists.length, vocabSize + 1], { dtype: 'bool', device }).scatter(1, paddedIds(lists, vocabSize, device), true).narrow(1, 0, vocabSize).contiguous());
}

/** A TokenHistory from id lists on the host: each row's prompt and the tokens it generated so far. */
export function tokenHistory(prompts: readonly (readonly number[])[], outputs: readonly (readonly number[])[], vocabSize: number, device: string): TokenHistory {
  return tidy(() => {
    const o = paddedIds(outputs, vocabSize, device);
    return {
      prompt: rowMask(prompts, vocabSize, device),
      counts: zeros([prompts.length, vocabSize + 1], { device }).scatterAdd(1, o, ones(o.shape, { device })).narrow(1, 0, vocabSize).contiguous(),
    };
  });
}

/** A TokenHistory from a left-padded batch (ids and mask [rows, P], int64), nothing generated yet. */
export function promptHistory(inputIds: Tensor, attentionMask: Tensor, vocabSize: number): TokenHistory {
  return tidy(() => {
    const [rows] = inputIds.shape as [number];
    const device = inputIds.device;
    const idx = inputIds.maskedFill(attentionMask.eq(0), vocabSize);
    return {
      prompt: zeros([rows, vocabSize + 1], { dtype: 'bool', device }).scatter(1, idx, true).narrow(1, 0, vocabSize).contiguous(),
      counts: zeros([rows, vocabSize], { device }),
    };
  });
}

/** The counts after one step: each row's token (int64 [rows]) counted once, except rows in `skip` (bool [rows]) when given. */
export function countTokens(counts: Tensor, token: Tensor, skip?: Tensor | null): Tensor {
  return tidy(() => {
    const add = skip ? skip.logicalNot().float().unsqueeze(1) : ones([token.size(0), 1], { device: counts.device });
    return counts.scatterAdd(1, token.unsqueeze(1), add);
  });
}

/** Per-row coefficients: one number for every row, or float32 [rows, 1]; bias float32 [rows or 1, V] or null. */
export interface PenaltyCoefficients {
  repetition: number | Tensor;
  presence: number | Tensor;
  frequency: number | Tensor;
  bias: Tensor | null;
}

/** The coefficients of one set of options, for every row (the bias as a [1, V] tensor of the scope's). */
export function penaltyCoefficients(o: PenaltyOptions, vocabSize: number, device: string): PenaltyCoefficients {
  const entries = Object.entries(o.logitBias ?? {});
  let bias: Tensor | null = null;
  if (entries.length) {
    const b = new Float32Array(vocabSize);
    for (const [id, v] of entries) b[Number(id)] = v;
    bias = tensor(b, { shape: [1, vocabSize], device });
  }
  return { repetition: o.repetitionPenalty ?? 1, presence: o.presencePenalty ?? 0, frequency: o.frequencyPenalty ?? 0, bias };
}

const neutral = (c: number | Tensor, v: number): boolean => typeof c === 'number' && c === v;

/**
 * The logits (float32 [rows, V]) with the bias and penalties applied, in vLLM's order: bias; repetition over the
 * prompt's and the output's tokens; frequency (per occurrence in the output); presence (once per token in the output).
 */
export function applyPenalties(logits: Tensor, h: TokenHistory, c: PenaltyCoefficients): Tensor {
  return tidy(() => {
    let x = logits.dtype === 'float32' ? logits : logits.float();
    if (c.bias) x = x.add(c.bias);
    if (!neutral(c.repetition, 1)) {
      const seen = h.prompt.logicalOr(h.counts.gt(0));
      x = where(seen, where(x.gt(0), x.div(c.repetition), x.mul(c.repetition)), x);
    }
    if (!neutral(c.frequency, 0)) x = x.sub(h.counts.mul(c.frequency));
    if (!neutral(c.presence, 0)) x = x.sub(h.counts.gt(0).float().mul(c.presence));
    return x;
  });
}

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
  /** The logit bias and penalties (applyPenalties) before the draw, or null. The log-probs stay the raw logits'. */
  penalties?: { history: TokenHistory; coefficients: PenaltyCoefficients } | null;
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
 * engine): penalties, ban, draw, pad finished rows, untempered log-prob, ended. Device operations only (no host read),
 * so the static step can be captured as a CUDA graph; tensors are the caller's scope's.
 */
export function sampleStep(x: SampleStepInput): SampleStepOutput {
  const raw = x.logits.dtype === 'float32' ? x.logits : x.logits.float();
  const logp = raw.logSoftmax(-1);
  const adjusted = x.penalties ? applyPenalties(raw, x.penalties.history, x.penalties.coefficients) : raw;
  const scores = x.ban ? adjusted.maskedFill(x.ban, -Infinity) : adjusted;
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
