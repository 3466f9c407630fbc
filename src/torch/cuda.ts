// CUDA devices, when the linked libtorch has them.
import { native } from './native.js';

export const cuda = {
  /** Whether the linked libtorch has CUDA and a GPU is visible. */
  isAvailable(): boolean {
    return native.cudaIsAvailable();
  },
  deviceCount(): number {
    return native.cudaDeviceCount();
  },
  /** Waits for all work queued on the current GPU (for timing). */
  synchronize(): void {
    native.cudaSynchronize();
  },
};

/** The number of CPU threads libtorch uses for intra-op parallelism. */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
/** The libtorch version the addon was built against, e.g. '1.13.0' or '2.11.0'. */
export function libtorchVersion(): string {
  return native.version();
}
