// What every causal LM here offers: forward to logits, final hidden states, and per-token log-probs of
// given tokens computed in chunks (never the full-vocabulary float32 logits of every position at once).
import { arange, defaultDevice, hasVarlenFlashAttention, tidy, type CheckpointTape, type DType, type Tensor } from '../torch/index.js';
import { Module } from '../nn/module.js';
import { causalMask, fusedAttentionAvailable, packedCausalMask, type VarlenLayout } from '../nn/attention.js';
import type { ModelConfig } from './config.js';
import { chunkedLogprobs } from './chunked_logprobs.js';

/** What the attention layers use of a key/value cache: where a layer's keys and values go and come from. */
export interface LayerCache {
  /** Stores the new keys and values [B, Hkv, L, D] of a layer; returns that layer's keys and values so far. */
  update(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor];
}

/**
 * A cache whose length is known on the host (src/generate/kv_cache.ts, src/serve/batch_cache.ts): forward makes
 * the masks and positions from it, and advances it after the pass. A cache positioned on the device (the static
 * step's StaticKVCache) is a LayerCache only, and goes with attentionBias and positionIds.
 */
export interface AttentionCache extends LayerCache {
  /** Positions already cached. */
  readonly length: number;
  /** Called once the pass has run through every layer: the L new positions are now cached. */
  advance(n: number): void;
}

/** Whether a cache has a host length (and is advanced by forward). */
export function hasHostLength(cache: LayerCache): cache is AttentionCache {
  return 'length' in cache && typeof (cache as Partial<AttentionCache>).advance === 'function';
}

/**
 * Sequences packed end to end into rows without padding (training: src/sppo/logprobs.ts packRows builds it).
 * Attention is block-diagonal and causal (a position sees the earlier positions of its own sequence), positions
 * restart at 0 with each sequence; no attentionMask, no cache.
 */
export interface PackedSequences {
  /** [R, L] int64: the sequence of each position (a row's unused tail is a sequence of its own). */
  sequenceIds: Tensor;
  /** [R, L] int64: each position's index within its sequence, from 0. */
  positionIds: Tensor;
  /** int32 [S + 1]: 0 and the end of each sequence (tails included) in the flattened R x L positions. */
  cuSeqlens: Tensor;
  /** The longest sequence (tails included). */
  maxLength: number;
}

export interface ForwardInput {
  /** [B, L] int64 token ids (left-padded). */
  inputIds: Tensor;
  /** [B, past + L] with 1 for tokens and 0 for padding; none means no padding. */
  attentionMask?: Tensor | null;
  /** [B, L] positions; by default cumsum(mask) - 1 (padding at 1, as transformers' generate), or arange. */
  positionIds?: Tensor | null;
  /** An AttentionCache; or, with attentionBias and positionIds, a LayerCache the caller positions. */
  cache?: LayerCache | null;
  /**
   * Additive attention masks [B, 1, L, Lk] computed by the caller, used as they are instead of the masks
   * made here from attentionMask and the cache length (a static decoding step attends over the whole
   * preallocated cache, its valid keys given by a device-side index: src/generate/decode_step.ts). Needs
   * positionIds; `sliding` is read by sliding-window layers only.
   */
  attentionBias?: { full: Tensor; sliding: Tensor | null } | null;
  /** Gradient checkpointing: each layer's activations are recomputed in tape.backward instead of kept. */
  tape?: CheckpointTape | null;
  /** Packed sequences (see PackedSequences); positionIds default to theirs. */
  packing?: PackedSequences | null;
  /**
   * Where the mixture-of-experts layers put their router logits (float [B * L, experts], one per sparse layer, in layer
   * order) for a load-balancing loss (sparse_moe.ts loadBalancingLoss). The caller disposes them after its backward pass.
   */
  routerLogits?: Tensor[] | null;
}

export interface LogprobOptions {
  /** Token positions per chunk of logits (default: as many as keep a chunk of float32 logits near 256 MB). */
  chunkTokens?: number;
  /** Run each chunk through a checkpoint tape: its logits are recomputed in the backward pass, not kept. */
  tape?: CheckpointTape;
}

/** Per-layer context of one forward pass. */
export interface Context {
  cos: Tensor | null;
  sin: Tensor | null;
  /** The sliding-window layers' own rotary tables, where their rope differs (Gemma 3); else they take cos / sin. */
  slidingCos?: Tensor | null;
  slidingSin?: Tensor | null;
  /** Additive masks [B, 1, Lq, Lk] for full and sliding-window attention (fullMask null: plain causal, fused path). */
  fullMask: Tensor | null;
  slidingMask: Tensor | null;
  /** [B, 1, Lq, 1]: rows that see no key (left padding), on the fused path. */
  emptyRows: Tensor | null;
  cache: LayerCache | null;
  /** Use the fused attention kernel where libtorch has one (not on the CPU, where eager is the reference). */
  fused: boolean;
  /** Packed sequences on the fused path: variable-length flash attention (slidingWindow: the model's; sliding layers use it). */
  varlen?: VarlenLayout | null;
  /** ForwardInput.routerLogits: the sparse layers append theirs. */
  routerLogits?: Tensor[] | null;
  /**
   * The pass reads nothing back to the host, so that it can be captured as a CUDA graph (the static decoding step,
   * which gives attentionBias): mixture-of-experts layers route on the device (sparse_moe.ts).
   */
  capturable?: boolean;
}

export interface CausalLM {
  readonly config: ModelConfig;
  readonly dtype: DType;
  readonly device: string;
  /** Logits [B, L, V] in the model's dtype. */
  forward(input: ForwardInput): Tensor;
  /** Final hidden states [B, L, H] (after the last norm). */
  hidden(input: ForwardInput): Tensor;
  /** Logits of hidden states [..., H] -> [..., V]. */
  logits(hidden: Tensor): Tensor;
  /**
   * log p(x[t+1] | x[<=t]) for t = 0..L-2, as float32 [B, L-1], times attentionMask[t+1] (0 at padding).
   * Computed from the hidden states in chunks of positions.
   */
  tokenLogprobs(input: ForwardInput, opts?: LogprobOptions): Tensor;
}

/** Default positions for a pass over L new tokens after `past` cached ones. */
export function positionsFor(attentionMask: Tensor | null | undefined, past: number, batch: number, len: number, device: string): Tensor {
  return tidy(() => {
    if (!attentionMask) return arange(past, past + len, 1, { device }).unsqueeze(0).expand(batch, len);
    const pos = attentionMask.cumsum(1, 'int64').sub(1).maskedFill(attentionMask.eq(0), 1);
    return pos.narrow(1, past, len);
  });
}

/** 'sdpa': libtorch's fused attention where it has one (GPUs with PyTorch 2); 'eager': always the composition
 * transformers' eager attention computes (what conformance compares against, on every device). */
export type AttentionImplementation = 'sdpa' | 'eager';

export abstract class CausalLMBase extends Module implements CausalLM {
  dtype: DType = 'float32';
  device = 'cpu';
  attention: AttentionImplementation = 'sdpa';
  constructor(readonly config: ModelConfig) {
    super();
  }

  abstract hidden(input: ForwardInput): Tensor;
  abstract logits(hidden: Tensor): Tensor;

  forward(input: ForwardInput): Tensor {
    return tidy(() => this.logits(this.hidden(input)));
  }

  /**
   * Runs x through the layers; with a tape (gradient checkpointing) each layer is a checkpointed segment,
   * and the tape holds the per-forward tensors the layers read (masks, rotary tables) until it is disposed.
   */
  protected runLayers(x: Tensor, layers: readonly { forward(x: Tensor, ctx: Context): Tensor }[], ctx: Context, tape?: CheckpointTape | null): Tensor {
    if (!tape) {
      for (const layer of layers) x = layer.forward(x, ctx);
      return x;
    }
    const held: Context = {
      ...ctx,
      cos: tape.hold(ctx.cos),
      sin: tape.hold(ctx.sin),
      fullMask: tape.hold(ctx.fullMask),
      slidingMask: tape.hold(ctx.slidingMask),
      emptyRows: tape.hold(ctx.emptyRows),
      varlen: ctx.varlen ? { ...ctx.varlen, cuSeqlens: tape.hold(ctx.varlen.cuSeqlens) } : null,
    };
    const sink = ctx.routerLogits;
    for (const layer of layers) {
      if (!sink) {
        x = tape.checkpoint((h) => layer.forward(h, held), x);
        continue;
      }
      // The router logits are outputs of the checkpointed layer too: a loss on them reaches the router in backward.
      const [y, ...logits] = tape.checkpointMany((h) => {
        const own: Tensor[] = [];
        return [layer.forward(h, { ...held, routerLogits: own }), ...own];
      }, x);
      x = y!;
      sink.push(...logits);
    }
    return x;
  }

  /** After a pass over `input`: a cache with a host length now holds its positions (a static step's cache advances itself). */
  protected advanceCache(input: ForwardInput): void {
    if (input.cache && hasHostLength(input.cache)) input.cache.advance(input.inputIds.size(1));
  }

  /** The mask and positions every architecture needs. */
  protected prepare(input: ForwardInput, sliding: number | null): { positions: Tensor; fullMask: Tensor | null; slidingMask: Tensor | null; emptyRows: Tensor | null; past: number; varlen: VarlenLayout | null } {
    if (input.packing) return this.preparePacked(input, input.packing, sliding);
    const [b, l] = input.inputIds.shape as [number, number];
    if (input.attentionBias) {
      if (!input.positionIds) throw new Error('forward: attentionBias needs positionIds');
      if (sliding !== null && !input.attentionBias.sliding) throw new Error('forward: this model has sliding-window layers; attentionBias.sliding is missing');
      return { positions: input.positionIds, fullMask: input.attentionBias.full, slidingMask: sliding !== null ? input.attentionBias.sliding : null, emptyRows: null, past: 0, varlen: null };
    }
    const cache = input.cache ?? null;
    if (cache && !hasHostLength(cache)) throw new Error('forward: a cache without a host length (a static step\'s) needs attentionBias and positionIds');
    const past = cache?.length ?? 0;
    const mask = input.attentionMask ?? null;
    const positions = input.positionIds ?? positionsFor(mask, past, b, l, this.device);
    const fused = this.fused;
    // Without padding the fused kernel's own causal masking does (flash attention), as transformers' sdpa path.
    const plainCausal = fused && !mask && (past === 0 || l === 1);
    const fullMask = plainCausal ? null : causalMask(mask, b, l, past + l, past, this.dtype, this.device, null);
    const slidingMask = sliding !== null ? causalMask(mask, b, l, past + l, past, this.dtype, this.device, sliding) : null;
    const emptyRows = fused && mask && l > 1 ? mask.cumsum(1, 'int64').narrow(1, mask.size(1) - l, l).eq(0).unsqueeze(1).unsqueeze(-1) : null;
    return { positions, fullMask, slidingMask, emptyRows, past, varlen: null };
  }

  /**
   * Packed sequences: on the fused path with a 16-bit dtype, libtorch's variable-length flash attention where it
   * exists (with the sliding window, where one is needed); else the block-diagonal causal masks (eager on the CPU,
   * SDPA with the mask on a GPU).
   */
  private preparePacked(input: ForwardInput, p: PackedSequences, sliding: number | null): ReturnType<CausalLMBase['prepare']> {
    if (input.cache) throw new Error('forward: packed sequences take no cache (they are for training and scoring)');
    if (input.attentionMask) throw new Error('forward: packed sequences take no attentionMask (sequenceIds delimit them)');
    const half = this.dtype === 'bfloat16' || this.dtype === 'float16';
    const varlen = this.fused && half && this.config.headDim <= 256 && hasVarlenFlashAttention({ slidingWindow: sliding !== null });
    return {
      positions: input.positionIds ?? p.positionIds,
      fullMask: varlen ? null : packedCausalMask(p.sequenceIds, this.dtype, this.device, null),
      slidingMask: varlen || sliding === null ? null : packedCausalMask(p.sequenceIds, this.dtype, this.device, sliding),
      emptyRows: null,
      past: 0,
      varlen: varlen ? { cuSeqlens: p.cuSeqlens, maxLength: p.maxLength, slidingWindow: sliding } : null,
    };
  }

  /** Fused attention kernels (GPU with PyTorch 2's libtorch); the CPU runs the eager reference. */
  protected get fused(): boolean {
    return this.attention === 'sdpa' && this.device !== 'cpu' && fusedAttentionAvailable();
  }

  tokenLogprobs(input: ForwardInput, opts: LogprobOptions = {}): Tensor {
    const run = (): Tensor => {
      const h = this.hidden(opts.tape ? { ...input, tape: opts.tape } : input);
      const [b, l, d] = h.shape as [number, number, number];
      const hs = h.narrow(1, 0, l - 1).reshape(b * (l - 1), d);
      const targets = input.inputIds.narrow(1, 1, l - 1).reshape(b * (l - 1));
      const head = (x: Tensor): Tensor => this.logits(x);
      let lp = chunkedLogprobs(head, hs, targets, { vocabSize: this.config.vocabSize, chunkTokens: opts.chunkTokens, tape: opts.tape }).view(b, l - 1);
      if (input.attentionMask) {
        const m = input.attentionMask.narrow(1, input.attentionMask.size(1) - l + 1, l - 1);
        lp = lp.mul(m.to(lp.dtype));
      }
      return lp;
    };
    // With a tape, the chunks' inputs must outlive this call (until tape.backward): no scope here.
    return opts.tape ? run() : tidy(run);
  }

  override to(target: { dtype?: DType; device?: string }): this {
    super.to(target);
    if (target.dtype) this.dtype = target.dtype;
    if (target.device) {
      this.device = target.device;
      this.moveBuffers(target.device);
    }
    return this;
  }

  override initWeights(opts: Parameters<Module['initWeights']>[0] = {}): void {
    const device = opts.device ?? defaultDevice();
    super.initWeights({ ...opts, device });
    this.dtype = opts.dtype ?? 'float32';
    this.device = device;
    this.moveBuffers(device);
  }

  /** Moves non-parameter state (rotary tables) to a device. */
  protected moveBuffers(device: string): void {
    void device;
  }
}
