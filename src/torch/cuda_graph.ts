// CUDA graphs: the GPU work a callback queues, captured once and replayed with one launch (no per-kernel
// host work, no Python/JS between kernels). A thin layer over libtorch's at::cuda::CUDAGraph
// (native/cuda_graph.cc), as torch.cuda.CUDAGraph / torch.cuda.graph expose it.
//
//   const g = new CudaGraph('cuda');
//   g.capture(() => step.run(), { generators: [gen] });   // warm-up runs, then capture on a side stream
//   for (...) g.replay();
//   g.dispose();
//
// The callback must queue device work only: no read back to the host (item(), toTypedArray()), no tensor
// made from host data, no shape that depends on values. Tensors it reads and writes must outlive the graph
// (allocate them before capture); tensors it allocates come from the graph's private memory pool. A
// sampling Generator used inside must be passed in `generators` (registered with the graph, PyTorch >= 2.4):
// every replay then draws from its current state and advances it, as the eager calls would.
import { native, type Handle } from './native.js';
import { cudaIndex } from './cuda.js';
import type { Generator } from './random.js';

interface GraphNative {
  cudaGraphSupport(): string | null;
  cudaGraphGenerators(): boolean;
  cudaGraphNew?(device: number): Handle;
  cudaGraphCapture?(g: Handle, fn: () => void, generators: Handle[], warmup: number): void;
  cudaGraphReplay?(g: Handle): void;
  cudaGraphReset?(g: Handle, dispose: boolean): void;
}
const n = native as unknown as GraphNative;

let captures = 0;

export class CudaGraph implements Disposable {
  #h: Handle | null;
  #captured = false;
  readonly device: string;

  /** Why CUDA graphs cannot be used here (no CUDA libtorch, no GPU), or null when they can. */
  static unavailableReason(): string | null {
    return typeof n.cudaGraphSupport === 'function' ? n.cudaGraphSupport() : 'the native addon predates CUDA graphs (rebuild it)';
  }
  static isAvailable(): boolean {
    return CudaGraph.unavailableReason() === null;
  }
  /** Whether captures may use a sampling Generator (libtorch >= 2.4 registers it with the graph). */
  static supportsGenerators(): boolean {
    return CudaGraph.isAvailable() && n.cudaGraphGenerators();
  }
  /** Captures made by this process so far (every CudaGraph): for tests that a graph is captured once and replayed. */
  static get captureCount(): number {
    return captures;
  }

  constructor(device = 'cuda') {
    const why = CudaGraph.unavailableReason();
    if (why !== null) throw new Error(`CUDA graphs are unavailable: ${why}`);
    const idx = cudaIndex(device);
    if (idx === null) throw new Error(`CudaGraph: '${device}' is not a CUDA device`);
    this.device = device;
    this.#h = n.cudaGraphNew!(idx);
  }

  get captured(): boolean {
    return this.#captured;
  }

  #handle(): Handle {
    if (this.#h === null) throw new Error('CudaGraph used after dispose()');
    return this.#h;
  }

  /**
   * Runs fn `warmup` times (default 1) on a side stream, then captures one more call of it. A throw inside fn
   * (e.g. an operation that reads back to the host) ends the capture, leaves nothing captured, and is rethrown.
   */
  capture(fn: () => void, opts: { generators?: readonly Generator[]; warmup?: number } = {}): void {
    const h = this.#handle();
    n.cudaGraphCapture!(h, fn, (opts.generators ?? []).map((g) => g.h), opts.warmup ?? 1);
    this.#captured = true;
    captures++;
  }

  /** Launches the captured work on the current stream (asynchronously, like any kernel). */
  replay(): void {
    if (!this.#captured) throw new Error('CudaGraph.replay: nothing captured');
    n.cudaGraphReplay!(this.#handle());
  }

  /** Frees the captured graph and its memory pool; the object can capture again. */
  reset(): void {
    n.cudaGraphReset!(this.#handle(), false);
    this.#captured = false;
  }

  dispose(): void {
    if (this.#h === null) return;
    n.cudaGraphReset!(this.#h, true);
    this.#h = null;
    this.#captured = false;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
