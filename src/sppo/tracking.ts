// Experiment tracking: a run's metrics as TensorBoard event files under runDir/tensorboard/ (`report:
// [tensorboard]` in the config, `sppo run --report-to tensorboard`), written while the run goes, so TensorBoard
// shows the curves as they grow (`tensorboard --logdir runs/`), and W&B through `wandb sync --sync-tensorboard`.
//
//   train/<metric>   every optimizer step, as it happens: loss, a_w, a_l, margin, pair_accuracy, grad_norm, lr,
//                    epoch, tokens_per_s, eval_loss; the step counts on across iterations (iteration t's steps
//                    follow iteration t-1's, so one curve shows the whole run); and TRL's names beside them
//                    (stepScalars: train/rewards/*, train/learning_rate, eval/loss)
//   eval/<field>     per iteration (step t; t = 0 is nothing): winRate, standardError, lcWinRate, nWins, nLosses,
//                    nTies, avgLength, avgReferenceLength, n, and the judge's statistics (judgeStats.*)
//   generation/...   per iteration: prompts, skipped, responses, mean_response_tokens, finished_by_length
//   pairs/count      per iteration: training pairs
//   time/<stage>_s   per iteration: each stage's wall time (timings.jsonl), with its numeric extras as
//                    time/<stage>_<field> and, on a GPU, memory/<stage>_peak_cuda_{allocated,reserved}_bytes
//
// Everything is derived from the run directory's own files (train steps also live, from the trainer), and each
// tag's steps only ever grow (src/util/tensorboard.ts): a resumed run continues its curves without a duplicate
// step, and the files of an interrupted run are read back, not rewritten.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventWriter } from '../util/tensorboard.js';
import type { StepMetrics } from './trainer.js';

export const REPORT_TARGETS = ['tensorboard', 'wandb'] as const;
export type ReportTarget = (typeof REPORT_TARGETS)[number];

function jsonl(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return []; // a line being written
      }
    });
}

/** The finite numbers of a JSON object, by dotted path (arrays left out: they are per-prompt data). */
export function numericFields(o: unknown, prefix = ''): Record<string, number> {
  const out: Record<string, number> = {};
  if (!o || typeof o !== 'object' || Array.isArray(o)) return out;
  for (const [k, v] of Object.entries(o)) {
    const tag = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'number' && Number.isFinite(v)) out[tag] = v;
    else if (typeof v === 'boolean') out[tag] = v ? 1 : 0;
    else if (v && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, numericFields(v, tag));
  }
  return out;
}

const prefixed = (p: string, o: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(o).map(([k, v]) => [`${p}/${k}`, v]));

/**
 * A training step's scalars under sppo's names and, beside them, TRL's (so that a TRL run and an sppo run overlay in
 * one TensorBoard): train/rewards/chosen, rewards/rejected and rewards/margins are beta times sppo's a_w, a_l and
 * margin (TRL's implicit rewards beta * (log pi - log pi_ref)); train/rewards/accuracies is pair_accuracy;
 * train/learning_rate is lr; eval/loss is eval_loss. Without beta (SFT) only the last two.
 */
export function stepScalars(m: Record<string, unknown>, beta?: number): Record<string, number> {
  const own = numericFields(m);
  const out = prefixed('train', own);
  if (own.lr !== undefined) out['train/learning_rate'] = own.lr;
  if (own.eval_loss !== undefined) out['eval/loss'] = own.eval_loss;
  if (beta !== undefined) {
    for (const [from, to] of [['a_w', 'chosen'], ['a_l', 'rejected'], ['margin', 'margins']] as const) {
      if (own[from] !== undefined) out[`train/rewards/${to}`] = beta * own[from]!;
    }
    if (own.pair_accuracy !== undefined) out['train/rewards/accuracies'] = own.pair_accuracy;
  }
  return out;
}

/** A run's tracker: writes what the run directory holds (sync) and each training step as it comes (trainStep). */
export class RunTracker {
  private readonly writer: EventWriter;
  private readonly offsets = new Map<number, number>();

  constructor(
    readonly runDir: string,
    readonly targets: readonly ReportTarget[],
    /** The loss's beta, for TRL's reward names (stepScalars). */
    readonly beta?: number,
  ) {
    this.writer = new EventWriter(join(runDir, 'tensorboard'));
  }

  /** The event file being written. */
  get file(): string {
    return this.writer.path;
  }

  /** The W&B command for this run's curves (`report: [wandb]`). */
  wandbCommand(): string {
    return `wandb sync --sync-tensorboard ${join(this.runDir, 'tensorboard')} (wandb up to 0.29; 0.30 removed it: docs/tracking.md has the import for later versions)`;
  }

  private iterPath(t: number, f: string): string {
    return join(this.runDir, `iter-${t}`, f);
  }

  /** The global step before iteration t's first: the steps of iterations 1..t-1 (their train-metrics.jsonl). */
  private offset(t: number): number {
    let o = this.offsets.get(t);
    if (o === undefined) {
      o = t <= 1 ? 0 : this.offset(t - 1) + jsonl(this.iterPath(t - 1, 'train-metrics.jsonl')).length;
      this.offsets.set(t, o);
    }
    return o;
  }

  /** One optimizer step of iteration t, as the trainer reports it. */
  trainStep(t: number, m: StepMetrics | Record<string, unknown>): void {
    const { step, ...rest } = m as Record<string, unknown>;
    this.writer.scalars(this.offset(t) + Number(step), stepScalars(rest, this.beta));
  }

  /** Writes everything the run directory holds that is not written yet (after each stage). */
  sync(): void {
    for (let t = 1; existsSync(join(this.runDir, `iter-${t}`)); t++) {
      for (const m of jsonl(this.iterPath(t, 'train-metrics.jsonl'))) this.trainStep(t, m);
      const gens = jsonl(this.iterPath(t, 'generations.jsonl'));
      if (existsSync(this.iterPath(t, 'generations.jsonl')) && gens.length > 0) {
        const used = gens.filter((g) => !g.skipped);
        const responses = used.flatMap((g) => (g.responses as { token_ids?: unknown[]; finish_reason?: string }[]) ?? []);
        this.writer.scalars(t, {
          'generation/prompts': used.length,
          'generation/skipped': gens.length - used.length,
          'generation/responses': responses.length,
          'generation/mean_response_tokens': responses.length ? responses.reduce((a, r) => a + (r.token_ids?.length ?? 0), 0) / responses.length : undefined,
          'generation/finished_by_length': responses.length ? responses.filter((r) => r.finish_reason === 'length').length / responses.length : undefined,
        });
      }
      if (existsSync(this.iterPath(t, 'pairs.jsonl'))) this.writer.scalars(t, { 'pairs/count': jsonl(this.iterPath(t, 'pairs.jsonl')).length });
      if (existsSync(this.iterPath(t, 'eval.json'))) {
        const { iteration: _i, ...ev } = JSON.parse(readFileSync(this.iterPath(t, 'eval.json'), 'utf8')) as Record<string, unknown>;
        this.writer.scalars(t, prefixed('eval', numericFields(ev)));
      }
    }
    for (const line of jsonl(join(this.runDir, 'timings.jsonl'))) {
      const { iteration, stage, seconds, ...extra } = line as { iteration: number; stage: string; seconds: number } & Record<string, unknown>;
      if (typeof iteration !== 'number' || typeof stage !== 'string') continue;
      const values: Record<string, number> = { [`time/${stage}_s`]: seconds };
      for (const [k, v] of Object.entries(numericFields(extra))) values[k.startsWith('peak_') ? `memory/${stage}_${k}` : `time/${stage}_${k}`] = v;
      this.writer.scalars(iteration, values);
    }
  }
}

/** The run's tracker when its config asks for one (`report`), after saying where its files go; else undefined. */
export function startTracking(cfg: { runDir: string; report: readonly ReportTarget[]; training?: { beta: number } }, log: (line: string) => void): RunTracker | undefined {
  if (cfg.report.length === 0) return undefined;
  const tracker = new RunTracker(cfg.runDir, cfg.report, cfg.training?.beta);
  tracker.sync(); // a resumed run: what its files hold and the event files lack
  log(`sppo run: TensorBoard event files in ${join(cfg.runDir, 'tensorboard')} (tensorboard --logdir ${join(cfg.runDir, 'tensorboard')})`);
  if (cfg.report.includes('wandb')) log(`sppo run: for Weights & Biases: ${tracker.wandbCommand()} (wandb reads the TensorBoard files; run it during or after the run)`);
  return tracker;
}
