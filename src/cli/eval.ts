// `sppo eval`: win rate of a model's responses against reference responses, by a judge.
import type { DType } from '../torch/index.js';
import { loadModel } from '../models/registry.js';
import { readConfig } from '../models/config.js';
import { generateAll } from '../generate/generate.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, encodePrompt } from '../text/chat_template.js';
import { loadJudge, parseJudgeSpec, type JudgeSpec } from '../judge/judge.js';
import { evaluate, pairByInstruction, readOutputsFile, reportJson, type OutputRecord } from '../eval/evaluate.js';
import { modelPrompt, plainPromptText, readPromptFile, type PromptRecord } from '../sppo/prompts.js';
import { mixSeed } from '../util/rng.js';
import { writeJsonAtomic, writeJsonlAtomic } from '../util/files.js';
import { UsageError } from './usage.js';
import { modelFolder } from './model_option.js';
import { JUDGE_OPTIONS, JUDGE_OPTIONS_HELP, withJudgeOptions } from './judge_options.js';
import { chatTemplateKwargsOption, checkOutput, deviceOption, dtypeOption, num, parseCommand, progressBar } from './args.js';

export const summary = "win rate (with standard error, length-controlled) of a model's responses against a reference";

const HELP = `usage: sppo eval --judge JUDGE (--model DIR [--prompts FILE] | --outputs FILE)
                 (--reference-model DIR | --reference FILE) [options]

Judges every response of the evaluated model against the reference's response to the same prompt and
reports the win rate (ties count half) with its standard error, AlpacaEval 2.0's length-controlled win rate,
wins / losses / ties and the average response lengths (characters), as JSON on stdout (and in --out).

the judge (--judge):
  PATH.mjs | module:PATH     a JavaScript module judge (export default (query) => P(a > b), ...)
  reward-model:DIR           a reward model folder (P(a > b) = sigmoid(r_a - r_b))
  pairwise:DIR               a pairwise preference model folder
  pairrm:DIR                 llm-blender's PairRM (a PairRM-hf folder; docs/pairrm.md); pairrm-rank:DIR is
                             the same here (an evaluation asks single pairs)
  openai:URL#MODEL           an LLM judge behind an OpenAI-compatible endpoint (see below)
  --judge-options JSON       options passed to a module judge

the evaluated responses:
  --model DIR                generate them with this model folder, one per prompt
  --prompts FILE             prompts (JSONL or Parquet: prompt, messages or instruction); default: the
                             instructions of --reference FILE
  --outputs FILE             or read them: AlpacaEval JSON ([{instruction, output, generator}]) or JSONL

the reference:
  --reference-model DIR      generate the reference responses with this model (same prompts and seeds)
  --reference FILE           or read them (AlpacaEval JSON or JSONL), matched by instruction text

options:
  --limit N                  evaluate the first N prompts only
  --temperature T            sampling temperature (default 0.7; 0 = greedy)
  --top-p P                  default 0.9
  --max-new-tokens N         default 512
  --seed S                   default 0 (batch b samples with seed mix(S, b), for both models)
  --batch-size B             prompts per generation batch (default 8)
  --dtype D                  float32 | bfloat16 | float16 (default: the checkpoint's)
  --device D                 cpu | cuda | cuda:N (default: cuda when available)
  --raw                      plain-text prompts without the chat template
  --chat-template-kwargs JSON  variables for the chat template, e.g. '{"enable_thinking": false}'
  --out FILE                 write the report (JSON) here too, atomically
  --save-outputs FILE        write the generated responses (JSONL, AlpacaEval fields) here
  -h, --help                 this help

${JUDGE_OPTIONS_HELP}
`;


interface Sampling {
  temperature: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
  batchSize: number;
  dtype?: DType;
  device: string;
  raw: boolean;
  chatTemplateKwargs?: Record<string, unknown>;
}

/** One response per prompt, in prompt order; batches sorted by prompt length, batch b seeded mix(seed, b). */
async function respond(modelDir: string, prompts: PromptRecord[], s: Sampling, label: string): Promise<string[]> {
  modelDir = await modelFolder(label, modelDir);
  const tokenizer = Tokenizer.fromFolder(modelDir);
  const template = !s.raw && ChatTemplate.hasTemplate(modelDir) ? ChatTemplate.fromFolder(modelDir, { specialTokens: tokenizer.specialTokens }) : undefined;
  const ids = prompts.map((p) => encodePrompt(tokenizer, modelPrompt(p.prompt, template, s.raw, s.chatTemplateKwargs)));
  const dtype = s.dtype ?? readConfig(modelDir).dtype ?? 'float32';
  const model = loadModel(modelDir, { dtype, device: s.device });
  const bar = progressBar(label, 'prompts');
  bar.start(prompts.length, 0);
  try {
    const gens = await generateAll(model, ids, {
      temperature: s.temperature, topP: s.topP, maxNewTokens: s.maxNewTokens, tokenizer, batchSize: s.batchSize,
      seedOf: (b) => mixSeed(s.seed, b),
      onBatch: (done) => bar.update(done),
    });
    return gens.map((g) => g[0]!.text);
  } finally {
    bar.stop();
    model.dispose();
  }
}

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand(
    'eval',
    argv,
    {
      judge: { type: 'string' },
      'judge-options': { type: 'string' },
      model: { type: 'string' },
      prompts: { type: 'string' },
      outputs: { type: 'string' },
      'reference-model': { type: 'string' },
      reference: { type: 'string' },
      limit: { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'max-new-tokens': { type: 'string' },
      seed: { type: 'string' },
      'batch-size': { type: 'string' },
      dtype: { type: 'string' },
      device: { type: 'string' },
      raw: { type: 'boolean' },
      'chat-template-kwargs': { type: 'string' },
      out: { type: 'string' },
      'save-outputs': { type: 'string' },
      ...JUDGE_OPTIONS,
    },
    HELP,
    { required: ['judge'] },
  );
  if (!parsed) return;
  const v = parsed.values;
  if (!!v.model === !!v.outputs) throw new UsageError('give exactly one of --model and --outputs (sppo eval --help)');
  if (!!v['reference-model'] === !!v.reference) throw new UsageError('give exactly one of --reference-model and --reference (sppo eval --help)');
  if (v.outputs && v.prompts) throw new UsageError('--prompts goes with --model (with --outputs, the outputs carry their instructions)');
  if (v['reference-model'] && !v.prompts && !v.outputs) throw new UsageError('--reference-model needs --prompts (or --outputs, whose instructions are used)');
  const device = deviceOption(v.device);
  const dtype = dtypeOption(v.dtype, device);
  const limit = v.limit === undefined ? Infinity : num('limit', v.limit, 0, { integer: true, min: 1 });
  const sampling: Sampling = {
    temperature: num('temperature', v.temperature, 0.7, { min: 0 }),
    topP: num('top-p', v['top-p'], 0.9, { min: 0, max: 1, open: true }),
    maxNewTokens: num('max-new-tokens', v['max-new-tokens'], 512, { integer: true, min: 1 }),
    seed: num('seed', v.seed, 0, { integer: true, min: 0 }),
    batchSize: num('batch-size', v['batch-size'], 8, { integer: true, min: 1 }),
    dtype,
    device,
    raw: v.raw ?? false,
    chatTemplateKwargs: chatTemplateKwargsOption(v['chat-template-kwargs']),
  };
  let judgeOptions: unknown;
  if (v['judge-options'] !== undefined) {
    try {
      judgeOptions = JSON.parse(v['judge-options']);
    } catch (e) {
      throw new UsageError(`--judge-options: not valid JSON (${(e as Error).message})`);
    }
  }
  let spec: JudgeSpec;
  try {
    spec = parseJudgeSpec(v.judge!, { device });
  } catch (e) {
    throw new UsageError(`--judge: ${(e as Error).message}`);
  }
  if (spec.kind === 'module' && judgeOptions !== undefined) spec = { ...spec, options: judgeOptions };
  spec = withJudgeOptions(spec, v);

  const inputs = { '--outputs': v.outputs, '--reference': v.reference, '--prompts': v.prompts };
  if (v.out) checkOutput('--out', v.out, inputs);
  if (v['save-outputs']) checkOutput('--save-outputs', v['save-outputs'], inputs);
  const referenceFile = v.reference ? readOutputsFile(v.reference) : undefined;

  // The evaluated model's outputs.
  let outputs: OutputRecord[];
  let prompts: PromptRecord[] | undefined;
  if (v.outputs) {
    outputs = readOutputsFile(v.outputs).slice(0, limit);
  } else {
    if (v.prompts) prompts = (await readPromptFile(v.prompts)).slice(0, limit);
    else prompts = referenceFile!.slice(0, limit).map((r, index) => ({ index, prompt: r.instruction }));
    const texts = await respond(v.model!, prompts, sampling, 'model');
    outputs = prompts.map((p, i) => ({ instruction: plainPromptText(p.prompt), output: texts[i]!, generator: v.model! }));
    if (v['save-outputs']) writeJsonlAtomic(v['save-outputs'], outputs);
  }

  // The reference's outputs.
  let references: OutputRecord[];
  if (referenceFile) references = referenceFile;
  else {
    const ps = prompts ?? outputs.map((o, index) => ({ index, prompt: o.instruction }));
    const texts = await respond(v['reference-model']!, ps, sampling, 'reference');
    references = ps.map((p, i) => ({ instruction: plainPromptText(p.prompt), output: texts[i]!, generator: v['reference-model']! }));
  }
  // Generated references answer the same prompts in the same order; a reference file is matched by instruction.
  const items = referenceFile ? pairByInstruction(outputs, references) : outputs.map((o, i) => ({ prompt: o.instruction, output: o.output, reference: references[i]!.output }));

  const judge = await loadJudge(spec);
  let report;
  const bar = progressBar('judge', 'pairs');
  bar.start(items.length, 0);
  try {
    report = await evaluate(judge, items, { onProgress: (d) => bar.update(d) });
  } finally {
    bar.stop();
    judge.dispose?.();
  }
  const stats = (judge as { stats?: () => Record<string, unknown> }).stats?.();
  const json = reportJson(report, {
    ...(stats ? { judgeStats: stats } : {}),
    model: v.model ?? v.outputs,
    reference: v['reference-model'] ?? v.reference,
    ...(v.model ? { sampling: { temperature: sampling.temperature, topP: sampling.topP, maxNewTokens: sampling.maxNewTokens, seed: sampling.seed } } : {}),
  });
  if (v.out) writeJsonAtomic(v.out, json);
  const f = (x: number): string => (Number.isFinite(x) ? (100 * x).toFixed(1) : 'n/a');
  console.error(
    `sppo eval: win rate ${f(report.winRate)}% ± ${f(report.standardError)} (LC ${f(report.lcWinRate)}%), ${report.nWins} wins / ${report.nLosses} losses / ${report.nTies} ties of ${report.n}; ` +
      `avg length ${report.avgLength.toFixed(0)} vs ${report.avgReferenceLength.toFixed(0)} chars`,
  );
  console.log(JSON.stringify(json, null, 2));
}
