// CPU threads: ATen's intra-op pool, and OpenBLAS's where libtorch's BLAS is OpenBLAS (native/threads.cc).
// sppo starts with one thread per physical core unless OMP_NUM_THREADS is set (src/torch/default_threads.ts);
// docs/threads.md says why, and what each BLAS does.
import { native, type BlasInfo } from './native.js';

export { physicalCores } from './default_threads.js';
export type { BlasInfo } from './native.js';

/**
 * Sets the number of CPU threads libtorch uses for intra-op parallelism, and OpenBLAS's to match (unless
 * OPENBLAS_NUM_THREADS is set): the same count for an OpenMP OpenBLAS, which shares ATen's pool, and 1 for a
 * pthreads OpenBLAS, whose own pool would compete with ATen's for the cores.
 */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  native.setNumThreads(n);
}

/** The number of CPU threads libtorch uses for intra-op parallelism. */
export function getNumThreads(): number {
  return native.getNumThreads();
}

/** The BLAS under libtorch's matrix products: OpenBLAS with its threading layer and thread count, or 'other' (MKL...). */
export function blasInfo(): BlasInfo {
  return native.blasInfo();
}
