// Data parallel on libtorch's c10d (the engine under PyTorch's DDP): a process group over a TCPStore that
// rank 0 serves at MASTER_ADDR:MASTER_PORT, Gloo on CPUs and NCCL on CUDA, set up from the variables that
// torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; Slurm's SLURM_PROCID, SLURM_NTASKS
// and SLURM_LOCALID stand in for the first three). Every collective returns a Promise: it is enqueued on the
// group's own threads and waited for on libuv's thread pool, so Node's event loop keeps running; the
// tensors it works on must not be used until it settles. A collective that fails or outlives its timeout
// rejects with an error naming this rank, the collective, and the ranks of this host that are gone; the
// group is unusable afterwards (as a torch.distributed group after an error): stop the process.
import { native, type Handle } from './native.js';
import { Tensor, handles } from './tensor.js';
import { cuda } from './cuda.js';

export type Backend = 'gloo' | 'nccl';
export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';

/** This process's place in a distributed run, from the environment a launcher sets. */
export interface DistEnv {
  rank: number;
  worldSize: number;
  /** Rank among the processes of this node (picks the GPU). */
  localRank: number;
  masterAddr: string;
  masterPort: number;
}

/** Which c10d backends this build of the addon has, and why none when none. */
export function distributedAvailable(): { available: boolean; backends: Backend[]; reason: string } {
  const a = native.distAvailable();
  return { available: a.backends.length > 0, backends: a.backends as Backend[], reason: a.reason };
}

function intVar(env: NodeJS.ProcessEnv, names: string[], min: number): number | undefined {
  for (const name of names) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`environment variable ${name}=${JSON.stringify(v)}: expected an integer >= ${min}`);
    return n;
  }
  return undefined;
}

/**
 * The launcher's variables (torchrun: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; under Slurm's
 * srun, SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID when RANK / WORLD_SIZE / LOCAL_RANK are unset), or
 * undefined when no world size is set (a single process). A world size without the rest is an error naming
 * the missing variable.
 */
export function distEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | undefined {
  const worldSize = intVar(env, ['WORLD_SIZE', 'SLURM_NTASKS'], 1);
  if (worldSize === undefined) return undefined;
  const rank = intVar(env, ['RANK', 'SLURM_PROCID'], 0);
  if (rank === undefined) throw new Error(`WORLD_SIZE=${worldSize} is set but RANK is not (set both, as torchrun does)`);
  if (rank >= worldSize) throw new Error(`RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const localRank = intVar(env, ['LOCAL_RANK', 'SLURM_LOCALID'], 0) ?? rank;
  const masterAddr = env.MASTER_ADDR ?? (worldSize === 1 ? '127.0.0.1' : undefined);
  if (!masterAddr) throw new Error(`WORLD_SIZE=${worldSize}: MASTER_ADDR is not set (the host of rank 0, which serves the TCPStore)`);
  const masterPort = intVar(env, ['MASTER_PORT'], 1);
  if (masterPort === undefined) throw new Error(`WORLD_SIZE=${worldSize}: MASTER_PORT is not set (rank 0's TCPStore port, e.g. 29500)`);
  if (masterPort > 65535) throw new Error(`MASTER_PORT=${masterPort} is not a TCP port`);
  return { rank, worldSize, localRank, masterAddr, masterPort };
}

export interface InitOptions {
  /** Default: nccl where CUDA is available and the addon has NCCL, else gloo. */
  backend?: Backend;
  /** Default: from the environment (distEnv()). */
  env?: DistEnv;
  /** Limit on the start (all ranks reaching the store) and on each collective; default 30 minutes, as torch's. */
  timeoutMs?: number;
  /** Gloo: the network interface to use (default: $GLOO_SOCKET_IFNAME, else 127.0.0.1 for a loopback
   * MASTER_ADDR, else the address this host's name resolves to). */
  ifname?: string;
}

/** The start's and every collective's time limit: 30 minutes, as torch's (always passed to the addon, which has no default). */
export const DEFAULT_TIMEOUT_MS = 30 * 60 * 1000;
/** The gradient bucket size of allreduceGradients and gradientSync: 25 MiB, torch DDP's bucket_cap_mb. */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

/** The addon's call, or the addon's reason why this build has no c10d (native/distributed.cc writes it). */
function required<T>(f: T | undefined): T {
  if (!f) throw new Error(distributedAvailable().reason || 'c10d: this build of the addon lacks the call');
  return f;
}

function bucketBytesOf(opts: { bucketBytes?: number }): number {
  const bytes = opts.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  if (!(bytes > 0)) throw new Error(`bucketBytes must be positive, got ${bytes}`);
  return bytes;
}

/** A c10d process group. Collectives must be called in the same order on every rank. */
export class ProcessGroup {
  readonly #g: Handle;
  readonly backend: Backend;
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly timeoutMs: number;
  #destroyed = false;

  private constructor(g: Handle, backend: Backend, env: DistEnv, timeoutMs: number) {
    this.#g = g;
    this.backend = backend;
    this.rank = env.rank;
    this.worldSize = env.worldSize;
    this.localRank = env.localRank;
    this.timeoutMs = timeoutMs;
  }

  /** Joins the group: resolves once every rank has reached rank 0's TCPStore and the backend is connected. */
  static async init(opts: InitOptions = {}): Promise<ProcessGroup> {
    const env = opts.env ?? distEnv();
    if (!env) throw new Error('no distributed environment: WORLD_SIZE is not set (launch with `sppo run --nproc N`, torchrun or srun)');
    const avail = distributedAvailable();
    if (!avail.available) throw new Error(avail.reason);
    const backend = opts.backend ?? (cuda.isAvailable() && avail.backends.includes('nccl') ? 'nccl' : 'gloo');
    if (!avail.backends.includes(backend)) {
      throw new Error(backend === 'nccl'
        ? `c10d nccl is not available in this build (it needs a CUDA libtorch with NCCL; this one has ${avail.backends.join(', ')})`
        : `c10d ${backend} is not available in this build (${avail.backends.join(', ')})`);
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(timeoutMs > 0)) throw new Error(`timeoutMs must be positive, got ${timeoutMs}`);
    const ifname = opts.ifname ?? process.env.GLOO_SOCKET_IFNAME;
    const g = await required(native.distInit)({ backend, ...env, timeoutMs, ...(ifname ? { ifname } : {}) });
    return new ProcessGroup(g, backend, env, timeoutMs);
  }

  #live(): Handle {
    if (this.#destroyed) throw new Error('the process group was destroyed');
    return this.#g;
  }

  /** Reduces `t` (or each tensor of the list) across the ranks, in place. 'avg' is the sum divided by the world size. */
  allreduce(t: Tensor | Tensor[], op: ReduceOp = 'sum', timeoutMs = this.timeoutMs): Promise<void> {
    return required(native.distAllreduce)(this.#live(), Array.isArray(t) ? handles(t) : t.h, op, timeoutMs);
  }

  /** Copies rank `root`'s `t` into every rank's `t` (same shape and dtype everywhere), in place. */
  broadcast(t: Tensor | Tensor[], root = 0, timeoutMs = this.timeoutMs): Promise<void> {
    return required(native.distBroadcast)(this.#live(), Array.isArray(t) ? handles(t) : t.h, root, timeoutMs);
  }

  /** Every rank's `t` (same shape and dtype everywhere), in rank order; the caller disposes them. */
  async allgather(t: Tensor, timeoutMs = this.timeoutMs): Promise<Tensor[]> {
    const hs = await required(native.distAllgather)(this.#live(), t.h, timeoutMs);
    return hs.map((h) => new Tensor(h));
  }

  /** Resolves when every rank has reached it. */
  barrier(timeoutMs = this.timeoutMs): Promise<void> {
    return required(native.distBarrier)(this.#live(), timeoutMs);
  }

  /**
   * DDP's gradient exchange, after the backward pass: sums the parameters' gradients across the ranks, in
   * buckets of at most `bucketBytes` (default DEFAULT_BUCKET_BYTES), last parameter first, all buckets in
   * flight together. A parameter without a gradient counts as zeros and has one afterwards on every rank.
   * Sums, not means: scale each rank's loss by 1 / (global batch size).
   */
  allreduceGradients(params: Tensor[], opts: { bucketBytes?: number; timeoutMs?: number } = {}): Promise<void> {
    return required(native.distAllreduceGrads)(this.#live(), handles(params), bucketBytesOf(opts), opts.timeoutMs ?? this.timeoutMs);
  }

  /**
   * DDP's gradient exchange overlapped with the backward pass (as torch DDP's Reducer): hooks on the parameters'
   * gradient accumulators start each bucket's allreduce as soon as the backward pass has its gradients. Per step:
   * `arm()` before the last micro-batch's backward pass (earlier micro-batches accumulate locally, as DDP's
   * no_sync), then `await finish()`. Needs one backward pass per armed micro-batch (not gradient checkpointing's
   * recomputation, which accumulates a parameter twice: use allreduceGradients after it).
   */
  gradientSync(params: Tensor[], opts: { bucketBytes?: number; timeoutMs?: number } = {}): GradientSync {
    return new GradientSync(required(native.distGradSyncNew)(this.#live(), handles(params), bucketBytesOf(opts), opts.timeoutMs ?? this.timeoutMs));
  }

  /** Frees the group (call after a final barrier; a group broken by a failure is left to the process's exit). */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    required(native.distDestroy)(this.#g);
  }
}

/** ProcessGroup.init: joins the group the launcher's environment describes. */
export function initProcessGroup(opts: InitOptions = {}): Promise<ProcessGroup> {
  return ProcessGroup.init(opts);
}

/** Gradients summed across the ranks during the backward pass (ProcessGroup.gradientSync). */
export class GradientSync implements Disposable {
  readonly #h: Handle;
  #disposed = false;
  constructor(h: Handle) {
    this.#h = h;
  }
  /** The next backward pass starts the buckets' allreduces as their gradients are ready. */
  arm(): void {
    required(native.distGradSyncArm)(this.#h);
  }
  /** Starts the buckets not started yet (all of them without an armed backward pass), waits, and leaves the sums in
   * the gradients; resolves with the number of buckets the backward pass had started (the overlap). */
  finish(): Promise<number> {
    return required(native.distGradSyncFinish)(this.#h);
  }
  /** Removes the hooks. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    required(native.distGradSyncFree)(this.#h);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
