// Learning-rate schedules: the multiplier of the base rate at each optimizer step, as transformers'
// get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup / get_constant_schedule_with_warmup.
import type { Optimizer } from './optim.js';

export type ScheduleKind = 'linear' | 'cosine' | 'constant';

export interface ScheduleOptions {
  kind: ScheduleKind;
  totalSteps: number;
  /** Warmup steps; or give warmupRatio (a fraction of totalSteps, rounded up as transformers does). */
  warmupSteps?: number;
  warmupRatio?: number;
  /** cosine: number of half-waves (0.5 = decay to 0 once) */
  numCycles?: number;
}

export function warmupStepsOf(o: ScheduleOptions): number {
  if (o.warmupSteps !== undefined) return o.warmupSteps;
  return Math.ceil((o.warmupRatio ?? 0) * o.totalSteps);
}

/** The multiplier of the base learning rate at `step` (0-based: the rate used by the step-th update). */
export function lrLambda(o: ScheduleOptions, step: number): number {
  const warm = warmupStepsOf(o);
  if (step < warm) return step / Math.max(1, warm);
  switch (o.kind) {
    case 'constant':
      return 1;
    case 'linear':
      return Math.max(0, (o.totalSteps - step) / Math.max(1, o.totalSteps - warm));
    case 'cosine': {
      const progress = (step - warm) / Math.max(1, o.totalSteps - warm);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (o.numCycles ?? 0.5) * 2 * progress)));
    }
  }
}

/** Sets an optimizer's learning rates step by step: call step() after each optimizer.step(). */
export class LRScheduler {
  readonly #opt: Optimizer;
  readonly #base: number[];
  readonly #o: ScheduleOptions;
  #step = 0;

  constructor(opt: Optimizer, o: ScheduleOptions) {
    if (!(o.totalSteps > 0)) throw new RangeError(`schedule: totalSteps must be positive, got ${o.totalSteps}`);
    this.#opt = opt;
    this.#o = o;
    this.#base = opt.groups.map((_, i) => opt.getLr(i));
    this.#apply();
  }
  get lastStep(): number {
    return this.#step;
  }
  /** The rate of group 0 now. */
  get lr(): number {
    return this.#opt.getLr(0);
  }
  step(): void {
    this.#step++;
    this.#apply();
  }
  /** Resumes at a given step (after loading a checkpoint). */
  setStep(step: number): void {
    this.#step = step;
    this.#apply();
  }
  #apply(): void {
    const m = lrLambda(this.#o, this.#step);
    this.#base.forEach((b, i) => this.#opt.setLr(b * m, i));
  }
}
