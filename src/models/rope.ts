// Rotary position embeddings, as transformers computes them: inverse frequencies in float32
// (default, linear, Llama 3 and LongRoPE scaling; partial rotary), cos/sin of position * frequency in float32, cast to
// the activations' dtype, and q * cos + rotate_half(q) * sin over the rotating dimensions.
import { arange, cat, keep, noGrad, pow, tensor, tidy, where, type DType, type Tensor } from '../torch/index.js';
import type { RopeConfig } from './config.js';

/** The dimensions of a head that rotate: all, or the first partial_rotary_factor of them (as transformers: int(d * f)). */
export function rotaryDim(rope: RopeConfig, headDim: number): number {
  return Math.floor(headDim * (rope.partialRotaryFactor ?? 1));
}

/**
 * The inverse frequencies [rotaryDim / 2] (float32) of a rope configuration; for longrope, those of sequences up to
 * its original length (short_factor), or, `long`, beyond it (long_factor).
 */
export function inverseFrequencies(rope: RopeConfig, headDim: number, device = 'cpu', long = false): Tensor {
  return noGrad(() => tidy(() => {
    const dim = rotaryDim(rope, headDim);
    // 1 / theta^(arange(0, dim, 2) / dim), with the power taken in float32 as torch does.
    const exps = arange(0, dim, 2, { device }).float().div(dim);
    if (rope.type === 'longrope') {
      const ext = (long ? rope.longFactor : rope.shortFactor)!;
      if (ext.length !== exps.size(0)) throw new Error(`rope ${long ? 'long' : 'short'}_factor has ${ext.length} values; the rotary dimension ${dim} needs ${exps.size(0)}`);
      return tensor(Float32Array.from(ext), { device }).mul(pow(rope.theta, exps)).reciprocal();
    }
    let inv = pow(rope.theta, exps).reciprocal();
    if (rope.type === 'linear') inv = inv.div(rope.factor ?? 1);
    if (rope.type === 'llama3') {
      const factor = rope.factor ?? 8;
      const low = rope.lowFreqFactor ?? 1;
      const high = rope.highFreqFactor ?? 4;
      const oldLen = rope.originalMaxPositions ?? 8192;
      const lowWavelen = oldLen / low;
      const highWavelen = oldLen / high;
      const wavelen = inv.reciprocal().mul(2 * Math.PI);
      // Long wavelengths are scaled down by the factor, short ones kept, those between interpolated.
      let scaled = where(wavelen.gt(lowWavelen), inv.div(factor), inv);
      const smooth = wavelen.reciprocal().mul(oldLen).sub(low).div(high - low);
      const smoothed = smooth.rsub(1).mul(scaled).div(factor).add(smooth.mul(scaled));
      const medium = wavelen.lt(highWavelen).logicalNot().logicalAnd(wavelen.gt(lowWavelen).logicalNot());
      scaled = where(medium, smoothed, scaled);
      inv = scaled;
    }
    return inv;
  }));
}

/**
 * Rotary tables for the given positions: cos and sin [B, L, rotaryDim] in `dtype`. longrope (transformers' dynamic
 * update) takes the long factors for a call whose positions reach past the original length (max position + 1 >
 * originalMaxPositions), the short ones otherwise, and scales cos and sin by its attention factor.
 */
export class Rotary {
  readonly invFreq: Tensor;
  readonly invFreqLong: Tensor | null;
  readonly scale: number;
  readonly originalMax: number;
  constructor(rope: RopeConfig, readonly headDim: number, device = 'cpu') {
    this.invFreq = keep(inverseFrequencies(rope, headDim, device));
    this.invFreqLong = rope.type === 'longrope' ? keep(inverseFrequencies(rope, headDim, device, true)) : null;
    this.originalMax = rope.originalMaxPositions ?? Infinity;
    const factor = rope.factor ?? 1;
    this.scale = rope.type !== 'longrope' ? 1 : rope.attentionFactor ?? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(this.originalMax)));
  }
  tables(positionIds: Tensor, dtype: DType): { cos: Tensor; sin: Tensor } {
    return noGrad(() => tidy(() => {
      const on = (t: Tensor): Tensor => (t.device === positionIds.device ? t : t.to(positionIds.device));
      // longrope's choice as a tensor (no device sync, so it can run inside a captured CUDA graph).
      const inv = this.invFreqLong === null ? on(this.invFreq) : where(positionIds.max().add(1).gt(this.originalMax), on(this.invFreqLong), on(this.invFreq));
      const freqs = positionIds.float().unsqueeze(-1).mul(inv); // [B, L, D/2]
      const emb = cat([freqs, freqs], -1);
      if (this.scale === 1) return { cos: emb.cos().to(dtype), sin: emb.sin().to(dtype) };
      return { cos: emb.cos().mul(this.scale).to(dtype), sin: emb.sin().mul(this.scale).to(dtype) };
    }));
  }
  to(device: string): void {
    const self = this as { invFreq: Tensor; invFreqLong: Tensor | null };
    for (const k of ['invFreq', 'invFreqLong'] as const) {
      const t = self[k];
      if (!t || t.device === device) continue;
      const moved = keep(t.to(device));
      t.dispose();
      self[k] = moved;
    }
  }
  dispose(): void {
    this.invFreq.dispose();
    this.invFreqLong?.dispose();
  }
}

function rotateHalf(x: Tensor): Tensor {
  const half = x.size(-1) / 2;
  return cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
}

/** x [B, H, L, D] rotated by the tables cos/sin [B, L, R]: its first R dimensions (all, unless the rope is partial). */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return tidy(() => {
    const r = cos.size(-1);
    const d = x.size(-1);
    const rot = r === d ? x : x.narrow(-1, 0, r);
    const out = rot.mul(cos.unsqueeze(1)).add(rotateHalf(rot).mul(sin.unsqueeze(1)));
    return r === d ? out : cat([out, x.narrow(-1, r, d - r)], -1);
  });
}
