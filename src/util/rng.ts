// A tiny, seedable, deterministic pseudo-random number generator for the pure-math parts of the
// pipeline (tie-breaking in pair selection). Not cryptographic, not for sampling from a model.
//
// Generator: mulberry32 (Tommy Ettinger, public domain): a 32-bit state advanced by the odd
// constant 0x6D2B79F5 (a Weyl sequence, period 2^32), followed by an xorshift-multiply output mix.
// Good enough statistical quality for tie-breaking; identical results on every platform because it
// only uses 32-bit integer arithmetic (Math.imul, >>>).
//
// Seeds: `mixSeed(seed, promptIndex, ...)` folds any number of safe integers (each read as 64-bit
// two's complement, low and high 32-bit halves) into one 32-bit state with MurmurHash3's fmix32
// finaliser, so nearby seeds / prompt indices give unrelated streams.

const GOLDEN = 0x9e3779b9;

/** MurmurHash3's 32-bit finaliser: a bijective avalanche mix of a uint32. */
export function fmix32(h: number): number {
  h >>>= 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Combine safe integers (e.g. a user seed and a prompt index) into one uint32 seed.
 * Deterministic; order matters (mixSeed(1, 2) !== mixSeed(2, 1) in general).
 */
export function mixSeed(...parts: number[]): number {
  let h = 0x2545f491;
  for (const p of parts) {
    if (!Number.isSafeInteger(p)) throw new RangeError(`rng: seed parts must be safe integers, got ${p}`);
    const lo = p >>> 0; // ToUint32: low 32 bits (two's complement for negatives)
    const hi = Math.floor(p / 4294967296) >>> 0; // high 32 bits
    h = fmix32((h ^ lo) + GOLDEN);
    h = fmix32((h ^ hi) + GOLDEN);
  }
  return h;
}

export interface Rng {
  /** Next uint32 in [0, 2^32). */
  nextUint32(): number;
  /** Next double in [0, 1), with 32 bits of randomness. */
  next(): number;
  /** Integer in [0, n), n a positive integer <= 2^32 (floor(next() * n); bias <= n / 2^32). */
  int(n: number): number;
}

/** mulberry32 generator seeded with a uint32 (other numbers are reduced with ToUint32). */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  const nextUint32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const next = (): number => nextUint32() / 4294967296;
  const int = (n: number): number => {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) throw new RangeError(`rng.int: n must be an integer in [1, 2^32], got ${n}`);
    return Math.floor(next() * n);
  };
  return { nextUint32, next, int };
}

/** Convenience: a generator for stream `parts` (e.g. createRng(seed, promptIndex)). */
export function createRng(...parts: number[]): Rng {
  return mulberry32(mixSeed(...parts));
}

/**
 * A seeded Fisher-Yates shuffle of 0..n-1: from the last position down, position i swaps with rng.int(i + 1).
 * The one shuffle of the project (data splits, epoch orders, the demo's tasks): the same rng stream gives the
 * same permutation.
 */
export function permutation(n: number, rng: Pick<Rng, 'int'>): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx;
}

/**
 * The training order of the trainers (SPPO's and SFT's): each epoch a permutation of the n examples (seeded by
 * `seed` and the epoch), cut into optimizer steps of `perStep` indices (the last one of an epoch may be shorter).
 */
export function* epochSteps(n: number, perStep: number, epochs: number, seed: number): Generator<{ epoch: number; ids: number[]; lastOfEpoch: boolean }> {
  const stepsPerEpoch = Math.ceil(n / perStep);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const perm = permutation(n, createRng(seed, 0xe90c, epoch));
    for (let k = 0; k < stepsPerEpoch; k++) yield { epoch, ids: perm.slice(k * perStep, (k + 1) * perStep), lastOfEpoch: k === stepsPerEpoch - 1 };
  }
}
