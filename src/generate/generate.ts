// Batched generation with a KV cache. Prompts are left-padded into one batch and prefilled once; with
// n samples per prompt the prefilled cache is repeated n times. Every step decodes one token for the
// whole batch; sequences that stopped (EOS, a stop token or a stop string) are fed padding while the
// others go on, and the loop ends when all have stopped or max_new_tokens is reached.
//
// For every generated token the log-prob under the untempered policy, log_softmax(raw logits), is
// returned too (the SPPO trainer's reference log-probs, with no second forward pass).
import { cat, CudaGraph, full, Generator, keep, noGrad, ones, tensor, tidy, zeros, type Tensor } from '../torch/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import { positionLimit } from '../models/config.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { StopStrings } from '../text/stop_strings.js';
import { KVCache } from './kv_cache.js';
import { checkPenalties, countTokens, hasPenalties, isGreedy, penaltyCoefficients, promptHistory, sampleNext, sampleStep, tokenMask, type PenaltyOptions, type SamplingOptions, type TokenHistory } from './sampling.js';
import { DecodeStep, type PrefillState } from './decode_step.js';
import { decodeGraphFailure, GRAPH_PROMPT_MULTIPLE, graphedDecoder, releaseDecodeGraphs } from './decode_graph.js';

/** Why a generation ended: EOS, a stop token or stop string ('stop'), or maxNewTokens ('length'). (The server's
 * answers say it in the API's words: src/serve's ApiFinishReason.) */
export type FinishReason = 'eos' | 'stop' | 'length';

/** maxNewTokens when the options give none. */
export const DEFAULT_MAX_NEW_TOKENS = 256;

export interface GenerateOptions extends SamplingOptions, PenaltyOptions {
  /** Default DEFAULT_MAX_NEW_TOKENS (256). */
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
  /**
   * How the decoding steps run (stop strings always take the op-by-op loop, which reads the text every step):
   * 'off': the op-by-op loop. 'on': the static step (preallocated cache, device-side state, no host read
   * per step), captured once per batch bucket as a CUDA graph and replayed on a GPU, run eagerly on the CPU.
   * 'auto' (default): the CUDA graph on a GPU, the op-by-op loop on the CPU (the faster one there). The
   * tokens and log-probs are the same either way for the same seed (on the CPU, bit for bit). A logit bias or
   * penalty (PenaltyOptions) decodes op by op too.
   */
  graph?: GraphMode;
  /**
   * Sample from the token-level geometric mixture of this model and another, pi^(1 - coef) mu^(coef): each step's
   * logits are (1 - coef) z_pi + coef z_mu (then tempered and truncated as usual), as TRL's GeometricMixtureWrapper
   * (Nash-MD's opponent). The log-probs returned are the mixture's. Decodes op by op; `model` must share the vocabulary.
   */
  mixture?: { model: CausalLM; coef: number };
}

export type GraphMode = 'auto' | 'on' | 'off';

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

/** Left-pads token lists into one batch: ids and mask [B, P] (int64). */
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

let warnedFallback = false;

/** The decoding loop of generateTensors: see GenerateOptions.graph. */
export type DecodeMode = 'loop' | 'static' | 'graph';

/**
 * Which loop decodes: stop strings need the text on the host every step (the op-by-op loop); 'off' is the
 * op-by-op loop; 'on' is the static step, captured as a CUDA graph on a GPU; 'auto' is the CUDA graph on a
 * GPU (where libtorch can register the sampling generator with it, else the op-by-op loop) and the
 * op-by-op loop on the CPU: there no launches are saved, the static step does more arithmetic (attention
 * over the whole capacity), and the two measured equal within noise (docs/generation.md).
 */
export function decodeMode(opts: Pick<GenerateOptions, 'graph' | 'stopStrings' | 'temperature' | 'mixture' | keyof PenaltyOptions>, device: string): DecodeMode {
  const mode = opts.graph ?? 'auto';
  if (mode !== 'auto' && mode !== 'on' && mode !== 'off') throw new Error(`generate: graph must be 'auto', 'on' or 'off' (got ${JSON.stringify(mode)})`);
  if (mode === 'off' || opts.mixture || hasPenalties(opts) || (opts.stopStrings ?? []).some((x) => x.length > 0)) return 'loop';
  const gpu = device.startsWith('cuda') && CudaGraph.isAvailable();
  if (mode === 'on') return gpu ? 'graph' : 'static';
  return gpu && decodeGraphFailure() === null && (isGreedy(opts) || CudaGraph.supportsGenerators()) ? 'graph' : 'loop';
}

/** Lengths and finish reasons from the generated tokens [rows, T] (read back once). */
function finishInfo(tokens: Tensor, eos: readonly number[], stopIds: readonly number[], minNew: number, stopAt: readonly number[]): { lengths: number[]; reasons: FinishReason[] } {
  const tarr = tokens.toTypedArray() as BigInt64Array;
  const [rows, steps] = tokens.shape as [number, number];
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
  return { lengths, reasons };
}

/** Widens an already padded batch, ids and mask [B, P], to [B, P'] with more padding on the left (the graph path's prompt buckets). */
function widenLeft(ids: Tensor, mask: Tensor, to: number, padId: number): { ids: Tensor; mask: Tensor } {
  const [b, p] = ids.shape as [number, number];
  return tidy(() => ({
    ids: cat([full([b, to - p], padId, { dtype: 'int64', device: ids.device }), ids], 1),
    mask: cat([zeros([b, to - p], { dtype: 'int64', device: mask.device }), mask], 1),
  }));
}

/**
 * Generates from a left-padded batch (inputIds, attentionMask [B, P]); returns tensors (kept out of any
 * scope: the caller disposes them).
 */
export function generateTensors(model: CausalLM, inputIds: Tensor, attentionMask: Tensor, opts: GenerateOptions = {}): GeneratedTensors {
  const maxNew = opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
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
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const mode = decodeMode(opts, device);
  const [b, p0] = inputIds.shape as [number, number];
  const p = mode === 'graph' ? Math.ceil(p0 / GRAPH_PROMPT_MULTIPLE) * GRAPH_PROMPT_MULTIPLE : p0;
  const rows = b * n;
  // Whether every sequence has stopped is read back on the host (a device sync): every step on the
  // CPU, every 8 steps on a GPU, where a sync per step would stall the queue of kernels. Steps
  // taken after all stopped only add padding, which the lengths leave out.
  const syncEvery = device === 'cpu' || stopStrings.length ? 1 : 8;
  const mix = opts.mixture;
  if (mix) checkMixture(model, mix);
  const penalised = hasPenalties(opts);
  if (penalised) checkPenalties(opts, model.config.vocabSize, 'generate');

  return noGrad(() => {
    const cache = KVCache.forModel(model, b, p + maxNew);
    const mixCache = mix ? KVCache.forModel(mix.model, b, p + maxNew) : undefined;
    // The prefill, shared by every loop: the prompts' keys and values, and the logits of their last position.
    const state: { mask: Tensor; pos: Tensor; logits: Tensor; finished: Tensor; history?: TokenHistory } = tidy(() => {
      let ids = inputIds.device === device ? inputIds : inputIds.to(device);
      let mask0 = attentionMask.device === device ? attentionMask : attentionMask.to(device);
      if (p > p0) ({ ids, mask: mask0 } = widenLeft(ids, mask0, p, padId));
      const lastLogits = (m: CausalLM, c: KVCache): Tensor => m.logits(m.hidden({ inputIds: ids, attentionMask: mask0, cache: c }).narrow(1, p - 1, 1)).squeeze(1);
      const last = mix ? mixLogits(lastLogits(model, cache), lastLogits(mix.model, mixCache!), mix.coef) : lastLogits(model, cache);
      const rep = (t: Tensor): Tensor => (n === 1 ? t.detach() : t.repeatInterleave(n, 0)); // never the caller's own handle
      const mask = rep(mask0);
      const h = penalised ? promptHistory(ids, mask0, last.size(-1)) : undefined;
      return {
        mask,
        pos: mask.sum(1, true, 'int64'),
        logits: rep(last),
        finished: zeros([rows], { dtype: 'bool', device }),
        ...(h ? { history: { prompt: rep(h.prompt), counts: rep(h.counts) } } : {}),
      };
    });
    const owned = (): Tensor[] => [state.mask, state.pos, state.logits, state.finished, ...(state.history ? [state.history.prompt, state.history.counts] : [])];
    for (const t of owned()) keep(t);
    cache.repeatInterleave(n);
    mixCache?.repeatInterleave(n);
    try {
      const second = mix ? { model: mix.model, cache: mixCache!, coef: mix.coef } : undefined;
      const loop = (): ReturnType<typeof decodeLoop> =>
        decodeLoop(model, cache, state, { ...opts, maxNew, minNew, rows, p, eos, stopIds, padId, stopStrings, syncEvery, generator: greedy ? undefined : new Generator(seed, device), second });
      const stat = (): ReturnType<typeof decodeStatic> =>
        decodeStatic(model, { cache, promptMask: state.mask, logits: state.logits, positions: state.pos }, { ...opts, maxNew, minNew, rows, p, eos, stopIds, padId, syncEvery, seed, captured: mode === 'graph' });
      let out: ReturnType<typeof decodeLoop>;
      if (mode === 'loop') out = loop();
      else if (mode === 'graph' && (opts.graph ?? 'auto') === 'auto') {
        // 'auto': a capture that fails (an operation a graph cannot hold) leaves the prefill untouched, so
        // this batch and the later ones decode op by op, after one warning.
        try {
          out = stat();
        } catch (e) {
          if (decodeGraphFailure() === null) throw e; // not a capture failure
          if (!warnedFallback) console.error(`sppo generate: CUDA graph capture failed, decoding op by op instead: ${decodeGraphFailure()}`);
          warnedFallback = true;
          out = loop();
        }
      } else out = stat();
      try {
        const { lengths, reasons } = finishInfo(out.tokens, eos, stopIds, minNew, out.stopAt);
        return { tokens: keep(out.tokens), logprobs: keep(out.logprobs), lengths, finishReasons: reasons };
      } catch (e) {
        out.tokens.dispose();
        out.logprobs.dispose();
        throw e;
      }
    } finally {
      for (const t of owned()) t.dispose();
      cache.dispose();
      mixCache?.dispose();
    }
  });
}

/** The mixture's logits (1 - coef) z_pi + coef z_mu, in float32 (the same distribution as TRL's log_softmax of them). */
function mixLogits(pi: Tensor, mu: Tensor, coef: number): Tensor {
  return pi.float().mul(1 - coef).add(mu.float().mul(coef));
}

function checkMixture(model: CausalLM, mix: NonNullable<GenerateOptions['mixture']>): void {
  if (!(mix.coef >= 0 && mix.coef <= 1)) throw new RangeError(`generate: mixture.coef must be in [0, 1] (got ${mix.coef})`);
  if (mix.model.config.vocabSize !== model.config.vocabSize) throw new Error(`generate: the mixture's models have different vocabularies (${model.config.vocabSize} and ${mix.model.config.vocabSize} ids)`);
  if (mix.model.device !== model.device) throw new Error(`generate: the mixture's models are on different devices (${model.device} and ${mix.model.device})`);
}

interface LoopSettings extends GenerateOptions {
  maxNew: number;
  minNew: number;
  rows: number;
  p: number;
  eos: number[];
  stopIds: number[];
  padId: number;
  syncEvery: number;
}

/**
 * The op-by-op loop: every step's operations issued from the host, the cache attended up to its filled
 * length, stop strings checked on the host text.
 */
function decodeLoop(
  model: CausalLM,
  cache: KVCache,
  state: { mask: Tensor; pos: Tensor; logits: Tensor; finished: Tensor; history?: TokenHistory },
  o: LoopSettings & { stopStrings: string[]; generator: Generator | undefined; second: { model: CausalLM; cache: KVCache; coef: number } | undefined },
): { tokens: Tensor; logprobs: Tensor; stopAt: number[] } {
  const { maxNew, minNew, rows, p, eos, stopIds, padId, stopStrings, syncEvery, generator, second } = o;
  const device = model.device;
  const tok = o.tokenizer;
  // The mask of every step, allocated once: the prompt's, then ones (stopped rows are fed padding
  // that they attend to, which changes nothing: their outputs are discarded).
  const fullMask = keep(tidy(() => cat([state.mask, ones([rows, maxNew], { dtype: 'int64', device })], 1)));
  // The end tokens: banned while step < minNew; a drawn one ends its row.
  const endMask = keep(tokenMask([...eos, ...stopIds], state.logits.size(-1), device));
  // The bias and penalties, over each row's prompt and generated tokens (state.history, counted every step).
  const coefficients = state.history ? penaltyCoefficients(o, state.logits.size(-1), device) : null;
  if (coefficients?.bias) keep(coefficients.bias);
  const tokens: Tensor[] = [];
  const logprobs: Tensor[] = [];
  const hostTokens: number[][] = stopStrings.length ? Array.from({ length: rows }, () => []) : [];
  const hostStopped = new Array<boolean>(rows).fill(false);
  const stopAt = new Array<number>(rows).fill(-1);
  const stops = new StopStrings(stopStrings);
  try {
    for (let step = 0; step < maxNew; step++) {
      const next = tidy(() => {
        const { token, logprob: lp, ended } = sampleStep({
          logits: state.logits,
          ban: step < minNew ? endMask : null,
          penalties: state.history && coefficients ? { history: state.history, coefficients } : null,
          draw: (scores) => sampleNext(scores, o, generator),
          finished: state.finished,
          padTokenId: padId,
          endMask,
        });
        return { token, lp, ended: ended! };
      });
      tokens.push(keep(next.token));
      logprobs.push(keep(next.lp));
      if (state.history) {
        const counts = keep(countTokens(state.history.counts, next.token, state.finished));
        state.history.counts.dispose();
        state.history.counts = counts;
      }
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
          const tail = tok!.decode(hostTokens[i]!.slice(-stops.tokenWindow), { skipSpecialTokens: true });
          if (stops.find(tail)) {
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
      o.onStep?.(step + 1);
      if (step === maxNew - 1 || ((step + 1) % syncEvery === 0 && state.finished.all().item())) break;
      const upd = tidy(() => {
        const mask = fullMask.narrow(1, 0, p + step + 1);
        const step1 = (m: CausalLM, c: KVCache): Tensor => m.forward({ inputIds: next.token.unsqueeze(1), attentionMask: mask, positionIds: state.pos, cache: c }).squeeze(1);
        const logits = second ? mixLogits(step1(model, cache), step1(second.model, second.cache), second.coef) : step1(model, cache);
        return { logits, pos: state.pos.add(1) };
      });
      for (const k of ['logits', 'pos'] as const) {
        state[k].dispose();
        state[k] = keep(upd[k]);
      }
    }
    const out = tidy(() => ({ tokens: cat(tokens.map((t) => t.unsqueeze(1)), 1), logprobs: cat(logprobs.map((t) => t.unsqueeze(1)), 1) }));
    return { tokens: out.tokens, logprobs: out.logprobs, stopAt };
  } finally {
    for (const t of [...tokens, ...logprobs, endMask, fullMask]) t.dispose();
    coefficients?.bias?.dispose();
  }
}

/**
 * The static step (decode_step.ts), run eagerly or replayed as a CUDA graph: no host work inside a step;
 * whether all rows finished is read every syncEvery steps between steps.
 */
function decodeStatic(model: CausalLM, prefill: PrefillState, o: LoopSettings & { seed: number; captured: boolean }): { tokens: Tensor; logprobs: Tensor; stopAt: number[] } {
  const stepOpts = {
    rows: o.rows, promptLength: o.p, maxNewTokens: o.maxNew, minNewTokens: o.minNew, endTokenIds: [...o.eos, ...o.stopIds], padTokenId: o.padId,
    temperature: o.temperature, topK: o.topK, topP: o.topP,
  };
  let step: DecodeStep | null = null;
  let run: () => void;
  let finished: Tensor;
  let outputs: () => { tokens: Tensor; logprobs: Tensor };
  if (o.captured) {
    const d = graphedDecoder(model, stepOpts);
    d.load(prefill, o.seed);
    run = () => d.replay();
    finished = d.decodeStep.finished;
    outputs = () => ({ tokens: d.decodeStep.tokens, logprobs: d.decodeStep.logprobs });
  } else {
    const s = (step = new DecodeStep(model, { ...stepOpts, generator: isGreedy(o) ? undefined : new Generator(o.seed, model.device) }));
    s.load(prefill);
    run = () => s.run();
    finished = s.finished;
    outputs = () => ({ tokens: s.tokens, logprobs: s.logprobs });
  }
  try {
    let steps = o.maxNew;
    for (let i = 0; i < o.maxNew; i++) {
      run();
      o.onStep?.(i + 1);
      if (i < o.maxNew - 1 && (i + 1) % o.syncEvery === 0 && finished.all().item()) {
        steps = i + 1;
        break;
      }
    }
    const { tokens, logprobs } = outputs();
    return {
      tokens: keep(tidy(() => tokens.narrow(1, 0, steps).clone())),
      logprobs: keep(tidy(() => logprobs.narrow(1, 0, steps).clone())),
      stopAt: new Array<number>(o.rows).fill(-1),
    };
  } finally {
    step?.dispose();
  }
}

/** Models already warned that generation runs past their trained positions (once each). */
const warnedPast = new WeakSet<object>();

/**
 * Checks, before any work, that the longest prompt and maxNewTokens fit the model's positions: past a model's
 * learned position embeddings (GPT-2's) a RangeError naming the prompt (its index in `prompts`); past a rotary
 * model's max_position_embeddings one process warning (as transformers' generate warns).
 */
export function checkPromptRoom(model: CausalLM, prompts: readonly (readonly number[])[], maxNewTokens: number): void {
  let longest = -1;
  prompts.forEach((p, i) => {
    if (longest < 0 || p.length > prompts[longest]!.length) longest = i;
  });
  if (longest < 0) return;
  const len = prompts[longest]!.length;
  const over = positionLimit(model.config, len + maxNewTokens);
  if (!over) return;
  const what = `generate: prompt ${longest} has ${len} tokens; with maxNewTokens ${maxNewTokens} that is ${over.message}`;
  if (over.learned) throw new RangeError(`${what}: shorten the prompt or lower maxNewTokens`);
  if (!warnedPast.has(model)) {
    warnedPast.add(model);
    process.emitWarning(what, { code: 'SPPO_PAST_MAX_POSITIONS' });
  }
}

/** Generates n continuations of each prompt (token ids, no padding). */
export function generate(model: CausalLM, prompts: readonly number[][], opts: GenerateOptions = {}): Generation[] {
  checkPromptRoom(model, prompts, opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS);
  const n = opts.n ?? 1;
  const padId = opts.padTokenId ?? opts.tokenizer?.padTokenId ?? model.config.padTokenId ?? 0;
  const stops = new StopStrings(opts.stopStrings);
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
      if (logprobs.some(Number.isNaN)) {
        throw new Error(`generate: the model's log-probs are NaN (prompt ${Math.floor(i / n)}): its weights hold NaN or infinity, or its dtype overflowed; no sample of it is usable`);
      }
      let text = opts.tokenizer ? opts.tokenizer.decode(tokens, { skipSpecialTokens: true }) : '';
      if (res.finishReasons[i] === 'stop' && !stops.empty) text = stops.cut(text);
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
  /** Keep the model's decoding graphs (and their static caches) after the call, for a later one (default: freed). */
  keepGraphs?: boolean;
}

/**
 * Generates for many prompts in batches of similar length (less padding) and returns, in prompt order,
 * each prompt's n generations. Yields to the event loop between batches, so progress bars draw.
 */
export async function generateAll(model: CausalLM, prompts: readonly number[][], opts: BatchedOptions = {}): Promise<Generation[][]> {
  const batchSize = opts.batchSize ?? 8;
  const n = opts.n ?? 1;
  checkPromptRoom(model, prompts, opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS);
  const order = prompts.map((_, i) => i).sort((a, b) => prompts[a]!.length - prompts[b]!.length || a - b);
  const out = new Array<Generation[]>(prompts.length);
  try {
    for (let b = 0, s = 0; s < order.length; b++, s += batchSize) {
      const idx = order.slice(s, s + batchSize);
      const gens = generate(model, idx.map((i) => prompts[i]!), { ...opts, seed: opts.seedOf ? opts.seedOf(b) : b });
      idx.forEach((i, j) => (out[i] = gens.slice(j * n, (j + 1) * n).map((g) => ({ ...g, prompt: i }))));
      opts.onBatch?.(Math.min(s + batchSize, order.length), gens);
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    if (!opts.keepGraphs) releaseDecodeGraphs(model);
  }
  return out;
}
