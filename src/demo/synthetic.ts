// A small made-up report (for the report's tests and for looking at the charts without running the demo).
import type { ReportData } from './report.js';
import { measureStyles } from './style_game.js';

export function syntheticReport(): ReportData {
  const rows = ['sppo', 'dpo'].flatMap((method, m) => [0, 1, 2].map((iteration) => ({ method, iteration, win_rate: 0.5 + 0.05 * iteration * (m + 1), win_rate_se: iteration ? 0.02 : 0, lc_win_rate: 0.5 + 0.04 * iteration, avg_length: 9 + iteration })));
  return {
    title: 'synthetic report',
    rows,
    details: rows.map((r) => {
      const styles = { terse: 0.2, sentence: 0.5 + 0.1 * r.iteration, formatted: 0.25 - 0.1 * r.iteration, other: 0.05 };
      return { method: r.method, iteration: r.iteration, correct: 0.4 + 0.1 * r.iteration, styles, ...measureStyles(styles, ['8', 'It is 8.', 'Answer: 8', '8.']), played_exploitability: 0.02 + 0.01 * r.iteration, played_exploitability_se: 0.008 };
    }),
    losses: [1, 2, 3, 4].map((step) => ({ method: 'sppo', iteration: step <= 2 ? 1 : 2, step, loss: 1 / step })),
    notes: ['a <note> & more'],
  };
}

