// Sampling the next token of every running sequence of the engine's batch, with src/generate's one
// sampling step (sampleStep: the penalties, the ban, the draw, the untempered log-prob). What is the server's own: EOS and
// stop tokens banned for rows under their min_tokens, each row's logit bias and penalties (its prompt and tokens
// read from the host every step, only while some row asks for them), and the draw by groups. Sequences that share sampling
// options and have no seed are sampled together from the engine's generator; a request with a seed has a
// generator of its own that draws only for its own sequences, so that its output depends on its prompt,
// options and seed, and not on which other requests share the batch (up to the rounding of batched matrix
// products, which can differ with the batch's size).
import { cat, keep, tensor, tidy, zeros, type Generator, type Tensor } from '../torch/index.js';
import { hasPenalties, isGreedy, paddedIds, rowMask, sampleNext, sampleStep, tokenHistory, type PenaltyCoefficients, type TokenHistory } from '../generate/sampling.js';
import { bannedNext } from './bad_words.js';
import type { EngineRequest } from './request.js';

/** int64 [n] on the device. */
export const longs = (xs: readonly number[], device: string): Tensor => tensor(BigInt64Array.from(xs, (x) => BigInt(x)), { device });

/** What the sampler reads of a running sequence. */
export interface SamplingRow {
  readonly req: EngineRequest;
  readonly seq: number;
  readonly tokens: readonly number[];
  readonly done: boolean;
}

export interface SampledTokens {
  /** int64 [B] (kept: the caller disposes it): the next decode step's input. */
  tokens: Tensor;
  ids: number[];
  /** Untempered log-probs. */
  lps: number[];
  /** The k most likely tokens of each row (row-major [B, k]), when a row asked for top log-probs. */
  topVals: Float32Array | null;
  topIds: BigInt64Array | null;
  k: number;
}

/** Row i's `want` most likely alternatives ([token, log-prob]), or null when it asked for none. */
export function topOf(s: SampledTokens, i: number, want: number): [number, number][] | null {
  if (!(want > 0 && s.topIds && s.topVals)) return null;
  const top: [number, number][] = [];
  for (let j = 0; j < Math.min(want, s.k); j++) top.push([Number(s.topIds[i * s.k + j]!), s.topVals[i * s.k + j]!]);
  return top;
}

/** Samples one token for every row from logits [B, V]. */
export function sampleRows(rows: readonly SamplingRow[], logits: Tensor, eos: ReadonlySet<number>, shared: Generator, device: string): SampledTokens {
  return tidy(() => {
    const vocab = logits.size(-1);
    // Each row's banned tokens: EOS and stop tokens under its min_tokens; the last token of a bad word it would complete.
    const banned = rows.map((r) => {
      const p = r.req.params;
      const ids: number[] = [];
      if (r.tokens.length < (p.minTokens ?? 0) && !r.done) ids.push(...(p.ignoreEos ? [] : eos), ...(p.stopTokenIds ?? []));
      if (p.badWordsIds) ids.push(...bannedNext(p.badWordsIds, r.tokens));
      // Ids outside [0, V) (a tokenizer's added tokens) are never drawn: left out.
      return ids.filter((id) => id >= 0 && id < vocab);
    });
    let ban = banned.some((b) => b.length > 0) ? rowMask(banned, vocab, device) : null;
    // Rows with allowed_token_ids: every other token is banned too.
    const allowed = allowedMask(rows, vocab, device);
    if (allowed) ban = ban ? ban.logicalOr(allowed.logicalNot()) : allowed.logicalNot();
    // Groups of rows sampled together: a seeded request's rows; else rows with equal options.
    const groups = new Map<string | EngineRequest, number[]>();
    rows.forEach((r, i) => {
      const p = r.req.params;
      const key = r.req.generator ? r.req : isGreedy(p) ? 'greedy' : `${p.temperature}/${p.topP}/${p.topK}/${p.minP ?? 0}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(i);
    });
    // A seeded request's rows draw in the order of their samples (rows move when others leave).
    for (const [key, idx] of groups) if (typeof key !== 'string') idx.sort((a, b) => rows[a]!.seq - rows[b]!.seq);
    const inOrder = [...groups.values()].every((idx) => idx.every((v, j) => j === 0 || v > idx[j - 1]!));
    const draw = (scores: Tensor): Tensor => {
      if (groups.size === 1 && inOrder) {
        const p = rows[0]!.req.params;
        return sampleNext(scores, p, rows[0]!.req.generator ?? shared);
      }
      const order: number[] = [];
      const parts: Tensor[] = [];
      for (const idx of groups.values()) {
        const r0 = rows[idx[0]!]!;
        parts.push(sampleNext(scores.indexSelect(0, longs(idx, device)), r0.req.params, r0.req.generator ?? shared));
        order.push(...idx);
      }
      const inverse = new Array<number>(order.length);
      order.forEach((row, j) => (inverse[row] = j));
      return cat(parts, 0).indexSelect(0, longs(inverse, device));
    };
    const { token: tokens, logprob: lp, logp } = sampleStep({ logits, ban, draw, penalties: rowPenalties(rows, logits.size(-1), device) });
    const k = Math.max(0, ...rows.map((r) => r.req.params.topLogprobs ?? 0));
    const top = k > 0 ? logp.topk(Math.min(k, logp.size(1)), -1) : null;
    return {
      tokens: keep(tokens),
      ids: Array.from(tokens.toTypedArray() as BigInt64Array, Number),
      lps: Array.from(lp.toTypedArray() as Float32Array),
      topVals: top ? (top[0].toTypedArray() as Float32Array) : null,
      topIds: top ? (top[1].toTypedArray() as BigInt64Array) : null,
      k: top ? top[0].size(1) : 0,
    };
  });
}

/**
 * The rows' logit bias and penalties (src/generate's applyPenalties) when some row asks for them, else null: each
 * penalised row's prompt and generated tokens as a TokenHistory, its coefficients as [B, 1] columns (neutral for
 * the other rows), the biases scattered into [B, V]. Tensors of the caller's scope.
 */
export function rowPenalties(rows: readonly SamplingRow[], vocabSize: number, device: string): { history: TokenHistory; coefficients: PenaltyCoefficients } | null {
  const on = rows.map((r) => hasPenalties(r.req.params));
  if (!on.some(Boolean)) return null;
  const history = tokenHistory(rows.map((r, i) => (on[i] ? r.req.prompt : [])), rows.map((r, i) => (on[i] ? r.tokens : [])), vocabSize, device);
  const column = (f: (r: SamplingRow) => number): Tensor => tensor(Float32Array.from(rows, f), { shape: [rows.length, 1], device });
  const biases = rows.map((r) => Object.entries(r.req.params.logitBias ?? {}));
  let bias: Tensor | null = null;
  const width = Math.max(0, ...biases.map((b) => b.length));
  if (width > 0) {
    const vals = new Float32Array(rows.length * width);
    biases.forEach((b, i) => b.forEach(([, v], j) => (vals[i * width + j] = v)));
    const ids = paddedIds(biases.map((b) => b.map(([id]) => Number(id))), vocabSize, device);
    bias = zeros([rows.length, vocabSize + 1], { device }).scatter(1, ids, tensor(vals, { shape: [rows.length, width], device })).narrow(1, 0, vocabSize);
  }
  return {
    history,
    coefficients: {
      repetition: column((r) => r.req.params.repetitionPenalty ?? 1),
      presence: column((r) => r.req.params.presencePenalty ?? 0),
      frequency: column((r) => r.req.params.frequencyPenalty ?? 0),
      bias,
    },
  };
}

/** bool [B, V]: the tokens each row may sample (all of them for rows without allowedTokenIds), or null when no row limits them. */
export function allowedMask(rows: readonly SamplingRow[], vocabSize: number, device: string): Tensor | null {
  if (!rows.some((r) => r.req.params.allowedTokenIds)) return null;
  const all = rows.map((r) => !r.req.params.allowedTokenIds);
  return rowMask(rows.map((r) => r.req.params.allowedTokenIds ?? []), vocabSize, device).logicalOr(tensor(all, { dtype: 'bool', device }).unsqueeze(1));
}
