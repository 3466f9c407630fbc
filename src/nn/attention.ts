// Attention for causal LMs: the additive mask transformers' eager attention uses, and attention over
// [B, H, L, D] tensors with grouped-query heads and optional logit soft-capping.
import { arange, flashAttentionVarlen, full, hasFusedAttention, scaledDotProductAttention, tidy, where, type DType, type Tensor } from '../torch/index.js';

/** torch.finfo(dtype).min: the "masked" value of transformers' additive masks. */
export function finfoMin(dtype: DType): number {
  switch (dtype) {
    case 'float16': return -65504;
    case 'bfloat16': return -3.3895313892515355e38;
    case 'float64': return -1.7976931348623157e308;
    default: return -3.4028234663852886e38;
  }
}

/**
 * The additive attention mask [B, 1, Lq, Lk] of transformers' eager attention: 0 where query i (at cache
 * index pastLen + i) may see key j, finfo(dtype).min elsewhere. A key is visible when j <= pastLen + i
 * (causal), attentionMask[b, j] is 1 (not padding) and, with a sliding window w, j > pastLen + i - w.
 * Rows that see nothing (left padding) are all min, which softmax turns into a uniform row, as in
 * transformers.
 */
export function causalMask(attentionMask: Tensor | null, batch: number, lq: number, lk: number, pastLen: number, dtype: DType, device: string, slidingWindow: number | null = null): Tensor {
  return tidy(() => {
    const q = arange(pastLen, pastLen + lq, 1, { device }).unsqueeze(1); // [Lq, 1]
    const k = arange(0, lk, 1, { device }).unsqueeze(0); // [1, Lk]
    let allowed = k.le(q); // [Lq, Lk]
    if (slidingWindow !== null) allowed = allowed.logicalAnd(k.gt(q.sub(slidingWindow)));
    let ok = allowed.unsqueeze(0).unsqueeze(0); // [1, 1, Lq, Lk]
    if (attentionMask) {
      const pad = attentionMask.narrow(1, 0, lk).ne(0).unsqueeze(1).unsqueeze(1); // [B, 1, 1, Lk]
      ok = ok.logicalAnd(pad);
    } else {
      ok = ok.expand(batch, 1, lq, lk);
    }
    return full(ok.shape, finfoMin(dtype), { dtype, device }).maskedFill(ok, 0);
  });
}

/**
 * The additive mask [B, 1, 1, Lk] of one decoding step over a preallocated cache of Lk positions, with the
 * query's cache index given as a device tensor (int64 [1]), so the same operations serve every step (a
 * CUDA graph replays them): key j is visible when j <= index, keyValid[b, j] and, with a sliding window w,
 * j > index - w. The same values as causalMask's row for that query, extended with finfo(dtype).min over
 * the positions not written yet. keyPositions: arange(Lk) (int64), allocated once by the caller.
 */
export function stepMask(keyValid: Tensor, keyPositions: Tensor, index: Tensor, dtype: DType, slidingWindow: number | null = null): Tensor {
  return tidy(() => {
    let allowed = keyPositions.le(index); // [Lk]
    if (slidingWindow !== null) allowed = allowed.logicalAnd(keyPositions.gt(index.sub(slidingWindow)));
    const ok = keyValid.logicalAnd(allowed.unsqueeze(0)).unsqueeze(1).unsqueeze(1); // [B, 1, 1, Lk]
    return full(ok.shape, finfoMin(dtype), { dtype, device: keyValid.device }).maskedFill(ok, 0);
  });
}

/**
 * The additive mask [R, 1, L, L] of sequences packed end to end into rows (training without padding):
 * sequenceIds [R, L] names each position's sequence (a row's unused tail is a sequence of its own); query i
 * may see key j when both belong to the same sequence and j <= i (block-diagonal and causal), and with a
 * sliding window w when j > i - w (within a sequence, as a sequence is contiguous). 0 where allowed,
 * finfo(dtype).min elsewhere; no row is empty (a position sees itself).
 */
export function packedCausalMask(sequenceIds: Tensor, dtype: DType, device: string, slidingWindow: number | null = null): Tensor {
  return tidy(() => {
    const l = sequenceIds.size(1);
    const q = arange(0, l, 1, { device }).unsqueeze(1); // [L, 1]
    const k = arange(0, l, 1, { device }).unsqueeze(0); // [1, L]
    let allowed = k.le(q);
    if (slidingWindow !== null) allowed = allowed.logicalAnd(k.gt(q.sub(slidingWindow)));
    const same = sequenceIds.unsqueeze(2).eq(sequenceIds.unsqueeze(1)); // [R, L, L]
    const ok = same.logicalAnd(allowed.unsqueeze(0)).unsqueeze(1); // [R, 1, L, L]
    return full(ok.shape, finfoMin(dtype), { dtype, device }).maskedFill(ok, 0);
  });
}

/** Packed sequences for variable-length flash attention: int32 cumulative lengths over the R x L flattened positions. */
export interface VarlenLayout {
  /** int32 [S + 1]: 0 and the end of each sequence (a row's unused tail counted as one) in the flattened R x L positions. */
  cuSeqlens: Tensor;
  /** The longest of them. */
  maxLength: number;
  /** This layer's sliding window (null: full causal attention within each sequence). */
  slidingWindow: number | null;
}

/** [B, Hkv, L, D] -> [B, Hkv * nRep, L, D], each key/value head repeated for its group of query heads. */
export function repeatKv(x: Tensor, nRep: number): Tensor {
  if (nRep === 1) return x;
  const [b, h, l, d] = x.shape as [number, number, number, number];
  return x.unsqueeze(2).expand(b, h, nRep, l, d).reshape(b, h * nRep, l, d);
}

export interface AttendOptions {
  /** Additive mask [B, 1, Lq, Lk] (see causalMask); null with `causal` on the fused path: plain causal attention. */
  mask: Tensor | null;
  /** With no mask: causal attention (queries and keys aligned at the start; fused path only). */
  causal?: boolean;
  /** [B, 1, Lq, 1] bool: query rows that see no key (left padding). The fused kernels treat them otherwise than
   * transformers' eager attention, which averages every value uniformly; that average is put back. */
  emptyRows?: Tensor | null;
  scale: number;
  /** Gemma 2: scores -> cap * tanh(scores / cap) before the mask. */
  softcap?: number | null;
  /** Use libtorch's fused scaled_dot_product_attention where it exists (never with soft-capping). */
  fused?: boolean;
  /** Packed sequences (rows of q, k, v [R, H, L, D] hold several sequences end to end): with `fused`, libtorch's
   * variable-length flash attention over them, causal within each sequence, instead of `mask`. */
  varlen?: VarlenLayout | null;
}

/** Whether libtorch has the fused scaled_dot_product_attention (PyTorch 2; not libtorch 1.13). */
export function fusedAttentionAvailable(): boolean {
  return hasFusedAttention();
}

/**
 * softmax(q k^T * scale [soft-capped] + mask) v over q [B, H, Lq, D], k and v [B, Hkv, Lk, D], with the
 * softmax in float32 and cast back (transformers' eager_attention_forward). Returns [B, H, Lq, D].
 */
export function attend(q: Tensor, k: Tensor, v: Tensor, opts: AttendOptions): Tensor {
  return tidy(() => {
    const nRep = q.size(1) / k.size(1);
    if (opts.fused && opts.varlen && !opts.softcap) {
      const [r, h, l, d] = q.shape as [number, number, number, number];
      const flat = (t: Tensor): Tensor => t.transpose(1, 2).reshape(r * l, t.size(1), d);
      const y = flashAttentionVarlen(flat(q), flat(k), flat(v), opts.varlen.cuSeqlens, opts.varlen.maxLength, { scale: opts.scale, slidingWindow: opts.varlen.slidingWindow });
      return y.view(r, l, h, d).transpose(1, 2);
    }
    if (opts.fused && fusedAttentionAvailable() && !opts.softcap) {
      if (nRep > 1 && q.size(2) === 1 && !opts.emptyRows) return sdpaGroupedStep(q, k, v, opts.mask, opts.scale);
      const kr = repeatKv(k, nRep);
      const vr = repeatKv(v, nRep);
      const causal = !opts.mask && (opts.causal ?? false) && q.size(2) > 1;
      const y = scaledDotProductAttention(q, kr, vr, { mask: opts.mask, isCausal: causal, scale: opts.scale });
      return opts.emptyRows ? where(opts.emptyRows, vr.mean(2, true), y) : y;
    }
    if (!opts.mask && opts.causal && q.size(2) > 1) throw new Error('attend: causal attention without a mask needs the fused kernel');
    if (nRep > 1 && q.size(2) === 1) return attendGroupedStep(q, k, v, nRep, opts);
    const kr = repeatKv(k, nRep);
    const vr = repeatKv(v, nRep);
    return attentionProbs(q.matmul(kr.transpose(2, 3)), q.dtype, opts).matmul(vr);
  });
}

/**
 * One decoding step (Lq = 1) of grouped-query attention through scaled_dot_product_attention: the nRep
 * query heads of a key/value head laid along the query axis (as attendGroupedStep), so the kernel reads the
 * cache once instead of a copy repeated nRep times per layer and step; a [B, 1, 1, Lk] mask broadcasts over
 * the group axis. q [B, H, 1, D], k and v [B, Hkv, Lk, D] -> [B, H, 1, D].
 */
export function sdpaGroupedStep(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, scale: number): Tensor {
  return tidy(() => {
    const [b, h, , d] = q.shape as [number, number, number, number];
    return scaledDotProductAttention(q.reshape(b, k.size(1), h / k.size(1), d), k, v, { mask, isCausal: false, scale }).reshape(b, h, 1, d);
  });
}

/** softmax(scores * scale [soft-capped] + mask), the softmax in float32 and cast back to `dtype`. */
function attentionProbs(qk: Tensor, dtype: DType, opts: AttendOptions): Tensor {
  let scores = qk.mul(opts.scale);
  if (opts.softcap) scores = scores.div(opts.softcap).tanh().mul(opts.softcap);
  if (opts.mask) scores = scores.add(opts.mask);
  return dtype === 'float32' ? scores.softmax(-1) : scores.softmax(-1, 'float32').to(dtype);
}

/**
 * One decoding step (Lq = 1) of grouped-query attention without repeating the keys and values: the nRep
 * query heads that share a key/value head are laid along the query axis, q [B, H, 1, D] -> [B, Hkv, nRep, D],
 * so each product reads the cache once instead of copying it nRep times per layer and step. The same
 * dot products and softmax as attend's, and the [B, 1, 1, Lk] mask broadcasts over the group axis.
 */
function attendGroupedStep(q: Tensor, k: Tensor, v: Tensor, nRep: number, opts: AttendOptions): Tensor {
  const [b, h, , d] = q.shape as [number, number, number, number];
  const qk = q.reshape(b, k.size(1), nRep, d).matmul(k.transpose(2, 3)); // [B, Hkv, nRep, Lk]
  return attentionProbs(qk, q.dtype, opts).matmul(v).reshape(b, h, 1, d);
}
