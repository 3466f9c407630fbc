// `sppo sft`: supervised fine-tuning on (prompt, response) pairs, from a model folder or from random weights.
import { existsSync, readFileSync } from 'node:fs';
import { createModel, loadModel, saveModel } from '../models/registry.js';
import { parseConfig } from '../models/config.js';
import type { CausalLMBase } from '../models/causal_lm.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate } from '../text/chat_template.js';
import { readSftData, sft, tokenizeSft, type SftStepMetrics } from '../sppo/sft.js';
import { UsageError } from './usage.js';
import { dataFiles, modelFolder } from './model_option.js';
import { chatTemplateKwargsOption, checkOutput, parseCommand, progressBar } from './args.js';
import { OPTIMIZATION_FLAGS, optimizationOptions, optimizerSteps } from './optimization.js';
import { REPORT_TO_OPTIONS, stepReporter } from './report_to.js';
import { checkPushOption, PUSH_HELP, PUSH_OPTIONS, pushIfAsked } from './push.js';

export const summary = 'supervised fine-tuning on (prompt, response) pairs, from a model folder or random weights';

const HELP = `usage: sppo sft (--model DIR | --init CONFIG.json --tokenizer DIR) --data FILE.jsonl --out DIR [options]

DATA (JSONL, a JSON array, or Parquet) records: {"prompt": "...", "response": "..."} ("completion" for
"response" too), or {"messages": [{"role", "content"}, ...], "response": "..."} (a "messages" list that ends with
an assistant turn and has no "response" uses that turn as the response; earlier assistant turns are trained too,
each in its context, unless --assistant-turns last), or TRL's conversational prompt-completion {"prompt": [messages], "completion": [assistant messages]},
tokenized as TRL 1.13's SFTTrainer does (prompt + completion rendered whole; the template ends the turn). TRL's
standard prompt-completion data trains as TRL trains it with --raw (no chat template; prompt + response tokenized
whole, the response the ids after the prompt's).
The prompt is rendered with the chat template (one user turn, or the messages, plus the generation prompt)
when the folder has one, as is with --raw or without a template; the response's ids are those that follow the
prompt's when prompt + response are tokenized whole (TRL's rule: no word boundary at the response's start, as a
response tokenized alone gets from Gemma's tokenizer; plain-text prompts get the tokenizer's special tokens, e.g.
a BOS, as transformers adds them; rendered ones none) and the end of a turn is appended to the response unless --no-eos: the chat template's
turn terminator (e.g. Gemma's <end_of_turn>, Llama-3's <|eot_id|>), or EOS without a template. The loss is the
mean cross-entropy over the response tokens only. The trained model is saved to OUT as a Hugging Face folder
(config.json, model.safetensors, the tokenizer files, generation_config.json).

options:
  --model DIR            continue from this model folder
  --init CONFIG.json     start from random weights of this config.json (normal(0, initializer_range), seeded)
  --tokenizer DIR        folder with tokenizer.json etc. (required with --init; default: --model)
  --data FILE|NAME       the examples (required): a JSONL, JSON-array or Parquet file, or a data set on the Hub
                         by name org/name[@revision] (its split's Parquet files, from the Hugging Face cache)
  --split S              the data set's split (default train)
  --dataset-config C     the data set's configuration (subset), when it has several
  --out DIR              where the model is saved (required)
  --lr LR                peak learning rate (default 1e-3)
  --epochs N             default 1
  --batch-size B         examples per micro-batch (default 16)
  --grad-accum N         micro-batches per optimizer step (default 1)
  --optimizer O          adamw | rmsprop (default adamw)
  --weight-decay W       default 0
  --warmup-ratio R       default 0.05
  --schedule S           linear | cosine | constant (default cosine)
  --max-grad-norm G      default 1 (0 = off)
  --max-length N         tokens per sequence (default 1024)
  --eval-fraction F      held-out fraction, its loss at the end of each epoch (default 0)
  --seed S               initialisation, shuffling and split (default 0)
  --metrics FILE         JSONL metrics, one line per optimizer step
  --report-to T          tensorboard | wandb | none: each step's metrics as TensorBoard event files too
                         (wandb: the same files, for wandb sync --sync-tensorboard; docs/tracking.md)
  --logging-dir DIR      where the event files go (default OUT/runs/<date>_<host>, a folder per run)
  --no-eos               do not append EOS to the responses (a conversation's end-of-turn tokens: not trained)
  --assistant-turns T    all | last: in a "messages" conversation with several assistant turns, train every
                         one (default; the conversation rendered whole with the chat template, each assistant
                         turn's tokens through its end-of-turn token trained, the rest context) or the last only;
                         a template that renders earlier turns differently once later ones follow (Qwen3's drops
                         past reasoning) gives one sequence per turn, the conversation up to it as rendered then
  --raw                  use prompts as they are, without the chat template
  --chat-template-kwargs JSON
                         variables for the chat template, e.g. '{"enable_thinking": false}'
  --dtype D              float32 | bfloat16 (default: bfloat16 on CUDA, float32 on the CPU)
  --device D             cpu | cuda | cuda:N (default: cuda when available)
${PUSH_HELP}
  -h, --help             this help
`;


export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand(
    'sft',
    argv,
    {
      model: { type: 'string' },
      init: { type: 'string' },
      tokenizer: { type: 'string' },
      data: { type: 'string' },
      split: { type: 'string' },
      'dataset-config': { type: 'string' },
      out: { type: 'string' },
      ...OPTIMIZATION_FLAGS,
      ...REPORT_TO_OPTIONS,
      'no-eos': { type: 'boolean' },
      'assistant-turns': { type: 'string' },
      ...PUSH_OPTIONS,
      raw: { type: 'boolean' },
      'chat-template-kwargs': { type: 'string' },
    },
    HELP,
  );
  if (!parsed) return;
  const v = parsed.values;
  if (!v.model === !v.init) throw new UsageError('give exactly one of --model DIR and --init CONFIG.json (sppo sft --help)');
  checkPushOption(v);
  for (const k of ['data', 'out'] as const) if (!v[k]) throw new UsageError(`--${k} is required (sppo sft --help)`);
  if (v.model) v.model = await modelFolder('--model', v.model);
  if (v.init && !existsSync(v.init)) throw new UsageError(`--init: ${v.init} does not exist`);
  if (!v.tokenizer && !v.model) throw new UsageError('--tokenizer DIR is required with --init');
  const tokDir = v.tokenizer ? await modelFolder('--tokenizer', v.tokenizer) : v.model!;
  const { lr, epochs, batchSize, gradAccum, optimizer, weightDecay, warmupRatio, schedule, maxGradNorm, maxLength, evalFraction, seed, device, dtype } =
    optimizationOptions(v, { lr: 1e-3, batchSize: 16, optimizer: 'adamw', warmupRatio: 0.05, schedule: 'cosine' });

  const dataFileList = await dataFiles('--data', v.data!, v.split, v['dataset-config']);
  checkOutput('--out', v.out!, { '--model': v.model, ...Object.fromEntries(dataFileList.map((f, i) => [i ? `--data (file ${i + 1})` : '--data', f])) }, 'folder');
  const lines = (await Promise.all(dataFileList.map((f) => readSftData(f)))).flat();
  const tokenizer = Tokenizer.fromFolder(tokDir);
  const template = !v.raw && ChatTemplate.hasTemplate(tokDir) ? ChatTemplate.fromFolder(tokDir, { specialTokens: tokenizer.specialTokens }) : undefined;
  const chatTemplateKwargs = chatTemplateKwargsOption(v['chat-template-kwargs']);
  const turns = v['assistant-turns'] ?? 'all';
  if (turns !== 'all' && turns !== 'last') throw new UsageError(`--assistant-turns: expected all or last, got ${JSON.stringify(turns)}`);
  const examples = tokenizeSft(tokenizer, template, lines, { raw: v.raw ?? false, appendEos: !v['no-eos'], chatTemplateKwargs, assistantTurns: turns, log: (l) => console.error(`sppo sft: ${l}`) });

  let model: CausalLMBase;
  if (v.init) {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(readFileSync(v.init, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`--init: ${v.init}: not valid JSON (${(e as Error).message})`);
    }
    const cfg = parseConfig(raw, v.init);
    if (cfg.vocabSize < tokenizer.vocabSize) throw new UsageError(`--init: vocab_size ${cfg.vocabSize} is smaller than the tokenizer's ${tokenizer.vocabSize} ids`);
    model = createModel(cfg);
    const std = typeof raw.initializer_range === 'number' ? raw.initializer_range : 0.02;
    model.initWeights({ std, seed, dtype, device });
  } else {
    model = loadModel(v.model!, { dtype, device });
  }

  const { total } = optimizerSteps(examples.length, { evalFraction, batchSize, gradAccum, epochs });
  const report = stepReporter(v, v.out!, 'sppo sft');
  const bar = progressBar('sft', 'steps', 'loss {loss}');
  bar.start(total, 0, { loss: '-' });
  const t0 = performance.now();
  let last: SftStepMetrics | undefined;
  try {
    const r = await sft({
      model, examples, lr, epochs, batchSize, gradAccum, optimizer, weightDecay, warmupRatio, schedule, maxGradNorm, maxLength,
      seed, evalFraction, dtype, device, metricsPath: v.metrics,
      onStep: (m) => {
        last = m;
        report?.(m);
        bar.update(m.step, { loss: m.loss.toPrecision(4) });
      },
    });
    bar.stop();
    saveModel(r.model, v.out!, { tokenizerDir: tokDir });
    const secs = (performance.now() - t0) / 1000;
    const ev = r.evalLoss !== undefined ? `, held-out loss ${r.evalLossBefore?.toPrecision(4)} -> ${r.evalLoss.toPrecision(4)}` : '';
    console.error(`sppo sft: ${r.steps} steps on ${r.trainSize} examples in ${secs.toFixed(1)} s, last loss ${last?.loss.toPrecision(4) ?? '-'}${ev} -> ${v.out}`);
    await pushIfAsked('sft', v, v.out!);
  } finally {
    bar.stop();
    model.dispose();
  }
}
