// The native addon (native/*.cc, built by scripts/setup.mjs into build/native*/sppo.node, a folder per libtorch,
// in a checkout or in the installed package node_modules/sppo; $SPPO_NATIVE names another): the only place that
// loads it. The folder follows the same variables as the build (LIBTORCH, LIBTORCH_USE_PYTORCH, PYTHON), by the
// one rule in native/addon_path.cjs. Every other module reaches libtorch through src/torch.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { GroupOptions } from './optim_options.js';
import { defaultNumThreads } from './default_threads.js';

/**
 * An opaque reference to a native object: for tensors a number naming a slot of the addon's tensor
 * table (freed by dispose), for generators and optimizers an External.
 */
export type Handle = { readonly __native: unique symbol };
export type Arg = Handle | number | boolean | string | null | undefined | readonly (Handle | number | boolean | null)[];

/** A parameter group as the addon takes it: the options, the parameters as handles. */
export interface OptimGroupSpec extends GroupOptions {
  params: Handle[];
}
export interface NativeParamState {
  step: number;
  tensors: Record<string, Handle>;
}

export interface DistInitSpec {
  backend: string;
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  timeoutMs: number;
  ifname?: string;
}

export interface Native {
  opFind(name: string, overload: string): number;
  opSchema(id: number): string;
  call(id: number, ...args: Arg[]): unknown;
  callInplace(id: number, ...args: Arg[]): undefined;
  fromBytes(data: ArrayBufferView, dtype: number, shape: readonly number[]): Handle;
  toBytes(t: Handle): ArrayBuffer;
  readInto(t: Handle, path: string, offset: number): void;
  dispose(t: Handle): void;
  liveTensors(): number;
  meta(t: Handle): [number, string, boolean, ...number[]];
  isContiguous(h: Handle): boolean;
  shape(t: Handle): number[];
  item(t: Handle): number | boolean;
  sameStorage(a: Handle, b: Handle): boolean;
  setRequiresGrad(t: Handle, on: boolean): void;
  grad(t: Handle): Handle | null;
  setGrad(t: Handle, g: Handle | null): void;
  isLeaf(t: Handle): boolean;
  backward(outputs: Handle[], grads: (Handle | null)[] | null, retainGraph: boolean, createGraph: boolean): void;
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  manualSeed(seed: number): void;
  generatorNew(seed: number, device?: string): Handle;
  generatorSeed(g: Handle, seed: number): void;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSynchronize(): void;
  cudaMemoryStats(device: number): { allocated: number; peakAllocated: number; reserved: number; peakReserved: number } | null;
  cudaResetPeakMemory(device: number): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  blasInfo(): BlasInfo;
  version(): string;
  builtWithCuda: boolean;
  buildFeatures: BuildFeatures;
  optimNew(kind: string, groups: OptimGroupSpec[]): Handle;
  optimStep(opt: Handle): void;
  optimFree(opt: Handle): void;
  liveOptimizers(): number;
  profilerStart(): void;
  profilerStop(): Buffer;
  optimZeroGrad(opt: Handle): void;
  optimSetLr(opt: Handle, group: number, lr: number): void;
  optimGetLr(opt: Handle, group: number): number;
  optimGetState(opt: Handle): (NativeParamState | null)[];
  optimSetState(opt: Handle, state: (NativeParamState | null)[]): void;
  clipGradNorm(params: Handle[], maxNorm: number, normType: number): number;
  distAvailable(): { backends: string[]; reason: string };
  // Present only where the addon was built with c10d (distributed.cc).
  distInit?(spec: DistInitSpec): Promise<Handle>;
  distAllreduce?(g: Handle, t: Handle | Handle[], op: string, timeoutMs: number): Promise<void>;
  distBroadcast?(g: Handle, t: Handle | Handle[], root: number, timeoutMs: number): Promise<void>;
  distAllgather?(g: Handle, t: Handle, timeoutMs: number): Promise<Handle[]>;
  distBarrier?(g: Handle, timeoutMs: number): Promise<void>;
  distAllreduceGrads?(g: Handle, params: Handle[], bucketBytes: number, timeoutMs: number): Promise<void>;
  distDestroy?(g: Handle): void;
  distGradSyncNew?(g: Handle, params: Handle[], bucketBytes: number, timeoutMs: number): Handle;
  distGradSyncArm?(s: Handle): void;
  distGradSyncFinish?(s: Handle): Promise<number>;
  distGradSyncFree?(s: Handle): void;
}

/** Which compile-time paths the addon was built with (each decided by a native source's preprocessor checks). */
/** Which BLAS libtorch's matrix products run on (native/threads.cc): OpenBLAS with its threading, or another. */
export type BlasInfo =
  | { library: 'openblas'; threading: 'openmp' | 'pthreads' | 'sequential'; threads: number; config?: string; path?: string }
  | { library: 'other' };

export interface BuildFeatures {
  cuda: boolean;
  cudaMemoryStats: boolean;
  cudaGraphs: boolean;
  fusedAdamwCuda: boolean;
  gloo: boolean;
  nccl: boolean;
}

function load(): Native {
  const require = createRequire(import.meta.url);
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/src/torch -> project root
  const root = join(here, '..', '..', '..');
  const rule = require(join(root, 'native', 'addon_path.cjs')) as { addonPath(root: string): { file: string; why: string } };
  const chosen = rule.addonPath(root);
  const path = process.env.SPPO_NATIVE ?? chosen.file;
  if (!existsSync(path)) {
    // A checkout has its tsconfig.json; the installed package (node_modules/sppo) builds with `npx sppo setup`.
    const how = existsSync(join(root, 'tsconfig.json')) ? `run 'npm run build' in ${root}` : "run 'npx sppo setup' in your project (or set SPPO_NATIVE to a built sppo.node)";
    const which = process.env.SPPO_NATIVE ? 'SPPO_NATIVE' : chosen.why;
    throw new Error(`the sppo native addon is not built (${path} is missing; chosen by ${which}): ${how} with the same environment`);
  }
  const addon = require(path) as Native;
  // One thread per physical core unless OMP_NUM_THREADS is set (src/torch/default_threads.ts, docs/threads.md); set
  // in either case, so that OpenBLAS's threads follow the rule of native/threads.cc from the start.
  addon.setNumThreads(defaultNumThreads() ?? addon.getNumThreads());
  return addon;
}

export const native: Native = load();
