// `sppo demo`: the demo (npm run demo) and the steps that prepare its committed models.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { DEMO_STYLES, demonstrations, parseStyleShares } from '../demo/demonstrations.js';
import { heldOutPrompts, STYLES } from '../demo/tasks.js';
import { llamaConfig, writeTokenizerFolder } from '../demo/tokenizer.js';
import { HELD_OUT_COUNT, HELD_OUT_SEED, STARTER_ARCH, STARTER_SFT_EXAMPLES, STARTER_SFT_SEED } from '../demo/constants.js';
import { proxyJudgeData } from '../demo/proxy_data.js';
import { DEMO_JUDGE_LOAD, DEMO_JUDGES, DEMO_METHODS, demoJudgeSpec, isDemoJudge, isDemoMethod, runDemo, runSearch, SEARCH_FINALISTS, SEARCH_GRID, type DemoMethod } from '../demo/run.js';
import { evaluatePolicy, formatPolicyEval } from '../demo/policy_eval.js';
import { formatMix, formatTable } from '../demo/report.js';
import { exactSppoFrom, solveStyleGame, styleExploitability, styleGame, type StyleMix } from '../demo/style_game.js';
import { JUDGE_EQUILIBRIUM_MEASURE, judgeStyleReading } from '../demo/proxy_styles.js';
import { checkpointStyleGames, PLAYED_GAME_BOOTSTRAP, styleWinRates, type StyleWinRates } from '../demo/style_winrates.js';
import { loadJudge, parseJudgeSpec } from '../judge/judge.js';
import type { JudgeSpec } from '../judge/spec.js';
import { UsageError } from './usage.js';
import { num, parseCommand } from './args.js';
import { writeJsonlAtomic } from '../util/files.js';

export const summary = 'the demo: SPPO on a small task family, judged by a proxy model, evaluated by a gold judge';

const HELP = `usage: sppo demo [run] [--quick] [--baselines | --methods M,...] [--out DIR] [--fresh] [--proxy DIR | --judge gold] [--seed N]
       sppo demo starter-inputs --dir DIR [--examples N --seed S] [--styles T,S,F,O]
       sppo demo judge-data --model DIR --dir DIR [--prompts N --k K --seed S] [--style-pairs]
       sppo demo search [--out DIR] [--fresh] [--methods sppo,dpo,ipo,...] [--proxy DIR] [--finalists N]
       sppo demo policy-eval --model DIR [--k K --prompts N --seed S --temperature T --top-p P --vs DIR]
       sppo demo style-game [--summary FILE] [--judge DIR] [--run DIR]

  run (default)     SPPO (3 iterations, K = 5) of demo/starter with demo/proxy-judge as the judge, each iteration
                    evaluated on held-out prompts by the gold judge against the starter; writes OUT/summary.json
                    and OUT/report.html (OUT: runs/demo, or runs/demo-quick with --quick). A rerun resumes.
      --quick       1 iteration of 16 prompts, 32 held-out prompts (what CI runs)
      --baselines   also iterative DPO and IPO: same prompts, samples, judge, training budget and
                    hyper-parameter search (lr and beta per method: DEMO_HYPER, from 'sppo demo search')
      --methods M   the methods to run, comma-separated: ${DEMO_METHODS.join(', ')}; the last-iterate
                    ones (mpo, nash-md, omwu, extragradient: docs/sppo-loop.md) with the same prompts, samples,
                    judge, training budget and search rule as SPPO (their lr and beta: SPPO's until searched)
      --fresh       delete OUT first
      --proxy DIR   another proxy judge folder than demo/proxy-judge (experiments; search takes it too)
      --judge J     the judge every method trains on: proxy (default) or gold, the gold judge itself (the
                    oracle ablation: how a method does when it trains on the judge that scores it)
      --seed N      the runs' seed (sampling, pair tie-breaks, training order, evaluation samples; default 0):
                    another seed shows how much of a figure is one run's luck (use with --out or --fresh)
  starter-inputs    write DIR/tokenizer/ (tokenizer files), DIR/config.json (the starter's architecture) and
                    DIR/sft.jsonl (mixed-quality demonstrations) for 'sppo sft' (demo/make-starter.sh);
                    --styles: the shares of terse, sentence, formatted and other answers (default 0.2,0.45,0.3,0.05)
  judge-data        sample the starter on N prompts (K each) and write the gold judge's verdicts on all pairs:
                    DIR/judge-train.jsonl and DIR/judge-heldout.jsonl (15% of the prompts) for 'sppo train-judge';
                    --style-pairs adds each styled sample against the same answer in the two other styles
  search            the hyper-parameter search, the same for every method, scored by the gold judge on validation
                    prompts (never the held-out ones), in two stages: each lr x beta of the grid for one iteration
                    of 416 training prompts; then each method's N best points (--finalists, default 4; 0: stop
                    after the first stage) run as the demo runs them (3 iterations), with seeds 0 and 1, and the
                    choice is, among the finalists within one standard error of the best mean win rate after
                    iteration 3, the one whose validation style mix is the least exploitable (mean of the seeds);
                    writes OUT/search.json (OUT: runs/demo-search)
  policy-eval       K samples per held-out prompt (the first N of the 256; temperature and top-p 1 unless given):
                    the gold judge's correctness of a sample and pass@K, per task kind, and the style shares;
                    with --vs DIR (e.g. demo/starter) also the gold win rate of the best of K (a correct sample
                    where there is one) against one sample of DIR per prompt: the most that reweighting the
                    K samples can win
  style-game        the gold style game at the starter's style lengths (from --summary, a demo's summary.json;
                    default: the starter's measured mix), its equilibrium and what SPPO's exact update does from
                    the starter for several eta; with --judge DIR, how that judge reads the style cycle (a
                    pairwise model folder, or any judge as --judge elsewhere: e.g. dist/src/demo/gold_judge.js); with
                    --run DIR (a demo run folder, OUT/<method>), per iteration each style's share of the training
                    samples, how often its answers are correct, and its mean win rate under the run's judge and
                    under the gold judge: the incentive the judges give, correctness included; and from each
                    checkpoint's style samples (held-out prompts) the game played: each style's gold win rate W_s
                    against the policy's own answers, correctness included, and 2 max_s W_s - 1 ± its standard error
`;


async function starterInputs(argv: string[]): Promise<void> {
  const parsed = parseCommand('demo starter-inputs', argv, { dir: { type: 'string' }, examples: { type: 'string' }, seed: { type: 'string' }, styles: { type: 'string' } }, HELP, { required: ['dir'] });
  if (!parsed) return;
  const v = parsed.values as { dir: string; examples?: string; seed?: string; styles?: string };
  let styles = DEMO_STYLES;
  if (v.styles !== undefined) {
    try {
      styles = parseStyleShares(v.styles);
    } catch (e) {
      throw new UsageError(`--styles: ${(e as Error).message}`);
    }
  }
  const n = num('examples', v.examples, STARTER_SFT_EXAMPLES, { integer: true, min: 1 });
  const seed = num('seed', v.seed, STARTER_SFT_SEED, { integer: true, min: 0 });
  mkdirSync(v.dir, { recursive: true });
  writeTokenizerFolder(join(v.dir, 'tokenizer'));
  writeFileSync(join(v.dir, 'config.json'), JSON.stringify(llamaConfig(STARTER_ARCH), null, 2) + '\n');
  const held = new Set(heldOutPrompts(HELD_OUT_COUNT, HELD_OUT_SEED).map((t) => t.prompt));
  const demos = demonstrations(n, seed, held, styles);
  writeJsonlAtomic(join(v.dir, 'sft.jsonl'), demos.map((d) => ({ prompt: d.prompt, response: d.response, kind: d.kind, correct: d.correct, style: d.style })));
  const correct = demos.filter((d) => d.correct).length / demos.length;
  console.error(`sppo demo starter-inputs: ${demos.length} demonstrations (${(100 * correct).toFixed(1)}% correct) -> ${v.dir}`);
}

async function judgeData(argv: string[]): Promise<void> {
  const parsed = parseCommand('demo judge-data', argv, { model: { type: 'string' }, dir: { type: 'string' }, prompts: { type: 'string' }, k: { type: 'string' }, seed: { type: 'string' }, 'style-pairs': { type: 'boolean' } }, HELP, { required: ['model', 'dir'] });
  if (!parsed) return;
  const v = parsed.values as { model: string; dir: string; prompts?: string; k?: string; seed?: string; 'style-pairs'?: boolean };
  const bar = new cliProgress.SingleBar({ format: 'judge-data [{bar}] {value}/{total} prompts | {eta_formatted} left', stream: process.stderr }, cliProgress.Presets.shades_classic);
  const n = num('prompts', v.prompts, 400, { integer: true, min: 2 });
  bar.start(n, 0);
  const t0 = performance.now();
  let r;
  try {
    r = await proxyJudgeData({ model: v.model, prompts: n, k: num('k', v.k, 5, { integer: true, min: 2 }), seed: num('seed', v.seed, 0, { integer: true, min: 0 }), stylePairs: v['style-pairs'] ?? false, onProgress: (d) => bar.update(d) });
  } finally {
    bar.stop();
  }
  mkdirSync(v.dir, { recursive: true });
  writeJsonlAtomic(join(v.dir, 'judge-train.jsonl'), r.train);
  writeJsonlAtomic(join(v.dir, 'judge-heldout.jsonl'), r.heldOut);
  console.error(`sppo demo judge-data: ${r.train.length} training and ${r.heldOut.length} held-out comparisons in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${v.dir}`);
}

async function policyEval(argv: string[]): Promise<void> {
  const parsed = parseCommand('demo policy-eval', argv, { model: { type: 'string' }, k: { type: 'string' }, prompts: { type: 'string' }, seed: { type: 'string' }, json: { type: 'string' }, vs: { type: 'string' }, temperature: { type: 'string' }, 'top-p': { type: 'string' } }, HELP, { required: ['model'] });
  if (!parsed) return;
  const v = parsed.values as { model: string; k?: string; prompts?: string; seed?: string; json?: string; vs?: string; temperature?: string; 'top-p'?: string };
  for (const [flag, dir] of [['--model', v.model], ['--vs', v.vs]] as const) {
    if (dir !== undefined && !existsSync(join(dir, 'config.json'))) throw new UsageError(`${flag} ${dir}: not a model folder (no config.json)`);
  }
  const tasks = heldOutPrompts(HELD_OUT_COUNT, HELD_OUT_SEED).slice(0, num('prompts', v.prompts, HELD_OUT_COUNT, { integer: true, min: 1, max: HELD_OUT_COUNT }));
  const k = num('k', v.k, 5, { integer: true, min: 1 });
  const seed = num('seed', v.seed, 0, { integer: true, min: 0 });
  const temperature = num('temperature', v.temperature, 1, { min: 0, open: true });
  const topP = num('top-p', v['top-p'], 1, { min: 0, max: 1, open: true });
  const t0 = performance.now();
  const e = await evaluatePolicy({ model: v.model, tasks, k, seed, vs: v.vs, temperature, topP });
  console.log(formatPolicyEval(e));
  if (v.json) writeFileSync(v.json, JSON.stringify(e, null, 2) + '\n');
  console.error(`sppo demo policy-eval: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

async function search(argv: string[]): Promise<void> {
  const parsed = parseCommand('demo search', argv, { out: { type: 'string' }, fresh: { type: 'boolean' }, methods: { type: 'string' }, root: { type: 'string' }, proxy: { type: 'string' }, finalists: { type: 'string' } }, HELP);
  if (!parsed) return;
  const v = parsed.values as { out?: string; fresh?: boolean; methods?: string; root?: string; proxy?: string; finalists?: string };
  const finalists = num('finalists', v.finalists, SEARCH_FINALISTS, { integer: true, min: 0, max: SEARCH_GRID.length });
  const root = resolve(v.root ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'));
  const methods = (v.methods ?? 'sppo,dpo,ipo').split(',') as DemoMethod[];
  for (const m of methods) if (!isDemoMethod(m)) throw new UsageError(`--methods: unknown method '${m}' (${DEMO_METHODS.join(', ')})`);
  console.error(`sppo demo search: ${methods.join(', ')} x ${SEARCH_GRID.length} settings`);
  const r = await runSearch({ root, out: v.out ?? join('runs', 'demo-search'), fresh: v.fresh ?? false, progress: false, methods, proxy: v.proxy, finalists });
  const pct = (x: number): string => (100 * x).toFixed(1);
  console.log('| method | lr | beta | validation win rate (%) ± SE | correct (%) |\n| --- | --- | --- | --- | --- |');
  for (const p of r.points) console.log(`| ${p.method} | ${p.lr} | ${p.beta} | ${pct(p.win_rate)} ± ${pct(p.win_rate_se)} | ${pct(p.correct)} |`);
  console.log(`after one iteration (the smallest step within one standard error of the best point): ${JSON.stringify(r.bestOneIteration)}`);
  if (r.finals.length) {
    console.log('\nfinalists (means over the seeds of their runs):\n| method | lr | beta | validation win rate by iteration (%) | ± SE | correct (%) | styles (%) | style exploitability (each seed) |\n| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const f of r.finals) console.log(`| ${f.method} | ${f.lr} | ${f.beta} | ${f.iterations.map((x) => pct(x.win_rate)).join(' / ')} | ${pct(f.win_rate_se)} | ${pct(f.correct)} | ${formatMix(f.styles)} | ${f.style_exploitability.toFixed(3)} (${f.runs.map((x) => x.style_exploitability.toFixed(3)).join(', ')}) |`);
  }
  console.log(`chosen${r.finals.length ? ' (of the finalists within one standard error of the best final win rate, the least exploitable style mix)' : ''}: ${JSON.stringify(r.best)} (${r.seconds.toFixed(0)} s)`);
}

async function demo(argv: string[]): Promise<void> {
  const parsed = parseCommand('demo', argv, { quick: { type: 'boolean' }, baselines: { type: 'boolean' }, methods: { type: 'string' }, out: { type: 'string' }, fresh: { type: 'boolean' }, root: { type: 'string' }, proxy: { type: 'string' }, judge: { type: 'string' }, seed: { type: 'string' } }, HELP);
  if (!parsed) return;
  const v = parsed.values as { quick?: boolean; baselines?: boolean; methods?: string; out?: string; fresh?: boolean; root?: string; proxy?: string; judge?: string; seed?: string };
  if (v.judge !== undefined && !isDemoJudge(v.judge)) throw new UsageError(`--judge: expected ${DEMO_JUDGES.join(' or ')}, got '${v.judge}'`);
  if (v.judge === 'gold' && v.proxy !== undefined) throw new UsageError('--judge gold and --proxy: give one (--proxy names the proxy judge to train on)');
  if (v.methods !== undefined && v.baselines) throw new UsageError('--baselines and --methods: give one (--baselines is --methods sppo,dpo,ipo)');
  const methods = v.methods === undefined ? undefined : [...new Set(v.methods.split(',').map((m) => m.trim()))];
  for (const m of methods ?? []) if (!isDemoMethod(m)) throw new UsageError(`--methods: unknown method '${m}' (${DEMO_METHODS.join(', ')})`);
  const root = resolve(v.root ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'));
  const out = v.out ?? join('runs', v.quick ? 'demo-quick' : 'demo');
  const seed = num('seed', v.seed, 0, { integer: true, min: 0 });
  const r = await runDemo({ root, out, quick: v.quick ?? false, baselines: v.baselines ?? false, ...(methods ? { methods: methods as DemoMethod[] } : {}), fresh: v.fresh ?? false, progress: Boolean(process.stderr.isTTY), proxy: v.proxy, ...(v.judge !== undefined && isDemoJudge(v.judge) ? { judge: v.judge } : {}), seed });
  console.log(r.table);
  console.log(`\naverage iterate (uniform mixture of iterations 1..t: win rate from one iteration drawn per held-out prompt, styles from their style samples pooled):\n${formatTable(r.averageRows, r.averageDetails)}`);
  const stages = Object.entries(r.timings).map(([m, t]) => `${m}: ${Object.entries(t).map(([k, s]) => `${k} ${s.toFixed(0)} s`).join(', ')}`).join('; ');
  console.log(`\n${join(out, 'summary.json')}, ${join(out, 'report.html')} (${r.seconds.toFixed(0)} s; ${stages})`);
}

async function styleGameCmd(argv: string[]): Promise<void> {
  const parsed = parseCommand('demo style-game', argv, { summary: { type: 'string' }, judge: { type: 'string' }, run: { type: 'string' } }, HELP);
  if (!parsed) return;
  const v = parsed.values as { summary?: string; judge?: string; run?: string };
  const pct = (m: Record<string, number>): string => Object.values(m).map((x) => (100 * x).toFixed(1)).join(' / ');
  const f3 = (x: number): string => x.toFixed(3);
  if (v.run) {
    let rows: StyleWinRates[];
    try {
      rows = styleWinRates(v.run);
    } catch (e) {
      throw new UsageError(`--run ${v.run}: ${(e as Error).message}`);
    }
    console.log(`${v.run}: the training samples of each iteration, per style terse | sentence | formatted:`);
    for (const r of rows) {
      const by = (m: Record<string, number>, f: (x: number) => string): string => STYLES.map((s) => f(m[s]!)).join(' | ');
      console.log(`  iteration ${r.iteration} (${r.samples} samples): share ${by(r.share, (x) => `${(100 * x).toFixed(1)} %`)}; correct ${by(r.correct, (x) => `${(100 * x).toFixed(1)} %`)}; win rate, judge ${by(r.judge, f3)}; gold ${by(r.gold, f3)}`);
    }
    let played: ReturnType<typeof checkpointStyleGames>;
    try {
      played = checkpointStyleGames(v.run);
    } catch (e) {
      throw new UsageError(`--run ${v.run}: ${(e as Error).message}`);
    }
    if (played.length > 0) {
      console.log(`the game played, from each checkpoint's style samples on the held-out prompts (gold judge, correctness included), per style terse | sentence | formatted; exploitability 2 max_s W_s - 1 ± SE (${PLAYED_GAME_BOOTSTRAP.boot} resamples of the prompts):`);
      for (const r of played) {
        const by = (m: Record<string, number>, f: (x: number) => string): string => STYLES.map((s) => f(m[s]!)).join(' | ');
        console.log(`  ${r.iteration === 0 ? 'starter' : `iteration ${r.iteration}`} (${r.samples} samples): share ${by(r.share, (x) => `${(100 * x).toFixed(1)} %`)}; correct ${by(r.correct, (x) => `${(100 * x).toFixed(1)} %`)}; win rate W_s ${by(r.winRate, f3)}; exploitability ${f3(r.exploitability)} ± ${f3(r.se)}`);
      }
    }
    return;
  }
  // The starter's mix and lengths: from a demo's summary.json (iteration 0), else the issue's starter mix with
  // the lengths of the demo's answers (1-2 character payloads).
  let start: StyleMix = { terse: 0.18, sentence: 0.48, formatted: 0.31, other: 0.03 };
  let lengths: StyleMix = { terse: 2.6, sentence: 9.6, formatted: 10.6, other: 5 };
  if (v.summary) {
    let data: { details?: { iteration: number; styles: StyleMix; style_lengths?: StyleMix }[] };
    try {
      data = JSON.parse(readFileSync(v.summary, 'utf8')) as typeof data;
    } catch (e) {
      throw new UsageError(`--summary ${v.summary}: ${(e as Error).message}`);
    }
    const d0 = data.details?.find((d) => d.iteration === 0);
    if (!d0?.style_lengths) throw new UsageError(`--summary ${v.summary}: no details[] row of iteration 0 with style_lengths (a summary.json of this build's demo)`);
    start = d0.styles;
    lengths = d0.style_lengths;
  }
  for (const [name, game] of [['with the length term', styleGame(lengths)], ['pure cycle', styleGame()]] as const) {
    const eq = solveStyleGame(game);
    console.log(`gold style game, ${name}: equilibrium terse / sentence / formatted / other ${pct(eq.mix)} % (solver residual ${eq.residual.toExponential(1)}); starter ${pct(start)} %: exploitability ${f3(styleExploitability(game, start))}`);
    console.log('  exact SPPO update from the starter (last iterate pi_t | average of pi_1..pi_t), t = 1, 2, 3; first t with average <= 0.05:');
    for (const eta of [0.5, 1, 2, 3, 5, 10, 20]) {
      const tr = exactSppoFrom(game, start, eta, 200);
      const first = tr.average.findIndex((x) => x <= 0.05);
      console.log(`  eta ${String(eta).padStart(4)}: ${tr.last.slice(0, 3).map(f3).join(' ')} | ${tr.average.slice(0, 3).map(f3).join(' ')}; average <= 0.05 from t = ${first < 0 ? '> 200' : first + 1}, last iterate <= 0.05 at ${tr.last.filter((x) => x <= 0.05).length} of 200 steps`);
    }
  }
  if (v.judge) {
    // A folder is a pairwise model (the proxy judge's kind); a .js/.mjs module or KIND:... is any judge, as --judge elsewhere.
    const spec: JudgeSpec = /^[a-z-]+:/.test(v.judge) || /\.(mjs|cjs|js)$/.test(v.judge) ? parseJudgeSpec(v.judge, DEMO_JUDGE_LOAD) : demoJudgeSpec('proxy', v.judge);
    const judge = await loadJudge(spec);
    try {
      for (const r of await judgeStyleReading(judge)) {
        const m = (M: number[][]): string => M.map((row) => row.map(f3).join(' ')).join(' | ');
        console.log(`${v.judge} on ${r.answers} answers, P(row > column), rows terse | sentence | formatted:\n  judge ${m(r.judge)}\n  gold  ${m(r.gold)}\n  same preferred style as the gold judge: ${(100 * r.agreement).toFixed(1)} %; the judge's equilibrium ${pct(r.judgeEquilibrium)} % (gold's ${pct(r.goldEquilibrium)} %), its gold exploitability ${f3(r.goldExploitabilityOfJudgeEquilibrium)}`);
        const e = r.measuredJudgeEquilibrium;
        console.log(`  a policy exactly at the judge's equilibrium, measured as the demo measures (${JUDGE_EQUILIBRIUM_MEASURE.samples} style samples, ${JUDGE_EQUILIBRIUM_MEASURE.draws} draws): mean ${f3(e.mean)}, median ${f3(e.median)}, 90th percentile ${f3(e.p90)}; at most ${e.threshold} in ${(100 * e.atMost).toFixed(1)} % of seeds, in all of ${e.seeds} seeds with probability ${e.allSeedsAtMost.toPrecision(2)}`);
      }
    } finally {
      judge.dispose?.();
    }
  }
}

export async function run(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    console.log(HELP);
    return;
  }
  if (sub === 'starter-inputs') return starterInputs(rest);
  if (sub === 'judge-data') return judgeData(rest);
  if (sub === 'policy-eval') return policyEval(rest);
  if (sub === 'search') return search(rest);
  if (sub === 'style-game') return styleGameCmd(rest);
  if (sub === 'run') return demo(rest);
  if (sub === undefined || sub.startsWith('--')) return demo(argv);
  throw new UsageError(`unknown demo step '${sub}'\n\n${HELP}`);
}
