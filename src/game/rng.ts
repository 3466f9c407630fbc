// A small seeded PRNG so that every run of the game lab is reproducible from --seed.
//
// xoshiro128** 1.0 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c): 128 bits of state,
// period 2^128 - 1, 32-bit outputs. The state is filled from the seed by splitmix32 (the 32-bit variant
// of Steele, Lea & Flood's SplitMix), as the authors recommend, so that nearby seeds give unrelated
// streams and the state is never all zero.

/** splitmix32: one step of the seeding generator; returns [output, next state]. */
export function splitmix32(state: number): [number, number] {
  const s = (state + 0x9e3779b9) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  z = (z ^ (z >>> 16)) >>> 0;
  return [z, s];
}

/** FNV-1a of a string, to derive per-game streams from one seed. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export class Rng {
  private s = new Uint32Array(4);

  /** `seed` is any number (its low 32 bits and, for big seeds, the next 21 bits are used) or a string. */
  constructor(seed: number | string) {
    let st = typeof seed === 'string' ? hashString(seed) : (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
    for (let i = 0; i < 4; i++) {
      const [z, next] = splitmix32(st);
      this.s[i] = z;
      st = next;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.float() < p;
  }

  /** A standard normal draw (Box-Muller). */
  normal(): number {
    const u = 1 - this.float();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** An index drawn from the distribution `probs` (non-negative, summing to about 1). */
  categorical(probs: ArrayLike<number>): number {
    const u = this.float();
    let acc = 0;
    for (let i = 0; i < probs.length; i++) {
      acc += probs[i]!;
      if (u < acc) return i;
    }
    // Rounding left u above the total: return the last index with positive mass.
    for (let i = probs.length - 1; i >= 0; i--) if (probs[i]! > 0) return i;
    return probs.length - 1;
  }
}
