#!/usr/bin/env node
// Regenerates the "Last-iterate methods" section of docs/game-lab.md from the compiled game lab:
//   node node_modules/typescript/bin/tsc -p . && node scripts/game-lab-last-iterate.mjs [GAMES_FILE]
// Writes one plot per game, docs/game-lab/last-iterate-<game>.svg, and prints the markdown tables.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadGames } from '../dist/src/game/game.js';
import { runGame } from '../dist/src/game/lab.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const file = resolve(process.argv[2] ?? process.env.SPPO_GAMES ?? resolve(root, '../shared/fixtures/games/games.json'));
const games = await loadGames(file);
const e = (x) => (Math.abs(x) < 1e-12 ? '0' : x.toExponential(1));
const EXACT = ['sppo-exact', 'nash-md-exact', 'mpo-exact', 'omwu-exact', 'extragradient-exact'];

// 1. The exact methods at their defaults, T = 500, uniform start: last gap (and average gap).
let t0 = performance.now();
console.log('### Exact methods, defaults, T = 500, uniform start: last gap / average gap\n');
console.log(`| game | n | ${EXACT.join(' | ')} |`);
console.log(`|---|---|${EXACT.map(() => '---').join('|')}|`);
const sppoEta = 30 / Math.sqrt(500);
for (const g of games) {
  const cells = EXACT.map((m) => {
    const r = runGame(g, m, { iters: 500, trace: false });
    return `${e(r.lastGap)} / ${e(r.averageGap)}`;
  });
  console.log(`| ${g.name} | ${g.n} | ${cells.join(' | ')} |`);
}
console.error(`exact table: ${((performance.now() - t0) / 1000).toFixed(1)} s (sppo-exact eta = 30/sqrt(500) = ${sppoEta.toFixed(2)})`);

// 2. The same from random starts (seeds 0-2): the worst last gap over the seeds.
console.log('\n### Same, random starts (seeds 0, 1, 2): largest last gap of the three\n');
console.log(`| game | ${EXACT.join(' | ')} |`);
console.log(`|---|${EXACT.map(() => '---').join('|')}|`);
for (const g of games) {
  const cells = EXACT.map((m) => e(Math.max(...[0, 1, 2].map((seed) => runGame(g, m, { iters: 500, init: 'random', seed, trace: false }).lastGap))));
  console.log(`| ${g.name} | ${cells.join(' | ')} |`);
}

// 2b. How sensitive the goal is to extragradient's parameters: the largest last gap over the games at T = 500
// (uniform start) for the settings around the defaults.
console.log('\n### extragradient-exact around its defaults: largest last gap over the 16 games, T = 500, uniform start\n');
console.log('| eta | magnet every | tau 0.0025 | tau 0.005 | tau 0.01 |');
console.log('|---|---|---|---|---|');
let passing = 0;
for (const eta of [4.5, 5, 5.5]) {
  for (const k of [40, 50, 60, 80]) {
    const cells = [0.0025, 0.005, 0.01].map((tau) => {
      const m = Math.max(...games.map((g) => runGame(g, 'extragradient-exact', { iters: 500, eta, tau, magnetEvery: k, trace: false }).lastGap));
      if (m <= 1e-3) passing++;
      return m <= 1e-3 ? `**${e(m)}**` : e(m);
    });
    console.log(`| ${eta} | ${k} | ${cells.join(' | ')} |`);
  }
}
console.log(`\n${passing} of 36 settings reach <= 1e-3 on every game (bold).`);

// 3. Measured rates: the per-iteration factor of the last gap, fitted on log gap over the iterations where
// it lies in [1e-9, 1e-2] (omwu, extragradient at their defaults, T = 2000).
console.log('\n### Measured linear rate of the last gap (factor per iteration, fitted where 1e-9 <= gap <= 1e-2), T = 2000\n');
console.log('| game | omwu-exact | extragradient-exact |');
console.log('|---|---|---|');
const rate = (gaps) => {
  const pts = [];
  gaps.forEach((v, i) => { if (v >= 1e-9 && v <= 1e-2) pts.push([i + 1, Math.log(v)]); });
  if (pts.length < 20) return '-';
  const mx = pts.reduce((s, p) => s + p[0], 0) / pts.length;
  const my = pts.reduce((s, p) => s + p[1], 0) / pts.length;
  const slope = pts.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0) / pts.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return Math.exp(slope).toFixed(4);
};
for (const g of games) {
  const cells = ['omwu-exact', 'extragradient-exact'].map((m) => rate(runGame(g, m, { iters: 2000 }).trace.lastGap));
  console.log(`| ${g.name} | ${cells.join(' | ')} |`);
}

// 4. The sampled forms on the intransitive games, K = 5, T = 2000, eta = 0.1, exact judge, best-vs-worst,
// mean of seeds 0-2: average gap / last gap.
t0 = performance.now();
const SAMPLED = ['sppo-sampled', 'nash-md-sampled', 'mpo-sampled', 'omwu-sampled', 'extragradient-sampled'];
const intransitive = games.filter((g) => g.nash && Array.from(g.nash).filter((x) => x > 1e-9).length > 1);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log('\n### Sampled forms, K = 5, T = 2000, eta = 0.1, exact judge: average gap / last gap, mean of seeds 0-2\n');
console.log(`| game | ${SAMPLED.join(' | ')} |`);
console.log(`|---|${SAMPLED.map(() => '---').join('|')}|`);
const lastCols = SAMPLED.map(() => []);
for (const g of intransitive) {
  const cells = SAMPLED.map((m, j) => {
    const rs = [0, 1, 2].map((seed) => runGame(g, m, { iters: 2000, samples: 5, eta: 0.1, seed, trace: false }));
    const last = mean(rs.map((r) => r.lastGap));
    lastCols[j].push(last);
    return `${mean(rs.map((r) => r.averageGap)).toFixed(3)} / ${last.toFixed(3)}`;
  });
  console.log(`| ${g.name} | ${cells.join(' | ')} |`);
}
console.log(`| **mean last gap** | ${lastCols.map((c) => `**${mean(c).toFixed(3)}**`).join(' | ')} |`);
console.error(`sampled table: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

// 5. One plot per game: the five exact methods at their defaults, T = 500.
mkdirSync(resolve(root, 'docs/game-lab'), { recursive: true });
for (const g of games) {
  execFileSync(process.execPath, [resolve(root, 'dist/src/cli/main.js'), 'game', '--games', file, '--game', g.name, '--method', EXACT.join(','), '--iters', '500', '--plot', `docs/game-lab/last-iterate-${g.name}.svg`], { cwd: root, encoding: 'utf8' });
}
console.error(`wrote ${games.length} plots under docs/game-lab/`);
