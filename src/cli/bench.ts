// `sppo bench alpaca-eval | mt-bench | arena-hard`: the paper's three benchmarks, run locally against any
// OpenAI-compatible judge endpoint, each written in its own tool's formats (src/eval/benchmarks/).
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { loadModel } from '../models/registry.js';
import { readConfig } from '../models/config.js';
import { generateAll } from '../generate/generate.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, type ChatMessage } from '../text/chat_template.js';
import { loadJudge, parseJudgeSpec, type JudgeSpec } from '../judge/judge.js';
import { OpenAIJudge } from '../judge/openai.js';
import { readMtBenchJudgePrompts } from '../judge/templates/mt_bench.js';
import { readOutputsFile, type OutputRecord } from '../eval/evaluate.js';
import { ALPACA_EVAL_ANNOTATOR, ALPACA_EVAL_REFERENCE_FILE, alpacaEvalLeaderboardCsv, alpacaEvalMetrics, annotateAlpacaEval, type AlpacaEvalItem } from '../eval/benchmarks/alpaca_eval.js';
import { judgeMtBench, mtBenchResult, mtBenchTable, type MtBenchItem, type MtBenchQuestion } from '../eval/benchmarks/mt_bench.js';
import { ARENA_HARD_BASELINE, arenaHardCsv, arenaHardLine, arenaHardScore, judgeArenaHard, type ArenaHardItem } from '../eval/benchmarks/arena_hard.js';
import { mixSeed } from '../util/rng.js';
import { writeFileAtomic, writeJsonAtomic, writeJsonlAtomic } from '../util/files.js';
import { UsageError } from './usage.js';
import { modelFolder } from './model_option.js';
import { deviceOption, dtypeOption, num, parseCommand, progressBar } from './args.js';
import { JUDGE_OPTIONS, JUDGE_OPTIONS_HELP, withJudgeOptions } from './judge_options.js';

export const summary = 'AlpacaEval 2.0 (LC), MT-Bench and Arena-Hard with an LLM judge over HTTP';

const BENCHES = { 'alpaca-eval': 'alpaca_eval', 'mt-bench': 'mt_bench', 'arena-hard': 'arena_hard' } as const;
type Bench = keyof typeof BENCHES;

const HELP = `usage: sppo bench alpaca-eval|mt-bench|arena-hard (--model DIR | --outputs FILE) --judge openai:URL#MODEL
                  --data DIR --out DIR [options]

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

  private text(conv: ChatMessage[]): string {
    if (this.template) return this.template.render(conv, { addGenerationPrompt: true });
    return conv.map((m) => (m.role === 'user' ? `${m.content}\n` : `${m.content}\n\n`)).join('');
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
        const ids = idx.map((i) => this.tokenizer.encode(this.text(convs[i]!), { addSpecialTokens: false }));
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
      dtype: { type: 'string' }, device: { type: 'string' }, raw: { type: 'boolean' },
      ...JUDGE_OPTIONS,
    },
    HELP,
    { required: ['data', 'judge', 'out'] },
  );
  if (!parsed) return;
  const v = parsed.values;
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
  const dtype = dtypeOption(v.dtype);
  const modelDir = v.model ? await modelFolder('--model', v.model) : '';
  const gen = (dflt: number): GenOptions => ({
    modelDir, maxNewTokens: num('max-new-tokens', v['max-new-tokens'], dflt, { integer: true, min: 1 }), seed: num('seed', v.seed, 0, { integer: true, min: 0 }),
    batchSize: num('batch-size', v['batch-size'], 8, { integer: true, min: 1 }), ...(dtype ? { dtype } : {}), device, raw: v.raw ?? false,
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
    const m = alpacaEvalMetrics(annotations, name, items.map((i) => i.output));
    writeFileAtomic(join(out, ALPACA_EVAL_ANNOTATOR, 'leaderboard.csv'), alpacaEvalLeaderboardCsv(m.leaderboard));
    const stats = finish();
    writeJsonAtomic(join(out, 'report.json'), { benchmark: 'alpaca_eval_2', annotator: ALPACA_EVAL_ANNOTATOR, reference: 'gpt4_1106_preview', ...m.leaderboard, ...m.extra, judge: stats });
    const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
    const r = m.leaderboard;
    if (r.n_total === 0) console.error(`sppo bench alpaca-eval: warning: none of the ${annotations.length} judge answers had a verdict (see raw_completion in the annotations)`);
    console.log(`${''.padEnd(Math.max(4, name.length))}  length_controlled_winrate  win_rate  standard_error  n_total  avg_length`);
    console.log(`${name.padEnd(Math.max(4, name.length))}  ${f(r.length_controlled_winrate).padStart(25)}  ${f(r.win_rate).padStart(8)}  ${f(r.standard_error).padStart(14)}  ${String(r.n_total).padStart(7)}  ${String(r.avg_length).padStart(10)}`);
    console.log(`(lc_standard_error ${f(r.lc_standard_error)}, bootstrap ${f(m.extra.lc_standard_error_bootstrap)}; verdicts: ${JSON.stringify(m.extra.verdict_methods)}, ${m.extra.n_unparseable} unparseable left out)`);
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
