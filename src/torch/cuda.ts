// CUDA devices, when the linked libtorch has them.
import { native, type BuildFeatures } from './native.js';

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
  /**
   * The caching allocator's bytes on a GPU (torch.cuda.memory_stats' allocated_bytes.all / reserved_bytes.all,
   * current and peak since the last resetPeakMemory), or null: no CUDA, or an addon built without the CUDA
   * runtime's headers.
   */
  memoryStats(device = 0): { allocated: number; peakAllocated: number; reserved: number; peakReserved: number } | null {
    return native.cudaMemoryStats(device);
  },
  /** Starts the peaks of memoryStats afresh (torch.cuda.reset_peak_memory_stats). */
  resetPeakMemory(device = 0): void {
    native.cudaResetPeakMemory(device);
  },
};

/** The device index of 'cuda' (0) or 'cuda:N' (N); null for other devices. */
export function cudaIndex(device: string): number | null {
  const m = /^cuda(?::(\d+))?$/.exec(device);
  return m ? Number(m[1] ?? 0) : null;
}

/** The libtorch version the addon was built against, e.g. '1.13.0' or '2.11.0'. */
export function libtorchVersion(): string {
  return native.version();
}
/**
 * The compile-time paths of the addon: CUDA, the caching allocator's statistics, CUDA graphs, the fused CUDA AdamW
 * (PyTorch >= 2.1), c10d's Gloo and NCCL process groups. `npm run check:cuda` requires every one of them.
 */
export function buildFeatures(): BuildFeatures {
  return { ...native.buildFeatures };
}
