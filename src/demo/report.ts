// The demo's report: summary rows, a text table in the shape of the paper's Table 1, and report.html with
// charts drawn server-side by vega-lite + vega as inline SVG (self-contained: no script, no network).
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { StyleMeasure } from './style_game.js';

export interface SummaryRow {
  method: string;
  iteration: number;
  win_rate: number;
  win_rate_se: number;
  lc_win_rate: number;
  avg_length: number;
}

export interface RowDetails extends Partial<StyleMeasure> {
  method: string;
  iteration: number;
  /** Share of held-out responses that are correct (gold rule 1). */
  correct: number;
  /** Share of each answer style among the held-out responses. */
  styles: Record<string, number>;
  /** Pairs trained on in this iteration (0 for iteration 0). */
  pairs?: number;
  /** The game played, correctness included (playedStyleGame, src/demo/style_winrates.ts): 2 max_s W_s - 1 and its standard error. */
  played_exploitability?: number;
  played_exploitability_se?: number;
}

export interface LossPoint {
  method: string;
  iteration: number;
  step: number;
  loss: number;
}

export interface ReportData {
  title: string;
  rows: SummaryRow[];
  details: RowDetails[];
  losses: LossPoint[];
  notes: string[];
}

const pct = (x: number): string => (Number.isFinite(x) ? (100 * x).toFixed(1) : 'n/a');

const fix3 = (x: number | undefined): string => (x !== undefined && Number.isFinite(x) ? x.toFixed(3) : 'n/a');

/**
 * Table 1's shape: model / iteration, LC win rate, win rate (± SE), average length; with `details`, the
 * style mix's exploitability in the gold style game (with the length term / pure cycle) too.
 */
export function formatTable(rows: readonly SummaryRow[], details?: readonly RowDetails[]): string {
  const detailOf = (r: SummaryRow): RowDetails | undefined => details?.find((x) => x.method === r.method && x.iteration === r.iteration);
  const head = ['method', 'iteration', 'LC win rate (%)', 'win rate (%)', 'avg. length', ...(details ? ['style exploitability (length / cycle)'] : [])];
  const body = rows.map((r) => {
    const d = detailOf(r);
    return [r.method, r.iteration === 0 ? '0 (starter)' : String(r.iteration), pct(r.lc_win_rate), `${pct(r.win_rate)} ± ${pct(r.win_rate_se)}`, r.avg_length.toFixed(1), ...(details ? [`${fix3(d?.style_exploitability)} / ${fix3(d?.style_exploitability_cycle)}`] : [])];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** A vega-lite spec drawn as SVG (server-side, no script in the page). */
export async function svgOf(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

export function chartSpecs(d: ReportData): { id: string; title: string; spec: TopLevelSpec }[] {
  const wr = d.rows.map((r) => ({ ...r, lo: r.win_rate - r.win_rate_se, hi: r.win_rate + r.win_rate_se }));
  const color = { field: 'method', type: 'nominal' as const, title: 'method' };
  const styleRows = d.details.flatMap((x) => [
    ...Object.entries(x.styles).map(([style, share]) => ({ method: x.method, iteration: x.iteration, style, share, mix: 'policy' })),
    ...Object.entries(x.style_equilibrium ?? {}).map(([style, share]) => ({ method: x.method, iteration: x.iteration, style, share, mix: 'equilibrium' })),
  ]);
  const exploitRows = d.details.flatMap((x) => [
    ...(x.style_exploitability === undefined ? [] : [{ method: x.method, iteration: x.iteration, exploitability: x.style_exploitability, game: 'with length term' }]),
    ...(x.style_exploitability_cycle === undefined ? [] : [{ method: x.method, iteration: x.iteration, exploitability: x.style_exploitability_cycle, game: 'pure cycle' }]),
    ...(x.played_exploitability === undefined ? [] : [{ method: x.method, iteration: x.iteration, exploitability: x.played_exploitability, game: 'game played' }]),
  ]);
  const correctRows = d.details.map((x) => ({ method: x.method, iteration: x.iteration, correct: x.correct }));
  const losses = d.losses.map((l) => ({ ...l, label: `iteration ${l.iteration}` }));
  const iterAxis = { field: 'iteration', type: 'quantitative' as const, title: 'iteration', axis: { tickMinStep: 1, format: 'd' } };
  return [
    {
      id: 'win-rate',
      title: 'Gold-judge win rate against the starter (± 1 SE)',
      spec: {
        $schema: SCHEMA, width: 460, height: 280, background: 'white', data: { values: wr },
        layer: [
          { mark: { type: 'line', point: true }, encoding: { x: iterAxis, y: { field: 'win_rate', type: 'quantitative', title: 'win rate', scale: { zero: false } }, color } },
          { mark: { type: 'errorbar', ticks: true }, encoding: { x: iterAxis, y: { field: 'lo', type: 'quantitative', title: 'win rate' }, y2: { field: 'hi' }, color } },
          { mark: { type: 'line', strokeDash: [4, 3] }, encoding: { x: iterAxis, y: { field: 'lc_win_rate', type: 'quantitative' }, color } },
        ],
      },
    },
    {
      id: 'loss',
      title: 'Training loss per optimizer step',
      spec: {
        $schema: SCHEMA, width: 460, height: 280, background: 'white', data: { values: losses },
        mark: { type: 'line', point: { size: 12 } },
        encoding: {
          x: { field: 'step', type: 'quantitative', title: 'optimizer step (all iterations)' },
          y: { field: 'loss', type: 'quantitative', title: 'loss' },
          color, strokeDash: { field: 'label', type: 'nominal', title: 'iteration' },
        },
      },
    },
    {
      id: 'length',
      title: 'Average response length on the held-out prompts (characters)',
      spec: {
        $schema: SCHEMA, width: 460, height: 280, background: 'white', data: { values: d.rows.map((r) => ({ ...r })) },
        mark: { type: 'line', point: true },
        encoding: { x: iterAxis, y: { field: 'avg_length', type: 'quantitative', title: 'average length', scale: { zero: false } }, color },
      },
    },
    {
      id: 'correct',
      title: 'Share of correct held-out answers (gold rule 1)',
      spec: {
        $schema: SCHEMA, width: 460, height: 280, background: 'white', data: { values: correctRows },
        mark: { type: 'line', point: true },
        encoding: { x: iterAxis, y: { field: 'correct', type: 'quantitative', title: 'correct', scale: { domain: [0, 1] } }, color },
      },
    },
    {
      id: 'styles',
      title: 'Answer styles of the held-out responses, each beside the equilibrium of the gold style game it is measured against',
      spec: {
        $schema: SCHEMA, background: 'white', data: { values: styleRows },
        mark: 'bar',
        encoding: {
          column: { field: 'method', type: 'nominal', title: null },
          x: { field: 'iteration', type: 'ordinal', title: 'iteration' },
          xOffset: { field: 'mix', type: 'nominal', sort: ['policy', 'equilibrium'] },
          y: { field: 'share', type: 'quantitative', title: 'share', stack: 'normalize' },
          color: { field: 'style', type: 'nominal', title: 'style', scale: { domain: ['terse', 'sentence', 'formatted', 'other'] } },
          opacity: { field: 'mix', type: 'ordinal', title: 'bar', scale: { domain: ['policy', 'equilibrium'], range: [1, 0.45] } },
        },
        width: 100, height: 240,
      } as TopLevelSpec,
    },
    {
      id: 'exploitability',
      title: 'Exploitability of the style mix (2 max_j P(j > mix) - 1; 0 at the equilibrium; game played: correctness included)',
      spec: {
        $schema: SCHEMA, width: 460, height: 280, background: 'white', data: { values: exploitRows },
        mark: { type: 'line', point: true },
        encoding: {
          x: iterAxis,
          y: { field: 'exploitability', type: 'quantitative', title: 'exploitability', scale: { domainMin: 0 } },
          color,
          strokeDash: { field: 'game', type: 'nominal', title: 'gold style game', scale: { domain: ['with length term', 'pure cycle', 'game played'], range: [[1, 0], [4, 3], [1, 3]] } },
        },
      },
    },
  ];
}

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A style mix as percentages, terse / sentence / formatted / other ('n/a' when there is none). */
export const formatMix = (m: Record<string, number> | undefined): string => (m ? ['terse', 'sentence', 'formatted', 'other'].map((k) => (100 * (m[k] ?? 0)).toFixed(0)).join(' / ') : 'n/a');

/** report.html: the table, the charts (inline SVG) and the notes. */
export async function reportHtml(d: ReportData): Promise<string> {
  const charts = chartSpecs(d);
  const svgs = await Promise.all(charts.map((c) => svgOf(c.spec)));
  const rows = d.rows
    .map((r) => {
      const x = d.details.find((y) => y.method === r.method && y.iteration === r.iteration);
      return `<tr><td>${esc(r.method)}</td><td>${r.iteration}</td><td>${pct(r.lc_win_rate)}</td><td>${pct(r.win_rate)} ± ${pct(r.win_rate_se)}</td><td>${r.avg_length.toFixed(1)}</td><td>${x ? pct(x.correct) : 'n/a'}</td><td>${formatMix(x?.styles)}</td><td>${formatMix(x?.style_equilibrium)}</td><td>${fix3(x?.style_exploitability)}</td><td>${fix3(x?.style_exploitability_cycle)}</td><td>${fix3(x?.played_exploitability)} ± ${fix3(x?.played_exploitability_se)}</td></tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(d.title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.4em}</style>
</head><body>
<h1>${esc(d.title)}</h1>
<table><thead><tr><th>method</th><th>iteration</th><th>LC win rate (%)</th><th>win rate (%) ± SE</th><th>avg. length</th><th>correct (%)</th><th>styles terse / sentence / formatted / other (%)</th><th>equilibrium of the gold style game (%)</th><th>style exploitability</th><th>same, pure cycle</th><th>game played ± SE</th></tr></thead><tbody>
${rows}
</tbody></table>
${charts.map((c, i) => `<figure class="chart" id="${c.id}"><figcaption>${esc(c.title)}</figcaption>\n${svgs[i]}\n</figure>`).join('\n')}
<ul>${d.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>
</body></html>
`;
}
