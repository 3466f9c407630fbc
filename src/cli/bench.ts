// `sppo bench alpaca-eval | mt-bench | arena-hard`: the paper's three benchmarks, run locally against any
// OpenAI-compatible judge endpoint, each written in its own tool's formats (src/eval/benchmarks/).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadModel } from '../models/registry.js';
import { readConfig } from '../models/config.js';
import { generateAll } from '../generate/generate.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, encodePrompt, type ChatMessage, type RenderedPrompt } from '../text/chat_template.js';
import { loadJudge, parseJudgeSpec, type JudgeSpec } from '../judge/judge.js';
import { OpenAIJudge } from '../judge/openai.js';
import { parseMtBenchRating, readMtBenchJudgePrompts } from '../judge/templates/mt_bench.js';
import { readOutputsFile, type OutputRecord } from '../eval/evaluate.js';
import { ALPACA_EVAL_ANNOTATOR, ALPACA_EVAL_REFERENCE_FILE, alpacaEvalLeaderboardCsv, alpacaEvalMetrics, annotateAlpacaEval, type AlpacaEvalAnnotation, type AlpacaEvalGlmInputs, type AlpacaEvalItem, type AlpacaEvalResult } from '../eval/benchmarks/alpaca_eval.js';
import { alpacaEvalPreference, parseGamedBaselinesCsv, parseInstructionDifficultyCsv } from '../eval/benchmarks/alpaca_eval_files.js';
import { judgeMtBench, mtBenchResult, mtBenchTable, type MtBenchItem, type MtBenchJudgment, type MtBenchQuestion } from '../eval/benchmarks/mt_bench.js';
import { ARENA_HARD_BASELINE, arenaHardCsv, arenaHardLine, arenaHardScore, judgeArenaHard, type ArenaHardItem, type ArenaHardJudgment } from '../eval/benchmarks/arena_hard.js';
import { parseArenaHard } from '../judge/templates/arena_hard.js';
import { mixSeed } from '../util/rng.js';
import { writeFileAtomic, writeJsonAtomic, writeJsonlAtomic } from '../util/files.js';
import { UsageError } from './usage.js';
import { modelFolder } from './model_option.js';
import { chatTemplateKwargsOption, deviceOption, dtypeOption, num, parseCommand, progressBar } from './args.js';
import { JUDGE_OPTIONS, JUDGE_OPTIONS_HELP, withJudgeOptions } from './judge_options.js';

export const summary = 'AlpacaEval 2.0 (LC), MT-Bench and Arena-Hard with an LLM judge over HTTP';

const BENCHES = { 'alpaca-eval': 'alpaca_eval', 'mt-bench': 'mt_bench', 'arena-hard': 'arena_hard' } as const;
type Bench = keyof typeof BENCHES;

const HELP = `usage: sppo bench alpaca-eval|mt-bench|arena-hard (--model DIR | --outputs FILE) --judge openai:URL#MODEL
                  --data DIR --out DIR [options]
       sppo bench alpaca-eval --annotations FILE --out DIR [--gamed-baselines FILE] [--instruction-difficulty FILE]
       sppo bench mt-bench|arena-hard --judgments FILE --out DIR          (published judgments, no judge)

Runs a benchmark locally with an LLM judge behind any OpenAI-compatible endpoint (vLLM, SGLang, llama.cpp's
server, sppo serve, a hosted API), with the benchmark's own judge prompt and parsing, and writes the results
in the benchmark's own formats under --out:
  alpaca-eval  AlpacaEval 2.0 against gpt4_1106_preview's outputs, weighted GPT-4-Turbo annotator (P from the
               log-probs of "m" / "M"; the answer text when the server gives none):
               model_outputs.json, weighted_alpaca_eval_gpt4_turbo/{annotations.json, leaderboard.csv}
               (win_rate, standard_error, ..., length_controlled_winrate, lc_standard_error), report.json
  mt-bench     MT-Bench's 80 two-turn questions, single-answer grading 1-10 (reference answers for math,
               reasoning, coding): model_answer/NAME.jsonl, model_judgment/JUDGE_single.jsonl, results.json
               (turn 1, turn 2, average, per category), the result table on stdout
  arena-hard   Arena-Hard-Auto v0.1's 500 questions against gpt-4-0314, both orders, five-level verdicts:
               model_answer/NAME.jsonl, model_judgment/JUDGE/NAME.jsonl, leaderboard.csv (score with its
               bootstrap 95 % interval), report.json
Identical outputs are ties without a judge call (alpaca-eval). Every judge answer goes to a cache
(--judge-cache, default OUT/judge_cache.jsonl): a rerun, or a run killed half-way and started again, pays
for nothing twice. Unparseable verdicts are counted and left out, as each benchmark does.

options:
  --data DIR               the benchmark's files (the data folder of the shared files: see its PROVENANCE.md)
  --model DIR              generate the answers with this model folder (MT-Bench: both turns)
  --outputs FILE           or read them: alpaca-eval AlpacaEval JSON/JSONL ({instruction, output}); mt-bench
                           and arena-hard FastChat/Arena-Hard model_answer JSONL ({question_id, choices})
  --judge SPEC             openai:URL#MODEL (openai:URL: the server's first model)
  --out DIR                where the results go
  --name NAME              the model's name in the results (default: the folder or file name)
  --limit N                the first N questions only
  --max-new-tokens N       generation: default 2048 (alpaca-eval), 1024 (mt-bench), 4096 (arena-hard)
  --temperature T          generation: default 0 (greedy); mt-bench: FastChat's per-category temperatures
  --seed S                 default 0
  --batch-size B           prompts per generation batch (default 8)
  --dtype D, --device D    the model's
  --raw                    plain-text prompts without the chat template
  --chat-template-kwargs JSON  variables for the chat template, e.g. '{"enable_thinking": false}'

alpaca-eval's length-controlled win rate (lc_method in report.json):
  --gamed-baselines FILE   AlpacaEval's df_gamed.csv (Hugging Face data set tatsu-lab/alpaca_eval): with it the LC
                           win rate is AlpacaEval's length_controlled_v1 (the gamed baselines' rows, their
                           instruction difficulties looked up by row, L1 penalty by 5-fold grouped CV)
  --instruction-difficulty FILE  AlpacaEval's instruction_difficulty.csv (same data set): the difficulty covariate
                           without the gamed rows (approximate); with --gamed-baselines only checked against it
                           Without either, LC is the approximate "tanh+baseline (approximate)" (said on stderr);
                           its distance from the leaderboard is measured in docs/eval.md.
  --judgments FILE         mt-bench: score FastChat's model_judgment/JUDGE_single.jsonl (every model in it, or
                           --name) without a judge, as its show_result.py does; categories from --data if given.
                           arena-hard: a model_judgment/JUDGE/MODEL.jsonl file or that folder, scored against
                           gpt-4-0314 as show_result.py does (--seed for the bootstrap)
  --annotations FILE       score AlpacaEval's annotations.json (preference 1..2, 0 a tie, null none; output_1 the
                           reference, output_2 the model) without a judge: leaderboard.csv and report.json

${JUDGE_OPTIONS_HELP}
`;

/** FastChat's temperature_config (gen_model_answer.py). */
const MT_BENCH_TEMPERATURE: Record<string, number> = { writing: 0.7, roleplay: 0.7, extraction: 0, math: 0, coding: 0, reasoning: 0, stem: 0.1, humanities: 0.1 };

interface GenOptions {
  modelDir: string;
  maxNewTokens: number;
  seed: number;
  batchSize: number;
  dtype?: string;
  device: string;
  raw: boolean;
  chatTemplateKwargs?: Record<string, unknown>;
}

/** A model loaded for generating answers to conversations, each with its own temperature. */
class Answerer {
  private readonly tokenizer: Tokenizer;
  private readonly template?: ChatTemplate;
  private readonly model: ReturnType<typeof loadModel>;
  constructor(private readonly o: GenOptions) {
    if (!existsSync(o.modelDir)) throw new UsageError(`--model: ${o.modelDir} does not exist`);
    this.tokenizer = Tokenizer.fromFolder(o.modelDir);
    this.template = !o.raw && ChatTemplate.hasTemplate(o.modelDir) ? ChatTemplate.fromFolder(o.modelDir, { specialTokens: this.tokenizer.specialTokens }) : undefined;
    this.model = loadModel(o.modelDir, { dtype: (o.dtype ?? readConfig(o.modelDir).dtype ?? 'float32') as never, device: o.device });
  }

  private prompt(conv: ChatMessage[]): RenderedPrompt {
    if (this.template) return { text: this.template.render(conv, { ...this.o.chatTemplateKwargs, addGenerationPrompt: true }), templated: true };
    return { text: conv.map((m) => (m.role === 'user' ? `${m.content}\n` : `${m.content}\n\n`)).join(''), templated: false };
  }

  /** One answer (text and token count) per conversation, greedy when its temperature is 0. */
  async answer(convs: ChatMessage[][], temperatures: number[], label: string): Promise<{ text: string; tokens: number }[]> {
    const out = new Array<{ text: string; tokens: number }>(convs.length);
    const groups = new Map<number, number[]>();
    temperatures.forEach((t, i) => groups.set(t, [...(groups.get(t) ?? []), i]));
    const bar = progressBar(label, 'answers');
    bar.start(convs.length, 0);
    let done = 0;
    try {
      for (const [t, idx] of groups) {
        const ids = idx.map((i) => encodePrompt(this.tokenizer, this.prompt(convs[i]!)));
        const gens = await generateAll(this.model, ids, {
          temperature: t, topP: 1, maxNewTokens: this.o.maxNewTokens, tokenizer: this.tokenizer, batchSize: this.o.batchSize,
          seedOf: (b) => mixSeed(this.o.seed, Math.round(t * 1000), b),
          onBatch: (d) => bar.update(done + d),
        });
        idx.forEach((i, j) => (out[i] = { text: gens[j]![0]!.text, tokens: gens[j]![0]!.tokens.length }));
        done += idx.length;
      }
    } finally {
      bar.stop();
    }
    return out;
  }

  dispose(): void {
    this.model.dispose();
  }
}

function readJsonlFile(path: string, what: string): Record<string, unknown>[] {
  if (!existsSync(path)) throw new UsageError(`${what}: ${path} does not exist`);
  return readFileSync(path, 'utf8').split('\n').flatMap((l, i) => {
    if (l.trim() === '') return [];
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch (e) {
      throw new UsageError(`${path}:${i + 1}: not JSON (${(e as Error).message})`);
    }
  });
}

/** The turns of a FastChat / Arena-Hard model_answer line (strings, or {content}). */
function answerTurns(o: Record<string, unknown>, where: string): string[] {
  const c = (o.choices as { turns?: unknown[] }[] | undefined)?.[0]?.turns;
  if (Array.isArray(c)) return c.map((t, k) => (typeof t === 'string' ? t : typeof (t as { content?: unknown })?.content === 'string' ? (t as { content: string }).content : (() => { throw new UsageError(`${where}: choices[0].turns[${k}] is neither a string nor {content}`); })()));
  if (typeof o.output === 'string') return [o.output];
  throw new UsageError(`${where}: no choices[0].turns (nor "output")`);
}

function fileName(s: string): string {
  return s.replace(/[^\w.@+-]+/g, '_');
}

/** --gamed-baselines / --instruction-difficulty read (AlpacaEval's Hugging Face files). */
function readGlmInputs(gamedFile: string | undefined, difficultyFile: string | undefined): AlpacaEvalGlmInputs {
  const read = (f: string, opt: string): string => {
    if (!existsSync(f)) throw new UsageError(`--${opt}: ${f} does not exist`);
    return readFileSync(f, 'utf8');
  };
  const glm: AlpacaEvalGlmInputs = {};
  try {
    if (gamedFile !== undefined) glm.gamed = parseGamedBaselinesCsv(read(gamedFile, 'gamed-baselines'), gamedFile);
    if (difficultyFile !== undefined) glm.instructionDifficulty = parseInstructionDifficultyCsv(read(difficultyFile, 'instruction-difficulty'), difficultyFile);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError((e as Error).message);
  }
  if (glm.gamed && glm.instructionDifficulty) {
    // AlpacaEval fits with df_gamed.csv's difficulties (looked up by row); the other file should hold the same values.
    let differ = 0;
    for (const [row, d] of glm.gamed.difficultyByRow) {
      const o = glm.instructionDifficulty.get(row);
      if (o === undefined || Math.abs(o - d) > 1e-9 * Math.max(1, Math.abs(d))) differ++;
    }
    if (differ > 0) console.error(`sppo bench alpaca-eval: warning: ${differ} of the ${glm.gamed.difficultyByRow.size} instruction difficulties of ${gamedFile} (looked up by row, as AlpacaEval does) differ from ${difficultyFile}; the fit uses ${gamedFile}'s, as AlpacaEval does`);
  }
  return glm;
}

/** leaderboard.csv, report.json and the summary on stdout; the approximation said on stderr. */
function writeAlpacaEvalResult(out: string, m: AlpacaEvalResult, add: Record<string, unknown>): void {
  writeFileAtomic(join(out, ALPACA_EVAL_ANNOTATOR, 'leaderboard.csv'), alpacaEvalLeaderboardCsv(m.leaderboard));
  writeJsonAtomic(join(out, 'report.json'), { benchmark: 'alpaca_eval_2', annotator: ALPACA_EVAL_ANNOTATOR, reference: 'gpt4_1106_preview', ...m.leaderboard, ...m.extra, ...add });
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
  const r = m.leaderboard;
  const name = r.name;
  if (m.extra.lc_method !== 'length_controlled_v1') {
    console.error(
      `sppo bench alpaca-eval: note: length_controlled_winrate is approximate (lc_method "${m.extra.lc_method}"), not AlpacaEval's length_controlled_v1: ` +
        'give --gamed-baselines df_gamed.csv (and --instruction-difficulty instruction_difficulty.csv) from the Hugging Face data set tatsu-lab/alpaca_eval; ' +
        'without them it differs from the leaderboard by several points, most where the lengths differ most from the baseline\'s (docs/eval.md)',
    );
  }
  if (m.extra.lc_error !== undefined) console.error(`sppo bench alpaca-eval: no length-controlled win rate: ${m.extra.lc_error}`);
  console.log(`${''.padEnd(Math.max(4, name.length))}  length_controlled_winrate  win_rate  standard_error  n_total  avg_length`);
  console.log(`${name.padEnd(Math.max(4, name.length))}  ${f(r.length_controlled_winrate).padStart(25)}  ${f(r.win_rate).padStart(8)}  ${f(r.standard_error).padStart(14)}  ${String(r.n_total).padStart(7)}  ${String(r.avg_length).padStart(10)}`);
  const verdicts = m.extra.verdict_methods ? `verdicts: ${JSON.stringify(m.extra.verdict_methods)}, ` : '';
  console.log(`(lc_method ${m.extra.lc_method}, C ${Number.isFinite(m.extra.lc_C) ? m.extra.lc_C.toPrecision(4) : 'n/a'}; lc_standard_error ${f(r.lc_standard_error)}, bootstrap ${f(m.extra.lc_standard_error_bootstrap)}; ${verdicts}${m.extra.n_unparseable} without a preference left out)`);
}

/** `--annotations FILE`: AlpacaEval's annotations.json (e.g. results/MODEL/weighted_alpaca_eval_gpt4_turbo/ in its repository) scored without a judge. */
function scoreAnnotationsFile(file: string, out: string, nameOpt: string | undefined, glm: AlpacaEvalGlmInputs): void {
  if (!existsSync(file)) throw new UsageError(`--annotations: ${file} does not exist`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`--annotations: ${file}: not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(raw)) throw new UsageError(`--annotations: ${file}: expected a JSON array of annotations (AlpacaEval's annotations.json)`);
  const annotations: AlpacaEvalAnnotation[] = raw.map((o: Record<string, unknown>, i) => {
    const where = `${file}: annotation ${i}`;
    if (typeof o !== 'object' || o === null) throw new UsageError(`${where}: not an object`);
    for (const k of ['output_1', 'output_2'] as const) if (typeof o[k] !== 'string') throw new UsageError(`${where}: ${k} is not a string`);
    const pref = o.preference;
    if (pref !== null && pref !== undefined && typeof pref !== 'number') throw new UsageError(`${where}: preference ${JSON.stringify(pref)} is not a number or null`);
    try {
      alpacaEvalPreference(pref, `${where}: preference`);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return {
      ...(typeof o.dataset === 'string' ? { dataset: o.dataset } : {}),
      instruction: String(o.instruction ?? ''),
      output_1: o.output_1 as string,
      generator_1: String(o.generator_1 ?? ''),
      output_2: o.output_2 as string,
      generator_2: String(o.generator_2 ?? ''),
      annotator: String(o.annotator ?? ''),
      preference: (pref ?? null) as number | null,
      verdict_method: null,
      model_shown_first: false,
      raw_completion: '',
    };
  });
  if (annotations.length === 0) throw new UsageError(`--annotations: ${file}: no annotations`);
  const gens = [...new Set(annotations.map((a) => a.generator_2))];
  const name = nameOpt ?? (gens.length === 1 && gens[0] ? gens[0] : basename(dirname(dirname(resolve(file)))));
  let m: AlpacaEvalResult;
  try {
    m = alpacaEvalMetrics(annotations, name, annotations.map((a) => a.output_2), glm);
  } catch (e) {
    throw new UsageError(`--annotations: ${file}: ${(e as Error).message}`);
  }
  delete (m.extra as Partial<AlpacaEvalResult['extra']>).verdict_methods; // not recorded in AlpacaEval's annotations
  writeAlpacaEvalResult(out, m, { annotations_file: resolve(file) });
}

/**
 * `mt-bench --judgments FILE`: FastChat's model_judgment/JUDGE_single.jsonl scored as its show_result.py does (per
 * model: turn 1, turn 2, the mean of all ratings; -1 left out), without a judge; each judgment's text re-parsed with
 * this project's rating parser and compared with the stored score.
 */
function scoreMtBenchJudgments(file: string, out: string, dataDir: string | undefined, only: string | undefined): void {
  const rows = readJsonlFile(file, '--judgments');
  const categoryOf = new Map<number, string>();
  if (dataDir !== undefined) {
    const q = join(resolve(dataDir), 'mt_bench_question.jsonl');
    if (!existsSync(q)) throw new UsageError(`--data: ${dataDir} has no mt_bench_question.jsonl`);
    for (const o of readJsonlFile(q, '--data')) categoryOf.set(Number(o.question_id), String(o.category));
  }
  const byModel = new Map<string, MtBenchJudgment[]>();
  let reparsedAgree = 0;
  const reparsedDiffer: string[] = [];
  rows.forEach((o, i) => {
    const where = `${file}:${i + 1}`;
    if (typeof o.model !== 'string') throw new UsageError(`${where}: no "model"`);
    if (typeof o.score !== 'number') throw new UsageError(`${where}: "score" is not a number`);
    if (o.turn !== 1 && o.turn !== 2) throw new UsageError(`${where}: "turn" is not 1 or 2`);
    if (only !== undefined && o.model !== only) return;
    if (typeof o.judgment === 'string') {
      if (parseMtBenchRating(o.judgment) === o.score) reparsedAgree++;
      else reparsedDiffer.push(`${where} (stored ${o.score}, parsed ${parseMtBenchRating(o.judgment)})`);
    }
    const list = byModel.get(o.model) ?? [];
    list.push(o as unknown as MtBenchJudgment);
    byModel.set(o.model, list);
  });
  if (byModel.size === 0) throw new UsageError(`--judgments: ${file}: no judgments${only !== undefined ? ` of ${only}` : ''}`);
  const results = [...byModel].sort(([a], [b]) => a.localeCompare(b)).map(([m, js]) => mtBenchResult(js, categoryOf, m));
  writeJsonAtomic(join(out, 'results.json'), { benchmark: 'mt_bench', mode: 'single', judgments_file: resolve(file), models: results, ratings_reparsed: { agree: reparsedAgree, differ: reparsedDiffer.length, first_differences: reparsedDiffer.slice(0, 20) } });
  for (const r of results) process.stdout.write(mtBenchTable(r));
  console.log(`(ratings re-parsed from the judgment texts: ${reparsedAgree} equal to the stored score, ${reparsedDiffer.length} not${reparsedDiffer.length ? `: ${reparsedDiffer.slice(0, 3).join('; ')}` : ''})`);
}

/**
 * `arena-hard --judgments FILE|DIR`: Arena-Hard-Auto's model_judgment/JUDGE/MODEL.jsonl (one file, or every .jsonl of
 * a folder as show_result.py reads it) scored without a judge: per model the score against the baseline with its
 * bootstrap interval; each game's judgment text re-parsed and compared with the stored label.
 */
function scoreArenaHardJudgments(path: string, out: string, seed: number | undefined): void {
  if (!existsSync(path)) throw new UsageError(`--judgments: ${path} does not exist`);
  const files = statSync(path).isDirectory() ? readdirSync(path).filter((f) => f.endsWith('.jsonl')).sort().map((f) => join(path, f)) : [path];
  if (files.length === 0) throw new UsageError(`--judgments: no .jsonl file in ${path}`);
  const byModel = new Map<string, ArenaHardJudgment[]>();
  let agree = 0;
  const differ: string[] = [];
  for (const file of files) {
    readJsonlFile(file, '--judgments').forEach((o, i) => {
      const where = `${file}:${i + 1}`;
      if (typeof o.model !== 'string') throw new UsageError(`${where}: no "model"`);
      if (!Array.isArray(o.games)) throw new UsageError(`${where}: no "games"`);
      if (o.baseline !== undefined && o.baseline !== ARENA_HARD_BASELINE) throw new UsageError(`${where}: baseline ${JSON.stringify(o.baseline)}, not ${ARENA_HARD_BASELINE}`);
      const games = (o.games as Record<string, unknown>[]).map((g, k) => {
        const label = typeof g?.score === 'string' ? g.score : null;
        if (typeof g?.judgment === 'string') {
          const p = parseArenaHard(g.judgment);
          const parsed = typeof p === 'object' && p !== null ? p.label : null;
          if (parsed === label) agree++;
          else differ.push(`${where} game ${k + 1} (stored ${JSON.stringify(label)}, parsed ${JSON.stringify(parsed)})`);
        }
        return { user_prompt: String(g?.user_prompt ?? ''), judgment: String(g?.judgment ?? ''), score: label } as ArenaHardJudgment['games'][number];
      });
      const list = byModel.get(o.model) ?? [];
      list.push({ question_id: String(o.question_id ?? o.uid ?? i), model: o.model, judge: String(o.judge ?? ''), games });
      byModel.set(o.model, list);
    });
  }
  const scores = [...byModel].map(([m, js]) => arenaHardScore(js, { model: m, ...(seed !== undefined ? { seed } : {}) }));
  const baseRow = { model: ARENA_HARD_BASELINE, score: 50, lower: 50, upper: 50, battles: 0, unparseable: 0, avg_tokens: null };
  writeFileAtomic(join(out, 'leaderboard.csv'), arenaHardCsv([...scores, baseRow], new Date().toISOString().slice(0, 10)));
  writeJsonAtomic(join(out, 'report.json'), { benchmark: 'arena-hard-v0.1', baseline: ARENA_HARD_BASELINE, judgments: files.map((f) => resolve(f)), models: scores, labels_reparsed: { agree, differ: differ.length, first_differences: differ.slice(0, 20) } });
  for (const r of [...scores, baseRow].sort((a, b) => (Number.isFinite(b.score) ? b.score : -1) - (Number.isFinite(a.score) ? a.score : -1))) console.log(arenaHardLine(r));
  console.log(`(labels re-parsed from the judgment texts: ${agree} equal to the stored label, ${differ.length} not${differ.length ? `: ${differ.slice(0, 3).join('; ')}` : ''})`);
}

export async function run(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    console.log(HELP);
    return;
  }
  if (!(sub in BENCHES)) throw new UsageError(`unknown benchmark '${sub}' (alpaca-eval, mt-bench, arena-hard)\n\n${HELP}`);
  const bench = sub as Bench;
  const parsed = parseCommand(
    `bench ${bench}`,
    rest,
    {
      data: { type: 'string' }, model: { type: 'string' }, outputs: { type: 'string' }, judge: { type: 'string' }, out: { type: 'string' }, name: { type: 'string' },
      limit: { type: 'string' }, 'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, seed: { type: 'string' }, 'batch-size': { type: 'string' },
      dtype: { type: 'string' }, device: { type: 'string' }, raw: { type: 'boolean' }, 'chat-template-kwargs': { type: 'string' },
      annotations: { type: 'string' }, 'instruction-difficulty': { type: 'string' }, 'gamed-baselines': { type: 'string' }, judgments: { type: 'string' },
      ...JUDGE_OPTIONS,
    },
    HELP,
    { required: ['out'] },
  );
  if (!parsed) return;
  const v = parsed.values;
  if (bench !== 'alpaca-eval') {
    for (const k of ['annotations', 'instruction-difficulty', 'gamed-baselines'] as const) if (v[k] !== undefined) throw new UsageError(`--${k} is for alpaca-eval only`);
  }
  if (bench === 'alpaca-eval' && v.judgments !== undefined) throw new UsageError('--judgments is for mt-bench and arena-hard (alpaca-eval: --annotations)');
  if (v.judgments !== undefined) {
    for (const k of ['model', 'outputs', 'judge', 'limit'] as const) if (v[k] !== undefined) throw new UsageError(`--judgments scores published judgments without a judge: --${k} does not apply`);
    if (bench === 'mt-bench') scoreMtBenchJudgments(v.judgments, resolve(v.out!), v.data, v.name);
    else scoreArenaHardJudgments(v.judgments, resolve(v.out!), v.seed === undefined ? undefined : num('seed', v.seed, 0, { integer: true, min: 0 }));
    return;
  }
  const glm = bench === 'alpaca-eval' ? readGlmInputs(v['gamed-baselines'], v['instruction-difficulty']) : {};
  if (v.annotations !== undefined) {
    for (const k of ['model', 'outputs', 'judge', 'limit'] as const) if (v[k] !== undefined) throw new UsageError(`--annotations scores published annotations without a judge: --${k} does not apply`);
    scoreAnnotationsFile(v.annotations, resolve(v.out!), v.name, glm);
    return;
  }
  for (const k of ['data', 'judge'] as const) if (v[k] === undefined) throw new UsageError(`--${k} is required (sppo bench ${bench} --help)`);
  if (!!v.model === !!v.outputs) throw new UsageError(`give exactly one of --model and --outputs (sppo bench ${bench} --help)`);
  const data = resolve(v.data!);
  if (!existsSync(data)) throw new UsageError(`--data: ${data} does not exist`);
  const out = resolve(v.out!);
  const limit = v.limit === undefined ? Infinity : num('limit', v.limit, 0, { integer: true, min: 1 });
  const template = BENCHES[bench];
  if (v['judge-template'] !== undefined && v['judge-template'] !== template) throw new UsageError(`--judge-template: ${bench} judges with its own template, ${template}`);
  let spec: JudgeSpec;
  try {
    spec = parseJudgeSpec(v.judge!, { template });
  } catch (e) {
    throw new UsageError(`--judge: ${(e as Error).message}`);
  }
  if (spec.kind !== 'openai') throw new UsageError(`--judge: sppo bench needs an LLM judge, openai:URL#MODEL (got ${spec.kind})`);
  spec = withJudgeOptions(spec, v, { template, cache: join(out, 'judge_cache.jsonl'), ...(bench === 'mt-bench' ? { judgePrompts: join(data, 'mt_bench_judge_prompts.jsonl') } : {}) });
  let name = v.name ?? basename(resolve(v.model ?? v.outputs!)).replace(/\.(jsonl?|json)$/, '');
  const device = v.model ? deviceOption(v.device) : 'cpu';
  const dtype = dtypeOption(v.dtype, device);
  const modelDir = v.model ? await modelFolder('--model', v.model) : '';
  const gen = (dflt: number): GenOptions => ({
    modelDir, maxNewTokens: num('max-new-tokens', v['max-new-tokens'], dflt, { integer: true, min: 1 }), seed: num('seed', v.seed, 0, { integer: true, min: 0 }),
    batchSize: num('batch-size', v['batch-size'], 8, { integer: true, min: 1 }), ...(dtype ? { dtype } : {}), device, raw: v.raw ?? false, chatTemplateKwargs: chatTemplateKwargsOption(v['chat-template-kwargs']),
  });
  const temperature = v.temperature === undefined ? undefined : num('temperature', v.temperature, 0, { min: 0 });
  const dataFile = (f: string): string => {
    const p = join(data, f);
    if (!existsSync(p)) throw new UsageError(`--data: ${data} has no ${f} (see the data folder's PROVENANCE.md)`);
    return p;
  };

  const judge = (await loadJudge(spec, { log: (l) => console.error(`sppo bench: ${l}`) })) as OpenAIJudge;
  const judgeName = fileName(judge.model);
  const t0 = performance.now();
  const finish = (): Record<string, unknown> => {
    const s = judge.stats();
    console.error(
      `sppo bench ${bench}: judge ${judge.model}: ${s.requests} requests, ${s.cacheHits} from the cache, ${s.retries} retries, ${s.failed} failed; ` +
        `${s.verdicts.unparseable} unparseable verdicts of ${s.verdicts.total}; tokens ${s.usage.prompt_tokens} in, ${s.usage.completion_tokens} out; ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${out}`,
    );
    return s as unknown as Record<string, unknown>;
  };

  if (bench === 'alpaca-eval') {
    const refs = readOutputsFile(dataFile(ALPACA_EVAL_REFERENCE_FILE));
    const refByInstruction = new Map<string, { output: string; dataset?: string }>();
    const rawRefs = JSON.parse(readFileSync(dataFile(ALPACA_EVAL_REFERENCE_FILE), 'utf8')) as { dataset?: string }[];
    refs.forEach((r, i) => refByInstruction.has(r.instruction) || refByInstruction.set(r.instruction, { output: r.output, ...(rawRefs[i]?.dataset ? { dataset: rawRefs[i]!.dataset } : {}) }));
    let outputs: OutputRecord[];
    if (v.outputs) {
      outputs = readOutputsFile(v.outputs).slice(0, limit);
      // AlpacaEval names a model by its outputs' generator.
      const gens = new Set(outputs.map((o) => o.generator));
      if (!v.name && gens.size === 1 && [...gens][0]) name = [...gens][0]!;
    } else {
      const instr = refs.slice(0, limit).map((r) => r.instruction);
      const a = new Answerer(gen(2048));
      try {
        const ans = await a.answer(instr.map((i) => [{ role: 'user', content: i }]), instr.map(() => temperature ?? 0), 'generate');
        outputs = instr.map((instruction, i) => ({ instruction, output: ans[i]!.text, generator: name }));
      } finally {
        a.dispose();
      }
    }
    const items: AlpacaEvalItem[] = outputs.map((o, i) => {
      const r = refByInstruction.get(o.instruction);
      if (!r) throw new UsageError(`${v.outputs ?? 'outputs'}: output ${i}: no gpt4_1106_preview reference for the instruction ${JSON.stringify(o.instruction.slice(0, 80))} (outputs and instructions must line up)`);
      return { instruction: o.instruction, output: o.output, reference: r.output, ...(r.dataset ? { dataset: r.dataset } : {}) };
    });
    writeJsonAtomic(join(out, 'model_outputs.json'), items.map((it) => ({ ...(it.dataset ? { dataset: it.dataset } : {}), instruction: it.instruction, output: it.output, generator: name })));
    const bar = progressBar('judge', 'instructions');
    bar.start(items.length, 0);
    let annotations;
    try {
      annotations = await annotateAlpacaEval(judge, items, { generator: name, ...(judge.opts.maxTokens ? { maxTokens: judge.opts.maxTokens } : {}), ...(judge.opts.topLogprobs ? { topLogprobs: judge.opts.topLogprobs } : {}), onProgress: (d) => bar.update(d) });
    } finally {
      bar.stop();
    }
    writeJsonAtomic(join(out, ALPACA_EVAL_ANNOTATOR, 'annotations.json'), annotations);
    if (glm.gamed || glm.instructionDifficulty) {
      const off = items.findIndex((it, i) => refs[i]?.instruction !== it.instruction);
      if (off >= 0) console.error(`sppo bench alpaca-eval: warning: output ${off} is not the evaluation set's instruction ${off}; the instruction difficulty is looked up by row, as AlpacaEval does, so it belongs to another instruction there`);
    }
    const m = alpacaEvalMetrics(annotations, name, items.map((i) => i.output), glm);
    const stats = finish();
    if (m.leaderboard.n_total === 0) console.error(`sppo bench alpaca-eval: warning: none of the ${annotations.length} judge answers had a verdict (see raw_completion in the annotations)`);
    writeAlpacaEvalResult(out, m, { judge: stats });
    return;
  }

  if (bench === 'mt-bench') {
    const questions = readJsonlFile(dataFile('mt_bench_question.jsonl'), '--data') as unknown as MtBenchQuestion[];
    const refs = new Map(readJsonlFile(dataFile('mt_bench_reference_answer_gpt-4.jsonl'), '--data').map((o) => [o.question_id as number, answerTurns(o, 'reference answers')]));
    const prompts = judge.mtBenchPrompts ?? readMtBenchJudgePrompts(dataFile('mt_bench_judge_prompts.jsonl'));
    const qs = questions.slice(0, limit);
    let answers: Map<number, string[]>;
    if (v.outputs) {
      answers = new Map(readJsonlFile(v.outputs, '--outputs').map((o, i) => [Number(o.question_id), answerTurns(o, `${v.outputs}:${i + 1}`)]));
      for (const q of qs) if (!answers.has(q.question_id)) throw new UsageError(`--outputs: ${v.outputs} has no answer to question ${q.question_id}`);
    } else {
      const a = new Answerer(gen(1024));
      try {
        const temps = qs.map((q) => temperature ?? MT_BENCH_TEMPERATURE[q.category] ?? 0.7);
        const t1 = await a.answer(qs.map((q) => [{ role: 'user', content: q.turns[0]! }]), temps, 'turn 1');
        const t2 = await a.answer(qs.map((q, i) => [{ role: 'user', content: q.turns[0]! }, { role: 'assistant', content: t1[i]!.text }, { role: 'user', content: q.turns[1]! }]), temps, 'turn 2');
        answers = new Map(qs.map((q, i) => [q.question_id, [t1[i]!.text, t2[i]!.text]]));
      } finally {
        a.dispose();
      }
      writeJsonlAtomic(join(out, 'model_answer', `${fileName(name)}.jsonl`), qs.map((q) => ({ question_id: q.question_id, answer_id: `${name}-${q.question_id}`, model_id: name, choices: [{ index: 0, turns: answers.get(q.question_id) }] })));
    }
    const items: MtBenchItem[] = qs.map((q) => ({ question: q, answers: answers.get(q.question_id)!, ...(refs.has(q.question_id) ? { references: refs.get(q.question_id)! } : {}) }));
    const bar = progressBar('judge', 'turns');
    bar.start(items.length * 2, 0);
    let judgments;
    try {
      judgments = await judgeMtBench(judge, prompts, items, { model: name, ...(judge.opts.maxTokens ? { maxTokens: judge.opts.maxTokens } : {}), onProgress: (d) => bar.update(d) });
    } finally {
      bar.stop();
    }
    writeJsonlAtomic(join(out, 'model_judgment', `${judgeName}_single.jsonl`), judgments);
    const res = mtBenchResult(judgments, new Map(qs.map((q) => [q.question_id, q.category])), name);
    const stats = finish();
    writeJsonAtomic(join(out, 'results.json'), { benchmark: 'mt_bench', mode: 'single', judge_model: judge.model, ...res, judge: stats });
    if (res.n_scored === 0) console.error(`sppo bench mt-bench: warning: none of the ${judgments.length} judgments had a rating (see model_judgment/)`);
    process.stdout.write(mtBenchTable(res));
    return;
  }

  // arena-hard
  const questions = readJsonlFile(dataFile('arena_hard_v0.1_question.jsonl'), '--data').slice(0, limit);
  const baseline = new Map(readJsonlFile(dataFile(`arena_hard_v0.1_baseline_${ARENA_HARD_BASELINE}.jsonl`), '--data').map((o) => [String(o.question_id), o]));
  const qText = (q: Record<string, unknown>): string => String((q.turns as { content: string }[])[0]!.content);
  let answers: Map<string, { text: string; tokens?: number }>;
  if (v.outputs) {
    answers = new Map(readJsonlFile(v.outputs, '--outputs').map((o, i) => {
      const t = (o.choices as { turns?: { token_len?: unknown }[] }[] | undefined)?.[0]?.turns?.[0]?.token_len;
      return [String(o.question_id), { text: answerTurns(o, `${v.outputs}:${i + 1}`)[0]!, ...(typeof t === 'number' ? { tokens: t } : {}) }];
    }));
    for (const q of questions) if (!answers.has(String(q.question_id))) throw new UsageError(`--outputs: ${v.outputs} has no answer to question ${String(q.question_id)}`);
  } else {
    const a = new Answerer(gen(4096));
    try {
      const ans = await a.answer(questions.map((q) => [{ role: 'user', content: qText(q) }]), questions.map(() => temperature ?? 0), 'generate');
      answers = new Map(questions.map((q, i) => [String(q.question_id), { text: ans[i]!.text, tokens: ans[i]!.tokens }]));
    } finally {
      a.dispose();
    }
    writeJsonlAtomic(join(out, 'model_answer', `${fileName(name)}.jsonl`), questions.map((q) => {
      const x = answers.get(String(q.question_id))!;
      return { question_id: q.question_id, answer_id: `${name}-${String(q.question_id)}`, model_id: name, choices: [{ index: 0, turns: [{ content: x.text, token_len: x.tokens }] }] };
    }));
  }
  const items: ArenaHardItem[] = questions.map((q) => {
    const b = baseline.get(String(q.question_id));
    if (!b) throw new UsageError(`--data: no ${ARENA_HARD_BASELINE} answer to question ${String(q.question_id)}`);
    return { question_id: String(q.question_id), question: qText(q), answer: answers.get(String(q.question_id))!.text, baseline: answerTurns(b, 'baseline')[0]! };
  });
  const bar = progressBar('judge', 'questions');
  bar.start(items.length, 0);
  let judgments;
  try {
    judgments = await judgeArenaHard(judge, items, { model: name, ...(judge.opts.maxTokens ? { maxTokens: judge.opts.maxTokens } : {}), onProgress: (d) => bar.update(d) });
  } finally {
    bar.stop();
  }
  writeJsonlAtomic(join(out, 'model_judgment', judgeName, `${fileName(name)}.jsonl`), judgments);
  const toks = [...answers.values()].slice(0, questions.length).map((a) => a.tokens);
  const avgTokens = toks.every((t) => t !== undefined) ? toks.reduce((s, t) => s + t!, 0) / Math.max(1, toks.length) : null;
  const score = arenaHardScore(judgments, { model: name, avgTokens });
  const baseTokens = items.map((it) => ((baseline.get(it.question_id)!.choices as { turns: { token_len?: number }[] }[])[0]!.turns[0]!.token_len ?? 0));
  const baseRow = { model: ARENA_HARD_BASELINE, score: 50, lower: 50, upper: 50, battles: score.battles, unparseable: 0, avg_tokens: baseTokens.reduce((s, t) => s + t, 0) / Math.max(1, baseTokens.length) };
  writeFileAtomic(join(out, 'leaderboard.csv'), arenaHardCsv([score, baseRow], new Date().toISOString().slice(0, 10)));
  const stats = finish();
  writeJsonAtomic(join(out, 'report.json'), { benchmark: 'arena-hard-v0.1', baseline: ARENA_HARD_BASELINE, judge_model: judge.model, ...score, judge: stats });
  if (score.battles === 0) console.error(`sppo bench arena-hard: warning: none of the ${2 * items.length} games had a verdict (see the judgments in model_judgment/)`);
  for (const r of [score, baseRow].sort((a, b) => (Number.isFinite(b.score) ? b.score : -1) - (Number.isFinite(a.score) ? a.score : -1))) console.log(arenaHardLine(r));
  console.log(`(${score.battles} battles; ${score.unparseable} games without a verdict left out)`);
}
