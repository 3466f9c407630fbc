// What every stage of the SPPO loop (src/sppo/loop.ts) shares: the run's configuration and directory, where
// progress and timings go, the kill hook of the resume tests, the model placement; the artifact lines the
// stages write and read back (each file's format); the prompts as the stages see them; the seed streams.
import { appendFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { cuda, cudaIndex, type DType, type ProcessGroup } from '../../torch/index.js';
import { loadModel } from '../../models/registry.js';
import type { CausalLMBase } from '../../models/causal_lm.js';
import type { SppoConfig } from '../config.js';
import type { RunDir } from '../run_dir.js';
import type { RunTracker } from '../tracking.js';

/** One generated response as stored in generations.jsonl and eval-responses.jsonl. */
export interface StoredResponse {
  text: string;
  token_ids: number[];
  /** Sum of the untempered per-token log-probs under the generating model (float32 values, summed in float64). */
  logprob: number;
  finish_reason: string;
}

export interface GenerationLine {
  index: number;
  id?: string | number;
  prompt_text: string;
  prompt_ids: number[];
  responses: StoredResponse[];
  /** Set (and responses empty) when the prompt was not used. */
  skipped?: string;
}

export interface PreferenceLine {
  index: number;
  id?: string | number;
  matrix: number[][];
  win_rates: number[];
}

export interface PairLine {
  index: number;
  id?: string | number;
  chosen: number;
  rejected: number;
  chosen_win_rate: number;
  rejected_win_rate: number;
  chosen_over_rejected: number;
  degenerate: boolean;
  degenerate_reason?: string;
  prompt_ids: number[];
  chosen_ids: number[];
  rejected_ids: number[];
  chosen_ref_logprob?: number;
  rejected_ref_logprob?: number;
}

/** A prompt as the stages use it: the model's text and token ids, and the judge's plain text. */
export interface Item {
  index: number;
  id?: string | number;
  judgePrompt: string;
  text: string;
  ids: number[];
}

export interface SamplingConfig {
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  minNewTokens: number;
  stop: string[];
  batchSize: number;
  /** generation.graph: how the decoding steps run (src/generate/generate.ts). */
  graph?: 'auto' | 'on' | 'off';
}

// Stream tags of the seeds (mixSeed(seed, iteration, TAG, chunk)).
export const SEED_GENERATE = 1;
export const SEED_PAIRS = 2;
export const SEED_TRAIN = 3;
export const SEED_EVAL = 0xe7a1;

export class Progress {
  private bar: cliProgress.SingleBar | undefined;
  constructor(private readonly enabled: boolean) {}
  start(label: string, total: number, done: number): void {
    if (!this.enabled) return;
    this.bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {value}/{total} | {eta_formatted} left`, stream: process.stderr, hideCursor: false }, cliProgress.Presets.shades_classic);
    this.bar.start(total, done);
  }
  update(v: number): void {
    this.bar?.update(v);
  }
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

export type KillHook = (t: number, stage: string, step: number) => void;

/** SPPO_TEST_KILL_AT=ITER:STAGE:STEP: the process SIGKILLs itself right after that step (the resume tests);
 * with SPPO_TEST_KILL_RANK=R, only the rank R of a data-parallel run does. */
export function killHook(): KillHook {
  const spec = process.env.SPPO_TEST_KILL_AT;
  if (!spec) return () => {};
  const onlyRank = process.env.SPPO_TEST_KILL_RANK;
  if (onlyRank !== undefined && onlyRank !== (process.env.RANK ?? '0')) return () => {};
  const m = /^(\d+):([a-z-]+):(\d+)$/.exec(spec.trim());
  if (!m) throw new Error(`SPPO_TEST_KILL_AT must be ITER:STAGE:STEP, got '${spec}'`);
  const [it, st, sp] = [Number(m[1]), m[2]!, Number(m[3])];
  return (t, stage, step) => {
    if (t === it && stage === st && step === sp) process.kill(process.pid, 'SIGKILL');
  };
}

/** What every stage gets. */
export interface StageContext {
  cfg: SppoConfig;
  rd: RunDir;
  log: (s: string) => void;
  progress: Progress;
  kill: KillHook;
  dtype: DType;
  device: string;
  /** Data parallel (`sppo run --nproc N`, torchrun): this rank's group. Chunks of generation and judging are
   * shared out (chunk c to rank c mod worldSize), training is DDP, rank 0 writes the stages' files. */
  dist?: { pg: ProcessGroup; rank: number; world: number; zero1?: boolean };
  /** TensorBoard event files (`report`), rank 0 only: synced after each stage, fed each training step. */
  tracker?: RunTracker;
}

/** Whether this process writes the run's files: rank 0, or the only process. */
export function isLeader(ctx: StageContext): boolean {
  return !ctx.dist || ctx.dist.rank === 0;
}

/** Whether chunk c of a stage is this rank's to compute. */
export function ownsChunk(ctx: StageContext, c: number): boolean {
  return !ctx.dist || c % ctx.dist.world === ctx.dist.rank;
}

/** Waits for every rank (a c10d barrier); nothing in a single process. */
export async function sync(ctx: StageContext): Promise<void> {
  if (ctx.dist) await ctx.dist.pg.barrier();
}

/**
 * Appends a stage's wall time (and extras) to timings.jsonl: a log, not an artifact. On a CUDA device, also the
 * peak bytes the caching allocator held since the previous line (the stage's peak, as stages run one after
 * the other): peak_cuda_allocated_bytes (tensors) and peak_cuda_reserved_bytes (with the allocator's cache),
 * null when the addon was built without the CUDA runtime's headers; the peaks then start afresh.
 */
export function timing(ctx: StageContext, t: number, stage: string, t0: number, extra: Record<string, unknown> = {}): void {
  if (!isLeader(ctx)) return;
  const line: Record<string, unknown> = { iteration: t, stage, seconds: (performance.now() - t0) / 1000, ...extra };
  const gpu = cudaIndex(ctx.device);
  if (gpu !== null) {
    const s = cuda.memoryStats(gpu);
    line.peak_cuda_allocated_bytes = s?.peakAllocated ?? null;
    line.peak_cuda_reserved_bytes = s?.peakReserved ?? null;
    cuda.resetPeakMemory(gpu);
  }
  appendFileSync(ctx.rd.path(undefined, 'timings.jsonl'), JSON.stringify(line) + '\n');
  ctx.tracker?.sync();
}

/** Starts the CUDA peaks afresh (at the start of a run: the first stage's peak is its own). */
export function resetPeakMemory(device: string): void {
  const gpu = cudaIndex(device);
  if (gpu !== null) cuda.resetPeakMemory(gpu);
}

/** Loads a model folder; a failure names the stage and the folder. */
export function loadStageModel(dir: string, what: string, dtype: DType, device: string): CausalLMBase {
  try {
    return loadModel(dir, { dtype, device });
  } catch (e) {
    throw new Error(`${what}: cannot load the model ${dir}: ${(e as Error).message}`);
  }
}

export function idOf(r: { id?: string | number }): { id?: string | number } {
  return r.id !== undefined ? { id: r.id } : {};
}

export function promptLabel(index: number, id: string | number | undefined): string {
  return id !== undefined ? `prompt #${index} (id ${JSON.stringify(id)})` : `prompt #${index}`;
}
