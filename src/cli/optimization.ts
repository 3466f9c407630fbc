// The optimization flags `sppo sft` and `sppo train` share (their help texts list them with each command's
// defaults), read and checked once: learning rate and schedule, batch and accumulation, optimizer, clipping,
// lengths, held-out fraction, seed, device and dtype.
import { choice, deviceOption, num } from './args.js';

export const OPTIMIZATION_FLAGS = {
  lr: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'grad-accum': { type: 'string' },
  optimizer: { type: 'string' },
  'weight-decay': { type: 'string' },
  'warmup-ratio': { type: 'string' },
  schedule: { type: 'string' },
  'max-grad-norm': { type: 'string' },
  'max-length': { type: 'string' },
  'eval-fraction': { type: 'string' },
  seed: { type: 'string' },
  metrics: { type: 'string' },
  dtype: { type: 'string' },
  device: { type: 'string' },
} as const;

type FlagValues = { [K in keyof typeof OPTIMIZATION_FLAGS]?: string };

export interface OptimizationDefaults {
  lr: number;
  batchSize: number;
  optimizer: 'adamw' | 'rmsprop';
  warmupRatio: number;
  schedule: 'linear' | 'cosine' | 'constant';
}

export interface Optimization {
  lr: number;
  epochs: number;
  batchSize: number;
  gradAccum: number;
  optimizer: 'adamw' | 'rmsprop';
  weightDecay: number;
  warmupRatio: number;
  schedule: 'linear' | 'cosine' | 'constant';
  maxGradNorm: number;
  maxLength: number;
  evalFraction: number;
  seed: number;
  device: string;
  /** bfloat16 on CUDA, float32 on the CPU unless --dtype says otherwise. */
  dtype: 'float32' | 'bfloat16';
}

/** The shared flags' values, each checked (a bad one is a UsageError naming its flag). */
export function optimizationOptions(v: FlagValues, d: OptimizationDefaults): Optimization {
  const device = deviceOption(v.device);
  return {
    lr: num('lr', v.lr, d.lr, { min: 0 }),
    epochs: num('epochs', v.epochs, 1, { integer: true, min: 1 }),
    batchSize: num('batch-size', v['batch-size'], d.batchSize, { integer: true, min: 1 }),
    gradAccum: num('grad-accum', v['grad-accum'], 1, { integer: true, min: 1 }),
    optimizer: choice('optimizer', v.optimizer, d.optimizer === 'adamw' ? (['adamw', 'rmsprop'] as const) : (['rmsprop', 'adamw'] as const), d.optimizer),
    weightDecay: num('weight-decay', v['weight-decay'], 0, { min: 0 }),
    warmupRatio: num('warmup-ratio', v['warmup-ratio'], d.warmupRatio, { min: 0, max: 1 }),
    schedule: choice('schedule', v.schedule, ['linear', 'cosine', 'constant'] as const, d.schedule),
    maxGradNorm: num('max-grad-norm', v['max-grad-norm'], 1, { min: 0 }),
    maxLength: num('max-length', v['max-length'], 1024, { integer: true, min: 2 }),
    evalFraction: num('eval-fraction', v['eval-fraction'], 0, { min: 0, max: 0.9 }),
    seed: num('seed', v.seed, 0, { integer: true, min: 0 }),
    device,
    dtype: choice('dtype', v.dtype, ['float32', 'bfloat16'] as const, device.startsWith('cuda') ? 'bfloat16' : 'float32'),
  };
}

/** Optimizer steps of a run: training examples (the held-out fraction left out) over batch x accumulation, per epoch. */
export function optimizerSteps(examples: number, o: Pick<Optimization, 'evalFraction' | 'batchSize' | 'gradAccum' | 'epochs'>): { nTrain: number; total: number } {
  const nTrain = examples - (o.evalFraction > 0 ? Math.min(examples - 1, Math.max(1, Math.round(examples * o.evalFraction))) : 0);
  return { nTrain, total: Math.ceil(nTrain / (o.batchSize * o.gradAccum)) * o.epochs };
}
