// Random numbers: libtorch's generators, seeded from TypeScript. manualSeed() seeds the global ones
// (CPU and CUDA); a Generator gives a stream of its own, for reproducible sampling.
import { native, type Handle } from './native.js';
import { defaultDevice } from './device.js';

export class Generator {
  /** @internal */ readonly h: Handle;
  readonly device: string;
  /** A generator for sampling on `device` (default: the default device). */
  constructor(seed: number, device = defaultDevice()) {
    this.h = native.generatorNew(seed, device);
    this.device = device;
  }
  manualSeed(seed: number): this {
    native.generatorSeed(this.h, seed);
    return this;
  }
}

/** Seeds libtorch's global generators (CPU and every CUDA device). */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
