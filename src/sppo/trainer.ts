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
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  AdamW, clipGradNorm, CheckpointTape, cuda, LRScheduler, MasterWeights, noGrad, RMSprop, tensor, tidy,
  type DType, type Optimizer, type ProcessGroup, type ScheduleKind, type Tensor,
} from '../torch/index.js';
import type { CausalLMBase } from '../models/causal_lm.js';
import { createModel, loadModel, saveModel, sourceDir } from '../models/registry.js';
import { positionLimit, readConfig } from '../models/config.js';
import { saveAdapter } from '../models/peft.js';
import { Lora, type LoraOptions } from '../nn/lora.js';
import { isLossType, LOSS_TYPES, preferenceLoss, usesBaseline, usesMagnet, type LossType } from './losses.js';
import { packRows, packSequences, responseLogprobs, paddingMask, truncatePair, type PromptResponse } from './logprobs.js';
import { loadBalancingLoss } from '../models/sparse_moe.js';
import { createRng, epochSteps, permutation } from '../util/rng.js';
import { writeDirAtomic, writeJsonAtomic } from '../util/files.js';
import { DataParallel } from './data_parallel.js';

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
  /** P^(y_w > pi_{t-1} | x) and P^(y_l > pi_{t-1} | x), win rates against the previous policy's samples (omwu). */
  chosenPrevWinRate?: number;
  rejectedPrevWinRate?: number;
  /**
   * nash-md, omwu, extragradient: the constant the targets subtract in place of 1/2, the mean win rate of pi_t's
   * samples of the prompt against the opponent (omwu: against the previous policy); training.baseline 'samples'.
   */
  winRateBaseline?: number;
}

export interface StepMetrics {
  /** Optimizer step, from 1. */
  step: number;
  /** Epochs done, fractional as transformers logs it: step / steps per epoch (0.5 halfway through the first, 1 at its end). */
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
  /** Mixture-of-experts policies: the load-balancing loss, mean over the step's micro-batches (weighted by their pairs); not in `loss`. */
  aux_loss?: number;
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
  /** mpo, nash-md, extragradient: the KL strength toward the magnet (losses.ts). */
  tau?: number;
  /**
   * mpo, nash-md, extragradient: the magnet mu, a model or its folder; its summed log-probs of the responses are
   * computed as the reference's are. When it is the reference's folder, the reference log-probs are used.
   */
  magnet?: CausalLMBase | string;
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
   * Mixture-of-experts policies (Qwen3-MoE, Mixtral): each micro-batch's load-balancing loss (the Switch Transformer's,
   * over its chosen and rejected sequences, padding left out: sparse_moe.ts loadBalancingLoss) is added times this to
   * its mean pair loss, as TRL's DPOTrainer adds it (its router_aux_loss_coef, default 0.001); 0 turns it off. No
   * effect on dense models.
   */
  routerAuxLossCoef?: number;
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
  /** With lora: also save the adapter (PEFT's layout) here at each checkpoint; without checkpointDir, at the end. */
  adapterDir?: string;
  /** With lora: base_model_name_or_path of the saved adapter (default: the policy's folder). */
  adapterBaseModel?: string;
  /** Data parallel over this c10d group (see the top of this file); every rank calls train with the same options. */
  processGroup?: ProcessGroup;
  /** Gradient bucket size of the data-parallel allreduce (default DEFAULT_BUCKET_BYTES of src/torch/distributed.ts, torch DDP's 25 MiB). */
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

/** TRL's DPOConfig.router_aux_loss_coef: the load-balancing loss's weight for mixture-of-experts policies. */
export const DEFAULT_ROUTER_AUX_LOSS_COEF = 0.001;

/** The load-balancing loss's weight in training `policy`: 0 for a dense model, or when turned off. */
function routerAuxCoef(policy: CausalLMBase, opts: Pick<TrainOptions, 'routerAuxLossCoef'>): number {
  return policy.config.moe ? opts.routerAuxLossCoef ?? DEFAULT_ROUTER_AUX_LOSS_COEF : 0;
}

/** Training stopped on a non-finite loss, gradient norm or parameter. */
export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
  constructor(message: string, readonly step: number, readonly checkpointDir?: string, readonly lastGoodStep?: number) {
    super(message);
  }
}

/** An example after truncation, with its reference log-probs. */
type Prepared = Omit<TrainExample, 'chosenRefLogprob' | 'rejectedRefLogprob'> & { refChosen: number; refRejected: number; magnetChosen: number; magnetRejected: number };

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
  if (o.routerAuxLossCoef !== undefined && !(o.routerAuxLossCoef >= 0 && Number.isFinite(o.routerAuxLossCoef))) fail(`routerAuxLossCoef must be a finite number >= 0, got ${o.routerAuxLossCoef}`);
  const ef = o.evalFraction ?? 0;
  if (!(ef >= 0 && ef < 1)) fail(`evalFraction must be in [0, 1), got ${ef}`);
  if (o.checkpointEvery !== undefined && !(Number.isInteger(o.checkpointEvery) && o.checkpointEvery >= 1)) fail(`checkpointEvery must be an integer >= 1, got ${o.checkpointEvery}`);
  if (o.examples.length === 0) fail('no examples');
  if (o.zero1 && !o.processGroup) fail('zero1 shards the optimizer state across the ranks of a processGroup: give one');
  if (needsMagnet(o) && o.magnet === undefined) fail(`loss '${o.loss}' needs a magnet (the model or folder whose log-probs it regularises toward)`);
  if (needsMagnet(o) && o.lora && o.magnet !== undefined && typeof o.magnet !== 'string') fail(`loss '${o.loss}' with lora: give the magnet as a folder`);
  o.examples.forEach((e, i) => {
    for (const k of ['chosenWinRate', 'rejectedWinRate', 'chosenOverRejected'] as const) {
      const v = e[k];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) fail(`pair ${i + 1}: ${k} must be a probability in [0, 1], got ${v}`);
    }
    if (e.winRateBaseline !== undefined && !(e.winRateBaseline >= 0 && e.winRateBaseline <= 1)) fail(`pair ${i + 1}: winRateBaseline must be a mean win rate in [0, 1], got ${e.winRateBaseline}`);
    if (o.loss === 'omwu') {
      for (const k of ['chosenPrevWinRate', 'rejectedPrevWinRate'] as const) {
        const v = e[k];
        if (typeof v !== 'number' || !(v >= 0 && v <= 1)) fail(`pair ${i + 1}: ${k} must be a probability in [0, 1] (loss omwu), got ${v}`);
      }
    }
    if (e.chosenIds.length === 0 || e.rejectedIds.length === 0) fail(`pair ${i + 1}: empty response`);
    if (e.promptIds.length === 0) fail(`pair ${i + 1}: empty prompt (the first response token would have no context)`);
  });
}

/** Whether the loss regularises toward a magnet whose log-probs are needed: mpo, nash-md, and extragradient with tau > 0. */
function needsMagnet(o: Pick<TrainOptions, 'loss' | 'tau'>): boolean {
  return usesMagnet(o.loss) && (o.loss !== 'extragradient' || (o.tau ?? 0) > 0);
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

/** Saves a model folder with its trainer_state.json atomically (util/files.ts's folder swap). With lora, the merged model. */
export function saveCheckpoint(model: CausalLMBase, dir: string, state: Record<string, unknown>, tokenizerDir?: string, lora?: Lora): void {
  writeDirAtomic(dir, (tmp) => {
    saveModel(model, tmp, { tokenizerDir, replace: lora ? (name, t) => lora.mergedWeight(name, t) : undefined });
    writeJsonAtomic(join(tmp, 'trainer_state.json'), state);
  });
}

/**
 * The examples as the trainer scores them: truncated, with their reference log-probs where the examples give
 * them for the same tokens (NaN otherwise), and the indices of the examples without (`missing`).
 */
function prepareExamples(examples: readonly TrainExample[], maxLength: number, maxPromptLength: number): { prepared: Prepared[]; missing: number[] } {
  const missing: number[] = [];
  const prepared = examples.map((e, i): Prepared => {
    const t = truncatePair(e.promptIds, e.chosenIds, e.rejectedIds, maxLength, maxPromptLength);
    const intact = t.promptIds.length === e.promptIds.length && t.chosenIds.length === e.chosenIds.length && t.rejectedIds.length === e.rejectedIds.length;
    const given = intact && Number.isFinite(e.chosenRefLogprob) && Number.isFinite(e.rejectedRefLogprob);
    if (!given) missing.push(i);
    return {
      ...t,
      chosenWinRate: e.chosenWinRate,
      rejectedWinRate: e.rejectedWinRate,
      chosenOverRejected: e.chosenOverRejected,
      ...(e.chosenPrevWinRate !== undefined ? { chosenPrevWinRate: e.chosenPrevWinRate, rejectedPrevWinRate: e.rejectedPrevWinRate } : {}),
      ...(e.winRateBaseline !== undefined ? { winRateBaseline: e.winRateBaseline } : {}),
      refChosen: given ? e.chosenRefLogprob! : NaN,
      refRejected: given ? e.rejectedRefLogprob! : NaN,
      magnetChosen: NaN,
      magnetRejected: NaN,
    };
  });
  return { prepared, missing };
}

/**
 * Reference log-probs of pairs: with LoRA (and no reference given), the policy with its adapters off; else the
 * reference given, the one loaded from its folder, or a frozen copy of the policy (loaded or cloned, then freed).
 */
function referenceLogprobs(opts: TrainOptions, policy: CausalLMBase, policyDir: string | undefined, lora: Lora | undefined, pairs: Prepared[]): [number, number][] {
  const score = (model: CausalLMBase): [number, number][] => pairLogprobs(model, pairs, opts.batchSize, opts.chunkTokens, opts.packing ?? true);
  if (lora && opts.reference === undefined) return lora.disabled(() => score(policy));
  if (opts.reference && typeof opts.reference !== 'string') return score(opts.reference);
  const dir = typeof opts.reference === 'string' ? opts.reference : policyDir;
  const ref = dir !== undefined ? loadModel(dir, { dtype: policy.dtype, device: policy.device }) : frozenCopy(policy);
  try {
    return score(ref);
  } finally {
    ref.dispose();
  }
}

/** The missing reference log-probs: each rank scores its share of them, then every rank has all of them. */
async function fillReference(prepared: Prepared[], missing: number[], dp: DataParallel, score: (pairs: Prepared[]) => [number, number][]): Promise<void> {
  const mine = dp.shard(missing);
  const all = await dp.gather(mine.length ? score(mine.map((i) => prepared[i]!)) : [], missing.length, 2);
  missing.forEach((i, j) => {
    prepared[i]!.refChosen = all[j]![0]!;
    prepared[i]!.refRejected = all[j]![1]!;
  });
}

/**
 * The magnet's log-probs of every example (mpo, nash-md, extragradient): the reference's when the magnet is the
 * reference's folder, else scored by the magnet model, each rank its share.
 */
async function fillMagnet(opts: TrainOptions, policy: CausalLMBase, prepared: Prepared[], dp: DataParallel): Promise<void> {
  const m = opts.magnet!;
  if (typeof m === 'string' && typeof opts.reference === 'string' && m === opts.reference) {
    for (const p of prepared) {
      p.magnetChosen = p.refChosen;
      p.magnetRejected = p.refRejected;
    }
    return;
  }
  const all = prepared.map((_, i) => i);
  const mine = dp.shard(all);
  const score = (model: CausalLMBase): [number, number][] => pairLogprobs(model, mine.map((i) => prepared[i]!), opts.batchSize, opts.chunkTokens, opts.packing ?? true);
  let vals: [number, number][] = [];
  if (mine.length) {
    if (typeof m !== 'string') {
      vals = score(m);
    } else {
      const model = loadModel(m, { dtype: policy.dtype, device: policy.device });
      try {
        vals = score(model);
      } finally {
        model.dispose();
      }
    }
  }
  const gathered = await dp.gather(vals, all.length, 2);
  all.forEach((i, j) => {
    prepared[i]!.magnetChosen = gathered[j]![0]!;
    prepared[i]!.magnetRejected = gathered[j]![1]!;
  });
}

/** The held-out split: evalFraction of the examples (at least one, never all, when > 0); both parts in example order. */
function heldOutSplit(prepared: Prepared[], evalFraction: number, seed: number): { trainSet: Prepared[]; evalSet: Prepared[] } {
  const order = permutation(prepared.length, createRng(seed, 0x5e1));
  const nEval = evalFraction > 0 ? Math.min(prepared.length - 1, Math.max(1, Math.round(prepared.length * evalFraction))) : 0;
  const pick = (ids: number[]): Prepared[] => ids.sort((a, b) => a - b).map((i) => prepared[i]!);
  return { evalSet: pick(order.slice(0, nEval)), trainSet: pick(order.slice(nEval)) };
}

function makeOptimizer(o: TrainOptions, params: Tensor[]): Optimizer {
  return o.optimizer === 'adamw'
    ? AdamW(params, { lr: o.lr, weightDecay: o.weightDecay ?? 0, betas: [0.9, 0.999], eps: 1e-8 })
    : RMSprop(params, { lr: o.lr, weightDecay: o.weightDecay ?? 0, alpha: 0.99, eps: 1e-8 });
}

/** Sums over a batch's pairs: the loss, the chosen / rejected log-ratios, the pairs with a_w > a_l. */
interface PairSums {
  loss: number;
  aw: number;
  al: number;
  correct: number;
}

/**
 * The pair loss of a batch and its metrics from the policy's summed response log-probs (as TRL's
 * DPOTrainer.get_batch_loss_metrics): `logps` holds the chosen responses' log-probs, then the rejected ones'.
 * Returns the summed loss as a tensor (for the backward pass) and the batch's sums.
 */
function pairLossMetrics(logps: Tensor, batch: readonly Prepared[], o: Pick<TrainOptions, 'loss' | 'beta' | 'labelSmoothing' | 'ipoLengthNormalized' | 'tau'>): PairSums & { lossSum: Tensor } {
  const b = batch.length;
  const col = (f: (p: Prepared) => number): Tensor => tensor(Float32Array.from(batch.map(f)), { device: logps.device });
  const out = preferenceLoss(o.loss, {
    policyChosen: logps.narrow(0, 0, b),
    policyRejected: logps.narrow(0, b, b),
    refChosen: col((p) => p.refChosen),
    refRejected: col((p) => p.refRejected),
    chosenWinRate: col((p) => p.chosenWinRate),
    rejectedWinRate: col((p) => p.rejectedWinRate),
    chosenOverRejected: col((p) => p.chosenOverRejected),
    ...(o.ipoLengthNormalized ? { chosenLength: col((p) => p.chosenIds.length), rejectedLength: col((p) => p.rejectedIds.length) } : {}),
    ...(usesMagnet(o.loss) ? { magnetChosen: col((p) => p.magnetChosen), magnetRejected: col((p) => p.magnetRejected) } : {}),
    ...(o.loss === 'omwu' ? { chosenPrevWinRate: col((p) => p.chosenPrevWinRate!), rejectedPrevWinRate: col((p) => p.rejectedPrevWinRate!) } : {}),
    ...(usesBaseline(o.loss) && batch.some((p) => p.winRateBaseline !== undefined) ? { winRateBaseline: col((p) => p.winRateBaseline ?? 0.5) } : {}),
  }, { beta: o.beta, labelSmoothing: o.labelSmoothing, lengthNormalized: o.ipoLengthNormalized, ...(usesMagnet(o.loss) ? { tau: o.tau ?? 0 } : {}) });
  const lossSum = out.losses.sum();
  const loss = lossSum.item();
  const aw = Array.from(out.chosenLogratio.cpu().toTypedArray() as Float32Array);
  const al = Array.from(out.rejectedLogratio.cpu().toTypedArray() as Float32Array);
  return {
    lossSum, loss,
    aw: aw.reduce((a, x) => a + x, 0),
    al: al.reduce((a, x) => a + x, 0),
    correct: aw.reduce((a, x, i) => a + (x > al[i]! ? 1 : 0), 0),
  };
}

/** What a micro-batch needs to go through the policy. */
interface PolicyPass {
  policy: CausalLMBase;
  lora?: Lora;
  pad: number;
  packing: boolean;
  opts: TrainOptions;
}

/**
 * One micro-batch through the policy: its pair sums and tokens; with `gradScale`, the backward pass of the summed
 * loss times it (not when the loss is not finite: `bad`).
 */
function batchLoss({ policy, lora, pad, packing, opts }: PolicyPass, batch: Prepared[], gradScale?: number): PairSums & { tokens: number; bad: boolean; auxSum: number } {
  return tidy(() => {
    const withGrad = gradScale !== undefined;
    const seqs: PromptResponse[] = [
      ...batch.map((p) => ({ promptIds: p.promptIds, responseIds: p.chosenIds })),
      ...batch.map((p) => ({ promptIds: p.promptIds, responseIds: p.rejectedIds })),
    ];
    const packed = packing ? packRows(seqs, pad, { device: policy.device }) : packSequences(seqs, pad, policy.device);
    const tape = withGrad && opts.gradientCheckpointing ? new CheckpointTape() : undefined;
    const auxCoef = withGrad ? routerAuxCoef(policy, opts) : 0;
    const routerLogits: Tensor[] | undefined = auxCoef > 0 ? [] : undefined;
    lora?.nextPass();
    try {
      const logps = withGrad ? responseLogprobs(policy, packed, { tape, chunkTokens: opts.chunkTokens, routerLogits }) : noGrad(() => responseLogprobs(policy, packed, { chunkTokens: opts.chunkTokens }));
      let { lossSum, ...sums } = pairLossMetrics(logps, batch, opts);
      let auxSum = 0;
      if (routerLogits) {
        // TRL's DPOTrainer: the batch's mean pair loss + coef * aux; here the summed loss + coef * aux * pairs.
        const aux = loadBalancingLoss(routerLogits, policy.config.moe!.topK, paddingMask(packed));
        auxSum = aux.item() * batch.length;
        lossSum = lossSum.add(aux.mul(auxCoef * batch.length));
      }
      const bad = !Number.isFinite(sums.loss) || !Number.isFinite(auxSum);
      if (withGrad && !bad) {
        const scaled = lossSum.mul(gradScale);
        if (tape) tape.backward(scaled);
        else scaled.backward();
      }
      return { ...sums, tokens: packed.tokens, bad, auxSum };
    } finally {
      tape?.dispose();
      for (const t of routerLogits ?? []) t.dispose();
    }
  });
}

/** The held-out loss (undefined without a held-out split); micro-batch k is evaluated by rank k mod worldSize and the sums are added. */
async function heldOutLoss(pass: PolicyPass, dp: DataParallel, evalSet: Prepared[]): Promise<number | undefined> {
  if (!evalSet.length) return undefined;
  const batches: Prepared[][] = [];
  for (let i = 0; i < evalSet.length; i += pass.opts.batchSize) batches.push(evalSet.slice(i, i + pass.opts.batchSize));
  let s = 0;
  for (const batch of dp.shard(batches)) s += batchLoss(pass, batch).loss;
  return (await dp.sum([s]))[0]! / evalSet.length;
}

/** The checkpoint folder's last good step, and the errors of a diverged run that name it. */
class Checkpoints {
  lastGood: number | undefined;
  constructor(readonly dir: string | undefined) {}

  /** Throws TrainingDivergedError: training stopped at `step` for `what`. */
  diverged(step: number, what: string): never {
    throw new TrainingDivergedError(
      `training diverged at step ${step}: ${what}; stopped` +
        (this.dir ? (this.lastGood !== undefined ? ` (${this.dir} holds the last good model, of step ${this.lastGood})` : ' (no checkpoint was saved before)') : ''),
      step, this.dir, this.lastGood,
    );
  }

  /** With a folder: checks the parameters, has the leader `write` the checkpoint, and the other ranks wait for it. */
  async save(step: number, params: Tensor[], dp: DataParallel, write: (dir: string) => void): Promise<void> {
    if (!this.dir) return;
    // Every rank holds the same parameters, so every rank reaches the same verdict.
    if (!tidy(() => params.every((p) => p.isfinite().all().item() !== 0))) {
      throw new TrainingDivergedError(`training diverged at step ${step}: parameters are not finite after the update; ` +
        `${this.lastGood !== undefined ? `${this.dir} holds the model of step ${this.lastGood}` : 'no checkpoint was saved'}`, step, this.dir, this.lastGood);
    }
    if (dp.isLeader) write(this.dir);
    await dp.barrier();
    this.lastGood = step;
  }
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  checkOptions(opts);
  const policyDir = typeof opts.policy === 'string' ? opts.policy : undefined;
  const { prepared, missing } = prepareExamples(opts.examples, opts.maxLength, opts.maxPromptLength);
  const config = policyDir !== undefined ? readConfig(policyDir) : (opts.policy as CausalLMBase).config;
  prepared.forEach((p, i) => {
    const over = positionLimit(config, p.promptIds.length + Math.max(p.chosenIds.length, p.rejectedIds.length));
    if (over?.learned) fail(`pair ${i + 1}: ${over.message}: set maxLength (sppo train --max-length) to at most ${config.maxPositions}`);
    for (const [part, ids] of [['prompt', p.promptIds], ['chosen', p.chosenIds], ['rejected', p.rejectedIds]] as const) {
      const bad = ids.find((id) => !(Number.isInteger(id) && id >= 0 && id < config.vocabSize));
      if (bad !== undefined) fail(`pair ${i + 1}: ${part} token id ${bad} is outside the model's vocabulary (0 to ${config.vocabSize - 1})`);
    }
  });
  const policy = typeof opts.policy === 'string' ? loadModel(opts.policy, defaultPlacement(opts.dtype, opts.device)) : opts.policy;
  const tokenizerDir = policyDir ?? sourceDir(policy);
  using dp = new DataParallel(opts.processGroup, policy.device);

  // With LoRA, the reference is the policy itself with its adapters off: no copy is loaded.
  const lora = opts.lora ? Lora.attach(policy, { ...opts.lora, seed: opts.lora.seed ?? opts.seed }) : undefined;
  try {
    await fillReference(prepared, missing, dp, (pairs) => referenceLogprobs(opts, policy, policyDir, lora, pairs));
    if (needsMagnet(opts)) await fillMagnet(opts, policy, prepared, dp);
    else if (usesMagnet(opts.loss)) for (const p of prepared) [p.magnetChosen, p.magnetRejected] = [p.refChosen, p.refRejected];
  } catch (e) {
    lora?.dispose();
    throw e;
  }
  const { trainSet, evalSet } = heldOutSplit(prepared, opts.evalFraction ?? 0, opts.seed);
  if (trainSet.length === 0) fail('no training examples left after the held-out split');
  const globalBatch = opts.batchSize * opts.gradAccum;
  const stepsPerEpoch = Math.ceil(trainSet.length / globalBatch);
  const totalSteps = stepsPerEpoch * opts.epochs;

  const params = lora ? lora.parameters() : policy.parameters();
  // Every rank starts from rank 0's parameters (as torch DDP): all ranks' collectives are enqueued in the same order.
  await dp.broadcast(params);
  policy.train(true);
  if (lora) policy.requiresGrad_(false);
  for (const p of params) p.requiresGrad_(true);
  // The gradients exchanged during the last micro-batch's backward pass (after it with checkpointing); ZeRO-1's share.
  const stepped = dp.attach(params, { bucketBytes: opts.bucketBytes, afterBackward: opts.gradientCheckpointing, zero1: opts.zero1 });
  // Disposed (native state and float32 masters freed) when train returns or throws.
  using optim = new MasterWeights(stepped, (ps) => makeOptimizer(opts, ps), opts.masterWeights ?? true);
  const sched = new LRScheduler(optim.optimizer, { kind: opts.schedule ?? 'linear', totalSteps, warmupRatio: opts.warmupRatio });
  // Every parameter's gradient dropped (the optimizer's tensors are a share of them under ZeRO-1, or the masters).
  const zeroGrad = (): void => {
    optim.zeroGrad();
    for (const p of params) if (!p.isDisposed) p.zeroGrad();
  };
  zeroGrad();

  const pass: PolicyPass = { policy, lora, pad: padIdOf(policy), packing: opts.packing ?? true, opts };
  const metrics: StepMetrics[] = [];
  if (opts.metricsPath && dp.isLeader) {
    mkdirSync(dirname(resolve(opts.metricsPath)), { recursive: true });
    writeFileSync(opts.metricsPath, '');
  }
  const ckpt = new Checkpoints(opts.checkpointDir);
  const adapterDir = lora ? opts.adapterDir : undefined;
  const writeAdapter = (): void => {
    if (adapterDir) writeDirAtomic(adapterDir, (tmp) => saveAdapter(lora!, tmp, { baseModel: opts.adapterBaseModel ?? policyDir ?? tokenizerDir ?? null }));
  };
  const saveAt = (step: number, epoch: number): Promise<void> => ckpt.save(step, params, dp, (dir) => {
    saveCheckpoint(policy, dir, { step, epoch, total_steps: totalSteps, loss: opts.loss, beta: opts.beta, metrics: metrics.at(-1) ?? null }, tokenizerDir, lora);
    writeAdapter();
  });

  const auxTrained = routerAuxCoef(policy, opts) > 0;
  const evalLossBefore = await heldOutLoss(pass, dp, evalSet);
  let finalEval: number | undefined = evalLossBefore;
  let step = 0;
  try {
    for (const { epoch, ids, lastOfEpoch } of epochSteps(trainSet.length, globalBatch, opts.epochs, opts.seed)) {
      const t0 = performance.now();
      const local = dp.shard(ids);
      const sums = [0, 0, 0, 0, 0, 0]; // loss, a_w, a_l, correct, tokens, aux loss over this rank's micro-batches
      let bad: string | undefined;
      for (let off = 0; off < local.length; off += opts.batchSize) {
        dp.beforeBackward(off + opts.batchSize >= local.length);
        const r = batchLoss(pass, local.slice(off, off + opts.batchSize).map((i) => trainSet[i]!), 1 / ids.length);
        if (r.bad) {
          bad = `the ${Number.isFinite(r.loss) ? `load-balancing loss is ${r.auxSum / Math.min(opts.batchSize, local.length - off)}` : `loss is ${r.loss}`} (micro-batch ${off / opts.batchSize + 1} of ${Math.ceil(local.length / opts.batchSize)}${dp.where})`;
          break;
        }
        [r.loss, r.aw, r.al, r.correct, r.tokens, r.auxSum].forEach((v, i) => (sums[i]! += v));
      }
      // The gradients first (every rank starts the same collectives in the same order, a rank that diverged too),
      // then the step's sums over all ranks; a rank that diverged stops every rank.
      await dp.reduceGradients();
      const [loss, aw, al, correct, tokens, auxSum, nBad] = (await dp.sum([...sums, bad ? 1 : 0])) as [number, number, number, number, number, number, number];
      if (nBad > 0) ckpt.diverged(step + 1, bad ?? `a non-finite loss on another rank (${nBad} of ${dp.world})`);
      step++;
      opts.onGradients?.(lora ? [...policy.namedParameters(), ...lora.namedParameters()] : policy.namedParameters());
      const gradNorm = clipGradNorm(params, opts.maxGradNorm > 0 ? opts.maxGradNorm : Infinity);
      if (!Number.isFinite(gradNorm)) ckpt.diverged(step, `the gradient norm is ${gradNorm}`);
      const lr = sched.lr;
      optim.step();
      await dp.afterStep();
      sched.step();
      zeroGrad();
      const n = ids.length;
      const row: StepMetrics = {
        step, epoch: step / stepsPerEpoch, loss: loss / n, a_w: aw / n, a_l: al / n, margin: (aw - al) / n, pair_accuracy: correct / n,
        grad_norm: gradNorm, lr, tokens_per_s: tokens / Math.max(1e-9, (performance.now() - t0) / 1000),
        ...(auxTrained ? { aux_loss: auxSum / n } : {}),
      };
      if (lastOfEpoch && evalSet.length) {
        const e = (await heldOutLoss(pass, dp, evalSet))!;
        if (!Number.isFinite(e)) ckpt.diverged(step, `the held-out loss is ${e} after the update`);
        row.eval_loss = finalEval = e;
      }
      metrics.push(row);
      if (opts.metricsPath && dp.isLeader) appendFileSync(opts.metricsPath, JSON.stringify(row) + '\n');
      opts.onStep?.(row);
      if (opts.checkpointEvery ? step % opts.checkpointEvery === 0 || step === totalSteps : lastOfEpoch) await saveAt(step, epoch);
      await new Promise((r) => setImmediate(r));
    }
    // Without checkpoints the adapter is written once, at the end.
    if (adapterDir && !opts.checkpointDir) {
      if (dp.isLeader) writeAdapter();
      await dp.barrier();
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
