// --report-to (sppo run, train, sft), as TRL's report_to: where the metrics go besides the JSONL files.
// tensorboard: TensorBoard event files (src/util/tensorboard.ts); wandb: the same files, with the
// `wandb sync --sync-tensorboard` command that sends them to Weights & Biases; none: nothing.
import { join } from 'node:path';
import { REPORT_TARGETS, numericFields, type ReportTarget } from '../sppo/tracking.js';
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

/**
 * The per-step writer of `sppo train` / `sppo sft` with --report-to: each step's metrics as train/<metric> in
 * event files under DIR (--logging-dir, default OUT/tensorboard); steps already there (a resumed --checkpoint-dir
 * run) are not written twice. Undefined without --report-to.
 */
export function stepReporter(v: { 'report-to'?: string[]; 'logging-dir'?: string }, out: string, label: string): ((m: object) => void) | undefined {
  const targets = reportTargets(v['report-to']);
  if (v['logging-dir'] !== undefined && !targets?.length) throw new UsageError('--logging-dir goes with --report-to tensorboard');
  if (!targets?.length) return undefined;
  const dir = v['logging-dir'] ?? join(out, 'tensorboard');
  const w = new EventWriter(dir);
  console.error(`${label}: TensorBoard event files in ${dir} (tensorboard --logdir ${dir})${targets.includes('wandb') ? `; for Weights & Biases: wandb sync --sync-tensorboard ${dir}` : ''}`);
  return (m) => {
    const { step, ...rest } = m as { step: number };
    w.scalars(step, Object.fromEntries(Object.entries(numericFields(rest)).map(([k, x]) => [`train/${k}`, x])));
  };
}
