// Sequence log-probs of responses given prompts: log pi(y | x) = sum over the response tokens of
// log p(y_t | x, y_<t), prompt tokens and padding masked out. Sequences are prompt ids followed by response
// ids (tokenized separately and concatenated, as TRL's DPO trainer does), right-padded into one batch.
import { tensor, tidy, type Tensor } from '../torch/index.js';
import type { CausalLM, LogprobOptions } from '../models/causal_lm.js';

export interface PromptResponse {
  promptIds: readonly number[];
  responseIds: readonly number[];
}

export interface TruncatedPair {
  promptIds: number[];
  chosenIds: number[];
  rejectedIds: number[];
}

/**
 * Truncation as TRL's DPO trainer: when prompt + the longer response exceeds maxLength, the prompt keeps
 * its last maxPromptLength tokens (truncated from the left); if that is still too long, each response
 * keeps its first maxLength - |prompt| tokens (truncated from the right). (TRL cuts responses to
 * maxLength - maxPromptLength; this uses the room a shorter prompt leaves.)
 */
export function truncatePair(promptIds: readonly number[], chosenIds: readonly number[], rejectedIds: readonly number[], maxLength: number, maxPromptLength: number): TruncatedPair {
  if (!(Number.isInteger(maxLength) && maxLength >= 2)) throw new RangeError(`maxLength must be an integer >= 2, got ${maxLength}`);
  if (!(Number.isInteger(maxPromptLength) && maxPromptLength >= 1 && maxPromptLength < maxLength)) {
    throw new RangeError(`maxPromptLength must be an integer in [1, maxLength), got ${maxPromptLength} (maxLength ${maxLength})`);
  }
  let prompt = promptIds.slice();
  const longer = Math.max(chosenIds.length, rejectedIds.length);
  if (prompt.length + longer > maxLength && prompt.length > maxPromptLength) prompt = prompt.slice(prompt.length - maxPromptLength);
  const room = maxLength - prompt.length;
  return { promptIds: prompt, chosenIds: chosenIds.slice(0, room), rejectedIds: rejectedIds.slice(0, room) };
}

export interface PackedBatch {
  /** [N, L] int64, right-padded. */
  inputIds: Tensor;
  /** [N, L] int64: 1 for tokens, 0 for padding. */
  attentionMask: Tensor;
  /** [N, L-1] float32: 1 where the token predicted at t (position t+1) belongs to the response. */
  responseMask: Tensor;
  /** Non-padding tokens in the batch. */
  tokens: number;
}

/** Right-pads prompt + response sequences into a batch. */
export function packSequences(seqs: readonly PromptResponse[], padId: number, device = 'cpu'): PackedBatch {
  if (seqs.length === 0) throw new RangeError('packSequences: no sequences');
  const lens = seqs.map((s) => s.promptIds.length + s.responseIds.length);
  const l = Math.max(2, ...lens);
  const n = seqs.length;
  const ids = new BigInt64Array(n * l).fill(BigInt(padId));
  const mask = new BigInt64Array(n * l);
  const resp = new Float32Array(n * (l - 1));
  let tokens = 0;
  seqs.forEach((s, i) => {
    const p = s.promptIds.length;
    const all = [...s.promptIds, ...s.responseIds];
    all.forEach((t, j) => {
      if (!Number.isInteger(t) || t < 0) throw new RangeError(`packSequences: sequence ${i} has an invalid token id ${t} at ${j}`);
      ids[i * l + j] = BigInt(t);
      mask[i * l + j] = 1n;
    });
    tokens += all.length;
    // Target position j (1..L-1) is predicted at t = j - 1.
    for (let j = Math.max(1, p); j < all.length; j++) resp[i * (l - 1) + j - 1] = 1;
  });
  return tidy(() => ({
    inputIds: tensor(ids, { shape: [n, l], device }),
    attentionMask: tensor(mask, { shape: [n, l], device }),
    responseMask: tensor(resp, { shape: [n, l - 1], device }),
    tokens,
  }));
}

/**
 * [N] float32: the summed log-probs of each response given its prompt (differentiable when the model's
 * parameters require gradients and grad mode is on). With `opts.tape`, the logits are recomputed in the
 * backward pass; the result then must be backpropagated through the tape before the tensors it depends
 * on are disposed.
 */
export function responseLogprobs(model: CausalLM, batch: PackedBatch, opts: LogprobOptions = {}): Tensor {
  const run = (): Tensor => {
    const lp = model.tokenLogprobs({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }, opts);
    return lp.mul(batch.responseMask).sum(1);
  };
  return opts.tape ? run() : tidy(run);
}
