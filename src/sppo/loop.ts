// The SPPO loop (`sppo run CONFIG`, `runSppo(config)`), Wu et al. 2024, Algorithm 1:
//
//   for t = 1..T:   (pi_0 = config.model; pi_{t-1} = iter-(t-1)/checkpoint)
//     generate   iter-t/generations.jsonl   K samples per prompt of the iteration's split, from pi_{t-1}
//     judge      iter-t/preferences.jsonl   the K x K preference matrix of each prompt
//     pairs      iter-t/pairs.jsonl         chosen / rejected (highest / lowest win rate), token ids, reference log-probs
//     train      iter-t/train-metrics.jsonl, iter-t/checkpoint/   pi_t trained from pi_{t-1} (also the reference)
//     eval       iter-t/eval-responses.jsonl, iter-t/eval.json    pi_t vs pi_0 on held-out prompts
//
// Resumption: an artifact that exists is finished (all are written atomically, see run_dir.ts); a rerun
// skips finished stages, and within generation and judging it also skips finished chunks. Every random
// choice is seeded from (config.seed, iteration, stage, chunk), so a resumed run writes the same bytes as
// an uninterrupted one on the same machine and thread count (floats are sums whose order follows the thread
// count and the kernels: across those, the same tokens and texts and log-probs to rounding; docs/sppo-loop.md). Timings go to timings.jsonl,
// which is a log, not an artifact.
//
// Data parallel (opts.processGroup: `sppo run --nproc N`, torchrun, srun): every rank runs this loop over the
// same run directory (a shared filesystem across nodes); generation and judging chunks are shared out by
// rank, training is DDP, rank 0 writes every file of the run (and judges the evaluation), and barriers keep
// the ranks in step between stages. The files are those of one process (the same tokens, texts, preferences and
// pairs; log-probs to rounding, as between thread counts), so a run resumes with any number of ranks.
//
// Each stage is a module of src/sppo/stages/ (generate.ts, judge.ts, pairs.ts, train.ts, eval.ts) with its input
// explicit; what they share (the context, the artifact lines, the seed streams) is stages/context.ts.
//
// Test hook: SPPO_TEST_KILL_AT=ITER:STAGE:STEP makes the process SIGKILL itself right after step STEP
// (a saved chunk, or an optimizer step for `train`) of STAGE (generate, judge, train, eval-generate,
// with ITER 0 for the starting model's evaluation responses) of iteration ITER.
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { cuda, type DType, type ProcessGroup } from '../torch/index.js';
import { readConfig } from '../models/config.js';
import { createModel } from '../models/registry.js';
import { LoraError, loraTargets } from '../nn/lora.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, encodePrompt, stopSetWarning } from '../text/chat_template.js';
import { loadJudge } from '../judge/judge.js';
import type { PreferenceOracle } from '../judge/oracle.js';
import type { JudgeSpec } from '../judge/spec.js';
import { parseConfig, refLogprobSource, type SppoConfig, type SppoConfigInput } from './config.js';
import { modelPrompt, plainPromptText, splitPrompts, type PromptRecord, type PromptSplit } from './prompts.js';
import { readJson, RunDir, RunDirError, writeJsonAtomic } from './run_dir.js';
import { iterationExamples, magnetDir } from './last_iterate.js';
import { idOf, isLeader, killHook, Progress, resetPeakMemory, sync, type Item, type SamplingConfig, type StageContext } from './stages/context.js';
import { generateIteration } from './stages/generate.js';
import { checkedOracle, judgeIteration } from './stages/judge.js';
import { pairsIteration } from './stages/pairs.js';
import { trainIteration } from './stages/train.js';
import { evalIteration, evalResponses, type EvalPrompts, type EvalSummary } from './stages/eval.js';
import { pushIteration } from './stages/push.js';
import { hubToken } from '../hub/cache.js';
import { resolveHubNames } from './hub_names.js';
import { promptsName, readPrompts } from './dataset_prompts.js';
import { startTracking } from './tracking.js';

export type { StoredResponse, GenerationLine, PreferenceLine, PairLine } from './stages/context.js';
export { JudgeStageError } from './stages/judge.js';

export interface RunOptions {
  /** Use this judge instead of loading `config.judge` (library use, tests). */
  judge?: PreferenceOracle;
  /** Use this evaluation judge instead of loading `config.evalJudge` (default: the judge). */
  evalJudge?: PreferenceOracle;
  /** Progress bars on stderr (default: when stderr is a terminal). */
  progress?: boolean;
  /** Where progress lines go (default: stderr). */
  log?: (line: string) => void;
  /** Base folder for relative paths of a config object (default: the current folder). */
  baseDir?: string;
  /** Data parallel over this c10d group (every rank calls runSppo with the same config); see the top of this file. */
  processGroup?: ProcessGroup;
  /** With processGroup: shard the optimizer state across the ranks (ZeRO stage 1; the same result). */
  zero1?: boolean;
}

export interface IterationSummary {
  iteration: number;
  checkpoint: string;
  prompts: number;
  pairs: number;
  degeneratePairs: number;
  eval?: EvalSummary;
}

export interface RunSummary {
  runDir: string;
  iterations: IterationSummary[];
  /** The last iteration's model folder. */
  finalModel: string;
}

function diffFields(a: unknown, b: unknown, path = ''): string[] {
  if (a === b) return [];
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffFields((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path || '(config)'];
}

/** Runs (or resumes) an SPPO run; returns the per-iteration summary (also written to summary.json). */
export async function runSppo(config: SppoConfigInput | SppoConfig, opts: RunOptions = {}): Promise<RunSummary> {
  const cfg = await resolveHubNames(parseConfig(config, { baseDir: opts.baseDir }), { judges: !opts.judge });
  const pg = opts.processGroup;
  const leader = !pg || pg.rank === 0;
  // Rank 0 speaks for the run; the others only report their errors (as exceptions).
  const log = leader ? opts.log ?? ((s: string) => console.error(s)) : () => {};
  const progress = new Progress(leader && (opts.progress ?? Boolean(process.stderr.isTTY)));
  const kill = killHook();
  const rd = new RunDir(cfg.runDir);
  // Rank 0 takes the run directory's lock (and clears leftovers) before the others look at it.
  if (leader) rd.open();
  const judges: PreferenceOracle[] = [];
  try {
    // On CUDA each rank takes the GPU of its local rank.
    const device = cfg.device ?? (cuda.isAvailable() ? (pg ? `cuda:${pg.localRank % Math.max(1, cuda.deviceCount())}` : 'cuda') : 'cpu');
    const dtype: DType = (cfg.dtype ?? (device.startsWith('cuda') ? 'bfloat16' : readConfig(cfg.model).dtype ?? 'float32')) as DType;
    if (cfg.training.lora) checkLoraTargets(cfg.model, cfg.training.lora.targetModules);
    resetPeakMemory(device);
    const tracker = leader ? startTracking(cfg, log) : undefined;
    return await runLoop({ cfg, rd, log, progress, kill, dtype, device, ...(tracker ? { tracker } : {}), ...(pg ? { dist: { pg, rank: pg.rank, world: pg.worldSize, zero1: opts.zero1 } } : {}) }, opts, judges);
  } finally {
    progress.stop();
    for (const j of judges) j.dispose?.();
    rd.close();
  }
}

/** training.lora.targetModules must select layers of the model: checked before anything runs (the model's shapes only, no weights). */
function checkLoraTargets(modelDir: string, targets: string[] | string): void {
  const m = createModel(readConfig(modelDir));
  try {
    loraTargets(m, targets);
  } catch (e) {
    throw new LoraError(`training.lora.targetModules: ${(e as Error).message.replace(/^lora: /, '')}`);
  } finally {
    m.dispose();
  }
}

/**
 * The run's prompts and their split over the iterations (splits.json, fixed at the start), after checking that
 * the configuration is the one the run directory was started with (run.json).
 */
async function openRun(cfg: SppoConfig, rd: RunDir): Promise<{ prompts: PromptRecord[]; split: PromptSplit; evalPrompts: PromptRecord[] }> {
  const prompts = await readPrompts(cfg.prompts);
  const separateEval = cfg.eval.prompts !== undefined;
  const evalRecords: PromptRecord[] = separateEval && cfg.eval.count > 0 ? (await readPrompts(cfg.eval.prompts!)).slice(0, cfg.eval.count) : [];
  // The configuration this run directory was started with must not change.
  const runJson = rd.path(undefined, 'run.json');
  // (runDir itself is left out: a run directory may be moved.)
  // (nor generation.backend: where generation runs may change when a run is resumed.)
  // (nor report: tracking may be turned on or off when a run is resumed.)
  // (nor push: uploads may be turned on when a run is resumed.)
  const { runDir: _where, ...kept } = { ...cfg, report: undefined, push: undefined, generation: { ...cfg.generation, backend: undefined } };
  const snapshot = { format: 1, config: kept };
  if (existsSync(runJson)) {
    const old = readJson<{ config: unknown }>(runJson);
    const changed = diffFields(old.config, JSON.parse(JSON.stringify(kept)));
    if (changed.length) {
      throw new RunDirError(`${cfg.runDir} was started with a different configuration (changed: ${changed.join(', ')}); restore those fields or use a new runDir`);
    }
  } else {
    writeJsonAtomic(runJson, snapshot);
  }

  let split: PromptSplit;
  const splitPath = rd.path(undefined, 'splits.json');
  if (existsSync(splitPath)) {
    split = readJson<PromptSplit>(splitPath);
    const bad = [...split.eval, ...split.iterations.flat()].find((i) => i >= prompts.length);
    if (bad !== undefined) throw new RunDirError(`${splitPath} uses prompt #${bad}, but ${promptsName(cfg.prompts)} has ${prompts.length} prompts (the prompts file changed since the run started)`);
  } else {
    split = splitPrompts(prompts.length, { iterations: cfg.iterations, perIteration: cfg.promptsPerIteration, evalCount: separateEval ? 0 : cfg.eval.count, seed: cfg.seed });
    writeJsonAtomic(splitPath, split);
  }
  return { prompts, split, evalPrompts: separateEval ? evalRecords : split.eval.map((i) => prompts[i]!) };
}

/** The sampling of the iterations' generation and of the evaluated responses (one per prompt). */
function samplingConfigs(cfg: SppoConfig): { generation: SamplingConfig; evaluation: SamplingConfig } {
  const g0 = cfg.generation;
  const generation: SamplingConfig = { n: g0.k, temperature: g0.temperature, topP: g0.topP, topK: g0.topK, maxNewTokens: g0.maxNewTokens, minNewTokens: g0.minNewTokens, stop: g0.stop, batchSize: g0.batchSize, graph: g0.graph };
  const evaluation: SamplingConfig = {
    ...generation,
    n: 1,
    temperature: cfg.eval.temperature ?? cfg.generation.temperature,
    topP: cfg.eval.topP ?? cfg.generation.topP,
    maxNewTokens: cfg.eval.maxNewTokens ?? cfg.generation.maxNewTokens,
    batchSize: cfg.eval.batchSize ?? cfg.generation.batchSize,
  };
  return { generation, evaluation };
}

/** A judge's usage and verdict counts, for judges that keep them (the HTTP judge's stats()). */
export function judgeStatsOf(j: PreferenceOracle | undefined): Record<string, unknown> | undefined {
  const f = (j as { stats?: () => unknown } | undefined)?.stats;
  return typeof f === 'function' ? (f.call(j) as Record<string, unknown>) : undefined;
}

/** An HTTP judge without a cache file of its own keeps its verdicts in the run directory's judge-cache.jsonl. */
function withRunCache(spec: JudgeSpec, rd: RunDir): JudgeSpec {
  return spec.kind === 'openai' && !spec.cache ? { ...spec, cache: rd.path(undefined, 'judge-cache.jsonl') } : spec;
}

/** The judges, each loaded on first use (a resumed run whose judging is finished loads none); loaded ones go to `judges` for disposal. */
function lazyJudges(
  cfg: SppoConfig,
  rd: RunDir,
  log: (line: string) => void,
  opts: RunOptions,
  judges: PreferenceOracle[],
): {
  judge: () => Promise<PreferenceOracle>;
  evalJudge: () => Promise<PreferenceOracle>;
  evalStats: () => Record<string, unknown> | undefined;
  judgeStats: () => Record<string, unknown> | undefined;
} {
  let judge: PreferenceOracle | undefined;
  let evalJudge: PreferenceOracle | undefined;
  let rawJudge: PreferenceOracle | undefined;
  let rawEval: PreferenceOracle | undefined;
  const getJudge = async (): Promise<PreferenceOracle> => {
    if (!judge) {
      const j = opts.judge ?? (await loadJudge(withRunCache(cfg.judge, rd), { log }));
      if (!opts.judge) judges.push(j);
      rawJudge = j;
      judge = checkedOracle(j);
    }
    return judge;
  };
  const getEvalJudge = async (): Promise<PreferenceOracle> => {
    if (!evalJudge) {
      if (opts.evalJudge) {
        rawEval = opts.evalJudge;
        evalJudge = checkedOracle(opts.evalJudge);
      } else if (cfg.evalJudge) {
        const j = await loadJudge(withRunCache(cfg.evalJudge, rd), { log });
        judges.push(j);
        rawEval = j;
        evalJudge = checkedOracle(j);
      } else {
        evalJudge = await getJudge();
        rawEval = rawJudge;
      }
    }
    return evalJudge;
  };
  return { judge: getJudge, evalJudge: getEvalJudge, evalStats: () => judgeStatsOf(rawEval), judgeStats: () => judgeStatsOf(rawJudge) };
}

/** The loop: per iteration, the five stages in order, each skipped (read back) when its artifact is finished. */
async function runLoop(ctx: StageContext, opts: RunOptions, judges: PreferenceOracle[]): Promise<RunSummary> {
  const { cfg, rd } = ctx;
  const refSource = refLogprobSource(cfg, ctx.dtype);
  // push: the token is needed after the first iteration's training; without one, say so before any work (every rank).
  if (cfg.push && !hubToken()) throw new RunDirError(`push: uploading to ${cfg.push.repo} needs a token with write access: set HF_TOKEN (or run \`hf auth login\`), or remove push from the config`);
  // Rank 0 writes run.json and splits.json; the others read them.
  if (!isLeader(ctx)) await sync(ctx);
  const { prompts, split, evalPrompts } = await openRun(cfg, rd);
  if (isLeader(ctx)) await sync(ctx);

  const tokenizer = Tokenizer.fromFolder(cfg.model);
  const template = !cfg.raw && ChatTemplate.hasTemplate(cfg.model) ? ChatTemplate.fromFolder(cfg.model, { specialTokens: tokenizer.specialTokens }) : undefined;
  const stopWarning = isLeader(ctx) ? stopSetWarning(tokenizer, template, cfg.chatTemplateKwargs) : undefined;
  if (stopWarning) ctx.log(`warning: ${stopWarning}`);
  const toItem = (r: PromptRecord): Item => {
    const rendered = modelPrompt(r.prompt, template, cfg.raw, cfg.chatTemplateKwargs);
    const text = rendered.text;
    const judgePrompt = cfg.judgePromptFormat === 'template' ? text : plainPromptText(r.prompt);
    return { index: r.index, ...idOf(r), judgePrompt, text, ids: encodePrompt(tokenizer, rendered) };
  };
  const { judge, evalJudge, evalStats, judgeStats } = lazyJudges(cfg, ctx.rd, ctx.log, opts, judges);
  const sampling = samplingConfigs(cfg);
  const evalItems = evalPrompts.map(toItem);
  const evalSet: EvalPrompts = { items: evalItems, itemByIndex: new Map(evalItems.map((e) => [e.index, e])), sampling: sampling.evaluation, tokenizer };
  const doEval = evalItems.length > 0;
  // pi_0's responses to the held-out prompts: generated once, the reference of every evaluation.
  const baseline = doEval ? await evalResponses(ctx, 0, cfg.model, evalSet) : [];

  const summaries: IterationSummary[] = [];
  let policyDir = cfg.model;
  let prevPolicyDir: string | undefined;
  for (let t = 1; t <= cfg.iterations; t++) {
    const items = split.iterations[t - 1]!.map((i) => toItem(prompts[i]!));
    const gens = await generateIteration(ctx, { t, policyDir, items, sampling: sampling.generation, tokenizer });
    const used = gens.filter((g) => !g.skipped);
    const prefs = await judgeIteration(ctx, { t, used, itemByIndex: new Map(items.map((it) => [it.index, it])), judge });
    // An LLM judge's running counts (unparseable verdicts count 1/2 in the matrices, so they are said here).
    const js = judgeStats() as { verdicts?: { total: number; unparseable: number }; usage?: unknown; cacheHits?: number } | undefined;
    if (js?.verdicts) ctx.log(`sppo run: iteration ${t}: judge so far: ${js.verdicts.unparseable} unparseable verdicts of ${js.verdicts.total} (taken as 1/2), ${js.cacheHits} from the cache; tokens ${JSON.stringify(js.usage)}`);
    const pairs = pairsIteration(ctx, { t, used, prefs, refSource });
    const magnet = magnetDir(cfg, t, (s) => rd.path(s, 'checkpoint'));
    // omwu, extragradient and nash-md also judge against another policy's samples (last_iterate.ts).
    const examples = await iterationExamples(ctx, { t, pairs, used, items, policyDir, prevPolicyDir, magnetDir: magnet, sampling: sampling.generation, tokenizer, judge });
    const checkpoint = await trainIteration(ctx, { t, examples, pairCount: pairs.length, policyDir, ...(magnet !== undefined ? { magnetDir: magnet } : {}) });
    const summary: IterationSummary = { iteration: t, checkpoint, prompts: used.length, pairs: examples.length, degeneratePairs: pairs.length - examples.length };
    if (doEval) summary.eval = await evalIteration(ctx, { t, checkpoint, prompts: evalSet, baseline, judge: evalJudge, judgeStats: evalStats });
    summaries.push(summary);
    if (cfg.push) await pushIteration(ctx, { t, checkpoint, iterations: summaries });
    prevPolicyDir = policyDir;
    policyDir = checkpoint;
  }

  // summary.json holds paths relative to the run directory (the API returns them absolute).
  if (isLeader(ctx)) {
    writeJsonAtomic(rd.path(undefined, 'summary.json'), {
      iterations: summaries.map((s) => ({ ...s, checkpoint: relative(cfg.runDir, s.checkpoint) })),
      finalModel: relative(cfg.runDir, policyDir) || '.',
    });
  }
  await sync(ctx);
  return { runDir: cfg.runDir, iterations: summaries, finalModel: policyDir };
}
