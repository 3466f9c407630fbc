// `npm run demo` (`sppo demo`): SPPO on the demo's task family at laptop scale, as the paper's design:
// the starter policy (demo/starter) is aligned for a few iterations with a small pairwise preference model
// as the judge (demo/proxy-judge, the PairRM stand-in), and every iteration is evaluated on held-out prompts
// against the starter by the programmatic gold judge (the GPT-4 stand-in), which no training step sees.
// With `baselines`, iterative DPO and IPO run with the same prompts, samples, judge and budget.
//
// Each method is one `runSppo` run directory (OUT/<method>/, resumable); OUT/summary.json gathers the rows
// {method, iteration, win_rate, win_rate_se, lc_win_rate, avg_length}; OUT/report.html draws them.
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSppo, type GenerationLine } from '../sppo/loop.js';
import type { SppoConfigInput } from '../sppo/config.js';
import type { JudgeSpec } from '../judge/spec.js';
import type { PairMode } from '../sppo/pairs.js';
import { GoldJudge, goldPreference, responseStats } from './gold_judge.js';
import { summarizeEval } from '../eval/evaluate.js';
import { createRng } from '../util/rng.js';
import { heldOutPrompts, trainingPrompts, type Task } from './tasks.js';
import { DEMO_STYLE_SAMPLES, HELD_OUT_COUNT, HELD_OUT_SEED, STREAM_SPPO, STREAM_VALID, VALID_COUNT } from './constants.js';
import { formatTable, reportHtml, type LossPoint, type RowDetails, type SummaryRow } from './report.js';
import { readJsonl, writeJsonlAtomic } from '../util/files.js';
import { measureStyles } from './style_game.js';
import { samplePolicy } from './policy_eval.js';
import { playedStyleGame } from './style_winrates.js';

export const DEMO_METHODS = ['sppo', 'dpo', 'ipo', 'mpo', 'nash-md', 'omwu', 'extragradient'] as const;
export type DemoMethod = (typeof DEMO_METHODS)[number];

export function isDemoMethod(s: string): s is DemoMethod {
  return (DEMO_METHODS as readonly string[]).includes(s);
}

/**
 * The last-iterate methods' own settings beside lr and beta (which the search picks, as for every method): the
 * magnet strength as eta tau (tau = etaTau * beta, so that the search's beta keeps the pull toward the magnet
 * the same fraction of the step) and MPO's magnet period. mpo's eta tau = 1 and nash-md's 0.1 are the game lab's
 * exact defaults (docs/game-lab.md); extragradient's magnet is left out (tau 0: mirror prox, no magnet pass).
 */
export interface LastIterate {
  /** The magnet's pull as eta tau: tau = etaTau x beta (0 for extragradient: no magnet pass). */
  etaTau: number;
  /** mpo: move the magnet to the current policy every this many iterations. */
  magnetEvery?: number;
}

export const DEMO_LAST_ITERATE: Partial<Record<DemoMethod, LastIterate>> = {
  mpo: { etaTau: 1, magnetEvery: 2 },
  'nash-md': { etaTau: 0.1 },
  extragradient: { etaTau: 0 },
};

/** A method's magnet settings: the options' override, else DEMO_LAST_ITERATE's (undefined for the methods without one). */
export function lastIterateOf(method: DemoMethod, override?: Partial<Record<DemoMethod, LastIterate>>): LastIterate | undefined {
  const li = override?.[method] ?? DEMO_LAST_ITERATE[method];
  if (li && override?.[method] && !DEMO_LAST_ITERATE[method]) throw new Error(`demo: lastIterate.${method}: ${method} has no magnet settings (only ${Object.keys(DEMO_LAST_ITERATE).join(', ')})`);
  return li;
}

function describeLastIterate(li: LastIterate | undefined): string {
  return li ? `, eta tau ${li.etaTau}${li.magnetEvery ? `, magnet every ${li.magnetEvery}` : ''}` : '';
}

/** A method's `training` section: the loss, the shared settings, its lr and beta, and its last-iterate settings (default DEMO_LAST_ITERATE's). */
export function methodTraining(method: DemoMethod, training: typeof DEMO_TRAINING, h: Hyper, li: LastIterate | undefined = DEMO_LAST_ITERATE[method]): SppoConfigInput['training'] {
  return {
    loss: method,
    ...training,
    ...h,
    ...(li && (li.etaTau > 0 || method === 'extragradient') ? { tau: li.etaTau * h.beta } : {}),
    ...(li?.magnetEvery !== undefined ? { magnetEvery: li.magnetEvery } : {}),
  };
}

export interface DemoOptions {
  /** Repository root (demo/starter, demo/proxy-judge live there). */
  root: string;
  out: string;
  quick?: boolean;
  baselines?: boolean;
  /** Delete OUT first (default: resume what is there). */
  fresh?: boolean;
  progress?: boolean;
  log?: (s: string) => void;
  /** Experiments (docs/demo.md's log): another proxy judge folder, other lr / beta per method, other training settings. */
  proxy?: string;
  /**
   * The judge every method trains on: 'proxy' (default, the PairRM stand-in) or 'gold', the gold judge itself (the
   * oracle ablation: what a method does when its judge is the one it is scored by; the evaluation is then no longer by
   * a judge no training step saw).
   */
  judge?: DemoJudge;
  hyper?: Partial<Record<DemoMethod, Hyper>>;
  /** Other magnet settings for the last-iterate methods than DEMO_LAST_ITERATE's. */
  lastIterate?: Partial<Record<DemoMethod, LastIterate>>;
  training?: Partial<typeof DEMO_TRAINING>;
  pairs?: PairMode;
  /** The runs' seed (sampling, pair tie-breaks, training order); default 0. */
  seed?: number;
  methods?: DemoMethod[];
  /** Iterations and prompts per iteration (default demoSizes'); beyond the 3 x 416 distinct prompts the family has room for, prompts repeat. */
  iterations?: number;
  perIteration?: number;
  /** Sampling of the training responses (default DEMO_GENERATION); evaluation always samples at temperature 1. */
  generation?: Partial<DemoGeneration>;
  /** Samples per held-out prompt for the style and correctness figures (default DEMO_STYLE_SAMPLES; quick: QUICK_STYLE_SAMPLES). */
  styleSamples?: number;
}

/** The budget of a full and of a quick run. */
export function demoSizes(quick: boolean): { iterations: number; perIteration: number; evalCount: number } {
  return quick ? { iterations: 1, perIteration: 16, evalCount: 32 } : { iterations: 3, perIteration: 416, evalCount: HELD_OUT_COUNT };
}

/** Training settings shared by every method (lr and beta: DEMO_HYPER, per method). */
export const DEMO_TRAINING = {
  epochs: 4, batchSize: 16, gradAccum: 1, optimizer: 'adamw' as const, warmupRatio: 0.1,
  schedule: 'linear' as const, maxLength: 64, maxPromptLength: 40, maxGradNorm: 1,
};

export interface Hyper {
  lr: number;
  /** DPO's beta; SPPO's eta = 1/beta; IPO's target margin 1/(2 beta). */
  beta: number;
}

/**
 * The hyper-parameter search budget, the same for every method: this grid of lr x beta, each point one
 * iteration of 416 prompts (the demo's first), scored by the gold judge's win rate against the starter on
 * VALID_COUNT validation prompts of their own stream (never the held-out ones); each method's SEARCH_FINALISTS
 * best points then run the demo's iterations (runSearch). `sppo demo search` runs it.
 */
export const SEARCH_GRID: Hyper[] = [1e-4, 2e-4, 5e-4, 1e-3].flatMap((lr) => [0.05, 0.1, 0.2].map((beta) => ({ lr, beta })));

/** The settings `sppo demo search` picked for each method (pickFinal over its finalists; docs/demo.md has its tables). */
export const DEMO_HYPER: Record<DemoMethod, Hyper> = {
  sppo: { lr: 5e-4, beta: 0.1 },
  dpo: { lr: 1e-4, beta: 0.1 },
  ipo: { lr: 1e-4, beta: 0.2 },
  // `sppo demo search --methods nash-md`, `extragradient`, `mpo` and `omwu` (docs/demo.md, "Last-iterate methods"):
  // nash-md and omwu at SPPO's point, extragradient and mpo at smaller steps. omwu's search was rerun when its
  // training.baseline default became 'samples' (its finalists' iterations 2 and 3): SPPO's point again.
  'nash-md': { lr: 5e-4, beta: 0.1 },
  extragradient: { lr: 2e-4, beta: 0.2 },
  mpo: { lr: 2e-4, beta: 0.05 },
  omwu: { lr: 5e-4, beta: 0.1 },
};

/** The methods whose DEMO_HYPER is SPPO's placeholder, not the search's choice (none since every method's search ran). */
export const UNSEARCHED: readonly DemoMethod[] = [];

/**
 * `--quick` (CI: a smoke test of the pipeline, 16 prompts) trains with the grid's largest lr so that the
 * policy visibly moves; its figures are not results.
 */
export const QUICK_HYPER: Hyper = { lr: 1e-3, beta: 0.05 };

export interface DemoGeneration { k: number; temperature: number; topP: number; maxNewTokens: number; batchSize: number }
export const DEMO_GENERATION: DemoGeneration = { k: 5, temperature: 1, topP: 1, maxNewTokens: 24, batchSize: 32 };

/**
 * Training pairs per prompt (`pairs` of the run configuration): 'ranked', best with worst and second best with
 * second worst (4 of the K = 5 samples), for every method: more of each iteration's samples, each (with the sppo
 * loss) on its own win rate (docs/demo.md, "Style equilibrium", experiments 18-22).
 */
export const DEMO_PAIRS: PairMode = 'ranked';

export const DEMO_JUDGES = ['proxy', 'gold'] as const;
export type DemoJudge = (typeof DEMO_JUDGES)[number];

export function isDemoJudge(s: string): s is DemoJudge {
  return (DEMO_JUDGES as readonly string[]).includes(s);
}

/** How the demo loads a model judge (the proxy): on CPU, in float32, 64 pairs a batch. */
export const DEMO_JUDGE_LOAD = { batchSize: 64, dtype: 'float32', device: 'cpu' } as const;

/** The gold judge as a judge module (src/demo/gold_judge.ts exports prefer, positionBiased and name for this). */
export const GOLD_JUDGE_MODULE = fileURLToPath(new URL('./gold_judge.js', import.meta.url));

/** The training judge's specification: the proxy model folder, or the gold judge's module. */
export function demoJudgeSpec(judge: DemoJudge, proxy: string): JudgeSpec {
  return judge === 'gold' ? { kind: 'module', path: GOLD_JUDGE_MODULE } : { kind: 'pairwise', dir: proxy, ...DEMO_JUDGE_LOAD };
}

/**
 * One method's `sppo run` configuration, as the demo and its search run it: the starter trained on CPU in float32
 * with the training judge (the proxy; the gold judge in the oracle ablation), the demo's sampling, reference log-probs from generation, one evaluation response per prompt.
 */
function demoRunConfig(c: {
  starter: string; judge: SppoConfigInput['judge']; prompts: string; runDir: string; iterations: number; perIteration: number;
  seed: number; pairs: PairMode; training: SppoConfigInput['training']; evalCount: number; evalPrompts: string;
  generation: DemoGeneration;
}): SppoConfigInput {
  return {
    model: c.starter,
    prompts: c.prompts,
    runDir: c.runDir,
    judge: c.judge,
    iterations: c.iterations,
    promptsPerIteration: c.perIteration,
    seed: c.seed,
    dtype: 'float32',
    device: 'cpu',
    refLogprobs: 'generation',
    judgeChunk: 32,
    pairs: c.pairs,
    generation: c.generation,
    training: c.training,
    eval: { count: c.evalCount, prompts: c.evalPrompts, temperature: 1, topP: 1, batchSize: 64 },
  };
}


function finite(x: unknown, dflt = NaN): number {
  return typeof x === 'number' && Number.isFinite(x) ? x : dflt;
}

/** Correctness, style shares and the style mix's exploitability in the gold style game (src/demo/style_game.ts). */
export function rowDetails(method: string, iteration: number, prompts: readonly string[], texts: readonly string[], pairs?: number): RowDetails {
  const st = responseStats(prompts, texts);
  return { method, iteration, ...(pairs === undefined ? {} : { pairs }), ...st, ...measureStyles(st.styles, texts) };
}

export const averageLabel = (method: string): string => `${method} avg`;

export { DEMO_STYLE_SAMPLES };
export const QUICK_STYLE_SAMPLES = 2;
/** Seed of the style samples of iteration t of a run with seed `seed`: every method draws with the same seeds (the starter's are identical). */
const styleSeed = (seed: number, t: number): number => 0x57e5 + 1000 * seed + t;

/** `n` samples per held-out prompt of the policy in `modelDir`, kept in `file` (JSONL, one line per prompt) and read back on resume. */
async function styleSamples(file: string, modelDir: string, held: readonly Task[], n: number, seed: number): Promise<string[][]> {
  if (existsSync(file)) {
    const rows = readJsonl<{ index: number; responses: string[] }>(file);
    if (rows.length === held.length && rows.every((r, i) => r.index === i && r.responses.length === n)) return rows.map((r) => r.responses);
  }
  const texts = await samplePolicy(modelDir, held, n, { temperature: 1, topP: 1, maxNewTokens: DEMO_GENERATION.maxNewTokens, seed });
  writeJsonlAtomic(file, texts.map((responses, index) => ({ index, responses })));
  return texts;
}

/** details[] of a policy (or of a mixture of policies) from its samples: every prompt's samples, pooled. */
export function sampleDetails(method: string, iteration: number, held: readonly Task[], samples: ReadonlyArray<ReadonlyArray<readonly string[]>>, pairs?: number): RowDetails {
  const prompts: string[] = [];
  const texts: string[] = [];
  for (const perPrompt of samples) {
    perPrompt.forEach((rs, i) => {
      for (const r of rs) {
        prompts.push(held[i]!.prompt);
        texts.push(r);
      }
    });
  }
  // The game played (style_winrates.ts): each prompt's samples of all the policies, pooled.
  const pooled = held.map((_, i) => samples.flatMap((perPrompt) => perPrompt[i] ?? []));
  const keep = pooled.map((rs, i) => [i, rs] as const).filter(([, rs]) => rs.length >= 2);
  const played = keep.length > 0 ? playedStyleGame(keep.map(([i]) => held[i]!.prompt), keep.map(([, rs]) => rs)) : undefined;
  return { ...rowDetails(method, iteration, prompts, texts, pairs), ...(played ? { played_exploitability: played.exploitability, played_exploitability_se: played.se } : {}) };
}

/** Seed of the draw of the average iterate's iteration per prompt. */
export const AVERAGE_ITERATE_SEED = 0xa7e;

/**
 * The average iterate after iteration t: the uniform mixture of pi_1..pi_t (the policy SPPO's guarantee is
 * about), sampled per held-out prompt: each prompt's response is that of an iteration u drawn uniformly from
 * 1..t (seeded by t; the same draws for every method), taken from iter-u/eval-responses.jsonl, so it costs no
 * generation. Judged like the last iterate: gold judge against the starter's responses. (Its style and
 * correctness figures need no draw: the mixture's samples are all of pi_1..pi_t's style samples, pooled —
 * sampleDetails.)
 */
export function averageIterate(method: string, t: number, byIteration: ReadonlyArray<ReadonlyMap<number, string>>, starter: ReadonlyMap<number, string>, prompts: readonly string[]): SummaryRow {
  const rng = createRng(AVERAGE_ITERATE_SEED, t);
  const ps: string[] = [];
  const outs: string[] = [];
  const refs: string[] = [];
  for (const [index, ref] of [...starter].sort((a, b) => a[0] - b[0])) {
    const u = 1 + rng.int(t);
    const out = byIteration[u - 1]!.get(index);
    if (out === undefined) continue;
    ps.push(prompts[index]!);
    outs.push(out);
    refs.push(ref);
  }
  const rep = summarizeEval(ps.map((p, i) => goldPreference(p, outs[i]!, refs[i]!)), outs, refs, 'gold');
  return { method, iteration: t, win_rate: finite(rep.winRate), win_rate_se: finite(rep.standardError), lc_win_rate: finite(rep.lcWinRate, finite(rep.winRate)), avg_length: finite(rep.avgLength) };
}

export interface DemoResult {
  rows: SummaryRow[];
  details: RowDetails[];
  /** The average iterate (averageIterate) per method and iteration. */
  averageRows: SummaryRow[];
  averageDetails: RowDetails[];
  table: string;
  seconds: number;
  timings: Record<string, Record<string, number>>;
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = performance.now();
  const log = o.log ?? ((s: string) => console.error(s));
  const starter = join(o.root, 'demo', 'starter');
  const proxy = o.proxy ? resolve(o.proxy) : join(o.root, 'demo', 'proxy-judge');
  for (const d of [starter, proxy]) if (!existsSync(join(d, 'config.json'))) throw new Error(`${d}: missing (the demo's committed model folders; see demo/make-starter.sh and demo/make-proxy-judge.sh)`);
  const out = resolve(o.out);
  if (o.fresh) rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const size = { ...demoSizes(o.quick ?? false), ...(o.perIteration ? { perIteration: o.perIteration } : {}), ...(o.iterations ? { iterations: o.iterations } : {}) };
  const methods: DemoMethod[] = o.methods ?? (o.baselines ? ['sppo', 'dpo', 'ipo'] : ['sppo']);
  const hyper: Record<DemoMethod, Hyper> = { ...(o.quick ? (Object.fromEntries(DEMO_METHODS.map((m) => [m, QUICK_HYPER])) as Record<DemoMethod, Hyper>) : DEMO_HYPER), ...o.hyper };
  const training = { ...DEMO_TRAINING, ...o.training };
  const pairs = o.pairs ?? DEMO_PAIRS;
  const seed = o.seed ?? 0;
  const generation: DemoGeneration = { ...DEMO_GENERATION, ...o.generation };
  const judge = o.judge ?? 'proxy';
  if (!isDemoJudge(judge)) throw new Error(`demo: judge must be one of ${DEMO_JUDGES.join(', ')}, got ${String(judge)}`);
  const judgeLabel = judge === 'gold' ? 'the gold judge itself (the oracle ablation)' : `proxy ${proxy}`;
  const nStyle = o.styleSamples ?? (o.quick ? QUICK_STYLE_SAMPLES : DEMO_STYLE_SAMPLES);
  if (!Number.isInteger(nStyle) || nStyle < 1) throw new Error(`demo: styleSamples must be an integer >= 1, got ${nStyle}`);

  // Prompts: the held-out evaluation prompts, and the training prompts of the iterations (their own stream).
  const held = heldOutPrompts(HELD_OUT_COUNT, HELD_OUT_SEED).slice(0, size.evalCount);
  const heldPrompts = held.map((x) => x.prompt);
  const nTrain = size.iterations * size.perIteration;
  const train = trainingPrompts(nTrain, 0, heldOutPrompts(HELD_OUT_COUNT, HELD_OUT_SEED), STREAM_SPPO, nTrain <= demoSizes(false).iterations * demoSizes(false).perIteration);
  const toRow = (t: Task): { prompt: string; kind: string } => ({ prompt: t.prompt, kind: t.kind });
  writeJsonlAtomic(join(out, 'prompts.jsonl'), train.map(toRow));
  writeJsonlAtomic(join(out, 'eval-prompts.jsonl'), held.map(toRow));
  log(`sppo demo: ${methods.join(', ')}; ${size.iterations} iteration(s) x ${size.perIteration} prompts, K = ${generation.k}; ${held.length} held-out prompts; judge: ${judgeLabel}; evaluation: gold judge`);

  const gold = new GoldJudge();
  const rows: SummaryRow[] = [];
  const details: RowDetails[] = [];
  const losses: LossPoint[] = [];
  const averageRows: SummaryRow[] = [];
  const averageDetails: RowDetails[] = [];
  const timings: Record<string, Record<string, number>> = {};
  for (const method of methods) {
    const runDir = join(out, method);
    const cfg = demoRunConfig({
      starter, judge: demoJudgeSpec(judge, proxy), prompts: join(out, 'prompts.jsonl'), runDir, iterations: size.iterations, perIteration: size.perIteration,
      seed, pairs, training: methodTraining(method, training, hyper[method], lastIterateOf(method, o.lastIterate)), evalCount: held.length, evalPrompts: join(out, 'eval-prompts.jsonl'), generation,
    });
    log(`sppo demo: ${method} -> ${runDir}`);
    const res = await runSppo(cfg, { evalJudge: gold, progress: o.progress, log });
    // Iteration 0: the starter against itself (its own held-out responses): 1/2 by construction.
    const base = readJsonl<GenerationLine>(join(runDir, 'iter-0', 'eval-responses.jsonl'));
    const baseTexts = base.filter((g) => !g.skipped).map((g) => g.responses[0]!.text);
    const baseLen = baseTexts.reduce((a, t) => a + [...t].length, 0) / Math.max(1, baseTexts.length);
    rows.push({ method, iteration: 0, win_rate: 0.5, win_rate_se: 0, lc_win_rate: 0.5, avg_length: baseLen });
    // The style and correctness figures: styleSamples samples per held-out prompt of each checkpoint.
    const ts = performance.now();
    const samplesOf = (t: number): Promise<string[][]> =>
      styleSamples(join(runDir, `iter-${t}`, 'style-samples.jsonl'), t === 0 ? starter : join(runDir, `iter-${t}`, 'checkpoint'), held, nStyle, styleSeed(seed, t));
    details.push(sampleDetails(method, 0, held, [await samplesOf(0)]));
    const starterResp = new Map(base.filter((g) => !g.skipped).map((g) => [g.index, g.responses[0]!.text]));
    const byIteration: Map<number, string>[] = [];
    const samplesByIteration: string[][][] = [];
    let step = 0;
    for (const it of res.iterations) {
      const ev = it.eval!;
      rows.push({ method, iteration: it.iteration, win_rate: finite(ev.winRate), win_rate_se: finite(ev.standardError), lc_win_rate: finite(ev.lcWinRate, finite(ev.winRate)), avg_length: finite(ev.avgLength) });
      const resp = readJsonl<GenerationLine>(join(runDir, `iter-${it.iteration}`, 'eval-responses.jsonl')).filter((g) => !g.skipped);
      byIteration.push(new Map(resp.map((g) => [g.index, g.responses[0]!.text])));
      samplesByIteration.push(await samplesOf(it.iteration));
      details.push(sampleDetails(method, it.iteration, held, [samplesByIteration.at(-1)!], it.pairs));
      averageRows.push(averageIterate(method, it.iteration, byIteration, starterResp, heldPrompts));
      averageDetails.push(sampleDetails(method, it.iteration, held, samplesByIteration));
      const mpath = join(runDir, `iter-${it.iteration}`, 'train-metrics.jsonl');
      if (existsSync(mpath)) for (const m of readJsonl<{ loss: number }>(mpath)) losses.push({ method, iteration: it.iteration, step: ++step, loss: m.loss });
    }
    const styleSeconds = (performance.now() - ts) / 1000;
    const tpath = join(runDir, 'timings.jsonl');
    const tm: Record<string, number> = {};
    if (existsSync(tpath)) for (const t of readJsonl<{ stage: string; seconds: number }>(tpath)) tm[t.stage] = (tm[t.stage] ?? 0) + t.seconds;
    tm['style-samples'] = styleSeconds;
    timings[method] = tm;
  }
  const seconds = (performance.now() - t0) / 1000;
  const table = formatTable(rows, details);
  writeFileSync(join(out, 'summary.json'), JSON.stringify({ rows, details, average_iterate: { rows: averageRows, details: averageDetails }, timings, seconds, settings: { ...size, seed, generation, styleSamples: nStyle, pairs, training, hyper, judge, proxy, searchGrid: SEARCH_GRID } }, null, 2) + '\n');
  const html = await reportHtml({
    title: `sppo demo: ${methods.join(', ').toUpperCase()} on the task family (${size.iterations} iteration${size.iterations > 1 ? 's' : ''}, K = ${generation.k})`,
    rows: [...rows, ...averageRows.map((r) => ({ ...r, method: averageLabel(r.method) }))],
    details: [...details, ...averageDetails.map((r) => ({ ...r, method: averageLabel(r.method) }))],
    losses,
    notes: [
      `Judge during training: ${judge === 'gold' ? 'the gold judge itself (the oracle ablation: the evaluation judge is the training judge)' : 'the proxy pairwise model demo/proxy-judge'}; evaluation: the gold judge (docs/demo.md), on ${held.length} held-out prompts, against the starter's responses.`,
      `Win rate: mean P(model > starter) with its standard error; LC: AlpacaEval 2.0's length-controlled win rate (dashed line in the first chart).`,
      `Same prompts, samples per prompt, judge, training pairs (${pairs === 'ranked' ? 'ranked: best with worst, second best with second worst' : 'best with worst'}) and training budget for every method (${training.epochs} epochs, batch ${training.batchSize}); lr and beta per method (${methods.map((m) => `${m}: lr ${hyper[m].lr}, beta ${hyper[m].beta}${describeLastIterate(lastIterateOf(m, o.lastIterate))}`).join('; ')}), ${o.quick ? 'the quick smoke test\'s setting' : `each picked by the same search (${SEARCH_GRID.length} settings for one iteration, the ${SEARCH_FINALISTS} best of each method for three, scored on validation prompts, never the held-out ones)${methods.some((m) => UNSEARCHED.includes(m) && !o.hyper?.[m]) ? `, except ${methods.filter((m) => UNSEARCHED.includes(m) && !o.hyper?.[m]).join(', ')}: SPPO's setting, not searched` : ''}`}.`,
      `"METHOD avg": the average iterate, the uniform mixture of the policies of iterations 1..t (SPPO's guarantee is about this policy): its win rate from one iteration drawn per held-out prompt, its styles and correctness from all of those iterations' style samples; the other rows are the last iterate.`,
      `Styles, correctness and style exploitability: from ${nStyle} samples per held-out prompt of each checkpoint (temperature 1; ${nStyle * held.length} per row). Style exploitability: 2 max_j P(j > mix) - 1 for the mix of answer styles on the held-out prompts, in the gold judge's style game (its 0.7 cycle, 0.8 against 'other', and its length term at each style's mean measured length; "pure cycle": the style term alone, equilibrium 1/3 each); 0 at the game's equilibrium, solved by the game lab's solver (src/demo/style_game.ts).`,
      `The game played: the same samples, each answer's gold win rate against the other samples of its prompt, correctness included; W_s the mean over style s's answers (a deviator answering in style s as well as the policy does in it); 2 max_s W_s - 1 ± its standard error over resamples of the prompts (src/demo/style_winrates.ts). The style game above counts only equally correct answers; when the policy is right more often in one style, the game it plays rewards that style, and its equilibrium moves.`,
      `Wall time ${seconds.toFixed(0)} s.`,
    ],
  });
  writeFileSync(join(out, 'report.html'), html);
  return { rows, details, averageRows, averageDetails, table, seconds, timings };
}

export interface SearchPoint extends Hyper {
  method: DemoMethod;
  win_rate: number;
  win_rate_se: number;
  correct: number;
}

/** One run of a finalist of the search's second stage (one seed): the demo's own iterations, each scored on the validation prompts. */
export interface FinalRun {
  seed: number;
  /** Validation win rate against the starter after each iteration (the last one is the score). */
  iterations: Array<{ iteration: number; win_rate: number; win_rate_se: number }>;
  win_rate: number;
  win_rate_se: number;
  /** From the style samples of the validation prompts after the last iteration. */
  correct: number;
  styles: Record<string, number>;
  style_exploitability: number;
}

/**
 * A finalist: its runs (one per SEARCH_FINAL_SEEDS seed) and their means (win_rate_se: the standard error of the mean
 * of the runs' win rates, from each run's own standard error).
 */
export interface FinalPoint extends Hyper, Omit<FinalRun, 'seed'> {
  method: DemoMethod;
  runs: FinalRun[];
}

/**
 * The training seeds of each finalist's runs: how far a policy leaves the style equilibrium by iteration 3 varies
 * from seed to seed as much as from setting to setting (docs/demo.md, five seeds), so one seed's run would choose on
 * its luck — and the demo's reported run (seed 0) would be the run the choice was made on.
 */
export const SEARCH_FINAL_SEEDS = [0, 1];

/** The mean of a finalist's runs. */
export function meanOfRuns(runs: readonly FinalRun[]): Omit<FinalRun, 'seed'> {
  if (runs.length === 0) throw new Error('meanOfRuns: no runs');
  const mean = (f: (r: FinalRun) => number): number => runs.reduce((a, r) => a + f(r), 0) / runs.length;
  const styles: Record<string, number> = {};
  for (const k of new Set(runs.flatMap((r) => Object.keys(r.styles)))) styles[k] = mean((r) => r.styles[k] ?? 0);
  return {
    iterations: runs[0]!.iterations.map((x, i) => ({ iteration: x.iteration, win_rate: mean((r) => r.iterations[i]!.win_rate), win_rate_se: Math.sqrt(mean((r) => r.iterations[i]!.win_rate_se ** 2) / runs.length) })),
    win_rate: mean((r) => r.win_rate),
    win_rate_se: Math.sqrt(mean((r) => r.win_rate_se ** 2) / runs.length),
    correct: mean((r) => r.correct),
    styles,
    style_exploitability: mean((r) => r.style_exploitability),
  };
}

/**
 * Finalists per method of the search's second stage: the points with the best one-iteration validation win rates
 * (successive halving: the first iteration prunes the grid, the survivors run the demo's three iterations).
 */
export const SEARCH_FINALISTS = 4;

/**
 * The search's choice for one method after one iteration, by the one-standard-error rule: among the points whose
 * validation win rate is within one standard error of the best one's, the smallest step (the smallest lr, then the
 * largest beta, i.e. the strongest pull towards pi_t). One iteration's score cannot tell those points apart (their
 * differences are within its noise), and the demo runs three: the larger step compounds (docs/demo.md, experiment 21).
 * The search's second stage (pickFinal) decides; this choice is kept in search.json for the record.
 */
export function pickSetting(points: ReadonlyArray<Pick<SearchPoint, 'lr' | 'beta' | 'win_rate' | 'win_rate_se'>>): Hyper {
  if (points.length === 0) throw new Error('pickSetting: no search points');
  const b = withinOneSe(points).reduce((x, y) => (smallerStep(y, x) ? y : x));
  return { lr: b.lr, beta: b.beta };
}

/** The points whose win rate is within one standard error (the best point's) of the best one's. */
function withinOneSe<P extends { win_rate: number; win_rate_se: number }>(points: readonly P[]): P[] {
  const top = points.reduce((x, y) => (y.win_rate > x.win_rate ? y : x));
  return points.filter((p) => p.win_rate >= top.win_rate - top.win_rate_se);
}

/** The smaller step of two settings: the smaller lr, then the larger beta. */
function smallerStep(a: Hyper, b: Hyper): boolean {
  return a.lr < b.lr || (a.lr === b.lr && a.beta > b.beta);
}

/** The `n` points with the best one-iteration validation win rates (ties: the smaller step first). */
export function pickFinalists<P extends Pick<SearchPoint, 'lr' | 'beta' | 'win_rate'>>(points: readonly P[], n: number): P[] {
  return [...points].sort((a, b) => b.win_rate - a.win_rate || (smallerStep(a, b) ? -1 : smallerStep(b, a) ? 1 : 0)).slice(0, n);
}

/**
 * The search's choice for one method from its finalists, each run for the demo's iterations (the means of their
 * seeds' runs): among those whose validation win rate after the last iteration is within one standard error of the
 * best one's, the one whose validation style mix is the least exploitable in the gold style game (the demo's second
 * figure; ties: the smaller step). The same rule for every method.
 */
export function pickFinal(points: ReadonlyArray<Pick<FinalPoint, 'lr' | 'beta' | 'win_rate' | 'win_rate_se' | 'style_exploitability'>>): Hyper {
  if (points.length === 0) throw new Error('pickFinal: no finalists');
  const b = withinOneSe(points).reduce((x, y) => (y.style_exploitability < x.style_exploitability || (y.style_exploitability === x.style_exploitability && smallerStep(y, x)) ? y : x));
  return { lr: b.lr, beta: b.beta };
}

export interface SearchOptions {
  root: string;
  out: string;
  fresh?: boolean;
  progress?: boolean;
  log?: (s: string) => void;
  methods?: DemoMethod[];
  proxy?: string;
  pairs?: PairMode;
  generation?: Partial<DemoGeneration>;
  /** Other magnet settings for the last-iterate methods than DEMO_LAST_ITERATE's (as runDemo's). */
  lastIterate?: Partial<Record<DemoMethod, LastIterate>>;
  /** Finalists per method run for the demo's iterations (default SEARCH_FINALISTS; 0: the first stage only). */
  finalists?: number;
  /** The training seeds of each finalist's runs (default SEARCH_FINAL_SEEDS). */
  finalSeeds?: number[];
  /** Tests: a smaller grid, demo and validation set. */
  grid?: Hyper[];
  sizes?: { iterations: number; perIteration: number; validCount: number; styleSamples: number };
}

export interface SearchResult {
  points: SearchPoint[];
  finals: FinalPoint[];
  /** The choice per method: pickFinal's over the finalists (pickSetting's when there are none). */
  best: Record<string, Hyper>;
  /** pickSetting's choice from the first stage alone (the search's rule before the second stage). */
  bestOneIteration: Record<string, Hyper>;
  seconds: number;
}

/**
 * The hyper-parameter search (`sppo demo search`), the same for every method, in two stages (successive halving).
 * 1. Every grid point, one iteration on the demo's first 416 training prompts, scored by the gold judge's win rate
 *    against the starter on the validation prompts. That iteration's samples and proxy verdicts do not depend on lr
 *    or beta: they are made once and shared.
 * 2. Each method's SEARCH_FINALISTS best points run as the demo runs them (its prompts, split and iterations), once
 *    per SEARCH_FINAL_SEEDS seed, each iteration scored on the validation prompts, and the last one's style mix
 *    measured from styleSamples samples per validation prompt; pickFinal chooses on the means of the runs. The first
 *    iteration of a seed is again shared.
 * Writes OUT/search.json. Never looks at the held-out prompts.
 */
export async function runSearch(o: SearchOptions): Promise<SearchResult> {
  const t0 = performance.now();
  const log = o.log ?? ((s: string) => console.error(s));
  const starter = join(o.root, 'demo', 'starter');
  const proxy = o.proxy ? resolve(o.proxy) : join(o.root, 'demo', 'proxy-judge');
  const out = resolve(o.out);
  if (o.fresh) rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const grid = o.grid ?? SEARCH_GRID;
  const size = o.sizes ?? { ...demoSizes(false), validCount: VALID_COUNT, styleSamples: DEMO_STYLE_SAMPLES };
  const nFinal = o.finalists ?? SEARCH_FINALISTS;
  const seeds = o.finalSeeds ?? SEARCH_FINAL_SEEDS;
  if (seeds.length === 0 || !seeds.every((x) => Number.isInteger(x) && x >= 0)) throw new Error(`search: finalSeeds must be integers >= 0, got ${JSON.stringify(seeds)}`);
  const heldAll = heldOutPrompts(HELD_OUT_COUNT, HELD_OUT_SEED);
  const nTrain = size.iterations * size.perIteration;
  const trainAll = trainingPrompts(nTrain, 0, heldAll, STREAM_SPPO);
  const valid = trainingPrompts(size.validCount, 0, heldAll, STREAM_VALID);
  const toRow = (t: Task): { prompt: string; kind: string } => ({ prompt: t.prompt, kind: t.kind });
  writeJsonlAtomic(join(out, 'prompts.jsonl'), trainAll.slice(0, size.perIteration).map(toRow));
  writeJsonlAtomic(join(out, 'prompts-demo.jsonl'), trainAll.map(toRow));
  writeJsonlAtomic(join(out, 'valid-prompts.jsonl'), valid.map(toRow));
  const gold = new GoldJudge();
  const generation = { ...DEMO_GENERATION, ...o.generation };
  const methods = o.methods ?? (['sppo', 'dpo', 'ipo'] as DemoMethod[]);
  // Files of a run that do not depend on lr, beta or the loss: copied from the stage's first run into each new one.
  const shared = ['iter-0/eval-responses.jsonl', 'iter-1/generations.jsonl', 'iter-1/preferences.jsonl', 'iter-1/pairs.jsonl'];
  const firstOf: Record<string, string> = {};
  const run = async (stage: string, method: DemoMethod, h: Hyper, runDir: string, prompts: string, iterations: number, seed: number) => {
    const first = firstOf[stage];
    if (first && !existsSync(join(runDir, 'run.json'))) {
      for (const f of shared) {
        if (!existsSync(join(first, f))) continue;
        mkdirSync(join(runDir, f, '..'), { recursive: true });
        copyFileSync(join(first, f), join(runDir, f));
      }
    }
    const cfg = demoRunConfig({
      starter, judge: demoJudgeSpec('proxy', proxy), prompts, runDir, iterations, perIteration: size.perIteration,
      seed, pairs: o.pairs ?? DEMO_PAIRS, training: methodTraining(method, DEMO_TRAINING, h, lastIterateOf(method, o.lastIterate)), evalCount: valid.length, evalPrompts: join(out, 'valid-prompts.jsonl'),
      generation,
    });
    const res = await runSppo(cfg, { evalJudge: gold, progress: o.progress, log: () => {} });
    firstOf[stage] ??= runDir;
    return res;
  };

  // Stage 1: every grid point, one iteration.
  const points: SearchPoint[] = [];
  for (const method of methods) {
    for (const h of grid) {
      const runDir = join(out, `${method}-lr${h.lr}-beta${h.beta}`);
      const res = await run('one', method, h, runDir, join(out, 'prompts.jsonl'), 1, 0);
      const ev = res.iterations[0]!.eval!;
      const resp = readJsonl<GenerationLine>(join(runDir, 'iter-1', 'eval-responses.jsonl')).filter((g) => !g.skipped);
      const st = responseStats(resp.map((g) => valid[g.index]!.prompt), resp.map((g) => g.responses[0]!.text));
      const p: SearchPoint = { method, ...h, win_rate: finite(ev.winRate), win_rate_se: finite(ev.standardError), correct: st.correct };
      points.push(p);
      log(`search: ${method} lr ${h.lr} beta ${h.beta}: validation win rate ${(100 * p.win_rate).toFixed(1)} +- ${(100 * p.win_rate_se).toFixed(1)} %, correct ${(100 * p.correct).toFixed(1)} %`);
    }
  }
  const bestOneIteration: Record<string, Hyper> = {};
  for (const m of methods) bestOneIteration[m] = pickSetting(points.filter((p) => p.method === m));

  // Stage 2: each method's finalists, the demo's iterations.
  const finals: FinalPoint[] = [];
  const best: Record<string, Hyper> = { ...bestOneIteration };
  for (const method of nFinal > 0 ? methods : []) {
    for (const h of pickFinalists(points.filter((p) => p.method === method), nFinal)) {
      const runs: FinalRun[] = [];
      for (const seed of seeds) {
        const runDir = join(out, 'final', `${method}-lr${h.lr}-beta${h.beta}${seed === 0 ? '' : `-seed${seed}`}`);
        const res = await run(`final-${seed}`, method, { lr: h.lr, beta: h.beta }, runDir, join(out, 'prompts-demo.jsonl'), size.iterations, seed);
        const its = res.iterations.map((it) => ({ iteration: it.iteration, win_rate: finite(it.eval!.winRate), win_rate_se: finite(it.eval!.standardError) }));
        const last = res.iterations.at(-1)!;
        const samples = await styleSamples(join(runDir, `iter-${last.iteration}`, 'valid-style-samples.jsonl'), join(runDir, `iter-${last.iteration}`, 'checkpoint'), valid, size.styleSamples, styleSeed(seed, last.iteration));
        const d = sampleDetails(method, last.iteration, valid, [samples]);
        runs.push({ seed, iterations: its, win_rate: its.at(-1)!.win_rate, win_rate_se: its.at(-1)!.win_rate_se, correct: d.correct, styles: d.styles, style_exploitability: finite(d.style_exploitability) });
        log(`search, final: ${method} lr ${h.lr} beta ${h.beta} seed ${seed}: validation win rate ${its.map((x) => (100 * x.win_rate).toFixed(1)).join(' / ')} (+- ${(100 * its.at(-1)!.win_rate_se).toFixed(1)}) %, correct ${(100 * d.correct).toFixed(1)} %, style exploitability ${runs.at(-1)!.style_exploitability.toFixed(3)}`);
      }
      finals.push({ method, lr: h.lr, beta: h.beta, ...meanOfRuns(runs), runs });
    }
    best[method] = pickFinal(finals.filter((p) => p.method === method));
  }
  const seconds = (performance.now() - t0) / 1000;
  writeFileSync(join(out, 'search.json'), JSON.stringify({ grid, finalists: nFinal, final_seeds: seeds, points, finals, best, best_one_iteration: bestOneIteration, seconds }, null, 2) + '\n');
  return { points, finals, best, bestOneIteration, seconds };
}
