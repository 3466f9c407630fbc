// Functions of several tensors and the building blocks of models and losses (torch.nn.functional).
import { dtypeCode, type DType } from './dtype.js';
import { callT, callTs, handles, hasOp, opSchema, Tensor, type TensorOrScalar } from './tensor.js';
import { tidy } from './scope.js';
import { ones } from './creation.js';

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return callT('cat', handles(tensors), dim);
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  return callT('stack', handles(tensors), dim);
}
/** Elementwise: cond ? a : b. */
export function where(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (a instanceof Tensor && b instanceof Tensor) return callT('where.self', cond.h, a.h, b.h);
  if (a instanceof Tensor) return callT('where.ScalarOther', cond.h, a.h, b as number);
  if (b instanceof Tensor) return callT('where.ScalarSelf', cond.h, a, b.h);
  return callT('where.Scalar', cond.h, a, b);
}
/** x @ weight^T + bias (weight is [out, in], as torch.nn.Linear). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return callT('linear', x.h, weight.h, bias ? bias.h : null);
}
/** torch.addmm: beta * input + alpha * (mat1 @ mat2), input broadcast to [n, p] (GPT-2's Conv1D is addmm(bias, x, W)). */
export function addmm(input: Tensor, mat1: Tensor, mat2: Tensor, opts: { beta?: number; alpha?: number } = {}): Tensor {
  return callT('addmm', input.h, mat1.h, mat2.h, opts.beta ?? 1, opts.alpha ?? 1);
}
/** torch.pow: base ** exponent elementwise, either of them a number (torch.pow(10000, t) is pow.Scalar). */
export function pow(base: TensorOrScalar, exponent: TensorOrScalar): Tensor {
  if (base instanceof Tensor) return base.pow(exponent);
  if (exponent instanceof Tensor) return callT('pow.Scalar', base, exponent.h);
  throw new TypeError('pow: the base or the exponent must be a tensor');
}
/** torch.isin: a bool tensor shaped as elements, true where the element is one of testElements (false with invert). */
export function isin(elements: Tensor, testElements: Tensor, opts: { invert?: boolean } = {}): Tensor {
  return callT('isin.Tensor_Tensor', elements.h, testElements.h, false, opts.invert ?? false);
}
/** Rows of weight picked by ids. */
export function embedding(weight: Tensor, ids: Tensor, paddingIdx = -1): Tensor {
  return callT('embedding', weight.h, ids.h, paddingIdx, false, false);
}
export function layerNorm(x: Tensor, normalizedShape: number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return callT('layer_norm', x.h, normalizedShape, weight ? weight.h : null, bias ? bias.h : null, eps, true);
}
/**
 * RMS normalisation over the last dimension, computed in float32 (16-bit inputs are upcast) and cast back, as transformers'
 * Llama: x / sqrt(mean(x^2) + eps) * weight. With `offset`, the weight is (offset + w) (Gemma's 1 + w).
 */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps: number, offset = 0, scaleInFloat = offset !== 0): Tensor {
  return tidy(() => {
    const dtype = x.dtype;
    const low = dtype === 'float16' || dtype === 'bfloat16';
    const xf = low ? x.float() : x;
    const normed = xf.mul(xf.square().mean(-1, true).add(eps).rsqrt());
    if (!weight) return normed.to(dtype);
    const w = offset ? (low ? weight.float() : weight).add(offset) : weight;
    // Llama casts before scaling by the weight; Gemma (and OLMo 2, `scaleInFloat`) scale in float32, then cast.
    return scaleInFloat ? normed.mul(w).to(dtype) : weight.mul(normed.to(weight.dtype));
  });
}
export function dropout(x: Tensor, p: number, train: boolean): Tensor {
  return callT('dropout', x.h, p, train);
}
export function softmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return x.softmax(dim, dtype);
}
export function logSoftmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return x.logSoftmax(dim, dtype);
}

const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;
export type Reduction = keyof typeof REDUCTION;

/** Cross entropy of logits [N, C] (or [N, C, ...]) against class ids, as torch.nn.functional.cross_entropy. */
export function crossEntropy(logits: Tensor, target: Tensor, opts: { reduction?: Reduction; ignoreIndex?: number; labelSmoothing?: number; weight?: Tensor } = {}): Tensor {
  return callT('cross_entropy_loss', logits.h, target.h, opts.weight?.h ?? null, REDUCTION[opts.reduction ?? 'mean'], opts.ignoreIndex ?? -100, opts.labelSmoothing ?? 0);
}

export interface AttentionOptions {
  /** bool (true = attend) or additive float mask, broadcastable to [B, H, Lq, Lk]. */
  mask?: Tensor | null;
  isCausal?: boolean;
  /** Defaults to 1/sqrt(head dim). */
  scale?: number;
}

let nativeSdpa: boolean | undefined;

/** Whether libtorch has its own fused scaled_dot_product_attention kernel (PyTorch 2; not libtorch 1.13). */
export function hasFusedAttention(): boolean {
  return (nativeSdpa ??= hasOp('scaled_dot_product_attention'));
}

/**
 * Scaled dot-product attention over [B, H, L, D] tensors: libtorch's own kernel where it has one
 * (PyTorch 2: flash / memory-efficient / math), and the same computation composed of ops on 1.13.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  if (hasFusedAttention()) {
    return callT('scaled_dot_product_attention', q.h, k.h, v.h, opts.mask?.h ?? null, 0.0, opts.isCausal ?? false, opts.scale ?? null);
  }
  return attentionComposed(q, k, v, opts);
}

let varlenSchema: string | null | undefined;

/** The schema of libtorch's variable-length flash attention (PyTorch 2.x's aten::_flash_attention_forward with
 * cumulative sequence lengths), or null where this libtorch has none (1.13). */
function varlenFlashSchema(): string | null {
  if (varlenSchema === undefined) {
    varlenSchema = hasOp('_flash_attention_forward') ? opSchema('_flash_attention_forward') : null;
    if (varlenSchema && !/cum_seq_q/.test(varlenSchema)) varlenSchema = null;
  }
  return varlenSchema;
}

/**
 * Whether libtorch has variable-length flash attention (aten::_flash_attention_forward taking cumulative sequence
 * lengths; PyTorch 2.x), and with `slidingWindow`, whether it takes a window (window_size_left, PyTorch 2.5+).
 * Its kernel runs on CUDA only, for float16 / bfloat16 (flashAttentionVarlen checks the rest).
 */
export function hasVarlenFlashAttention(opts: { slidingWindow?: boolean } = {}): boolean {
  const s = varlenFlashSchema();
  return s !== null && (!opts.slidingWindow || /window_size_left/.test(s));
}

export interface VarlenAttentionOptions {
  /** Score scale (default 1/sqrt(head dim)). */
  scale?: number;
  /** Causal within each sequence (default true). */
  causal?: boolean;
  /** Sliding window w: a query sees the keys of its sequence at most w - 1 positions back (as causalMask's window). */
  slidingWindow?: number | null;
}

/**
 * Attention over sequences packed end to end without padding (flash attention's variable-length form, with
 * libtorch's backward): q [T, H, D], k and v [T, Hkv, D] (H a multiple of Hkv: grouped-query heads are read
 * in place), the sequences delimited by cuSeqlens (int32 [S + 1]: 0, then each sequence's end in T),
 * maxLength the longest sequence. Returns [T, H, D]. CUDA, float16 / bfloat16 (libtorch's flash kernel).
 */
export function flashAttentionVarlen(q: Tensor, k: Tensor, v: Tensor, cuSeqlens: Tensor, maxLength: number, opts: VarlenAttentionOptions = {}): Tensor {
  const schema = varlenFlashSchema();
  if (!schema) throw new Error('flashAttentionVarlen: this libtorch has no aten::_flash_attention_forward with cumulative sequence lengths (PyTorch 2.x has)');
  const w = opts.slidingWindow ?? null;
  if (w !== null && !/window_size_left/.test(schema)) throw new Error('flashAttentionVarlen: this libtorch\'s flash attention takes no sliding window');
  const scale = opts.scale ?? 1 / Math.sqrt(q.size(-1));
  // (query, key, value, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal, return_debug_mask, scale[, window_size_left, window_size_right])
  const args: unknown[] = [q.h, k.h, v.h, cuSeqlens.h, cuSeqlens.h, maxLength, maxLength, 0.0, opts.causal ?? true, false, scale];
  if (w !== null) args.push(w - 1, 0);
  const outs = callTs('_flash_attention_forward', ...args);
  // (output, softmax_logsumexp, rng state, unused, debug mask): only the output is kept.
  for (const t of outs.slice(1)) t.dispose();
  return outs[0]!;
}

/** softmax(q k^T * scale + mask) v, written out (the reference the fused kernels must match). */
export function attentionComposed(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  return tidy(() => {
    const d = q.size(-1);
    const scale = opts.scale ?? 1 / Math.sqrt(d);
    let scores = q.matmul(k.transpose(-2, -1)).mul(scale);
    if (opts.isCausal) {
      const lq = q.size(-2);
      const lk = k.size(-2);
      const keep = ones([lq, lk], { dtype: 'bool', device: q.device }).tril(lk - lq);
      scores = scores.maskedFill(keep.logicalNot(), -Infinity);
    }
    if (opts.mask) {
      scores = opts.mask.dtype === 'bool' ? scores.maskedFill(opts.mask.logicalNot(), -Infinity) : scores.add(opts.mask);
    }
    return scores.softmax(-1).matmul(v);
  });
}

/** Casts to a dtype by code (internal helper for ops taking ScalarType). */
export const dtypeArg = (d?: DType): number | null => (d ? dtypeCode(d) : null);
