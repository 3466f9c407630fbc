#!/usr/bin/env node
// Regenerates the figures and tables of docs/game-lab.md from the compiled game lab (no npm needed):
//   node node_modules/typescript/bin/tsc -p . && node scripts/game-lab.mjs [GAMES_FILE]
// Writes docs/game-lab-rps.svg and docs/game-lab-random.svg and prints the markdown tables.
import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadGames } from '../dist/src/game/game.js';
import { runGame } from '../dist/src/game/lab.js';
import { winRates } from '../dist/src/game/measures.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const file = resolve(process.argv[2] ?? process.env.SPPO_GAMES ?? resolve(root, '../shared/fixtures/games/games.json'));
const cli = (...args) => execFileSync(process.execPath, [resolve(root, 'dist/src/cli/main.js'), 'game', '--games', file, ...args], { cwd: root, encoding: 'utf8' });

// 1. The plots: every method at its defaults for T = 2000 iterations, K = 5.
cli('--game', 'rock-paper-scissors', '--method', 'all', '--iters', '2000', '--init', 'random', '--plot', 'docs/game-lab-rps.svg');
cli('--game', 'random-7-8', '--method', 'all', '--iters', '2000', '--plot', 'docs/game-lab-random.svg');
console.error('wrote docs/game-lab-rps.svg, docs/game-lab-random.svg');

// 2. sppo-exact with its defaults on the whole file.
const games = await loadGames(file);
let t0 = performance.now();
const exact = games.map((g) => runGame(g, 'sppo-exact', { trace: false }));
const seconds = (performance.now() - t0) / 1000;
const e = (x) => (x === null ? '-' : Math.abs(x) < 1e-9 ? '0' : x.toExponential(1));
console.log(`### sppo-exact, defaults (T = 20000, eta = 30/sqrt(T) = 0.212): ${seconds.toFixed(2)} s for the file\n`);
console.log('| game | n | support of nash | average gap | last gap | L1 to nash |');
console.log('|---|---|---|---|---|---|');
for (const [i, r] of exact.entries()) {
  const g = games[i];
  const support = g.nash ? Array.from(g.nash).filter((x) => x > 1e-9).length : '-';
  console.log(`| ${g.name} | ${g.n} | ${support} | ${e(r.averageGap)} | ${e(r.lastGap)} | ${e(r.l1ToNash)} |`);
}

// 3. The sampled methods on the intransitive games (equilibrium with more than one response), K = 5,
// T = 2000, eta = 1/beta = 0.1, mean over 5 seeds; sppo-exact at the same T for reference.
const intransitive = games.filter((g) => g.nash && Array.from(g.nash).filter((x) => x > 1e-9).length > 1);
const seeds = [0, 1, 2, 3, 4];
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
for (const judge of ['exact', 'bernoulli']) {
  t0 = performance.now();
  console.log(`\n### K = 5, T = 2000, eta = 0.1, judge = ${judge}: average gap / last gap, mean of 5 seeds\n`);
  console.log('| game | n | sppo-exact (T = 2000) | sppo-sampled | dpo | ipo |');
  console.log('|---|---|---|---|---|---|');
  const cols = { 'sppo-sampled': [], dpo: [], ipo: [] };
  for (const g of intransitive) {
    const ex = runGame(g, 'sppo-exact', { iters: 2000, trace: false });
    const cells = [];
    for (const m of ['sppo-sampled', 'dpo', 'ipo']) {
      const rs = seeds.map((seed) => runGame(g, m, { iters: 2000, samples: 5, eta: 0.1, judge, seed, trace: false }));
      const avg = mean(rs.map((r) => r.averageGap));
      const last = mean(rs.map((r) => r.lastGap));
      cols[m].push(avg);
      cells.push(`${avg.toFixed(3)} / ${last.toFixed(3)}`);
    }
    console.log(`| ${g.name} | ${g.n} | ${ex.averageGap.toFixed(3)} / ${ex.lastGap.toFixed(3)} | ${cells.join(' | ')} |`);
  }
  console.log(`| **mean average gap** | | | ${Object.values(cols).map((c) => `**${mean(c).toFixed(3)}**`).join(' | ')} |`);
  console.error(`judge ${judge}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// 4. Why L1 lags the gap on random games: the smallest margin by which a response outside the
// equilibrium's support loses to it, and L1 at 10x the iterations.
console.log('\n### L1 versus gap on the random games (sppo-exact, defaults, then T = 200000)\n');
console.log('| game | support | smallest off-support margin 1/2 - (P nash)_j | gap, L1 at T = 20000 | gap, L1 at T = 200000 |');
console.log('|---|---|---|---|---|');
for (const g of games.filter((x) => x.name.startsWith('random') && x.nash)) {
  const w = winRates(g, g.nash);
  let margin = Infinity;
  for (let j = 0; j < g.n; j++) if (g.nash[j] <= 1e-9) margin = Math.min(margin, 0.5 - w[j]);
  const a = runGame(g, 'sppo-exact', { trace: false });
  const b = runGame(g, 'sppo-exact', { iters: 200000, trace: false });
  const support = Array.from(g.nash).filter((x) => x > 1e-9).length;
  console.log(`| ${g.name} | ${support} of ${g.n} | ${Number.isFinite(margin) ? margin.toExponential(1) : '-'} | ${e(a.averageGap)}, ${e(a.l1ToNash)} | ${e(b.averageGap)}, ${e(b.l1ToNash)} |`);
}
