// Rotary position embeddings, as transformers computes them: inverse frequencies in float32
// (default, linear and Llama 3 scaling), cos/sin of position * frequency in float32, cast to the
// activations' dtype, and q * cos + rotate_half(q) * sin.
import { arange, cat, keep, noGrad, pow, tidy, where, type DType, type Tensor } from '../torch/index.js';
import type { RopeConfig } from './config.js';

/** The inverse frequencies [headDim / 2] (float32) of a rope configuration. */
export function inverseFrequencies(rope: RopeConfig, headDim: number, device = 'cpu'): Tensor {
  return noGrad(() => tidy(() => {
    // 1 / theta^(arange(0, dim, 2) / dim), with the power taken in float32 as torch does.
    const exps = arange(0, headDim, 2, { device }).float().div(headDim);
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

/** Rotary tables for the given positions: cos and sin [B, L, headDim] in `dtype`. */
export class Rotary {
  readonly invFreq: Tensor;
  constructor(rope: RopeConfig, readonly headDim: number, device = 'cpu') {
    this.invFreq = keep(inverseFrequencies(rope, headDim, device));
  }
  tables(positionIds: Tensor, dtype: DType): { cos: Tensor; sin: Tensor } {
    return noGrad(() => tidy(() => {
      const inv = this.invFreq.device === positionIds.device ? this.invFreq : this.invFreq.to(positionIds.device);
      const freqs = positionIds.float().unsqueeze(-1).mul(inv); // [B, L, D/2]
      const emb = cat([freqs, freqs], -1);
      return { cos: emb.cos().to(dtype), sin: emb.sin().to(dtype) };
    }));
  }
  to(device: string): void {
    if (this.invFreq.device === device) return;
    const moved = keep(this.invFreq.to(device));
    this.invFreq.dispose();
    (this as { invFreq: Tensor }).invFreq = moved;
  }
  dispose(): void {
    this.invFreq.dispose();
  }
}

function rotateHalf(x: Tensor): Tensor {
  const half = x.size(-1) / 2;
  return cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
}

/** x [B, H, L, D] rotated by the tables cos/sin [B, L, D]. */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return tidy(() => x.mul(cos.unsqueeze(1)).add(rotateHalf(x).mul(sin.unsqueeze(1))));
}
