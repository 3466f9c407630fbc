// Sequence log-probs of responses given prompts: log pi(y | x) = sum over the response tokens of
// log p(y_t | x, y_<t), prompt tokens and padding masked out. Sequences are prompt ids followed by response
// ids (src/sppo/pairs_file.ts and sft.ts say how each form is tokenized), right-padded into one batch
// (packSequences), or packed end to end into rows without padding (packRows: each row holds several sequences,
// attention block-diagonal and causal, positions restarting at 0 with each sequence; the same log-probs).
import { cat, tensor, tidy, zeros, type Tensor } from '../torch/index.js';
import type { CausalLM, LogprobOptions, PackedSequences } from '../models/causal_lm.js';

export interface PromptResponse {
  promptIds: readonly number[];
  responseIds: readonly number[];
  /** Which response tokens count (1) and which are context (0), e.g. the user turns between trained assistant turns; default all. */
  responseMask?: readonly number[];
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
    for (let j = Math.max(1, p); j < all.length; j++) resp[i * (l - 1) + j - 1] = s.responseMask ? s.responseMask[j - p]! : 1;
  });
  return tidy(() => ({
    inputIds: tensor(ids, { shape: [n, l], device }),
    attentionMask: tensor(mask, { shape: [n, l], device }),
    responseMask: tensor(resp, { shape: [n, l - 1], device }),
    tokens,
  }));
}

/** Sequences packed end to end into rows (packRows). */
export interface RowPackedBatch {
  /** [R, L] int64: the rows; a row's unused tail holds padId. */
  inputIds: Tensor;
  /** Where the sequences are: the model's forward input. */
  packing: PackedSequences;
  /** [N, M] int64: for sequence i (in the order given), the indices of its response targets in the flattened [R, L-1]
   * token log-probs, then R * (L-1) (one past them: a zero) up to M, the longest response. */
  responseIndex: Tensor;
  /** Tokens of the sequences (no padding). */
  tokens: number;
  /** Rows and their length (R x L positions go through the model; tokens of them are the sequences'). */
  rows: number;
  rowLength: number;
}

export interface PackRowsOptions {
  /** Positions per row (default: the longest sequence's length); a longer sequence is an error. */
  rowLength?: number;
  device?: string;
}

/**
 * Packs prompt + response sequences end to end into rows without padding: first-fit decreasing by length into
 * rows of `rowLength` positions (default the longest sequence, so no more rows than packSequences' batch),
 * each sequence contiguous, positions restarting at 0, a row's unused tail a sequence of its own (padId).
 */
export function packRows(seqs: readonly PromptResponse[], padId: number, opts: PackRowsOptions = {}): RowPackedBatch {
  if (seqs.length === 0) throw new RangeError('packRows: no sequences');
  if (seqs.some((s) => s.responseMask)) throw new RangeError('packRows: a responseMask is not supported here (packSequences takes it)');
  const lens = seqs.map((s) => s.promptIds.length + s.responseIds.length);
  const cap = opts.rowLength ?? Math.max(2, ...lens);
  if (!(Number.isInteger(cap) && cap >= 2)) throw new RangeError(`packRows: rowLength must be an integer >= 2, got ${cap}`);
  const longest = Math.max(...lens);
  if (longest > cap) throw new RangeError(`packRows: sequence ${lens.indexOf(longest)} has ${longest} tokens, more than rowLength ${cap}`);
  // First-fit decreasing (ties in the given order): which row each sequence goes to, at which offset.
  const order = lens.map((_, i) => i).sort((a, b) => lens[b]! - lens[a]! || a - b);
  const fill: number[] = [];
  const members: number[][] = [];
  const place = new Array<{ row: number; offset: number }>(seqs.length);
  for (const i of order) {
    let r = fill.findIndex((f) => f + lens[i]! <= cap);
    if (r < 0) {
      r = fill.length;
      fill.push(0);
      members.push([]);
    }
    place[i] = { row: r, offset: fill[r]! };
    members[r]!.push(i);
    fill[r]! += lens[i]!;
  }
  const nRows = fill.length;
  const l = Math.max(2, ...fill);
  const ids = new BigInt64Array(nRows * l).fill(BigInt(padId));
  const seqIds = new BigInt64Array(nRows * l);
  const pos = new BigInt64Array(nRows * l);
  const cu: number[] = [0];
  let maxLength = 0;
  const n = seqs.length;
  for (let r = 0; r < nRows; r++) {
    for (const i of members[r]!) {
      const s = seqs[i]!;
      const { offset } = place[i]!;
      const all = [...s.promptIds, ...s.responseIds];
      all.forEach((t, j) => {
        if (!Number.isInteger(t) || t < 0) throw new RangeError(`packRows: sequence ${i} has an invalid token id ${t} at ${j}`);
        ids[r * l + offset + j] = BigInt(t);
        seqIds[r * l + offset + j] = BigInt(i);
        pos[r * l + offset + j] = BigInt(j);
      });
      cu.push(r * l + offset + all.length);
      maxLength = Math.max(maxLength, all.length);
    }
    // The unused tail: a sequence of its own (so every position sees at least itself).
    for (let j = fill[r]!; j < l; j++) {
      seqIds[r * l + j] = BigInt(n + r);
      pos[r * l + j] = BigInt(j - fill[r]!);
    }
    if (fill[r]! < l) {
      cu.push((r + 1) * l);
      maxLength = Math.max(maxLength, l - fill[r]!);
    }
  }
  // Response targets: target position j (1..len-1) of a sequence is predicted at row position offset + j - 1.
  const resp = seqs.map((s) => s.promptIds.length + s.responseIds.length - Math.max(1, s.promptIds.length));
  const m = Math.max(1, ...resp);
  const past = nRows * (l - 1);
  const index = new BigInt64Array(n * m).fill(BigInt(past));
  seqs.forEach((s, i) => {
    const { row, offset } = place[i]!;
    const p = Math.max(1, s.promptIds.length);
    for (let j = p, k = 0; j < lens[i]!; j++, k++) index[i * m + k] = BigInt(row * (l - 1) + offset + j - 1);
  });
  const device = opts.device ?? 'cpu';
  return tidy(() => ({
    inputIds: tensor(ids, { shape: [nRows, l], device }),
    packing: {
      sequenceIds: tensor(seqIds, { shape: [nRows, l], device }),
      positionIds: tensor(pos, { shape: [nRows, l], device }),
      cuSeqlens: tensor(Int32Array.from(cu), { shape: [cu.length], device }),
      maxLength,
    },
    responseIndex: tensor(index, { shape: [n, m], device }),
    tokens: lens.reduce((a, x) => a + x, 0),
    rows: nRows,
    rowLength: l,
  }));
}

/** [rows * positions] 1 for the batch's tokens, 0 for padding (a packed row's tail), in the order the model flattens them. */
export function paddingMask(batch: PackedBatch | RowPackedBatch): Tensor {
  return tidy(() => ('packing' in batch ? batch.packing.sequenceIds.lt(batch.responseIndex.size(0)) : batch.attentionMask).reshape(-1).to('float32'));
}

/**
 * [N] float32: the summed log-probs of each response given its prompt (differentiable when the model's
 * parameters require gradients and grad mode is on). With `opts.tape`, the logits are recomputed in the
 * backward pass; the result then must be backpropagated through the tape before the tensors it depends
 * on are disposed. With `opts.routerLogits`, a mixture-of-experts model's sparse layers append their router logits
 * to it (ForwardInput.routerLogits); paddingMask gives their rows' mask.
 */
export function responseLogprobs(model: CausalLM, batch: PackedBatch | RowPackedBatch, opts: LogprobOptions & { routerLogits?: Tensor[] } = {}): Tensor {
  const routerLogits = opts.routerLogits ?? null;
  if ('packing' in batch) {
    const packed = (): Tensor => {
      const lp = model.tokenLogprobs({ inputIds: batch.inputIds, packing: batch.packing, routerLogits }, opts);
      const [n, m] = batch.responseIndex.shape as [number, number];
      // The flattened log-probs and a zero after them (where the shorter responses' index rows point).
      const flat = cat([lp.reshape(-1), zeros([1], { device: lp.device })], 0);
      return flat.indexSelect(0, batch.responseIndex.reshape(-1)).view(n, m).sum(1);
    };
    return opts.tape ? packed() : tidy(packed);
  }
  const run = (): Tensor => {
    const lp = model.tokenLogprobs({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, routerLogits }, opts);
    return lp.mul(batch.responseMask).sum(1);
  };
  return opts.tape ? run() : tidy(run);
}
