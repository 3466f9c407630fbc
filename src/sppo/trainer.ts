// The SPPO trainer: one iteration's policy update pi_t -> pi_{t+1} from (prompt, chosen, rejected) pairs.
//
// For every pair, a = log pi(y|x) - log pi_t(y|x) summed over the response tokens (prompt and padding
// masked out) for the chosen and the rejected response, and a loss of src/sppo/losses.ts. The reference
// pi_t is frozen: its log-probs come with the examples (from generation) or are computed once, up front,
// under noGrad, by a frozen copy (then freed). Mini-batches with gradient accumulation, RMSprop (the
// official runs) or AdamW, a warmup + linear (or cosine / constant) schedule, gradient clipping, epochs and
// a held-out split. Models load in bfloat16 on CUDA (no autocast: the log-probs and the loss are float32).
// A NaN or infinite loss (or gradient norm, or parameter) stops training with TrainingDivergedError naming
// the step; the checkpoint folder keeps the last good model.
//
// With `lora`, fresh LoRA adapters (src/nn/lora.ts) are added to the policy and only they train (gradients
// and optimizer state of the adapters' size); the reference pi_t is the same model with the adapters off (no
// second copy of the weights). Checkpoints are the merged model (an HF folder) and, with `adapterDir`, the
// adapter in PEFT's layout. The result keeps the adapters on the model (TrainResult.lora).
//
// Data parallel (opts.processGroup, a c10d group of src/torch/distributed.ts, as torch DDP): every rank holds
// the whole model (rank 0's parameters are broadcast at the start) and takes its share of each step's global
// batch (batchSize * gradAccum pairs, the same with any number of ranks: pair j of the step goes to rank
// j mod worldSize, in micro-batches of at most batchSize); each rank's loss is scaled by 1 / (global batch),
// and the gradients are summed across the ranks in buckets during the last micro-batch's backward pass (as
// torch DDP: hooks on the gradient accumulators start a bucket's allreduce as soon as its gradients are
// ready, ProcessGroup.gradientSync; with gradient checkpointing, whose recomputation accumulates a parameter
// more than once, after the backward passes instead), so that every rank clips and steps the same sum as
// one process would. The reference log-probs and the held-out loss are sharded the same way;
// rank 0 writes the metrics and the checkpoints. With zero1 (ZeRO stage 1) the optimizer state is sharded: each
// parameter belongs to one rank (greedy by size), whose optimizer alone keeps its state and updates it, and
// broadcasts the updated values to the others (the same update, bit for bit, as every rank stepping all of them).
import { appendFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  AdamW, clipGradNorm, CheckpointTape, cuda, keep, LRScheduler, noGrad, RMSprop, tensor, tidy,
  type DType, type Optimizer, type ProcessGroup, type ScheduleKind, type Tensor,
} from '../torch/index.js';
import type { CausalLMBase } from '../models/causal_lm.js';
import { createModel, loadModel, saveModel, sourceDir } from '../models/registry.js';
import { saveAdapter } from '../models/peft.js';
import { Lora, type LoraOptions } from '../nn/lora.js';
import { isLossType, LOSS_TYPES, preferenceLoss, type LossType } from './losses.js';
import { packRows, packSequences, responseLogprobs, truncatePair, type PromptResponse } from './logprobs.js';
import { createRng, permutation } from '../util/rng.js';

export type { LossType } from './losses.js';

export interface TrainExample {
  promptIds: number[];
  chosenIds: number[];
  rejectedIds: number[];
  /** P^(y_w > pi_t | x) (sppo). */
  chosenWinRate: number;
  /** P^(y_l > pi_t | x) (sppo). */
  rejectedWinRate: number;
  /** P(y_w > y_l | x) (sppo_single). */
  chosenOverRejected: number;
  /**
   * Reference (pi_t) log-probs of the responses summed over exactly these token ids, e.g. from generation.
   * Ignored (recomputed by the reference model) when truncation shortens the example.
   */
  chosenRefLogprob?: number;
  rejectedRefLogprob?: number;
}

export interface StepMetrics {
  /** Optimizer step, from 1. */
  step: number;
  /** Epoch, from 0 (fractional progress not included). */
  epoch: number;
  /** Mean loss over the step's examples. */
  loss: number;
  /** Mean log-ratio of the chosen / rejected responses. */
  a_w: number;
  a_l: number;
  /** Mean of a_w - a_l. */
  margin: number;
  /** Fraction of the step's examples with a_w > a_l. */
  pair_accuracy: number;
  /** Gradient norm before clipping. */
  grad_norm: number;
  /** Learning rate used by this step. */
  lr: number;
  /** Non-padding tokens through the policy per second of the step. */
  tokens_per_s: number;
  /** Mean loss over the held-out split, at the last step of each epoch. */
  eval_loss?: number;
}

export interface TrainOptions {
  /** The policy pi_t to train (updated in place) or its model folder. */
  policy: CausalLMBase | string;
  /** Frozen reference (default: a frozen copy of the policy as given, loaded from the same folder or cloned). */
  reference?: CausalLMBase | string;
  examples: TrainExample[];
  loss: LossType;
  /** beta (SPPO: eta = 1/beta; official 1e-3). */
  beta: number;
  /** cDPO label smoothing (dpo only). */
  labelSmoothing?: number;
  /** ipo only: TRL's form, log-ratios averaged over each response's tokens (see losses.ts). */
  ipoLengthNormalized?: boolean;
  lr: number;
  epochs: number;
  /** Pairs per micro-batch (each runs 2 x batchSize sequences through the policy). */
  batchSize: number;
  /** Micro-batches per optimizer step. */
  gradAccum: number;
  /** RMSprop (the official SPPO runs') or AdamW. */
  optimizer: 'rmsprop' | 'adamw';
  /** Default 0 (transformers' TrainingArguments default). */
  weightDecay?: number;
  /** Fraction of the optimizer steps with a linear warmup (official 0.1). */
  warmupRatio: number;
  /** Default 'linear'. */
  schedule?: ScheduleKind;
  /** Prompt + response tokens kept per sequence. */
  maxLength: number;
  /** Prompt tokens kept (from the right) when a sequence is too long. */
  maxPromptLength: number;
  /** Gradient clipping threshold (0 or Infinity: no clipping). */
  maxGradNorm: number;
  /** Default: bfloat16 on CUDA, float32 on the CPU (used when loading from a folder). */
  dtype?: 'float32' | 'bfloat16';
  /** Default: cuda when available. */
  device?: string;
  seed: number;
  /** Fraction of the examples held out for eval_loss (default 0). */
  evalFraction?: number;
  /** JSONL file, one line of StepMetrics per optimizer step (appended). */
  metricsPath?: string;
  /** Folder for the model checkpoint (an HF folder, replaced atomically at each save). */
  checkpointDir?: string;
  /** Save a checkpoint every N optimizer steps (default: at the end of each epoch). */
  checkpointEvery?: number;
  onStep?: (m: StepMetrics) => void;
  /** Sees the parameters with their accumulated gradients of each step, before clipping (for tests). */
  onGradients?: (named: [string, Tensor][]) => void;
  /** Recompute the logits chunks in the backward pass instead of keeping them. */
  gradientCheckpointing?: boolean;
  /**
   * With bfloat16 / float16 parameters (the default on CUDA): the optimizer updates float32 master copies of the
   * trained weights (its state float32 too) and the half-precision weights are their rounding, as mixed-precision
   * training keeps them (DeepSpeed's bf16, torch AMP); default true. false: the optimizer steps the half-precision
   * weights themselves (no extra memory), where an update under half a weight's spacing (2^-9 of it in bfloat16) is
   * lost: at lr 5e-7 most of them. LoRA's adapters are float32 already.
   */
  masterWeights?: boolean;
  /** Token positions per logits chunk (tokenLogprobs). */
  chunkTokens?: number;
  /**
   * Sequences packed end to end into rows without padding (logprobs.ts packRows: block-diagonal causal attention,
   * libtorch's variable-length flash attention on CUDA with PyTorch 2) instead of right-padded batches; the same
   * log-probs up to float32 rounding. Default true (measured faster on the CPU: 1.25-2.03x a step at SPPO's mixed
   * lengths, README); false: right-padded batches.
   */
  packing?: boolean;
  /** Train LoRA adapters (fresh ones, seeded with `seed` unless lora.seed is given) instead of every weight. */
  lora?: LoraOptions;
  /** With lora: also save the adapter (PEFT's layout) here at each checkpoint. */
  adapterDir?: string;
  /** With lora: base_model_name_or_path of the saved adapter (default: the policy's folder). */
  adapterBaseModel?: string;
  /** Data parallel over this c10d group (see the top of this file); every rank calls train with the same options. */
  processGroup?: ProcessGroup;
  /** Gradient bucket size of the data-parallel allreduce (default 25 MiB, torch DDP's). */
  bucketBytes?: number;
  /** With processGroup: shard the optimizer state across the ranks (ZeRO stage 1). */
  zero1?: boolean;
}

export interface TrainResult {
  metrics: StepMetrics[];
  /** The trained policy (the one passed in, or the one loaded from the folder). */
  model: CausalLMBase;
  /** With lora: the trained adapters, still on the model and unmerged (merge with lora.mergeAndDetach(), or free with lora.dispose()). */
  lora?: Lora;
  /** Held-out loss before training and after the last epoch (when evalFraction > 0). */
  evalLossBefore?: number;
  evalLoss?: number;
  trainSize: number;
  evalSize: number;
}

/** Training stopped on a non-finite loss, gradient norm or parameter. */
export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
  constructor(message: string, readonly step: number, readonly checkpointDir?: string, readonly lastGoodStep?: number) {
    super(message);
  }
}

/** An example after truncation, with its reference log-probs. */
interface Prepared {
  promptIds: number[];
  chosenIds: number[];
  rejectedIds: number[];
  chosenWinRate: number;
  rejectedWinRate: number;
  chosenOverRejected: number;
  refChosen: number;
  refRejected: number;
}

function fail(msg: string): never {
  throw new RangeError(`train: ${msg}`);
}

function checkOptions(o: TrainOptions): void {
  if (!isLossType(o.loss)) fail(`unknown loss '${o.loss}' (known: ${LOSS_TYPES.join(', ')})`);
  if (!(o.beta > 0)) fail(`beta must be > 0, got ${o.beta}`);
  if (!(o.lr >= 0) || !Number.isFinite(o.lr)) fail(`lr must be a finite number >= 0, got ${o.lr}`);
  for (const k of ['epochs', 'batchSize', 'gradAccum'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) fail(`${k} must be an integer >= 1, got ${o[k]}`);
  }
  if (!['rmsprop', 'adamw'].includes(o.optimizer)) fail(`optimizer must be rmsprop or adamw, got '${o.optimizer}'`);
  if (!(o.warmupRatio >= 0 && o.warmupRatio <= 1)) fail(`warmupRatio must be in [0, 1], got ${o.warmupRatio}`);
  if (!(o.maxGradNorm >= 0)) fail(`maxGradNorm must be >= 0, got ${o.maxGradNorm}`);
  const ef = o.evalFraction ?? 0;
  if (!(ef >= 0 && ef < 1)) fail(`evalFraction must be in [0, 1), got ${ef}`);
  if (o.checkpointEvery !== undefined && !(Number.isInteger(o.checkpointEvery) && o.checkpointEvery >= 1)) fail(`checkpointEvery must be an integer >= 1, got ${o.checkpointEvery}`);
  if (o.examples.length === 0) fail('no examples');
  if (o.zero1 && !o.processGroup) fail('zero1 shards the optimizer state across the ranks of a processGroup: give one');
  o.examples.forEach((e, i) => {
    for (const k of ['chosenWinRate', 'rejectedWinRate', 'chosenOverRejected'] as const) {
      const v = e[k];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) fail(`example ${i}: ${k} must be a probability in [0, 1], got ${v}`);
    }
    if (e.chosenIds.length === 0 || e.rejectedIds.length === 0) fail(`example ${i}: empty response`);
    if (e.promptIds.length === 0) fail(`example ${i}: empty prompt (the first response token would have no context)`);
  });
}

/** A frozen copy of a model's weights (same dtype and device). */
export function frozenCopy(model: CausalLMBase): CausalLMBase {
  const copy = createModel(model.config);
  const tensors = noGrad(() => new Map(model.namedParameters().map(([n, t]) => [n, t.detach().clone()] as [string, Tensor])));
  copy.setParameters(tensors);
  copy.to({ dtype: model.dtype, device: model.device });
  copy.eval();
  return copy;
}

/** Default dtype and device: bfloat16 on CUDA, float32 on the CPU. */
export function defaultPlacement(dtype?: DType, device?: string): { dtype: DType; device: string } {
  const dev = device ?? (cuda.isAvailable() ? 'cuda' : 'cpu');
  return { device: dev, dtype: dtype ?? (dev.startsWith('cuda') ? 'bfloat16' : 'float32') };
}

function padIdOf(model: CausalLMBase): number {
  return model.config.padTokenId ?? model.config.eosTokenIds[0] ?? 0;
}

/**
 * Summed response log-probs of pairs under a model, without gradients: [chosen, rejected] per pair, in
 * batches of `batchSize` pairs, packed into rows (default) or right-padded. Sequences are exactly what the
 * trainer scores (no truncation here).
 */
export function pairLogprobs(model: CausalLMBase, pairs: readonly { promptIds: readonly number[]; chosenIds: readonly number[]; rejectedIds: readonly number[] }[], batchSize = 8, chunkTokens?: number, packing = true): [number, number][] {
  const out: [number, number][] = [];
  const pad = padIdOf(model);
  for (let s = 0; s < pairs.length; s += batchSize) {
    const part = pairs.slice(s, s + batchSize);
    const seqs: PromptResponse[] = [
      ...part.map((p) => ({ promptIds: p.promptIds, responseIds: p.chosenIds })),
      ...part.map((p) => ({ promptIds: p.promptIds, responseIds: p.rejectedIds })),
    ];
    const vals = tidy(() => noGrad(() => {
      const batch = packing ? packRows(seqs, pad, { device: model.device }) : packSequences(seqs, pad, model.device);
      return Array.from(responseLogprobs(model, batch, { chunkTokens }).cpu().toTypedArray() as Float32Array);
    }));
    part.forEach((_, i) => out.push([vals[i]!, vals[part.length + i]!]));
  }
  return out;
}

/** Sequence log-probs the trainer uses for one example, after its truncation (for checks). */
export function exampleLogprobs(model: CausalLMBase, ex: Pick<TrainExample, 'promptIds' | 'chosenIds' | 'rejectedIds'>, maxLength: number, maxPromptLength: number): { chosen: number; rejected: number } {
  const t = truncatePair(ex.promptIds, ex.chosenIds, ex.rejectedIds, maxLength, maxPromptLength);
  const [[chosen, rejected]] = pairLogprobs(model, [t], 1) as [[number, number]];
  return { chosen, rejected };
}

/** Saves a model folder atomically: written beside, then renamed over the old one. With lora, the merged model. */
export function saveCheckpoint(model: CausalLMBase, dir: string, state: Record<string, unknown>, tokenizerDir?: string, lora?: Lora): void {
  const out = resolve(dir);
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  saveModel(model, tmp, { tokenizerDir, replace: lora ? (name, t) => lora.mergedWeight(name, t) : undefined });
  writeFileSync(`${tmp}/trainer_state.json`, JSON.stringify(state, null, 2) + '\n');
  const old = `${out}.old-${process.pid}`;
  if (existsSync(out)) renameSync(out, old);
  renameSync(tmp, out);
  rmSync(old, { recursive: true, force: true });
}

/** Saves an adapter folder (PEFT's layout) atomically. */
export function saveAdapterAtomic(lora: Lora, dir: string, baseModel: string | null): void {
  const out = resolve(dir);
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  saveAdapter(lora, tmp, { baseModel });
  const old = `${out}.old-${process.pid}`;
  if (existsSync(out)) renameSync(out, old);
  renameSync(tmp, out);
  rmSync(old, { recursive: true, force: true });
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

/** Each value summed over the ranks of `pg` (float64). */
async function sumAcross(pg: ProcessGroup, values: number[], device: string): Promise<number[]> {
  // On the model's device: NCCL reduces CUDA tensors only.
  const t = tensor(Float64Array.from(values), { device });
  try {
    await pg.allreduce(t, 'sum');
    return Array.from(t.toTypedArray() as Float64Array);
  } finally {
    t.dispose();
  }
}

function allFinite(params: Tensor[]): boolean {
  return tidy(() => params.every((p) => p.isfinite().all().item() !== 0));
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  checkOptions(opts);
  const place = defaultPlacement(opts.dtype, opts.device);
  const policyDir = typeof opts.policy === 'string' ? opts.policy : undefined;
  const policy = typeof opts.policy === 'string' ? loadModel(opts.policy, place) : opts.policy;
  const tokenizerDir = policyDir ?? sourceDir(policy);
  const pad = padIdOf(policy);
  const device = policy.device;
  const packing = opts.packing ?? true;

  // Truncate; reference log-probs from the examples when they still describe the same tokens.
  const prepared: Prepared[] = [];
  const missing: number[] = [];
  opts.examples.forEach((e, i) => {
    const t = truncatePair(e.promptIds, e.chosenIds, e.rejectedIds, opts.maxLength, opts.maxPromptLength);
    const intact = t.promptIds.length === e.promptIds.length && t.chosenIds.length === e.chosenIds.length && t.rejectedIds.length === e.rejectedIds.length;
    const given = intact && Number.isFinite(e.chosenRefLogprob) && Number.isFinite(e.rejectedRefLogprob);
    prepared.push({
      ...t,
      chosenWinRate: e.chosenWinRate,
      rejectedWinRate: e.rejectedWinRate,
      chosenOverRejected: e.chosenOverRejected,
      refChosen: given ? e.chosenRefLogprob! : NaN,
      refRejected: given ? e.rejectedRefLogprob! : NaN,
    });
    if (!given) missing.push(i);
  });
  const pg = opts.processGroup;
  const world = pg?.worldSize ?? 1;
  const rank = pg?.rank ?? 0;
  // This rank's share of the missing reference log-probs (all of them in one process).
  const mine = missing.filter((_, j) => j % world === rank);
  // With LoRA, the reference is the policy itself with its adapters off: no copy is loaded.
  const lora = opts.lora ? Lora.attach(policy, { ...opts.lora, seed: opts.lora.seed ?? opts.seed }) : undefined;
  if (mine.length && lora && opts.reference === undefined) {
    let lps: [number, number][];
    try {
      lps = lora.disabled(() => pairLogprobs(policy, mine.map((i) => prepared[i]!), opts.batchSize, opts.chunkTokens, packing));
    } catch (e) {
      lora.dispose();
      throw e;
    }
    mine.forEach((i, j) => {
      prepared[i]!.refChosen = lps[j]![0];
      prepared[i]!.refRejected = lps[j]![1];
    });
  } else if (mine.length) {
    let ref: CausalLMBase;
    let owned = true;
    if (opts.reference && typeof opts.reference !== 'string') {
      ref = opts.reference;
      owned = false;
    } else if (typeof opts.reference === 'string') ref = loadModel(opts.reference, { dtype: policy.dtype, device });
    else if (policyDir) ref = loadModel(policyDir, { dtype: policy.dtype, device });
    else ref = frozenCopy(policy);
    try {
      const lps = pairLogprobs(ref, mine.map((i) => prepared[i]!), opts.batchSize, opts.chunkTokens, packing);
      mine.forEach((i, j) => {
        prepared[i]!.refChosen = lps[j]![0];
        prepared[i]!.refRejected = lps[j]![1];
      });
    } finally {
      if (owned) ref.dispose();
    }
  }
  if (pg && missing.length) {
    // Every rank's share into every rank: a sum in which each entry has one non-zero term (exact).
    const all = new Float64Array(2 * missing.length);
    missing.forEach((i, j) => {
      if (j % world !== rank) return;
      all[2 * j] = prepared[i]!.refChosen;
      all[2 * j + 1] = prepared[i]!.refRejected;
    });
    const got = await sumAcross(pg, Array.from(all), device);
    missing.forEach((i, j) => {
      prepared[i]!.refChosen = got[2 * j]!;
      prepared[i]!.refRejected = got[2 * j + 1]!;
    });
  }

  // Held-out split.
  const order = permutation(prepared.length, createRng(opts.seed, 0x5e1));
  const nEval = (opts.evalFraction ?? 0) > 0 ? Math.min(prepared.length - 1, Math.max(1, Math.round(prepared.length * opts.evalFraction!))) : 0;
  const evalSet = order.slice(0, nEval).sort((a, b) => a - b).map((i) => prepared[i]!);
  const trainSet = order.slice(nEval).sort((a, b) => a - b).map((i) => prepared[i]!);
  if (trainSet.length === 0) fail('no training examples left after the held-out split');

  const group = opts.batchSize * opts.gradAccum;
  const stepsPerEpoch = Math.ceil(trainSet.length / group);
  const totalSteps = stepsPerEpoch * opts.epochs;

  const params = lora ? lora.parameters() : policy.parameters();
  // Every rank starts from rank 0's parameters (as torch DDP): all ranks' collectives are enqueued in the same order.
  if (pg) await Promise.all(params.map((p) => pg.broadcast(p, 0)));
  policy.train(true);
  if (lora) policy.requiresGrad_(false);
  for (const p of params) p.requiresGrad_(true);
  // Data parallel: the gradients are exchanged during the last micro-batch's backward pass (not with checkpointing).
  using gsync = pg && !opts.gradientCheckpointing ? pg.gradientSync(params, { bucketBytes: opts.bucketBytes }) : undefined;
  // ZeRO-1: the rank that owns each parameter (the largest first, each to the least-loaded rank); else all are this rank's.
  const owner = pg && opts.zero1 ? ownerRanks(params.map((p) => p.numel), world) : undefined;
  const stepped = owner ? params.filter((_, i) => owner[i] === rank) : params;
  // Mixed precision (opts.masterWeights): float32 master copies of the half-precision weights this rank steps.
  const half = (p: Tensor): boolean => p.dtype === 'bfloat16' || p.dtype === 'float16';
  const masters = (opts.masterWeights ?? true) && stepped.some(half) ? stepped.map((p) => (half(p) ? keep(p.detach().float()) : p)) : undefined;
  using _masters = { [Symbol.dispose]: () => masters?.forEach((m, i) => m !== stepped[i] && m.dispose()) };
  // Disposed (native state freed) when train returns or throws.
  using optim: Optimizer = opts.optimizer === 'adamw'
    ? AdamW(masters ?? stepped, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0, betas: [0.9, 0.999], eps: 1e-8 })
    : RMSprop(masters ?? stepped, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0, alpha: 0.99, eps: 1e-8 });
  // Every parameter's gradient dropped (the optimizer's own only covers its parameters under ZeRO-1, or the masters).
  const zeroGrad = (): void => {
    optim.zeroGrad();
    if (owner || masters) for (const p of params) p.zeroGrad();
  };
  const sched = new LRScheduler(optim, { kind: opts.schedule ?? 'linear', totalSteps, warmupRatio: opts.warmupRatio });
  zeroGrad();

  const lossOf = (batch: Prepared[], withGrad: boolean, scale: number): { loss: number; aw: number; al: number; correct: number; tokens: number; bad: boolean } => tidy(() => {
    const seqs: PromptResponse[] = [
      ...batch.map((p) => ({ promptIds: p.promptIds, responseIds: p.chosenIds })),
      ...batch.map((p) => ({ promptIds: p.promptIds, responseIds: p.rejectedIds })),
    ];
    const packed = packing ? packRows(seqs, pad, { device }) : packSequences(seqs, pad, device);
    const tape = withGrad && opts.gradientCheckpointing ? new CheckpointTape() : undefined;
    lora?.nextPass();
    try {
      const lp = withGrad ? responseLogprobs(policy, packed, { tape, chunkTokens: opts.chunkTokens }) : noGrad(() => responseLogprobs(policy, packed, { chunkTokens: opts.chunkTokens }));
      const b = batch.length;
      const col = (f: (p: Prepared) => number): Tensor => tensor(Float32Array.from(batch.map(f)), { device });
      const out = preferenceLoss(opts.loss, {
        policyChosen: lp.narrow(0, 0, b),
        policyRejected: lp.narrow(0, b, b),
        refChosen: col((p) => p.refChosen),
        refRejected: col((p) => p.refRejected),
        chosenWinRate: col((p) => p.chosenWinRate),
        rejectedWinRate: col((p) => p.rejectedWinRate),
        chosenOverRejected: col((p) => p.chosenOverRejected),
        ...(opts.ipoLengthNormalized ? { chosenLength: col((p) => p.chosenIds.length), rejectedLength: col((p) => p.rejectedIds.length) } : {}),
      }, { beta: opts.beta, labelSmoothing: opts.labelSmoothing, lengthNormalized: opts.ipoLengthNormalized });
      const lossSum = out.losses.sum();
      const loss = lossSum.item();
      const aw = Array.from(out.chosenLogratio.cpu().toTypedArray() as Float32Array);
      const al = Array.from(out.rejectedLogratio.cpu().toTypedArray() as Float32Array);
      const bad = !Number.isFinite(loss);
      if (withGrad && !bad) {
        const scaled = lossSum.mul(scale);
        if (tape) tape.backward(scaled);
        else scaled.backward();
      }
      return {
        loss, bad,
        aw: aw.reduce((a, x) => a + x, 0),
        al: al.reduce((a, x) => a + x, 0),
        correct: aw.reduce((a, x, i) => a + (x > al[i]! ? 1 : 0), 0),
        tokens: packed.tokens,
      };
    } finally {
      tape?.dispose();
    }
  });

  // The held-out loss; with a group, micro-batch k is evaluated by rank k mod worldSize and the sums are added.
  const evalLoss = async (): Promise<number | undefined> => {
    if (!evalSet.length) return undefined;
    let s = 0;
    for (let i = 0, k = 0; i < evalSet.length; i += opts.batchSize, k++) {
      if (k % world === rank) s += lossOf(evalSet.slice(i, i + opts.batchSize), false, 0).loss;
    }
    if (pg) s = (await sumAcross(pg, [s], device))[0]!;
    return s / evalSet.length;
  };

  const metrics: StepMetrics[] = [];
  if (opts.metricsPath && rank === 0) {
    mkdirSync(dirname(resolve(opts.metricsPath)), { recursive: true });
    writeFileSync(opts.metricsPath, '');
  }
  let lastGood: number | undefined;
  const checkpoint = async (step: number, epoch: number): Promise<void> => {
    if (!opts.checkpointDir) return;
    // Every rank holds the same parameters, so every rank reaches the same verdict.
    if (!allFinite(params)) {
      throw new TrainingDivergedError(`training diverged at step ${step}: parameters are not finite after the update; ` +
        `${lastGood !== undefined ? `${opts.checkpointDir} holds the model of step ${lastGood}` : 'no checkpoint was saved'}`, step, opts.checkpointDir, lastGood);
    }
    if (rank === 0) {
      saveCheckpoint(policy, opts.checkpointDir, { step, epoch, total_steps: totalSteps, loss: opts.loss, beta: opts.beta, metrics: metrics.at(-1) ?? null }, tokenizerDir, lora);
      if (lora && opts.adapterDir) saveAdapterAtomic(lora, opts.adapterDir, opts.adapterBaseModel ?? policyDir ?? tokenizerDir ?? null);
    }
    // The other ranks go on once the checkpoint is written.
    if (pg) await pg.barrier();
    lastGood = step;
  };
  const diverged = (step: number, what: string): never => {
    throw new TrainingDivergedError(
      `training diverged at step ${step}: ${what}; stopped` +
        (opts.checkpointDir ? (lastGood !== undefined ? ` (${opts.checkpointDir} holds the last good model, of step ${lastGood})` : ' (no checkpoint was saved before)') : ''),
      step, opts.checkpointDir, lastGood,
    );
  };

  const evalLossBefore = await evalLoss();
  let finalEval: number | undefined = evalLossBefore;
  let step = 0;
  try {
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      const perm = permutation(trainSet.length, createRng(opts.seed, 0xe90c, epoch));
      for (let g = 0; g < stepsPerEpoch; g++) {
        const t0 = performance.now();
        const ids = perm.slice(g * group, (g + 1) * group);
        // This rank's share of the step (all of it in one process).
        const local = pg ? ids.filter((_, j) => j % world === rank) : ids;
        let loss = 0, aw = 0, al = 0, correct = 0, tokens = 0;
        let bad: string | undefined;
        for (let m = 0; m < local.length; m += opts.batchSize) {
          const batch = local.slice(m, m + opts.batchSize).map((i) => trainSet[i]!);
          if (gsync && m + opts.batchSize >= local.length) gsync.arm();
          const r = lossOf(batch, true, 1 / ids.length);
          if (r.bad) {
            bad = `the loss is ${r.loss} (micro-batch ${m / opts.batchSize + 1} of ${Math.ceil(local.length / opts.batchSize)}${pg ? ` on rank ${rank}` : ''})`;
            if (!pg) diverged(step + 1, bad);
            break;
          }
          loss += r.loss; aw += r.aw; al += r.al; correct += r.correct; tokens += r.tokens;
        }
        if (pg) {
          // The gradients first (every rank starts the same collectives in the same order, a rank that diverged too),
          // then the step's sums over all ranks; a rank that diverged stops every rank.
          if (gsync) await gsync.finish();
          else await pg.allreduceGradients(params, { bucketBytes: opts.bucketBytes });
          [loss, aw, al, correct, tokens] = await sumAcross(pg, [loss, aw, al, correct, tokens, bad ? 1 : 0], device).then((v) => {
            if (v[5]! > 0) diverged(step + 1, bad ?? `a non-finite loss on another rank (${v[5]} of ${world})`);
            return v;
          });
        }
        step++;
        opts.onGradients?.(lora ? [...policy.namedParameters(), ...lora.namedParameters()] : policy.namedParameters());
        const gradNorm = clipGradNorm(params, opts.maxGradNorm > 0 ? opts.maxGradNorm : Infinity);
        if (!Number.isFinite(gradNorm)) diverged(step, `the gradient norm is ${gradNorm}`);
        const lr = sched.lr;
        // Mixed precision: the (clipped) gradients to the float32 masters, the step there, the weights rounded from them.
        if (masters) tidy(() => masters.forEach((m, i) => { if (m !== stepped[i]) { const g = stepped[i]!.grad; m.grad = g ? g.float() : null; } }));
        optim.step();
        if (masters) noGrad(() => masters.forEach((m, i) => { if (m !== stepped[i]) stepped[i]!.copy_(m); }));
        // ZeRO-1: each parameter's new value from its owner.
        if (pg && owner) await Promise.all(params.map((p, i) => pg.broadcast(p, owner[i]!)));
        sched.step();
        zeroGrad();
        const n = ids.length;
        const m: StepMetrics = {
          step, epoch, loss: loss / n, a_w: aw / n, a_l: al / n, margin: (aw - al) / n, pair_accuracy: correct / n,
          grad_norm: gradNorm, lr, tokens_per_s: tokens / Math.max(1e-9, (performance.now() - t0) / 1000),
        };
        const lastOfEpoch = g === stepsPerEpoch - 1;
        if (lastOfEpoch && evalSet.length) {
          const e = (await evalLoss())!;
          if (!Number.isFinite(e)) diverged(step, `the held-out loss is ${e} after the update`);
          m.eval_loss = finalEval = e;
        }
        metrics.push(m);
        if (opts.metricsPath && rank === 0) appendFileSync(opts.metricsPath, JSON.stringify(m) + '\n');
        opts.onStep?.(m);
        if (opts.checkpointEvery ? step % opts.checkpointEvery === 0 || step === totalSteps : lastOfEpoch) await checkpoint(step, epoch);
        await new Promise((r) => setImmediate(r));
      }
    }
  } catch (e) {
    lora?.dispose();
    throw e;
  } finally {
    zeroGrad();
    policy.requiresGrad_(false);
    for (const p of params) if (!p.isDisposed) p.requiresGrad_(false);
    policy.eval();
  }
  return { metrics, model: policy, lora, evalLossBefore, evalLoss: finalEval, trainSize: trainSet.length, evalSize: evalSet.length };
}
