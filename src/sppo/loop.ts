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
// an uninterrupted one (on the CPU; GPU kernels need not be deterministic). Timings go to timings.jsonl,
// which is a log, not an artifact.
//
// Test hook: SPPO_TEST_KILL_AT=ITER:STAGE:STEP makes the process SIGKILL itself right after step STEP
// (a saved chunk, or an optimizer step for `train`) of STAGE (generate, judge, train, eval-generate,
// with ITER 0 for the starting model's evaluation responses) of iteration ITER.
import { appendFileSync, existsSync } from 'node:fs';
import { relative } from 'node:path';
import cliProgress from 'cli-progress';
import { cuda, type DType } from '../torch/index.js';
import { loadModel, saveModel } from '../models/registry.js';
import { readConfig } from '../models/config.js';
import type { CausalLMBase } from '../models/causal_lm.js';
import { generate } from '../generate/generate.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate } from '../text/chat_template.js';
import { loadJudge, preferenceMatrix, type PreferenceOracle, type PreferenceQuery } from '../judge/judge.js';
import { evaluate, reportJson } from '../eval/evaluate.js';
import { parseConfig, refLogprobSource, type JudgeSpecConfig, type SppoConfig, type SppoConfigInput } from './config.js';
import { modelPromptText, plainPromptText, readPromptFile, splitPrompts, type PromptRecord, type PromptSplit } from './prompts.js';
import { readJson, readJsonl, RunDir, RunDirError, writeDirAtomic, writeJsonAtomic, writeJsonlAtomic } from './run_dir.js';
import { mixSeed } from './rng.js';
import { selectPair } from './pairs.js';
import { winRates } from './winrates.js';
import { train, type TrainExample } from './trainer.js';
import { remoteGenerator, type RemoteGenerator } from './remote_generation.js';

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
}

export interface IterationSummary {
  iteration: number;
  checkpoint: string;
  prompts: number;
  pairs: number;
  degeneratePairs: number;
  eval?: { n: number; winRate: number | null; standardError: number | null; lcWinRate: number | null; avgLength: number | null; avgReferenceLength: number | null };
}

export interface RunSummary {
  runDir: string;
  iterations: IterationSummary[];
  /** The last iteration's model folder. */
  finalModel: string;
}

/** A judge's failure or invalid answer during a run; the message names the judge and the prompt. */
export class JudgeStageError extends Error {
  override name = 'JudgeStageError';
}

/** One generated response as stored in generations.jsonl and eval-responses.jsonl. */
export interface StoredResponse {
  text: string;
  token_ids: number[];
  /** Sum of the untempered per-token log-probs under the generating model (float32 values, summed in float64). */
  logprob: number;
  finish_reason: string;
}

export interface GenerationLine {
  index: number;
  id?: string | number;
  prompt_text: string;
  prompt_ids: number[];
  responses: StoredResponse[];
  /** Set (and responses empty) when the prompt was not used. */
  skipped?: string;
}

export interface PreferenceLine {
  index: number;
  id?: string | number;
  matrix: number[][];
  win_rates: number[];
}

export interface PairLine {
  index: number;
  id?: string | number;
  chosen: number;
  rejected: number;
  chosen_win_rate: number;
  rejected_win_rate: number;
  chosen_over_rejected: number;
  degenerate: boolean;
  degenerate_reason?: string;
  prompt_ids: number[];
  chosen_ids: number[];
  rejected_ids: number[];
  chosen_ref_logprob?: number;
  rejected_ref_logprob?: number;
}

// Stream tags of the seeds (mixSeed(seed, iteration, TAG, chunk)).
const SEED_GENERATE = 1;
const SEED_PAIRS = 2;
const SEED_TRAIN = 3;
const SEED_EVAL = 0xe7a1;

function killHook(): (t: number, stage: string, step: number) => void {
  const spec = process.env.SPPO_TEST_KILL_AT;
  if (!spec) return () => {};
  const m = /^(\d+):([a-z-]+):(\d+)$/.exec(spec.trim());
  if (!m) throw new Error(`SPPO_TEST_KILL_AT must be ITER:STAGE:STEP, got '${spec}'`);
  const [it, st, sp] = [Number(m[1]), m[2]!, Number(m[3])];
  return (t, stage, step) => {
    if (t === it && stage === st && step === sp) process.kill(process.pid, 'SIGKILL');
  };
}

function checkedOracle(judge: PreferenceOracle): PreferenceOracle {
  return {
    get name() {
      return judge.name;
    },
    get positionBiased() {
      return judge.positionBiased;
    },
    async prefer(batch: PreferenceQuery[]): Promise<number[]> {
      const got: unknown = await judge.prefer(batch);
      if (!Array.isArray(got) || got.length !== batch.length) {
        throw new JudgeStageError(`judge '${judge.name}': prefer() returned ${Array.isArray(got) ? `${got.length} values` : String(got)} for ${batch.length} queries`);
      }
      got.forEach((v, i) => {
        if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
          throw new JudgeStageError(`judge '${judge.name}': returned ${String(v)} for query ${i} of a batch, not a probability in [0, 1]`);
        }
      });
      return got as number[];
    },
    dispose() {
      judge.dispose?.();
    },
  };
}

/** Loads a model folder; a failure names the stage and the folder. */
function loadStageModel(dir: string, what: string, dtype: DType, device: string): CausalLMBase {
  try {
    return loadModel(dir, { dtype, device });
  } catch (e) {
    throw new Error(`${what}: cannot load the model ${dir}: ${(e as Error).message}`);
  }
}

function idOf(r: { id?: string | number }): { id?: string | number } {
  return r.id !== undefined ? { id: r.id } : {};
}

function promptLabel(index: number, id: string | number | undefined): string {
  return id !== undefined ? `prompt #${index} (id ${JSON.stringify(id)})` : `prompt #${index}`;
}

function diffFields(a: unknown, b: unknown, path = ''): string[] {
  if (a === b) return [];
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffFields((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [path || '(config)'];
}

interface Item {
  index: number;
  id?: string | number;
  judgePrompt: string;
  text: string;
  ids: number[];
}

interface SamplingConfig {
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  minNewTokens: number;
  stop: string[];
  batchSize: number;
}

class Progress {
  private bar: cliProgress.SingleBar | undefined;
  constructor(private readonly enabled: boolean) {}
  start(label: string, total: number, done: number): void {
    if (!this.enabled) return;
    this.bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {value}/{total} | {eta_formatted} left`, stream: process.stderr, hideCursor: false }, cliProgress.Presets.shades_classic);
    this.bar.start(total, done);
  }
  update(v: number): void {
    this.bar?.update(v);
  }
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** Runs (or resumes) an SPPO run; returns the per-iteration summary (also written to summary.json). */
export async function runSppo(config: SppoConfigInput | SppoConfig, opts: RunOptions = {}): Promise<RunSummary> {
  const cfg = parseConfig(config, { baseDir: opts.baseDir });
  const log = opts.log ?? ((s: string) => console.error(s));
  const progress = new Progress(opts.progress ?? Boolean(process.stderr.isTTY));
  const kill = killHook();
  const rd = new RunDir(cfg.runDir);
  rd.open();
  const judges: PreferenceOracle[] = [];
  try {
    return await runLoop(cfg, rd, opts, log, progress, kill, judges);
  } finally {
    progress.stop();
    for (const j of judges) j.dispose?.();
    rd.close();
  }
}

async function runLoop(
  cfg: SppoConfig,
  rd: RunDir,
  opts: RunOptions,
  log: (s: string) => void,
  progress: Progress,
  kill: (t: number, stage: string, step: number) => void,
  judges: PreferenceOracle[],
): Promise<RunSummary> {
  const device = cfg.device ?? (cuda.isAvailable() ? 'cuda' : 'cpu');
  const dtype: DType = (cfg.dtype ?? (device.startsWith('cuda') ? 'bfloat16' : readConfig(cfg.model).dtype ?? 'float32')) as DType;
  const refSource = refLogprobSource(cfg, dtype);

  // Prompts and their split.
  const prompts = await readPromptFile(cfg.prompts);
  const separateEval = cfg.eval.prompts !== undefined;
  const evalRecords: PromptRecord[] = separateEval && cfg.eval.count > 0 ? (await readPromptFile(cfg.eval.prompts!)).slice(0, cfg.eval.count) : [];
  // The configuration this run directory was started with must not change.
  const runJson = rd.path(undefined, 'run.json');
  // (runDir itself is left out: a run directory may be moved.)
  // (nor generation.backend: where generation runs may change when a run is resumed.)
  const { runDir: _where, ...kept } = { ...cfg, generation: { ...cfg.generation, backend: undefined } };
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
    if (bad !== undefined) throw new RunDirError(`${splitPath} uses prompt #${bad}, but ${cfg.prompts} has ${prompts.length} prompts (the prompts file changed since the run started)`);
  } else {
    split = splitPrompts(prompts.length, { iterations: cfg.iterations, perIteration: cfg.promptsPerIteration, evalCount: separateEval ? 0 : cfg.eval.count, seed: cfg.seed });
    writeJsonAtomic(splitPath, split);
  }
  const evalPrompts = separateEval ? evalRecords : split.eval.map((i) => prompts[i]!);

  const tokenizer = Tokenizer.fromFolder(cfg.model);
  const template = !cfg.raw && ChatTemplate.hasTemplate(cfg.model) ? ChatTemplate.fromFolder(cfg.model, { specialTokens: tokenizer.specialTokens }) : undefined;
  const toItem = (r: PromptRecord): Item => {
    const text = modelPromptText(r.prompt, template, cfg.raw);
    return { index: r.index, ...idOf(r), judgePrompt: plainPromptText(r.prompt), text, ids: tokenizer.encode(text, { addSpecialTokens: false }) };
  };

  let judge: PreferenceOracle | undefined;
  let evalJudge: PreferenceOracle | undefined;
  const getJudge = async (): Promise<PreferenceOracle> => {
    if (!judge) {
      const j = opts.judge ?? (await loadJudge(cfg.judge));
      if (!opts.judge) judges.push(j);
      judge = checkedOracle(j);
    }
    return judge;
  };
  const getEvalJudge = async (): Promise<PreferenceOracle> => {
    if (!evalJudge) {
      if (opts.evalJudge) evalJudge = checkedOracle(opts.evalJudge);
      else if (cfg.evalJudge) {
        const j = await loadJudge(cfg.evalJudge as JudgeSpecConfig);
        judges.push(j);
        evalJudge = checkedOracle(j);
      } else evalJudge = await getJudge();
    }
    return evalJudge;
  };

  const timing = (t: number, stage: string, t0: number, extra: Record<string, unknown> = {}): void => {
    appendFileSync(rd.path(undefined, 'timings.jsonl'), JSON.stringify({ iteration: t, stage, seconds: (performance.now() - t0) / 1000, ...extra }) + '\n');
  };

  /** Generates (or reads back) `n` responses per item, in length-sorted chunks of `batchSize` prompts. */
  const generateStage = async (t: number, stage: string, modelDir: string, items: Item[], s: SamplingConfig, seedParts: number[], out: string): Promise<GenerationLine[]> => {
    const t0 = performance.now();
    const usable = items.filter((it) => it.ids.length <= cfg.training.maxPromptLength && it.ids.length > 0);
    const order = usable.map((_, i) => i).sort((a, b) => usable[a]!.ids.length - usable[b]!.ids.length || usable[a]!.index - usable[b]!.index);
    const nChunks = Math.ceil(order.length / s.batchSize);
    const byIndex = new Map<number, GenerationLine>();
    let model: CausalLMBase | undefined;
    let remote: RemoteGenerator | undefined;
    let tokens = 0;
    progress.start(`iter ${t} ${stage}`, nChunks, 0);
    try {
      for (let c = 0; c < nChunks; c++) {
        const path = rd.chunkPath(t, stage, c);
        let lines: GenerationLine[];
        if (existsSync(path)) {
          lines = readJsonl<GenerationLine>(path);
        } else {
          const chunk = order.slice(c * s.batchSize, (c + 1) * s.batchSize).map((i) => usable[i]!);
          // generation.backend: the training samples come from OpenAI-compatible servers (remote_generation.ts).
          if (cfg.generation.backend && stage === 'generate') remote ??= remoteGenerator(cfg.generation.backend, { checkpoint: modelDir, tokenizer, log, loadModel: () => loadStageModel(modelDir, `iteration ${t} ${stage}`, dtype, device) });
          const gens = remote
            ? await remote.generate(chunk.map((it) => it.ids), { ...s, seed: mixSeed(...seedParts, c) })
            : generate((model ??= loadStageModel(modelDir, `iteration ${t} ${stage}`, dtype, device)), chunk.map((it) => it.ids), {
                n: s.n, temperature: s.temperature, topP: s.topP, topK: s.topK, maxNewTokens: s.maxNewTokens, minNewTokens: s.minNewTokens,
                stopStrings: s.stop.length ? s.stop : undefined, seed: mixSeed(...seedParts, c), tokenizer,
              });
          lines = chunk.map((it, j) => ({
            index: it.index,
            ...idOf(it),
            prompt_text: it.text,
            prompt_ids: it.ids,
            responses: gens.slice(j * s.n, (j + 1) * s.n).map((g) => {
              tokens += g.tokens.length;
              return { text: g.text, token_ids: g.tokens, logprob: g.logprobs.reduce((a, x) => a + x, 0), finish_reason: g.finishReason };
            }),
          }));
          writeJsonlAtomic(path, lines);
          kill(t, stage, c + 1);
        }
        for (const l of lines) byIndex.set(l.index, l);
        progress.update(c + 1);
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      progress.stop();
      model?.dispose();
      await remote?.stop();
    }
    const all: GenerationLine[] = items.map((it) =>
      byIndex.get(it.index) ?? { index: it.index, ...idOf(it), prompt_text: it.text, prompt_ids: it.ids, responses: [], skipped: it.ids.length === 0 ? 'empty prompt' : `prompt has ${it.ids.length} tokens > training.maxPromptLength = ${cfg.training.maxPromptLength}` },
    );
    writeJsonlAtomic(out, all);
    rd.dropPartial(t, stage);
    const skipped = all.filter((l) => l.skipped).length;
    if (skipped) log(`sppo run: iteration ${t} ${stage}: ${skipped} prompt(s) skipped (too long or empty; see ${out})`);
    timing(t, stage, t0, { tokens });
    return all;
  };

  const g0 = cfg.generation;
  const genConfig: SamplingConfig = { n: g0.k, temperature: g0.temperature, topP: g0.topP, topK: g0.topK, maxNewTokens: g0.maxNewTokens, minNewTokens: g0.minNewTokens, stop: g0.stop, batchSize: g0.batchSize };
  const evalConfig: SamplingConfig = {
    ...genConfig,
    n: 1,
    temperature: cfg.eval.temperature ?? cfg.generation.temperature,
    topP: cfg.eval.topP ?? cfg.generation.topP,
    maxNewTokens: cfg.eval.maxNewTokens ?? cfg.generation.maxNewTokens,
    batchSize: cfg.eval.batchSize ?? cfg.generation.batchSize,
  };
  const evalItems = evalPrompts.map(toItem);
  const evalItemByIndex = new Map(evalItems.map((e) => [e.index, e]));
  const doEval = evalItems.length > 0;

  const evalResponses = async (t: number, modelDir: string): Promise<GenerationLine[]> => {
    const out = rd.path(t, 'eval-responses.jsonl');
    if (existsSync(out)) return readJsonl<GenerationLine>(out);
    return generateStage(t, 'eval-generate', modelDir, evalItems, evalConfig, [cfg.seed, SEED_EVAL], out);
  };
  // pi_0's responses to the held-out prompts: generated once, the reference of every evaluation.
  const baseline = doEval ? await evalResponses(0, cfg.model) : [];

  const summaries: IterationSummary[] = [];
  let policyDir = cfg.model;
  for (let t = 1; t <= cfg.iterations; t++) {
    const items = split.iterations[t - 1]!.map((i) => toItem(prompts[i]!));
    const itemByIndex = new Map(items.map((it) => [it.index, it]));

    // 1. generation
    const genPath = rd.path(t, 'generations.jsonl');
    const gens = existsSync(genPath) ? readJsonl<GenerationLine>(genPath) : await generateStage(t, 'generate', policyDir, items, genConfig, [cfg.seed, t, SEED_GENERATE], genPath);
    const used = gens.filter((g) => !g.skipped);

    // 2. preferences
    const prefPath = rd.path(t, 'preferences.jsonl');
    let prefs: PreferenceLine[];
    if (existsSync(prefPath)) prefs = readJsonl<PreferenceLine>(prefPath);
    else {
      const t0 = performance.now();
      const j = await getJudge();
      const nChunks = Math.ceil(used.length / cfg.judgeChunk);
      prefs = [];
      progress.start(`iter ${t} judge`, used.length, 0);
      try {
        for (let c = 0; c < nChunks; c++) {
          const path = rd.chunkPath(t, 'judge', c);
          let lines: PreferenceLine[];
          if (existsSync(path)) lines = readJsonl<PreferenceLine>(path);
          else {
            lines = [];
            for (const g of used.slice(c * cfg.judgeChunk, (c + 1) * cfg.judgeChunk)) {
              const item = itemByIndex.get(g.index)!;
              let matrix: number[][];
              try {
                matrix = await preferenceMatrix(j, item.judgePrompt, g.responses.map((r) => r.text));
              } catch (e) {
                throw new JudgeStageError(`iteration ${t}, ${promptLabel(g.index, g.id)}: ${(e as Error).message ?? String(e)}`);
              }
              let wr: Float64Array;
              try {
                wr = winRates(matrix, { promptIndex: g.index, ...(g.id !== undefined ? { promptId: g.id } : {}) });
              } catch (e) {
                throw new JudgeStageError(`iteration ${t}, judge '${j.name}': ${(e as Error).message}`);
              }
              lines.push({ index: g.index, ...idOf(g), matrix: matrix.map((row) => Array.from(row)), win_rates: Array.from(wr) });
              progress.update(prefs.length + lines.length);
            }
            writeJsonlAtomic(path, lines);
            kill(t, 'judge', c + 1);
          }
          prefs.push(...lines);
          progress.update(prefs.length);
        }
      } finally {
        progress.stop();
      }
      writeJsonlAtomic(prefPath, prefs);
      rd.dropPartial(t, 'judge');
      timing(t, 'judge', t0);
    }

    // 3. pairs
    const pairsPath = rd.path(t, 'pairs.jsonl');
    let pairs: PairLine[];
    if (existsSync(pairsPath)) pairs = readJsonl<PairLine>(pairsPath);
    else {
      const byIndex = new Map(used.map((g) => [g.index, g]));
      pairs = prefs.map((p) => {
        const g = byIndex.get(p.index);
        if (!g) throw new RunDirError(`${prefPath}: prompt #${p.index} is not in ${genPath}`);
        const sel = selectPair(p.matrix, { seed: mixSeed(cfg.seed, t, SEED_PAIRS), promptIndex: p.index, responses: g.responses.map((r) => r.text), ...(p.id !== undefined ? { promptId: p.id } : {}) });
        const w = g.responses[sel.chosen]!;
        const l = g.responses[sel.rejected]!;
        return {
          index: p.index,
          ...idOf(p),
          chosen: sel.chosen,
          rejected: sel.rejected,
          chosen_win_rate: sel.chosenWinRate,
          rejected_win_rate: sel.rejectedWinRate,
          chosen_over_rejected: sel.chosenOverRejected,
          degenerate: sel.degenerate,
          ...(sel.degenerateReason ? { degenerate_reason: sel.degenerateReason } : {}),
          prompt_ids: g.prompt_ids,
          chosen_ids: w.token_ids,
          rejected_ids: l.token_ids,
          ...(refSource === 'generation' ? { chosen_ref_logprob: w.logprob, rejected_ref_logprob: l.logprob } : {}),
        };
      });
      writeJsonlAtomic(pairsPath, pairs);
    }
    const examples: TrainExample[] = pairs
      .filter((p) => !p.degenerate)
      .map((p) => ({
        promptIds: p.prompt_ids,
        chosenIds: p.chosen_ids,
        rejectedIds: p.rejected_ids,
        chosenWinRate: p.chosen_win_rate,
        rejectedWinRate: p.rejected_win_rate,
        chosenOverRejected: p.chosen_over_rejected,
        ...(p.chosen_ref_logprob !== undefined ? { chosenRefLogprob: p.chosen_ref_logprob, rejectedRefLogprob: p.rejected_ref_logprob! } : {}),
      }));

    // 4. training
    const ckpt = rd.path(t, 'checkpoint');
    if (!existsSync(ckpt)) {
      const t0 = performance.now();
      const metricsPath = rd.path(t, 'train-metrics.jsonl');
      let speed: number[] = [];
      if (examples.length === 0) {
        log(`sppo run: iteration ${t}: no informative pair (all ${pairs.length} degenerate); pi_${t} = pi_${t - 1}`);
        const m = loadStageModel(policyDir, `iteration ${t} train`, dtype, device);
        try {
          writeJsonlAtomic(metricsPath, []);
          await writeDirAtomic(ckpt, (tmp) => void saveModel(m, tmp, { tokenizerDir: cfg.model }));
        } finally {
          m.dispose();
        }
      } else {
        const tc = cfg.training;
        const groups = Math.ceil(examples.length / (tc.batchSize * tc.gradAccum)) * tc.epochs;
        progress.start(`iter ${t} train`, groups, 0);
        let model: CausalLMBase | undefined;
        try {
          model = loadStageModel(policyDir, `iteration ${t} train`, dtype, device);
          const res = await train({
            policy: model,
            reference: policyDir,
            examples,
            loss: tc.loss,
            beta: tc.beta,
            labelSmoothing: tc.labelSmoothing,
            lr: tc.lr,
            epochs: tc.epochs,
            batchSize: tc.batchSize,
            gradAccum: tc.gradAccum,
            optimizer: tc.optimizer,
            weightDecay: tc.weightDecay,
            warmupRatio: tc.warmupRatio,
            schedule: tc.schedule,
            maxLength: tc.maxLength,
            maxPromptLength: tc.maxPromptLength,
            maxGradNorm: tc.maxGradNorm,
            gradientCheckpointing: tc.gradientCheckpointing,
            dtype: dtype as 'float32' | 'bfloat16',
            device,
            seed: mixSeed(cfg.seed, t, SEED_TRAIN),
            onStep: (m) => {
              progress.update(m.step);
              kill(t, 'train', m.step);
            },
          }).catch((e: unknown) => {
            if (e instanceof Error) e.message = `iteration ${t} train: ${e.message}`;
            throw e;
          });
          model = res.model;
          // Step timings are not artifacts: they go to timings.jsonl.
          speed = res.metrics.map((m) => m.tokens_per_s);
          writeJsonlAtomic(metricsPath, res.metrics.map(({ tokens_per_s: _omit, ...rest }) => rest));
          progress.stop();
          const m = model;
          await writeDirAtomic(ckpt, (tmp) => void saveModel(m, tmp, { tokenizerDir: cfg.model }));
        } finally {
          progress.stop();
          model?.dispose();
        }
      }
      timing(t, 'train', t0, { examples: examples.length, tokens_per_s: speed });
    }

    // 5. evaluation against pi_0
    const summary: IterationSummary = {
      iteration: t,
      checkpoint: ckpt,
      prompts: used.length,
      pairs: examples.length,
      degeneratePairs: pairs.length - examples.length,
    };
    if (doEval) {
      const evalPath = rd.path(t, 'eval.json');
      let report: Record<string, unknown>;
      if (existsSync(evalPath)) report = readJson<Record<string, unknown>>(evalPath);
      else {
        const resp = await evalResponses(t, ckpt);
        const t0 = performance.now();
        const ej = await getEvalJudge();
        const base = new Map(baseline.map((b) => [b.index, b]));
        const evalItemsNow = resp
          .filter((r) => !r.skipped && !base.get(r.index)?.skipped)
          .map((r) => ({ prompt: evalItemByIndex.get(r.index)!.judgePrompt, output: r.responses[0]!.text, reference: base.get(r.index)!.responses[0]!.text }));
        progress.start(`iter ${t} eval`, evalItemsNow.length, 0);
        let rep;
        try {
          rep = await evaluate(ej, evalItemsNow, { batchSize: cfg.judgeChunk, onProgress: (d) => progress.update(d) });
        } catch (e) {
          throw new JudgeStageError(`iteration ${t}, evaluation: ${(e as Error).message}`);
        } finally {
          progress.stop();
        }
        report = reportJson(rep, { iteration: t, model: `iter-${t}/checkpoint`, reference: 'iter-0/eval-responses.jsonl (pi_0)' });
        writeJsonAtomic(evalPath, report);
        timing(t, 'eval', t0);
      }
      const num = (k: string): number | null => (typeof report[k] === 'number' ? (report[k] as number) : null);
      summary.eval = { n: Number(report.n), winRate: num('winRate'), standardError: num('standardError'), lcWinRate: num('lcWinRate'), avgLength: num('avgLength'), avgReferenceLength: num('avgReferenceLength') };
      const f = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(3));
      log(`sppo run: iteration ${t}: win rate vs pi_0 ${f(summary.eval.winRate)} ± ${f(summary.eval.standardError)} (LC ${f(summary.eval.lcWinRate)}, n = ${summary.eval.n})`);
    }
    summaries.push(summary);
    policyDir = ckpt;
  }

  // summary.json holds paths relative to the run directory (the API returns them absolute).
  writeJsonAtomic(rd.path(undefined, 'summary.json'), {
    iterations: summaries.map((s) => ({ ...s, checkpoint: relative(cfg.runDir, s.checkpoint) })),
    finalModel: relative(cfg.runDir, policyDir) || '.',
  });
  return { runDir: cfg.runDir, iterations: summaries, finalModel: policyDir };
}
