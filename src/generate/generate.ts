// Batched generation with a KV cache. Prompts are left-padded into one batch and prefilled once; with
// n samples per prompt the prefilled cache is repeated n times. Every step decodes one token for the
// whole batch; sequences that stopped (EOS, a stop token or a stop string) are fed padding while the
// others go on, and the loop ends when all have stopped or max_new_tokens is reached.
//
// For every generated token the log-prob under the untempered policy, log_softmax(raw logits), is
// returned too (the SPPO trainer's reference log-probs, with no second forward pass).
import { cat, Generator, isin, keep, noGrad, ones, tensor, tidy, zeros, zerosLike, type Tensor } from '../torch/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { KVCache } from './kv_cache.js';
import { isGreedy, sampleNext, type SamplingOptions } from './sampling.js';

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerateOptions extends SamplingOptions {
  /** Default 256. */
  maxNewTokens?: number;
  /** EOS (and stop tokens) are forbidden before this many new tokens. Default 0. */
  minNewTokens?: number;
  /** Samples per prompt (K of SPPO), sharing the prompt's prefill. Default 1. */
  n?: number;
  /** Seed of the sampling generator (default: a random one). */
  seed?: number;
  /** Tokens that end a sequence (default: the tokenizer's eosTokenIds, else config.json's). */
  eosTokenIds?: number[];
  /** Further tokens that end a sequence (finish reason 'stop'). */
  stopTokenIds?: number[];
  /** Texts that end a sequence once generated (finish reason 'stop'; the text is cut before them). Needs a tokenizer. */
  stopStrings?: string[];
  /** Fills prompts on the left and stopped sequences (default: the tokenizer's pad, else config's, else 0). */
  padTokenId?: number;
  /** For the text of each generation and for stop strings. */
  tokenizer?: Tokenizer;
  /** Called after every decoding step with the number of tokens generated so far for the batch. */
  onStep?: (step: number) => void;
}

export interface Generation {
  /** Index of the prompt, and of the sample among its n. */
  prompt: number;
  sample: number;
  /** Generated token ids, the final EOS / stop token included. */
  tokens: number[];
  /** log p(token) under the untempered policy (log_softmax of the raw logits), one per token. */
  logprobs: number[];
  /** Decoded with special tokens skipped (empty without a tokenizer). */
  text: string;
  finishReason: FinishReason;
}

export interface GeneratedTensors {
  /** [B * n, T] int64: generated tokens (padding after a sequence stopped). */
  tokens: Tensor;
  /** [B * n, T] float32: their untempered log-probs (0 after a sequence stopped). */
  logprobs: Tensor;
  /** Per sequence: the number of tokens generated, and why it stopped. */
  lengths: number[];
  finishReasons: FinishReason[];
}

/** Left-pads token lists into ids and mask [B, P] (int64). */
export function leftPad(prompts: readonly number[][], padId: number, device = 'cpu'): { inputIds: Tensor; attentionMask: Tensor } {
  const p = Math.max(1, ...prompts.map((x) => x.length));
  const ids = new BigInt64Array(prompts.length * p).fill(BigInt(padId));
  const mask = new BigInt64Array(prompts.length * p);
  prompts.forEach((toks, i) => {
    const off = i * p + (p - toks.length);
    toks.forEach((t, j) => {
      ids[off + j] = BigInt(t);
      mask[off + j] = 1n;
    });
  });
  return {
    inputIds: tensor(ids, { shape: [prompts.length, p], device }),
    attentionMask: tensor(mask, { shape: [prompts.length, p], device }),
  };
}

function idsTensor(ids: number[], device: string): Tensor {
  return tensor(BigInt64Array.from(ids, (x) => BigInt(x)), { device });
}

/**
 * Generates from a left-padded batch (inputIds, attentionMask [B, P]); returns tensors (kept out of any
 * scope: the caller disposes them).
 */
export function generateTensors(model: CausalLM, inputIds: Tensor, attentionMask: Tensor, opts: GenerateOptions = {}): GeneratedTensors {
  const maxNew = opts.maxNewTokens ?? 256;
  const minNew = opts.minNewTokens ?? 0;
  const n = opts.n ?? 1;
  const device = model.device;
  const tok = opts.tokenizer;
  const eos = opts.eosTokenIds ?? (tok ? [...tok.eosTokenIds] : model.config.eosTokenIds);
  const stopIds = opts.stopTokenIds ?? [];
  const padId = opts.padTokenId ?? tok?.padTokenId ?? model.config.padTokenId ?? 0;
  const stopStrings = (opts.stopStrings ?? []).filter((s) => s.length > 0);
  if (stopStrings.length && !tok) throw new Error('generate: stop strings need a tokenizer');
  const greedy = isGreedy(opts);
  const generator = greedy ? undefined : new Generator(opts.seed ?? Math.floor(Math.random() * 2 ** 31), device);
  const [b, p] = inputIds.shape as [number, number];
  const rows = b * n;

  return noGrad(() => {
    const cache = KVCache.forModel(model, b, p + maxNew);
    const state: { mask: Tensor; pos: Tensor; logits: Tensor; finished: Tensor } = tidy(() => {
      const ids = inputIds.device === device ? inputIds : inputIds.to(device);
      const mask0 = attentionMask.device === device ? attentionMask : attentionMask.to(device);
      const h = model.hidden({ inputIds: ids, attentionMask: mask0, cache });
      const last = model.logits(h.narrow(1, p - 1, 1)).squeeze(1);
      const rep = (t: Tensor): Tensor => (n === 1 ? t.detach() : t.repeatInterleave(n, 0)); // never the caller's own handle
      const mask = rep(mask0);
      // The mask of every step, allocated once: the prompt's, then ones (stopped rows are fed padding
      // that they attend to, which changes nothing: their outputs are discarded).
      const full = cat([mask, ones([rows, maxNew], { dtype: 'int64', device })], 1);
      return {
        mask: full,
        pos: mask.sum(1, true, 'int64'),
        logits: rep(last),
        finished: zeros([rows], { dtype: 'bool', device }),
      };
    });
    for (const t of Object.values(state)) keep(t);
    cache.repeatInterleave(n);

    const banned = keep(idsTensor([...eos, ...stopIds], device));
    const tokens: Tensor[] = [];
    const logprobs: Tensor[] = [];
    const hostTokens: number[][] = stopStrings.length ? Array.from({ length: rows }, () => []) : [];
    const hostStopped = new Array<boolean>(rows).fill(false);
    const stopAt = new Array<number>(rows).fill(-1);
    const maxStop = Math.max(0, ...stopStrings.map((s) => s.length));
    const syncEvery = device === 'cpu' || stopStrings.length ? 1 : 8;
    try {
      for (let step = 0; step < maxNew; step++) {
        const next = tidy(() => {
          const raw = state.logits.float();
          const logp = raw.logSoftmax(-1);
          let scores = raw;
          if (step < minNew && banned.numel > 0) scores = scores.indexFill(1, banned, -Infinity);
          let token = sampleNext(scores, opts, generator);
          token = token.maskedFill(state.finished, padId);
          const lp = logp.gather(1, token.unsqueeze(1)).squeeze(1).maskedFill(state.finished, 0);
          const ended = banned.numel > 0 ? isin(token, banned).logicalAnd(state.finished.logicalNot()) : zerosLike(state.finished, { device });
          return { token, lp, ended };
        });
        tokens.push(keep(next.token));
        logprobs.push(keep(next.lp));
        let finished = tidy(() => state.finished.logicalOr(next.ended));
        next.ended.dispose();
        if (stopStrings.length) {
          const arr = next.token.toTypedArray() as BigInt64Array;
          const fin = finished.toTypedArray() as Uint8Array;
          const newly: number[] = [];
          for (let i = 0; i < rows; i++) {
            if (hostStopped[i]) continue;
            hostTokens[i]!.push(Number(arr[i]));
            if (fin[i]) {
              hostStopped[i] = true;
              continue;
            }
            const tail = tok!.decode(hostTokens[i]!.slice(-(4 * maxStop + 4)), { skipSpecialTokens: true });
            if (stopStrings.some((s) => tail.includes(s))) {
              hostStopped[i] = true;
              stopAt[i] = step;
              newly.push(i);
            }
          }
          if (newly.length) {
            const f2 = tidy(() => finished.indexFill(0, idsTensor(newly, device), true));
            finished.dispose();
            finished = f2;
          }
        }
        state.finished.dispose();
        state.finished = keep(finished);
        opts.onStep?.(step + 1);
        // Whether every sequence has stopped is read back on the host (a device sync): every step on the
        // CPU, every 8 steps on a GPU, where a sync per step would stall the queue of kernels. Steps
        // taken after all stopped only add padding, which the lengths below leave out.
        if (step === maxNew - 1 || ((step + 1) % syncEvery === 0 && state.finished.all().item())) break;
        const upd = tidy(() => {
          const mask = state.mask.narrow(1, 0, p + step + 1);
          const logits = model.forward({ inputIds: next.token.unsqueeze(1), attentionMask: mask, positionIds: state.pos, cache }).squeeze(1);
          return { logits, pos: state.pos.add(1) };
        });
        for (const k of ['logits', 'pos'] as const) {
          state[k].dispose();
          state[k] = keep(upd[k]);
        }
      }
      const out = tidy(() => ({ tokens: cat(tokens.map((t) => t.unsqueeze(1)), 1), logprobs: cat(logprobs.map((t) => t.unsqueeze(1)), 1) }));
      // Lengths and reasons, read back once.
      const tarr = out.tokens.toTypedArray() as BigInt64Array;
      const steps = tokens.length;
      const eosSet = new Set(eos);
      const stopSet = new Set(stopIds);
      const lengths: number[] = [];
      const reasons: FinishReason[] = [];
      for (let i = 0; i < rows; i++) {
        let len = steps;
        let reason: FinishReason = 'length';
        for (let j = 0; j < steps; j++) {
          const id = Number(tarr[i * steps + j]);
          if (j >= minNew && eosSet.has(id)) { len = j + 1; reason = 'eos'; break; }
          if (j >= minNew && stopSet.has(id)) { len = j + 1; reason = 'stop'; break; }
          if (stopAt[i] === j) { len = j + 1; reason = 'stop'; break; }
        }
        lengths.push(len);
        reasons.push(reason);
      }
      return { tokens: keep(out.tokens), logprobs: keep(out.logprobs), lengths, finishReasons: reasons };
    } finally {
      for (const t of [...tokens, ...logprobs, banned, ...Object.values(state)]) t.dispose();
      cache.dispose();
    }
  });
}

/** Cuts a text before the first stop string it contains. */
function cutAtStop(text: string, stops: string[]): string {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at >= 0 ? text.slice(0, at) : text;
}

/** Generates n continuations of each prompt (token ids, no padding). */
export function generate(model: CausalLM, prompts: readonly number[][], opts: GenerateOptions = {}): Generation[] {
  const n = opts.n ?? 1;
  const padId = opts.padTokenId ?? opts.tokenizer?.padTokenId ?? model.config.padTokenId ?? 0;
  const { inputIds, attentionMask } = leftPad(prompts, padId, model.device);
  let res: GeneratedTensors;
  try {
    res = generateTensors(model, inputIds, attentionMask, opts);
  } finally {
    inputIds.dispose();
    attentionMask.dispose();
  }
  try {
    const steps = res.tokens.size(1);
    const toks = res.tokens.toTypedArray() as BigInt64Array;
    const lps = res.logprobs.toTypedArray() as Float32Array;
    const out: Generation[] = [];
    for (let i = 0; i < prompts.length * n; i++) {
      const len = res.lengths[i]!;
      const tokens = Array.from(toks.subarray(i * steps, i * steps + len), Number);
      const logprobs = Array.from(lps.subarray(i * steps, i * steps + len));
      let text = opts.tokenizer ? opts.tokenizer.decode(tokens, { skipSpecialTokens: true }) : '';
      if (res.finishReasons[i] === 'stop' && opts.stopStrings?.length) text = cutAtStop(text, opts.stopStrings);
      out.push({ prompt: Math.floor(i / n), sample: i % n, tokens, logprobs, text, finishReason: res.finishReasons[i]! });
    }
    return out;
  } finally {
    res.tokens.dispose();
    res.logprobs.dispose();
  }
}

export interface BatchedOptions extends Omit<GenerateOptions, 'seed'> {
  /** Prompts per batch (default 8; batchSize * n sequences decode together). */
  batchSize?: number;
  /** The sampling seed of batch b (batches are taken in order of prompt length). Default: b. */
  seedOf?: (batch: number) => number;
  /** Called after each batch with the number of prompts done and the generations of that batch. */
  onBatch?: (done: number, gens: Generation[]) => void;
}

/**
 * Generates for many prompts in batches of similar length (less padding) and returns, in prompt order,
 * each prompt's n generations. Yields to the event loop between batches, so progress bars draw.
 */
export async function generateAll(model: CausalLM, prompts: readonly number[][], opts: BatchedOptions = {}): Promise<Generation[][]> {
  const batchSize = opts.batchSize ?? 8;
  const n = opts.n ?? 1;
  const order = prompts.map((_, i) => i).sort((a, b) => prompts[a]!.length - prompts[b]!.length || a - b);
  const out = new Array<Generation[]>(prompts.length);
  for (let b = 0, s = 0; s < order.length; b++, s += batchSize) {
    const idx = order.slice(s, s + batchSize);
    const gens = generate(model, idx.map((i) => prompts[i]!), { ...opts, seed: opts.seedOf ? opts.seedOf(b) : b });
    idx.forEach((i, j) => (out[i] = gens.slice(j * n, (j + 1) * n).map((g) => ({ ...g, prompt: i }))));
    opts.onBatch?.(Math.min(s + batchSize, order.length), gens);
    await new Promise((r) => setImmediate(r));
  }
  return out;
}
