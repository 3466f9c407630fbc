// The game lab's claims: SPPO's exact update reaches the Nash equilibrium of every fixture game, its
// average iterate's gap falls like 1/sqrt(T), and on a transitive (Bradley-Terry) game every method finds
// the best response.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bradleyTerryGame, loadGames } from '../src/game/game.js';
import { exactGapBound } from '../src/game/exact.js';
import { runGame } from '../src/game/lab.js';
import { METHODS } from '../src/game/methods.js';
import { GAMES_FILE } from './game-fixture.js';

test('sppo-exact with its defaults: average gap <= 1e-2 on every game, within seconds; L1 within 2e-2 where the equilibrium is well separated', async () => {
  const games = await loadGames(GAMES_FILE);
  const t0 = performance.now();
  const results = games.map((g) => runGame(g, 'sppo-exact', { trace: false }));
  const seconds = (performance.now() - t0) / 1000;
  assert.ok(seconds < 10, `whole file took ${seconds} s`);
  for (const r of results) assert.ok(r.averageGap <= 1e-2, `${r.name}: average gap ${r.averageGap}`);
  for (const name of ['rock-paper-scissors', 'condorcet-winner', 'bradley-terry-6']) {
    const r = results.find((x) => x.name === name);
    if (!r) continue; // another fixture set (SPPO_GAMES) may not have it
    assert.ok(r.l1ToNash !== null && r.l1ToNash <= 2e-2, `${name}: L1 to nash ${r.l1ToNash}`);
  }
  const condorcet = results.find((x) => x.name === 'condorcet-winner');
  if (condorcet) assert.ok(condorcet.averagePolicy[0]! > 0.99, 'the policy concentrates on the Condorcet winner');
});

test('sppo-exact obeys the Hedge bound gap <= 2 (ln n / (eta T) + eta / 8) from a uniform start, for any eta', async () => {
  const games = await loadGames(GAMES_FILE);
  for (const g of games) {
    for (const [iters, eta] of [[100, 0.05], [400, 0.3], [2000, 1], [1000, Math.sqrt((8 * Math.log(g.n)) / 1000)]] as const) {
      const r = runGame(g, 'sppo-exact', { iters, eta, trace: false });
      assert.ok(r.averageGap <= exactGapBound(g.n, iters, eta) + 1e-12, `${g.name} T=${iters} eta=${eta}: ${r.averageGap} > ${exactGapBound(g.n, iters, eta)}`);
    }
  }
});

test('the gap of the average iterate falls like 1/sqrt(T) with eta = c / sqrt(T)', async () => {
  const games = (await loadGames(GAMES_FILE)).filter((g) => g.n >= 3);
  const Ts = [250, 1000, 4000, 16000];
  const c = 30;
  let checked = 0;
  // From a random start, so that rock-paper-scissors does not sit at its equilibrium from the first step.
  for (const g of games.slice(0, 8)) {
    const gaps = Ts.map((T) => runGame(g, 'sppo-exact', { iters: T, eta: c / Math.sqrt(T), init: 'random', seed: 1, trace: false }).averageGap);
    const x = Ts.map(Math.log);
    const y = gaps.map(Math.log);
    const mx = x.reduce((a, b) => a + b) / x.length;
    const my = y.reduce((a, b) => a + b) / y.length;
    const slope = x.reduce((s, xi, i) => s + (xi - mx) * (y[i]! - my), 0) / x.reduce((s, xi) => s + (xi - mx) ** 2, 0);
    assert.ok(slope < -0.35 && slope > -0.75, `${g.name}: log-log slope ${slope.toFixed(3)} (gaps ${gaps.map((v) => v.toExponential(2)).join(', ')})`);
    const scaled = gaps.map((v, i) => v * Math.sqrt(Ts[i]!));
    assert.ok(Math.max(...scaled) / Math.min(...scaled) < 3, `${g.name}: gap * sqrt(T) = ${scaled.map((v) => v.toFixed(3)).join(', ')} is not flat`);
    for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i]! < gaps[i - 1]!, `${g.name}: gap did not fall from T=${Ts[i - 1]} to T=${Ts[i]}`);
    checked++;
  }
  assert.ok(checked >= 3);
});

test('on Bradley-Terry games (transitive) every method finds the best response (nash-md: its regularised equilibrium, next test)', async () => {
  const fixture = (await loadGames(GAMES_FILE)).filter((g) => g.name.startsWith('bradley-terry'));
  const games = [...fixture, bradleyTerryGame('bt-5', [0.3, -1, 1.2, 0.8, 0])];
  for (const g of games) {
    // The best response of a transitive game: the response that beats every other one.
    let best = -1;
    for (let i = 0; i < g.n && best < 0; i++) {
      let beatsAll = true;
      for (let j = 0; j < g.n; j++) if (j !== i && g.P[i * g.n + j]! <= 0.5) beatsAll = false;
      if (beatsAll) best = i;
    }
    assert.ok(best >= 0, `${g.name} has a Condorcet winner`);
    for (const method of METHODS.filter((m) => !m.startsWith('nash-md'))) {
      for (const seed of [0, 1]) {
        const r = runGame(g, method, { seed, trace: false });
        const argmax = r.lastPolicy.indexOf(Math.max(...r.lastPolicy));
        assert.equal(argmax, best, `${g.name} ${method} seed ${seed}: last policy ${Array.from(r.lastPolicy, (p) => p.toFixed(3))}`);
        assert.ok(r.lastPolicy[best]! > 0.9, `${g.name} ${method} seed ${seed}: mass on the best ${r.lastPolicy[best]}`);
        assert.ok(r.lastGap < 0.02, `${g.name} ${method}: last gap ${r.lastGap}`);
      }
    }
  }
});

test('sampled runs are reproducible from the seed and differ across seeds', async () => {
  const g = (await loadGames(GAMES_FILE))[0]!;
  for (const method of METHODS.filter((m) => !m.endsWith('-exact'))) {
    const a = runGame(g, method, { iters: 200, seed: 5, judge: 'bernoulli', trace: false });
    const b = runGame(g, method, { iters: 200, seed: 5, judge: 'bernoulli', trace: false });
    const c = runGame(g, method, { iters: 200, seed: 6, judge: 'bernoulli', trace: false });
    assert.deepEqual(Array.from(a.averagePolicy), Array.from(b.averagePolicy));
    assert.notDeepEqual(Array.from(a.averagePolicy), Array.from(c.averagePolicy));
  }
});
