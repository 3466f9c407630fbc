// `sppo game`: SPPO, iterative DPO and IPO on tabular preference games, with the Nash gap measured.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { EXACT_ETA_CONSTANT } from '../game/exact.js';
import { loadGames, type Game } from '../game/game.js';
import { runGame, type Init, type RunResult } from '../game/lab.js';
import { DEFAULT_FIT_STEPS, DEFAULT_ITERS, DEFAULT_LR, DEFAULT_SAMPLED_ETA, DEFAULT_SAMPLES, METHODS, isMethod, type Method } from '../game/methods.js';
import { gapPlotSvg } from '../game/plot.js';
import type { Judge, Keep } from '../game/sampled.js';
import { UsageError } from './usage.js';
import { choice, optNum, parseCommand } from './args.js';

export const summary = 'run SPPO / DPO / IPO on exact preference games and measure the duality gap';

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

options:
  --games FILE       the games (required)
  --method M         ${METHODS.join(' | ')} | all; a comma-separated list runs several (required)
  --iters T          iterations; default ${DEFAULT_ITERS['sppo-exact']} for sppo-exact, ${DEFAULT_ITERS['sppo-sampled']} for the others
  --eta E            step size (sppo-exact) or 1/beta (the others);
                     default ${EXACT_ETA_CONSTANT}/sqrt(T) for sppo-exact (0.212 at T = ${DEFAULT_ITERS['sppo-exact']}), ${DEFAULT_SAMPLED_ETA} for the others
  --samples K        responses drawn per iteration (sampled methods), default ${DEFAULT_SAMPLES}
  --judge J          exact (the P entries, default) | bernoulli (one Bernoulli(P) outcome per pair)
  --keep W           best-worst (default) | all (all K responses; all ordered pairs for dpo/ipo)
  --fit-steps N      gradient steps per iteration when fitting the next policy, default ${DEFAULT_FIT_STEPS}
  --lr R             base learning rate of those steps (scaled by each loss's curvature), default ${DEFAULT_LR}
  --init I           uniform (default) | random (softmax of N(0, 1) logits drawn from the seed)
  --seed S           seed of the sampling (xoshiro128**), default 0
  --game NAME        only this game (repeatable)
  --json OUT         write {"games": [{"name", "method", "iters", "eta", "average_policy", "average_gap",
                     "last_gap", "l1_to_nash"}]} to OUT
  --plot OUT.svg     plot the gap per iteration of each method (needs exactly one game: use --game)
  -h, --help         this help
`;



export function parseMethods(v: string | undefined): Method[] {
  if (v === undefined) throw new UsageError(`--method is required (${METHODS.join(', ')}, all)`);
  if (v === 'all') return [...METHODS];
  const ms = v.split(',').map((s) => s.trim());
  for (const m of ms) if (!isMethod(m)) throw new UsageError(`unknown method '${m}' (${METHODS.join(', ')}, all)`);
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
    samples: optNum('samples', v.samples, { integer: true, min: 2 }),
    seed: optNum('seed', v.seed, { integer: true, min: 0 }),
    judge: choice<Judge>('judge', v.judge, ['exact', 'bernoulli']),
    keep: choice<Keep>('keep', v.keep, ['best-worst', 'all']),
    fitSteps: optNum('fit-steps', v['fit-steps'], { integer: true, min: 0 }),
    lr: optNum('lr', v.lr, { min: 0 }),
    init: choice<Init>('init', v.init, ['uniform', 'random']),
  };
  if (opts.eta === 0) throw new UsageError('--eta must be > 0');

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

  const rows = [['game', 'method', 'iters', 'eta', 'average gap', 'last gap', 'L1 to nash']];
  for (const r of results) rows.push([r.name, r.method, String(r.iters), r.eta.toPrecision(3), g(r.averageGap), g(r.lastGap), g(r.l1ToNash)]);
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
        average_policy: Array.from(r.averagePolicy),
        average_gap: r.averageGap,
        last_gap: r.lastGap,
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
      results.map((r) => ({ method: `${r.method} (eta ${r.eta.toPrecision(2)})`, averageGap: r.trace!.averageGap, lastGap: r.trace!.lastGap })),
    );
    await mkdir(dirname(v.plot), { recursive: true });
    await writeFile(v.plot, svg);
    console.log(`wrote ${v.plot}`);
  }
}
