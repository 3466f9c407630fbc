// The bootstrap of the benchmarks (Arena-Hard's interval, AlpacaEval's LC standard error) and numpy's percentile.
//   bootstrap(n, { rounds, seed }, statistic): `rounds` resamples of n items with replacement, the n indices of
//   each drawn in order from createRng(seed, n) (rng.int(n)); statistic(indices) per resample, a resample whose
//   statistic is undefined (one it cannot compute) left out. n = 0: no resample.
import { createRng } from '../util/rng.js';

export interface BootstrapOptions {
  rounds: number;
  /** The generator is createRng(seed, n). */
  seed: number;
}

/** The statistic of each bootstrap resample (see the file's head); resamples it gives undefined for are left out. */
export function bootstrap(n: number, opts: BootstrapOptions, statistic: (indices: readonly number[]) => number | undefined): number[] {
  const out: number[] = [];
  if (n === 0) return out;
  const rng = createRng(opts.seed, n);
  for (let r = 0; r < opts.rounds; r++) {
    const indices = Array.from({ length: n }, () => rng.int(n));
    const v = statistic(indices);
    if (v !== undefined) out.push(v);
  }
  return out;
}

/** numpy.percentile with linear interpolation. */
export function percentile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = ((s.length - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}
