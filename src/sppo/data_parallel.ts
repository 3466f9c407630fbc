// The trainer's data parallelism in one object (as nanoGPT's three DDP touches and torch DDP's Reducer):
// the share of this rank, the gradient exchange (armed for the last micro-batch's backward pass, or after
// it), the sums of scalars across the ranks, ZeRO-1's owned parameters, the leader and the barrier. Without
// a process group every method is the one-process case: all items are this rank's, sums are the values,
// the gradients stay as they are, and this process is the leader.
import { tensor, type GradientSync, type ProcessGroup, type Tensor } from '../torch/index.js';

export interface DataParallelOptions {
  /** Gradient bucket size of the allreduce (default: src/torch/distributed.ts DEFAULT_BUCKET_BYTES). */
  bucketBytes?: number;
  /** Exchange the gradients after the backward passes instead of during the last one (gradient checkpointing's
   * recomputation accumulates a parameter more than once). */
  afterBackward?: boolean;
  /** ZeRO stage 1: each parameter is stepped by the rank that owns it (ownerRanks) and broadcast from it. */
  zero1?: boolean;
}

/** ZeRO-1's partition: the rank of each parameter, the largest parameters first, each to the least-loaded rank (ties: the lowest rank). */
export function ownerRanks(sizes: number[], world: number): number[] {
  const load = new Array<number>(world).fill(0);
  const owner = new Array<number>(sizes.length).fill(0);
  const order = sizes.map((_, i) => i).sort((a, b) => sizes[b]! - sizes[a]! || a - b);
  for (const i of order) {
    let r = 0;
    for (let k = 1; k < world; k++) if (load[k]! < load[r]!) r = k;
    owner[i] = r;
    load[r]! += sizes[i]!;
  }
  return owner;
}

export class DataParallel implements Disposable {
  readonly rank: number;
  readonly world: number;
  readonly #pg: ProcessGroup | undefined;
  readonly #device: string;
  #params: Tensor[] = [];
  #opts: DataParallelOptions = {};
  #sync: GradientSync | undefined;
  #owner: number[] | undefined;

  /** `device`: where the scalar sums are reduced (NCCL reduces CUDA tensors only: the model's device). */
  constructor(pg: ProcessGroup | undefined, device: string) {
    this.#pg = pg;
    this.#device = device;
    this.rank = pg?.rank ?? 0;
    this.world = pg?.worldSize ?? 1;
  }

  /** Rank 0 writes the files. */
  get isLeader(): boolean {
    return this.rank === 0;
  }

  /** ' on rank R' with a group, '' without (for messages). */
  get where(): string {
    return this.#pg ? ` on rank ${this.rank}` : '';
  }

  /** This rank's share of `items`: item j goes to rank j mod worldSize (all of them in one process). */
  shard<T>(items: readonly T[]): T[] {
    return this.#pg ? items.filter((_, j) => j % this.world === this.rank) : [...items];
  }

  /** Rank 0's values of the tensors in every rank (as torch DDP at the start). */
  async broadcast(params: Tensor[]): Promise<void> {
    if (this.#pg) await Promise.all(params.map((p) => this.#pg!.broadcast(p, 0)));
  }

  /**
   * Takes charge of the trained parameters (which must require gradients): hooks on their gradient accumulators
   * unless `afterBackward`, and ZeRO-1's partition. Returns the parameters this rank steps (all of them without zero1).
   */
  attach(params: Tensor[], opts: DataParallelOptions = {}): Tensor[] {
    this.#params = params;
    this.#opts = opts;
    const pg = this.#pg;
    if (!pg) return params;
    if (!opts.afterBackward) this.#sync = pg.gradientSync(params, { bucketBytes: opts.bucketBytes });
    if (opts.zero1) this.#owner = ownerRanks(params.map((p) => p.numel), this.world);
    const owner = this.#owner;
    return owner ? params.filter((_, i) => owner[i] === this.rank) : params;
  }

  /** Before a micro-batch's backward pass: the last one of the step starts the buckets' allreduces from its hooks
   * (the earlier ones accumulate locally, as DDP's no_sync). */
  beforeBackward(last: boolean): void {
    if (last) this.#sync?.arm();
  }

  /** The gradients summed across the ranks (every rank calls it every step, one that diverged too). */
  async reduceGradients(): Promise<void> {
    const pg = this.#pg;
    if (!pg) return;
    if (this.#sync) await this.#sync.finish();
    else await pg.allreduceGradients(this.#params, { bucketBytes: this.#opts.bucketBytes });
  }

  /** Each value summed over the ranks (float64; the values themselves in one process). */
  async sum(values: number[]): Promise<number[]> {
    const pg = this.#pg;
    if (!pg) return values;
    const t = tensor(Float64Array.from(values), { device: this.#device });
    try {
      await pg.allreduce(t, 'sum');
      return Array.from(t.toTypedArray() as Float64Array);
    } finally {
      t.dispose();
    }
  }

  /**
   * Every rank's rows into every rank: `mine` are this rank's rows of shard(0..n-1) (`width` numbers each); the
   * result has all n. A sum in which each entry has one non-zero term (exact).
   */
  async gather(mine: number[][], n: number, width: number): Promise<number[][]> {
    if (!this.#pg || n === 0) return mine;
    const all = new Array<number>(width * n).fill(0);
    for (let j = this.rank, r = 0; j < n; j += this.world, r++) for (let c = 0; c < width; c++) all[width * j + c] = mine[r]![c]!;
    const got = await this.sum(all);
    return Array.from({ length: n }, (_, j) => got.slice(width * j, width * (j + 1)));
  }

  /** ZeRO-1, after the step: each parameter's new value from its owner. */
  async afterStep(): Promise<void> {
    const pg = this.#pg;
    const owner = this.#owner;
    if (pg && owner) await Promise.all(this.#params.map((p, i) => pg.broadcast(p, owner[i]!)));
  }

  /** The other ranks wait for the leader (e.g. until a checkpoint is written). */
  async barrier(): Promise<void> {
    if (this.#pg) await this.#pg.barrier();
  }

  /** Removes the gradient hooks. */
  [Symbol.dispose](): void {
    this.#sync?.dispose();
  }
}
