// `sppo report RUN_DIR`: the HTML report of an `sppo run` directory (src/demo/run_report.ts).
import { join, resolve } from 'node:path';
import { readRunReport, runReportHtml, runChartSpecs } from '../demo/run_report.js';
import { writeFileAtomic } from '../util/files.js';
import { parseCommand } from './args.js';
import { UsageError } from './usage.js';

export const summary = 'HTML report of an sppo run directory (win rates, loss, margin, lengths, verdicts, benchmarks)';

const HELP = `usage: sppo report RUN_DIR [--out FILE]

Writes a self-contained HTML report of an 'sppo run' directory (charts drawn as inline SVG, no script): the
win rate against pi_0 with its standard error and the length-controlled win rate per iteration, the training
loss and margin per optimizer step, response lengths, the evaluation verdicts (wins / losses / ties, and the
unparseable verdicts of an LLM judge), and the tables of any 'sppo bench' reports found under RUN_DIR.

options:
  --out FILE     where the report goes (default RUN_DIR/report.html)
  -h, --help     this help
`;

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand('report', argv, { out: { type: 'string' } }, HELP, { positionals: true });
  if (!parsed) return;
  if (parsed.positionals.length !== 1) throw new UsageError(`give one run directory (sppo report --help)`);
  const dir = resolve(parsed.positionals[0]!);
  const data = readRunReport(dir);
  const out = parsed.values.out ?? join(dir, 'report.html');
  writeFileAtomic(out, await runReportHtml(data));
  console.error(`sppo report: ${data.iterations.length} evaluated iterations, ${data.steps.length} optimizer steps, ${runChartSpecs(data).length} charts, ${data.benches.length} benchmark reports -> ${out}`);
}
