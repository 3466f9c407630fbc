// `sppo game`: SPPO, iterative DPO and IPO on tabular preference games, with the Nash gap measured.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { EXACT_ETA_CONSTANT } from '../game/exact.js';
import { loadGames, type Game } from '../game/game.js';
import { runGame, type Init, type RunResult } from '../game/lab.js';
import { DEFAULT_FIT_STEPS, DEFAULT_ITERS, DEFAULT_LR, DEFAULT_SAMPLED_ETA, DEFAULT_SAMPLES, LAST_ITERATE_DEFAULTS, LAST_ITERATE_FAMILIES, METHODS, isMethod, type Method } from '../game/methods.js';
import { gapPlotSvg } from '../game/plot.js';
import type { Judge, Keep } from '../game/sampled.js';
import { UsageError } from './usage.js';
import { choice, optNum, parseCommand } from './args.js';

export const summary = 'run SPPO / DPO / IPO / Nash-MD / MPO / OMWU / extragradient on exact preference games and measure the duality gap';

const HELP = `usage: sppo game --games FILE --method M [options]

Runs a method on every game (prompt) of FILE, a JSON file {"games": [{"name", "P", "nash"?}]} with
P[i][j] = probability that response i is preferred to response j (P + P^T = 1, entries in [0, 1]),
and reports the duality gap 2 max_j (P pi)_j - 1 of the average policy (1/T) sum_t pi_t and of the
last policy, and the L1 distance of the average policy to the file's "nash" (when given).

methods (--method, a comma-separated list, or all):
  sppo-exact    pi_{t+1}(y) ∝ pi_t(y) exp(eta P(y > pi_t)), exact win rates
  sppo-sampled  draw K responses from pi_t, estimate their win rates from the K x K matrix, fit the next
                tabular log-policy on the SPPO square loss (pi_t as reference, eta = 1/beta)
  dpo, ipo      iterative DPO / IPO on the same sampled best-vs-worst pairs (pi_t as reference)
 last-iterate methods (mu: the magnet, pi_1 at the start; w_t = P pi_t):
  nash-md-exact        log pi_{t+1} = log pi_t^mu + eta P pi_t^mu,  pi_t^mu ∝ pi_t^(1-eta tau) mu^(eta tau)
  mpo-exact            log pi_{t+1} = (log pi_t + eta tau log mu + eta w_t) / (1 + eta tau); mu <- pi_{t+1}
                       every --magnet-every iterations
  omwu-exact           log pi_{t+1} = log pi_t + eta (2 w_t - w_{t-1})
  extragradient-exact  a look-ahead pi_{t+1/2} = step(pi_t, w_t), then pi_{t+1} = step(pi_t, P pi_{t+1/2}),
                       step(pi, w) ∝ pi^(1-eta tau) mu^(eta tau) exp(eta w); mu <- pi_{t+1} every --magnet-every
  <family>-sampled     the same with K responses drawn and judged, the next policy fitted on the square loss
                       (a(y) - target(y))^2 toward each method's log-ratio target (docs/game-lab.md)
  sppo, nash-md, mpo, omwu, extragradient: a family name runs its -exact and -sampled forms

options:
  --games FILE       the games (required)
  --method M         a method above, a family (sppo | ${LAST_ITERATE_FAMILIES.join(' | ')}) or all;
                     a comma-separated list runs several (required)
  --iters T          iterations; default ${DEFAULT_ITERS['sppo-exact']} for sppo-exact, ${DEFAULT_ITERS['mpo-exact']} for the other exact methods,
                     ${DEFAULT_ITERS['sppo-sampled']} for the sampled ones
  --eta E            step size (sppo-exact) or 1/beta (the others);
                     default ${EXACT_ETA_CONSTANT}/sqrt(T) for sppo-exact (0.212 at T = ${DEFAULT_ITERS['sppo-exact']}),
                     ${LAST_ITERATE_FAMILIES.map((f) => `${f}-exact ${LAST_ITERATE_DEFAULTS[f].eta}`).join(', ')}, ${DEFAULT_SAMPLED_ETA} for the sampled ones
  --tau X            KL strength toward the magnet (nash-md, mpo, extragradient); exact defaults:
                     ${LAST_ITERATE_FAMILIES.map((f) => `${f} ${LAST_ITERATE_DEFAULTS[f].tau}`).join(', ')}
  --magnet-every N   iterations between magnet updates mu <- pi (0: never); exact defaults:
                     ${LAST_ITERATE_FAMILIES.map((f) => `${f} ${LAST_ITERATE_DEFAULTS[f].magnetEvery}`).join(', ')}
  --samples K        responses drawn per iteration (sampled methods), default ${DEFAULT_SAMPLES}
  --judge J          exact (the P entries, default) | bernoulli (one Bernoulli(P) outcome per pair)
  --keep W           best-worst (default) | all (all K responses; all ordered pairs for dpo/ipo)
  --fit-steps N      gradient steps per iteration when fitting the next policy, default ${DEFAULT_FIT_STEPS}
  --lr R             base learning rate of those steps (scaled by each loss's curvature), default ${DEFAULT_LR}
  --init I           uniform (default) | random (softmax of N(0, 1) logits drawn from the seed)
  --seed S           seed of the sampling (xoshiro128**), default 0
  --game NAME        only this game (repeatable)
  --json OUT         write {"games": [{"name", "method", "iters", "eta", "tau", "magnet_every", "average_policy",
                     "average_gap", "last_gap", "last_policy", "l1_to_nash"}]} to OUT
  --plot OUT.svg     plot the gap per iteration of each method (needs exactly one game: use --game)
  -h, --help         this help
`;



const FAMILIES: readonly string[] = ['sppo', ...LAST_ITERATE_FAMILIES];

export function parseMethods(v: string | undefined): Method[] {
  const known = `${METHODS.join(', ')}, ${FAMILIES.join(', ')}, all`;
  if (v === undefined) throw new UsageError(`--method is required (${known})`);
  if (v === 'all') return [...METHODS];
  const ms: string[] = [];
  for (const m of v.split(',').map((s) => s.trim())) {
    if (FAMILIES.includes(m)) ms.push(`${m}-exact`, `${m}-sampled`);
    else if (isMethod(m)) ms.push(m);
    else throw new UsageError(`unknown method '${m}' (${known})`);
  }
  return [...new Set(ms)] as Method[];
}

const g = (x: number | null): string => (x === null ? '-' : x.toExponential(2));

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand(
    'game',
    argv,
    {
      games: { type: 'string' },
      method: { type: 'string' },
      iters: { type: 'string' },
      eta: { type: 'string' },
      tau: { type: 'string' },
      'magnet-every': { type: 'string' },
      samples: { type: 'string' },
      judge: { type: 'string' },
      keep: { type: 'string' },
      'fit-steps': { type: 'string' },
      lr: { type: 'string' },
      init: { type: 'string' },
      seed: { type: 'string' },
      game: { type: 'string', multiple: true },
      json: { type: 'string' },
      plot: { type: 'string' },
    },
    HELP,
    { required: ['games'] },
  );
  if (!parsed) return;
  const v = parsed.values;
  const methods = parseMethods(v.method);
  const opts = {
    iters: optNum('iters', v.iters, { integer: true, min: 1 }),
    eta: optNum('eta', v.eta, { min: 0 }),
    tau: optNum('tau', v.tau, { min: 0 }),
    magnetEvery: optNum('magnet-every', v['magnet-every'], { integer: true, min: 0 }),
    samples: optNum('samples', v.samples, { integer: true, min: 2 }),
    seed: optNum('seed', v.seed, { integer: true, min: 0 }),
    judge: choice<Judge>('judge', v.judge, ['exact', 'bernoulli']),
    keep: choice<Keep>('keep', v.keep, ['best-worst', 'all']),
    fitSteps: optNum('fit-steps', v['fit-steps'], { integer: true, min: 0 }),
    lr: optNum('lr', v.lr, { min: 0 }),
    init: choice<Init>('init', v.init, ['uniform', 'random']),
  };
  if (opts.eta === 0) throw new UsageError('--eta must be > 0');
  for (const m of methods) {
    if (!m.startsWith('nash-md') && !m.startsWith('extragradient')) continue;
    const eta = opts.eta ?? (m.endsWith('-exact') ? LAST_ITERATE_DEFAULTS[m.startsWith('nash-md') ? 'nash-md' : 'extragradient'].eta : DEFAULT_SAMPLED_ETA);
    const tau = opts.tau ?? LAST_ITERATE_DEFAULTS[m.startsWith('nash-md') ? 'nash-md' : 'extragradient'].tau;
    if (eta * tau > 1) throw new UsageError(`${m}: eta * tau = ${eta * tau} > 1 (the geometric mixture pi^(1 - eta tau) mu^(eta tau) needs eta tau <= 1)`);
  }

  let games: Game[] = await loadGames(v.games!);
  if (v.game) {
    const names = new Set(v.game);
    for (const name of names) if (!games.some((x) => x.name === name)) throw new UsageError(`no game "${name}" in ${v.games} (${games.map((x) => x.name).join(', ')})`);
    games = games.filter((x) => names.has(x.name));
  }
  if (v.plot && games.length !== 1) throw new UsageError(`--plot needs exactly one game, ${games.length} selected: add --game NAME`);

  const results: RunResult[] = [];
  const t0 = performance.now();
  for (const game of games) for (const method of methods) results.push(runGame(game, method, { ...opts, trace: Boolean(v.plot) }));
  const seconds = (performance.now() - t0) / 1000;

  const rows = [['game', 'method', 'iters', 'eta', 'tau', 'magnet every', 'average gap', 'last gap', 'L1 to nash']];
  for (const r of results) rows.push([r.name, r.method, String(r.iters), r.eta.toPrecision(3), String(r.tau), String(r.magnetEvery), g(r.averageGap), g(r.lastGap), g(r.l1ToNash)]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
  console.log(`${results.length} run(s) in ${seconds.toFixed(2)} s`);

  if (v.json) {
    const out = {
      games: results.map((r) => ({
        name: r.name,
        method: r.method,
        iters: r.iters,
        eta: r.eta,
        tau: r.tau,
        magnet_every: r.magnetEvery,
        average_policy: Array.from(r.averagePolicy),
        average_gap: r.averageGap,
        last_gap: r.lastGap,
        last_policy: Array.from(r.lastPolicy),
        l1_to_nash: r.l1ToNash,
      })),
    };
    await mkdir(dirname(v.json), { recursive: true });
    await writeFile(v.json, JSON.stringify(out, null, 1) + '\n');
    console.log(`wrote ${v.json}`);
  }
  if (v.plot) {
    const game = games[0]!;
    const setting = [opts.init === 'random' ? 'random start' : 'uniform start', `K = ${opts.samples ?? DEFAULT_SAMPLES}`, `seed ${opts.seed ?? 0}`].join(', ');
    const svg = await gapPlotSvg(
      `${game.name}: gap per iteration (${setting})`,
      results.map((r) => ({ method: `${r.method} (eta ${r.eta.toPrecision(2)}${r.tau ? `, tau ${r.tau}` : ''}${r.magnetEvery ? `, magnet every ${r.magnetEvery}` : ''})`, averageGap: r.trace!.averageGap, lastGap: r.trace!.lastGap })),
    );
    await mkdir(dirname(v.plot), { recursive: true });
    await writeFile(v.plot, svg);
    console.log(`wrote ${v.plot}`);
  }
}
