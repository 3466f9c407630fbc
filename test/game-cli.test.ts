// `sppo game`: the JSON it writes, the errors for bad files and options, the plot.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, GAMES_FILE, ROOT } from './game-fixture.js';

function sppo(...args: string[]) {
  return spawnSync(process.execPath, [CLI, 'game', ...args], { cwd: ROOT, encoding: 'utf8' });
}

const tmp = mkdtempSync(join(tmpdir(), 'sppo-game-'));

test('sppo game --method sppo-exact writes exactly the documented JSON, with the gap under 1e-2 on every game', () => {
  const out = join(tmp, 'exact.json');
  const r = sppo('--games', GAMES_FILE, '--method', 'sppo-exact', '--json', out);
  assert.equal(r.status, 0, r.stderr);
  const data = JSON.parse(readFileSync(out, 'utf8')) as { games: Array<Record<string, unknown>> };
  assert.deepEqual(Object.keys(data), ['games']);
  const fixture = JSON.parse(readFileSync(GAMES_FILE, 'utf8')) as { games: Array<{ name: string; P: number[][] }> };
  assert.equal(data.games.length, fixture.games.length);
  data.games.forEach((g, i) => {
    assert.deepEqual(Object.keys(g), ['name', 'method', 'iters', 'eta', 'tau', 'magnet_every', 'average_policy', 'average_gap', 'last_gap', 'last_policy', 'l1_to_nash']);
    assert.equal(g.name, fixture.games[i]!.name);
    assert.equal(g.method, 'sppo-exact');
    assert.equal(g.iters, 20000);
    assert.ok(Math.abs((g.eta as number) - 30 / Math.sqrt(20000)) < 1e-12);
    const pi = g.average_policy as number[];
    assert.equal(pi.length, fixture.games[i]!.P.length);
    assert.ok(Math.abs(pi.reduce((a, b) => a + b, 0) - 1) < 1e-9);
    assert.ok((g.average_gap as number) <= 1e-2, `${g.name}: ${g.average_gap}`);
    assert.equal(typeof g.last_gap, 'number');
    assert.equal(typeof g.l1_to_nash, 'number');
  });
});

test('l1_to_nash is null when the file gives no nash; options are honoured', () => {
  const file = join(tmp, 'no-nash.json');
  writeFileSync(file, JSON.stringify({ games: [{ name: 'rps', P: [[0.5, 1, 0], [0, 0.5, 1], [1, 0, 0.5]] }] }));
  const out = join(tmp, 'no-nash-out.json');
  const r = sppo('--games', file, '--method', 'sppo-sampled,ipo', '--iters', '50', '--eta', '0.3', '--samples', '4', '--seed', '9', '--judge', 'bernoulli', '--json', out);
  assert.equal(r.status, 0, r.stderr);
  const data = JSON.parse(readFileSync(out, 'utf8')) as { games: Array<Record<string, unknown>> };
  assert.deepEqual(data.games.map((g) => g.method), ['sppo-sampled', 'ipo']);
  for (const g of data.games) {
    assert.equal(g.l1_to_nash, null);
    assert.equal(g.iters, 50);
    assert.equal(g.eta, 0.3);
  }
});

test('sppo game --method extragradient runs its exact and sampled forms with the given tau and magnet period; eta tau > 1 is refused for nash-md', () => {
  const out = join(tmp, 'eg.json');
  const r = sppo('--games', GAMES_FILE, '--game', 'rock-paper-scissors', '--method', 'extragradient,mpo-exact', '--iters', '40', '--tau', '0.02', '--magnet-every', '7', '--json', out);
  assert.equal(r.status, 0, r.stderr);
  const data = JSON.parse(readFileSync(out, 'utf8')) as { games: Array<Record<string, unknown>> };
  assert.deepEqual(data.games.map((g) => g.method), ['extragradient-exact', 'extragradient-sampled', 'mpo-exact']);
  for (const g of data.games) {
    assert.equal(g.tau, 0.02);
    assert.equal(g.magnet_every, 7);
    assert.equal(g.iters, 40);
  }
  const bad = sppo('--games', GAMES_FILE, '--method', 'nash-md-exact', '--eta', '2', '--tau', '1');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /nash-md-exact: eta \* tau = 2 > 1/);
});

test('a bad file gives an error naming the file, the game and the entry', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ games: [{ name: 'rps', P: [[0.5, 0.7], [0.5, 0.5]] }] }, /bad\.json: game "rps": P\[0\]\[1\] \+ P\[1\]\[0\] = 1\.2, expected 1/],
    [{ games: [{ name: 'g2', P: [[0.5, 1.3], [-0.3, 0.5]] }] }, /bad\.json: game "g2": P\[0\]\[1\] = 1\.3 is outside \[0, 1\]/],
    [{ games: [{ name: 'ragged', P: [[0.5, 0.5, 0.5], [0.5, 0.5], [0.5, 0.5, 0.5]] }] }, /bad\.json: game "ragged": P\[1\] has 2 entries, expected 3/],
  ];
  for (const [content, re] of cases) {
    const file = join(tmp, 'bad.json');
    writeFileSync(file, JSON.stringify(content));
    const r = sppo('--games', file, '--method', 'sppo-exact');
    assert.equal(r.status, 1);
    assert.match(r.stderr, re);
  }
});

test('bad options are usage errors (exit 2)', () => {
  for (const args of [['--method', 'sppo-exact'], ['--games', GAMES_FILE, '--method', 'ppo'], ['--games', GAMES_FILE, '--method', 'dpo', '--iters', '0'], ['--games', GAMES_FILE, '--method', 'dpo', '--bogus']]) {
    const r = sppo(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
  }
  const h = sppo('--help');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--eta E/);
  assert.match(h.stdout, /30\/sqrt\(T\)/);
});

test('--plot writes an SVG of the gap per iteration for each method', () => {
  const svg = join(tmp, 'rps.svg');
  const r = sppo('--games', GAMES_FILE, '--game', 'rock-paper-scissors', '--method', 'all', '--iters', '300', '--init', 'random', '--plot', svg);
  assert.equal(r.status, 0, r.stderr);
  const text = readFileSync(svg, 'utf8');
  assert.match(text, /^<svg/);
  for (const m of ['sppo-exact', 'sppo-sampled', 'dpo', 'ipo']) assert.ok(text.includes(m), `legend has ${m}`);
  assert.ok((text.match(/<path/g) ?? []).length >= 8);
  const two = sppo('--games', GAMES_FILE, '--method', 'dpo', '--plot', svg);
  assert.equal(two.status, 2);
});
