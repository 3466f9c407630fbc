// An SVG plot of the duality gap per iteration, one line per method, drawn by vega-lite + vega.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface GapSeries {
  method: string;
  averageGap: ArrayLike<number>;
  lastGap?: ArrayLike<number>;
}

/** Gaps below this (0 up to rounding, e.g. rock-paper-scissors from uniform) are drawn at it, for the log scale. */
export const GAP_FLOOR = 1e-6;

/** About `points` iteration numbers (1-based), spread evenly on a log scale, always including 1 and T. */
export function logSpacedIterations(T: number, points = 300): number[] {
  const out = new Set<number>([1, T]);
  for (let i = 0; i < points; i++) out.add(Math.max(1, Math.min(T, Math.round(Math.exp((Math.log(T) * i) / (points - 1))))));
  return [...out].sort((a, b) => a - b);
}

export function gapPlotSpec(title: string, series: GapSeries[], points = 300): TopLevelSpec {
  const T = Math.max(1, ...series.map((s) => s.averageGap.length));
  const values: Array<{ iteration: number; gap: number; method: string; policy: string }> = [];
  for (const s of series) {
    const curves: Array<[string, ArrayLike<number>]> = [['average', s.averageGap]];
    if (s.lastGap) curves.push(['last', s.lastGap]);
    for (const [policy, gaps] of curves) {
      for (const t of logSpacedIterations(gaps.length, points)) {
        values.push({ iteration: t, gap: Math.max(GAP_FLOOR, gaps[t - 1]!), method: s.method, policy });
      }
    }
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: `duality gap 2 max_j (P pi)_j - 1; values below ${GAP_FLOOR} drawn at ${GAP_FLOOR}` },
    width: 560,
    height: 340,
    background: 'white',
    data: { values },
    mark: { type: 'line', strokeWidth: 1.6, clip: true },
    encoding: {
      x: { field: 'iteration', type: 'quantitative', scale: { type: 'log', domain: [1, T], nice: false }, title: 'iteration t' },
      y: { field: 'gap', type: 'quantitative', scale: { type: 'log' }, axis: { format: '.0e' }, title: 'duality gap' },
      color: { field: 'method', type: 'nominal', title: 'method', legend: { labelLimit: 400 } },
      strokeDash: { field: 'policy', type: 'nominal', title: 'policy', scale: { domain: ['average', 'last'], range: [[1, 0], [4, 3]] } },
    },
  };
}

/** Renders the plot to an SVG string (headless: vega's 'none' renderer, no canvas needed). */
export async function gapPlotSvg(title: string, series: GapSeries[], points = 300): Promise<string> {
  const spec = compile(gapPlotSpec(title, series, points)).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
