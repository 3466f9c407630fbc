// --report-to (sppo run, train, sft), as TRL's report_to: where the metrics go besides the JSONL files.
// tensorboard: TensorBoard event files (src/util/tensorboard.ts); wandb: the same files, with how to send them to
// Weights & Biases (`wandb sync --sync-tensorboard` up to wandb 0.29, docs/tracking.md's import after); none: nothing.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { REPORT_TARGETS, stepScalars, type ReportTarget } from '../sppo/tracking.js';
import { EventWriter } from '../util/tensorboard.js';
import { UsageError } from './usage.js';

export const REPORT_TO_OPTIONS = { 'report-to': { type: 'string', multiple: true }, 'logging-dir': { type: 'string' } } as const;

/** --report-to values (repeatable, or comma-separated; 'none' for none); undefined when not given. */
export function reportTargets(v: string[] | undefined): ReportTarget[] | undefined {
  if (v === undefined) return undefined;
  const names = v.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 1 && names[0] === 'none') return [];
  for (const n of names) if (!(REPORT_TARGETS as readonly string[]).includes(n)) throw new UsageError(`--report-to must be ${REPORT_TARGETS.join(', ')} or none, got '${n}'`);
  return [...new Set(names)] as ReportTarget[];
}

/** transformers' run folder name, CURRENT_DATETIME_HOSTNAME (`%b%d_%H-%M-%S_<host>`, e.g. Dec07_15-45-12_box). */
export function runFolderName(now = new Date(), host = hostname()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  const month = now.toLocaleString('en-US', { month: 'short' });
  return `${month}${p(now.getDate())}_${p(now.getHours())}-${p(now.getMinutes())}-${p(now.getSeconds())}_${host}`;
}

/** How the W&B line reads for TensorBoard files in `dir`. */
export const wandbHint = (dir: string): string => `for Weights & Biases: wandb sync --sync-tensorboard ${dir} (wandb up to 0.29; 0.30 removed it: docs/tracking.md has the import for later versions)`;

/**
 * The per-step writer of `sppo train` / `sppo sft` with --report-to: each step's metrics (stepScalars: sppo's names
 * and TRL's) in event files of a folder of this run's own, as transformers' TensorBoard callback makes one:
 * OUT/runs/<date>_<host> (or --logging-dir, as given), so a second run with the same OUT is a second run in
 * TensorBoard, not lost to the first. `beta`: the loss's, for TRL's reward names. Undefined without --report-to.
 */
export function stepReporter(v: { 'report-to'?: string[]; 'logging-dir'?: string }, out: string, label: string, beta?: number): ((m: object) => void) | undefined {
  const targets = reportTargets(v['report-to']);
  if (v['logging-dir'] !== undefined && !targets?.length) throw new UsageError('--logging-dir goes with --report-to tensorboard');
  if (!targets?.length) return undefined;
  let dir = v['logging-dir'];
  if (dir === undefined) {
    const name = runFolderName();
    dir = join(out, 'runs', name);
    for (let i = 2; existsSync(dir); i++) dir = join(out, 'runs', `${name}_${i}`); // two runs in one second
  }
  const w = new EventWriter(dir, { continueRun: false });
  console.error(`${label}: TensorBoard event files in ${dir} (tensorboard --logdir ${v['logging-dir'] ?? join(out, 'runs')})${targets.includes('wandb') ? `; ${wandbHint(dir)}` : ''}`);
  return (m) => {
    const { step, ...rest } = m as { step: number };
    w.scalars(step, stepScalars(rest, beta));
  };
}
