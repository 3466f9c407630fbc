// The HTML report of an `sppo run` directory (`sppo report RUN_DIR`), drawn as the demo's report is (vega-lite
// specs rendered server-side to inline SVG by report.ts's svgOf; the page is self-contained). From the run's
// artifacts: iter-t/eval.json (win rate and LC win rate with standard errors, wins / losses / ties, the
// evaluation judge's counts), iter-t/train-metrics.jsonl (loss and margin per optimizer step),
// iter-t/generations.jsonl (response lengths); and the tables of any `sppo bench` reports found under the run
// directory (report.json of alpaca-eval and arena-hard, results.json of mt-bench).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { esc, SCHEMA, svgOf } from './report.js';

export class RunReportError extends Error {
  override name = 'RunReportError';
}

export interface IterationRow {
  iteration: number;
  n: number | null;
  winRate: number | null;
  standardError: number | null;
  lcWinRate: number | null;
  avgLength: number | null;
  avgReferenceLength: number | null;
  nWins: number | null;
  nLosses: number | null;
  nTies: number | null;
  /** The evaluation judge's verdict counts (an HTTP judge). */
  judge?: { total: number; unparseable: number; identical?: number; byMethod?: Record<string, number> };
}

export interface StepPoint {
  iteration: number;
  /** Optimizer step over the whole run. */
  step: number;
  loss: number;
  margin: number;
}

export interface LengthPoint {
  iteration: number;
  /** Mean response length (characters) of the iteration's generations. */
  length: number;
}

export interface BenchTable {
  /** Where the report was found, relative to the run directory. */
  path: string;
  benchmark: string;
  rows: [string, string][];
}

export interface RunReportData {
  runDir: string;
  iterations: IterationRow[];
  steps: StepPoint[];
  lengths: LengthPoint[];
  benches: BenchTable[];
}

function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8').split('\n').flatMap((l, i) => {
    if (l.trim() === '') return [];
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch (e) {
      throw new RunReportError(`${path}:${i + 1}: not JSON (${(e as Error).message})`);
    }
  });
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new RunReportError(`${path}: cannot read (${(e as Error).message})`);
  }
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const chars = (s: string): number => [...s].length;

/** The `sppo bench` reports under dir (two folders deep at most). */
function findBenchReports(root: string, dir: string, depth: number, out: BenchTable[]): void {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      if (depth > 0 && !/^iter-\d+$/.test(name)) findBenchReports(root, p, depth - 1, out);
      continue;
    }
    if (name !== 'report.json' && name !== 'results.json') continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    } catch {
      continue;
    }
    const f = (x: unknown, d = 2): string => (typeof x === 'number' ? (Number.isFinite(x) ? x.toFixed(d) : 'n/a') : x === null || x === undefined ? 'n/a' : String(x));
    const judge = o.judge as { model?: string; verdicts?: { total: number; unparseable: number } } | undefined;
    const jrow: [string, string][] = judge ? [['judge', String(judge.model)], ['unparseable verdicts', `${judge.verdicts?.unparseable} of ${judge.verdicts?.total}`]] : [];
    const path = relative(root, p);
    if (o.benchmark === 'alpaca_eval_2') {
      out.push({ path, benchmark: 'AlpacaEval 2.0', rows: [['model', f(o.name)], ['length-controlled win rate (%)', `${f(o.length_controlled_winrate)} (lc_standard_error ${f(o.lc_standard_error)}, bootstrap ${f(o.lc_standard_error_bootstrap)})`], ['win rate (%)', `${f(o.win_rate)} ± ${f(o.standard_error)}`], ['n_total', f(o.n_total, 0)], ['avg_length', f(o.avg_length, 0)], ...jrow] });
    } else if (o.benchmark === 'mt_bench') {
      const cats = Object.entries((o.categories ?? {}) as Record<string, number>).map(([c, x]) => [`  ${c}`, f(x)] as [string, string]);
      out.push({ path, benchmark: 'MT-Bench', rows: [['model', f(o.model)], ['first turn', f(o.first_turn)], ['second turn', f(o.second_turn)], ['average', f(o.average)], ...cats, ...jrow] });
    } else if (o.benchmark === 'arena-hard-v0.1') {
      out.push({ path, benchmark: 'Arena-Hard v0.1', rows: [['model', f(o.model)], ['score vs gpt-4-0314', f(o.score)], ['95% CI', `${f(o.lower)} - ${f(o.upper)}`], ['battles', f(o.battles, 0)], ...jrow] });
    }
  }
}

/** Reads what the report shows from a run directory; a folder that is not one is an error naming it. */
export function readRunReport(runDir: string): RunReportData {
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) throw new RunReportError(`${runDir}: no such run directory`);
  const iters = readdirSync(runDir)
    .map((n) => /^iter-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  if (iters.length === 0 && !existsSync(join(runDir, 'run.json'))) throw new RunReportError(`${runDir}: not an sppo run directory (no run.json, no iter-N folder)`);
  const iterations: IterationRow[] = [];
  const steps: StepPoint[] = [];
  const lengths: LengthPoint[] = [];
  let step = 0;
  for (const t of iters) {
    const dir = join(runDir, `iter-${t}`);
    const evalPath = join(dir, 'eval.json');
    if (existsSync(evalPath)) {
      const e = readJson(evalPath);
      const js = e.judgeStats as { verdicts?: IterationRow['judge'] } | undefined;
      iterations.push({
        iteration: t, n: num(e.n), winRate: num(e.winRate), standardError: num(e.standardError), lcWinRate: num(e.lcWinRate), avgLength: num(e.avgLength),
        avgReferenceLength: num(e.avgReferenceLength), nWins: num(e.nWins), nLosses: num(e.nLosses), nTies: num(e.nTies), ...(js?.verdicts ? { judge: js.verdicts } : {}),
      });
    }
    const metrics = join(dir, 'train-metrics.jsonl');
    if (existsSync(metrics)) {
      for (const m of readJsonl(metrics)) {
        const loss = num(m.loss);
        const margin = num(m.margin);
        if (loss === null || margin === null) continue;
        steps.push({ iteration: t, step: ++step, loss, margin });
      }
    }
    const gens = join(dir, 'generations.jsonl');
    if (existsSync(gens)) {
      let s = 0;
      let n = 0;
      for (const g of readJsonl(gens)) {
        for (const r of (g.responses ?? []) as { text?: unknown }[]) {
          if (typeof r?.text === 'string') {
            s += chars(r.text);
            n++;
          }
        }
      }
      if (n) lengths.push({ iteration: t, length: s / n });
    }
  }
  const benches: BenchTable[] = [];
  findBenchReports(runDir, runDir, 2, benches);
  return { runDir, iterations, steps, lengths, benches };
}

export function runChartSpecs(d: RunReportData): { id: string; title: string; spec: TopLevelSpec }[] {
  const iterAxis = { field: 'iteration', type: 'quantitative' as const, title: 'iteration', axis: { tickMinStep: 1, format: 'd' } };
  const charts: { id: string; title: string; spec: TopLevelSpec }[] = [];
  const wr = d.iterations.filter((r) => r.winRate !== null).flatMap((r) => {
    const se = r.standardError ?? 0;
    return [
      { iteration: r.iteration, metric: 'win rate', value: r.winRate!, lo: r.winRate! - se, hi: r.winRate! + se },
      ...(r.lcWinRate !== null ? [{ iteration: r.iteration, metric: 'LC win rate', value: r.lcWinRate, lo: r.lcWinRate, hi: r.lcWinRate }] : []),
    ];
  });
  if (wr.length) {
    charts.push({
      id: 'win-rate',
      title: 'Win rate against pi_0 (± 1 SE) and length-controlled win rate, per iteration',
      spec: {
        $schema: SCHEMA, width: 460, height: 280, background: 'white', data: { values: wr },
        layer: [
          { mark: { type: 'line', point: true }, encoding: { x: iterAxis, y: { field: 'value', type: 'quantitative', title: 'rate', scale: { zero: false } }, color: { field: 'metric', type: 'nominal', title: null } } },
          { mark: { type: 'errorbar', ticks: true }, encoding: { x: iterAxis, y: { field: 'lo', type: 'quantitative', title: 'rate' }, y2: { field: 'hi' }, color: { field: 'metric', type: 'nominal', title: null } } },
        ],
      },
    });
  }
  for (const [id, field, title] of [['loss', 'loss', 'Training loss per optimizer step'], ['margin', 'margin', 'Margin (mean a_w - a_l) per optimizer step']] as const) {
    if (!d.steps.length) break;
    charts.push({
      id,
      title,
      spec: {
        $schema: SCHEMA, width: 460, height: 260, background: 'white', data: { values: d.steps.map((s) => ({ ...s, label: `iteration ${s.iteration}` })) },
        mark: { type: 'line', point: { size: 12 } },
        encoding: { x: { field: 'step', type: 'quantitative', title: 'optimizer step (all iterations)' }, y: { field, type: 'quantitative', title: field }, color: { field: 'label', type: 'nominal', title: 'iteration' } },
      },
    });
  }
  const lens = [
    ...d.lengths.map((l) => ({ iteration: l.iteration, what: 'generated', length: l.length })),
    ...d.iterations.filter((r) => r.avgLength !== null).map((r) => ({ iteration: r.iteration, what: 'held-out (eval)', length: r.avgLength! })),
  ];
  if (lens.length) {
    charts.push({
      id: 'length',
      title: 'Response length per iteration (characters)',
      spec: {
        $schema: SCHEMA, width: 460, height: 260, background: 'white', data: { values: lens },
        mark: { type: 'line', point: true },
        encoding: { x: iterAxis, y: { field: 'length', type: 'quantitative', title: 'characters', scale: { zero: false } }, color: { field: 'what', type: 'nominal', title: null } },
      },
    });
  }
  const verdicts = d.iterations.flatMap((r) =>
    r.nWins === null ? [] : [
      { iteration: r.iteration, verdict: 'win', count: r.nWins },
      { iteration: r.iteration, verdict: 'loss', count: r.nLosses ?? 0 },
      { iteration: r.iteration, verdict: 'tie', count: r.nTies ?? 0 },
      ...(r.judge ? [{ iteration: r.iteration, verdict: 'unparseable (judge)', count: r.judge.unparseable }] : []),
    ],
  );
  if (verdicts.length) {
    charts.push({
      id: 'verdicts',
      title: 'Evaluation verdicts per iteration (against pi_0)',
      spec: {
        $schema: SCHEMA, width: 460, height: 260, background: 'white', data: { values: verdicts },
        mark: 'bar',
        encoding: {
          x: { field: 'iteration', type: 'ordinal', title: 'iteration' },
          y: { field: 'count', type: 'quantitative', title: 'verdicts' },
          color: { field: 'verdict', type: 'nominal', title: 'verdict', scale: { domain: ['win', 'tie', 'loss', 'unparseable (judge)'] } },
          xOffset: { field: 'verdict' },
        },
      } as TopLevelSpec,
    });
  }
  return charts;
}

const pct = (x: number | null): string => (x === null ? 'n/a' : (100 * x).toFixed(1));

export async function runReportHtml(d: RunReportData): Promise<string> {
  const charts = runChartSpecs(d);
  const svgs = await Promise.all(charts.map((c) => svgOf(c.spec)));
  const title = `sppo run: ${d.runDir}`;
  const rows = d.iterations
    .map((r) => `<tr><td>${r.iteration}</td><td>${r.n ?? 'n/a'}</td><td>${pct(r.winRate)} ± ${pct(r.standardError)}</td><td>${pct(r.lcWinRate)}</td><td>${r.nWins ?? 'n/a'} / ${r.nLosses ?? 'n/a'} / ${r.nTies ?? 'n/a'}</td><td>${r.avgLength === null ? 'n/a' : r.avgLength.toFixed(1)}</td><td>${r.judge ? `${r.judge.unparseable} of ${r.judge.total}` : ''}</td></tr>`)
    .join('\n');
  const benches = d.benches
    .map((b) => `<h3>${esc(b.benchmark)} <small>(${esc(b.path)})</small></h3>\n<table class="bench">${b.rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.4em}</style>
</head><body>
<h1>${esc(title)}</h1>
${d.iterations.length ? `<table id="iterations"><thead><tr><th>iteration</th><th>n</th><th>win rate (%) ± SE</th><th>LC win rate (%)</th><th>wins / losses / ties</th><th>avg. length</th><th>unparseable verdicts</th></tr></thead><tbody>\n${rows}\n</tbody></table>` : '<p>No evaluation yet (no iter-N/eval.json).</p>'}
${charts.map((c, i) => `<figure class="chart" id="${c.id}"><figcaption>${esc(c.title)}</figcaption>\n${svgs[i]}\n</figure>`).join('\n')}
${benches ? `<h2>Benchmarks</h2>\n${benches}` : ''}
</body></html>
`;
}
