// GET /metrics: the engine's counters and gauges in Prometheus' text format.
import type { Engine } from './engine.js';

export function metricsText(e: Engine): string {
  const lines = [
    ['sppo_running_sequences', 'gauge', 'sequences decoding now', e.batchSize],
    ['sppo_queued_requests', 'gauge', 'requests waiting to join the batch', e.queued],
    ['sppo_queue_backlog_requests', 'gauge', "requests waiting beyond the batch's free rows (what --max-queue limits)", e.backlog],
    ['sppo_generated_tokens_total', 'counter', 'tokens generated', e.tokensOut],
    ['sppo_decode_steps_total', 'counter', 'engine steps that sampled tokens', e.steps],
    ['sppo_engine_busy_seconds_total', 'counter', 'seconds the engine spent in steps', e.busyMs / 1000],
    ['sppo_cancelled_requests_total', 'counter', 'requests cancelled (client gone, timeout)', e.aborted],
    ['sppo_admissions_total', 'counter', 'prefills of new requests', e.counts.admissions],
    ['sppo_compactions_total', 'counter', "compactions of the batch's KV cache timeline", e.counts.compactions],
  ] as const;
  const head = (name: string, type: string, help: string): string => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
  const [before, after] = [lines.slice(0, 7), lines.slice(7)];
  return before.map(([name, type, help, v]) => `${head(name, type, help)}${name} ${v}\n`).join('') +
    head('sppo_engine_part_seconds_total', 'counter', 'seconds of the steps by part') +
    Object.entries(e.timings).map(([k, v]) => `sppo_engine_part_seconds_total{part="${k}"} ${v / 1000}\n`).join('') +
    after.map(([name, type, help, v]) => `${head(name, type, help)}${name} ${v}\n`).join('');
}
