// `sppo train`: one SPPO (or DPO / IPO) policy update from a JSONL file of preference pairs.
import { existsSync } from 'node:fs';
import { loadModel, saveModel } from '../models/registry.js';
import { Tokenizer } from '../text/tokenizer.js';
import { isLossType, LOSS_TYPES } from '../sppo/losses.js';
import { train, type StepMetrics } from '../sppo/trainer.js';
import { readPairs, tokenizePairs } from '../sppo/pairs_file.js';
import { saveAdapter } from '../models/peft.js';
import { ALL_LINEAR, type LoraOptions } from '../nn/lora.js';
import { UsageError } from './usage.js';
import { dataFiles, modelFolder } from './model_option.js';
import { checkOutput, num, parseCommand, progressBar } from './args.js';
import { ChatTemplate } from '../text/chat_template.js';
import { OPTIMIZATION_FLAGS, optimizationOptions, optimizerSteps } from './optimization.js';
import { checkPushOption, PUSH_HELP, PUSH_OPTIONS, pushIfAsked } from './push.js';
import { REPORT_TO_OPTIONS, stepReporter } from './report_to.js';

export const summary = 'train a policy on preference pairs (SPPO, SPPO-hard, SPPO-single, DPO, IPO)';

const HELP = `usage: sppo train --model DIR --pairs FILE.jsonl --out DIR [options]

PAIRS (JSONL, a JSON array, or Parquet as the Hub stores datasets), records {"prompt", "chosen", "rejected",
"chosen_win_rate", "rejected_win_rate", "chosen_over_rejected"?, "chosen_ref_logprob"?, "rejected_ref_logprob"?}.
"prompt" is the already rendered prompt text (chat template applied; for a model folder without a chat template,
plain text, which gets the tokenizer's special tokens such as a BOS); prompt and responses are tokenized
separately and concatenated, and the end of a turn ends each response unless --no-eos or it ends with it already:
the chat template's turn terminator (e.g. Gemma's <end_of_turn>), or EOS without a template.
TRL's formats are read too: conversational pairs ("prompt", "chosen", "rejected" lists of messages), tokenized as
TRL 1.13's DPOTrainer does (prompt + response rendered whole with the chat template), and implicit-prompt pairs
(no "prompt": the conversations' shared start is the prompt). They carry no win rates: --loss dpo, ipo or
sppo_hard. The reference pi_t is the model as given:
its log-probs are the *_ref_logprob fields when present (they must be sums over exactly these response tokens),
else computed once before training. The trained model is saved to OUT as a Hugging Face folder.

With --lora-r, LoRA adapters train instead of every weight (only their gradients and optimizer state are
kept, and the reference is the model with the adapters off: no second copy). OUT is then the merged model,
and --adapter-out DIR also writes the adapter in PEFT's layout (adapter_config.json, adapter_model.safetensors)
for PEFT, transformers or vLLM; \`sppo merge\` merges such an adapter later. LoRA usually wants a learning rate
10-100x that of full fine-tuning.

options:
  --model DIR              the policy pi_t (required)
  --pairs FILE|NAME        the pairs (required): a JSONL, JSON-array or Parquet file, or a data set on the Hub
                           by name org/name[@revision] (its split's Parquet files, from the Hugging Face cache,
                           downloaded into it when online; e.g. TRL's trl-lib/ultrafeedback_binarized)
  --split S                the data set's split (default train)
  --dataset-config C       the data set's configuration (subset), when it has several
  --out DIR                where the trained model is saved (required)
  --loss L                 ${LOSS_TYPES.join(' | ')} (default sppo)
  --beta B                 KL strength; SPPO's eta = 1/beta (default 0.001)
  --label-smoothing E      cDPO smoothing, dpo only (default 0)
  --tau X                  mpo, nash-md, extragradient: KL strength toward the magnet (required by mpo, nash-md)
  --magnet DIR             mpo, nash-md, extragradient (tau > 0): the magnet model (e.g. the starting model)
                           omwu reads chosen_prev_win_rate / rejected_prev_win_rate from the pairs
  --lr LR                  peak learning rate (default 5e-7)
  --epochs N               default 1
  --batch-size B           pairs per micro-batch (default 8)
  --grad-accum N           micro-batches per optimizer step (default 1)
  --optimizer O            rmsprop | adamw (default rmsprop)
  --weight-decay W         default 0
  --warmup-ratio R         linear warmup over this fraction of the steps (default 0.1)
  --schedule S             linear | cosine | constant (default linear)
  --max-grad-norm G        gradient clipping (default 1; 0 = off)
  --max-length N           prompt + response tokens (default 1024)
  --max-prompt-length N    prompt tokens kept (from the right) when too long (default 512)
  --eval-fraction F        held-out fraction for an eval loss per epoch (default 0)
  --seed S                 default 0
  --metrics FILE           JSONL metrics, one line per optimizer step
  --report-to T            tensorboard | wandb | none: each step's metrics as TensorBoard event files too
                           (wandb: the same files, for wandb sync --sync-tensorboard; docs/tracking.md)
  --logging-dir DIR        where the event files go (default OUT/runs/<date>_<host>, a folder per run)
  --checkpoint-dir DIR     save checkpoints there (each epoch, or every --checkpoint-every steps)
  --checkpoint-every N     steps between checkpoints
  --gradient-checkpointing recompute the logits in the backward pass (less memory)
  --router-aux-loss-coef C mixture-of-experts models: the load-balancing loss's weight (default 0.001, TRL's; 0 = off)
  --no-master-weights    with bfloat16/float16 weights, step them directly instead of float32 master copies
                         (less memory; updates under half a weight's spacing are lost)
  --no-packing             right-padded batches instead of sequences packed end to end into rows
  --no-eos                 do not append the end of a turn (template terminator or EOS) to the responses
  --lora-r R               train LoRA adapters of rank R instead of every weight
  --lora-alpha A           LoRA scaling alpha / r (default 2 R)
  --lora-dropout P         dropout on the adapters' input (default 0)
  --lora-target-modules M  comma-separated layer names (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,
                           down_proj; GPT-2: c_attn,c_proj,c_fc; a dotted suffix such as mlp.c_proj), a regular
                           expression over the module path (PEFT's rule), or all-linear (default)
  --lora-rslora            rsLoRA scaling alpha / sqrt(r)
  --adapter-out DIR        with --lora-r: also save the adapter there (PEFT's layout; also at each checkpoint)
  --dtype D                float32 | bfloat16 (default: bfloat16 on CUDA, float32 on the CPU)
  --device D               cpu | cuda | cuda:N (default: cuda when available)
${PUSH_HELP}
  -h, --help               this help
`;


/** The --lora-* options: undefined without --lora-r. */
function loraOptions(v: Record<string, string | string[] | boolean | undefined>): LoraOptions | undefined {
  const s = (k: string): string | undefined => v[k] as string | undefined;
  if (s('lora-r') === undefined) {
    const stray = ['lora-alpha', 'lora-dropout', 'lora-target-modules', 'lora-rslora', 'adapter-out'].find((k) => v[k] !== undefined);
    if (stray) throw new UsageError(`--${stray} needs --lora-r (LoRA is off without it)`);
    return undefined;
  }
  const r = num('lora-r', s('lora-r'), 8, { integer: true, min: 1 });
  const alpha = num('lora-alpha', s('lora-alpha'), 2 * r, { min: 0, open: true });
  const dropout = num('lora-dropout', s('lora-dropout'), 0, { min: 0, max: 0.99 });
  const tm = s('lora-target-modules') ?? ALL_LINEAR;
  const names = tm.split(',').map((x) => x.trim()).filter(Boolean);
  if (!names.length) throw new UsageError('--lora-target-modules is empty');
  // A single value with regular-expression characters is a pattern over the module path (PEFT's rule for a string).
  const targetModules = tm === ALL_LINEAR || (names.length === 1 && /[*+?()[\]|\\^$]/.test(tm)) ? tm : names;
  return { r, alpha, dropout, targetModules, rslora: v['lora-rslora'] === true };
}

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand(
    'train',
    argv,
    {
      model: { type: 'string' },
      pairs: { type: 'string' },
      split: { type: 'string' },
      'dataset-config': { type: 'string' },
      out: { type: 'string' },
      loss: { type: 'string' },
      beta: { type: 'string' },
      'label-smoothing': { type: 'string' },
      tau: { type: 'string' },
      magnet: { type: 'string' },
      ...OPTIMIZATION_FLAGS,
      ...REPORT_TO_OPTIONS,
      'max-prompt-length': { type: 'string' },
      'checkpoint-dir': { type: 'string' },
      'checkpoint-every': { type: 'string' },
      'gradient-checkpointing': { type: 'boolean' },
      'router-aux-loss-coef': { type: 'string' },
      'no-master-weights': { type: 'boolean' },
      'no-packing': { type: 'boolean' },
      'no-eos': { type: 'boolean' },
      'lora-r': { type: 'string' },
      'lora-alpha': { type: 'string' },
      'lora-dropout': { type: 'string' },
      'lora-target-modules': { type: 'string' },
      'lora-rslora': { type: 'boolean' },
      'adapter-out': { type: 'string' },
      ...PUSH_OPTIONS,
    },
    HELP,
    { required: ['model', 'pairs', 'out'] },
  );
  if (!parsed) return;
  const v = parsed.values;
  checkPushOption(v);
  const loss = v.loss ?? 'sppo';
  if (!isLossType(loss)) throw new UsageError(`--loss must be one of ${LOSS_TYPES.join(', ')}, got '${loss}'`);
  const beta = num('beta', v.beta, 0.001, { min: 0, open: true });
  const labelSmoothing = num('label-smoothing', v['label-smoothing'], 0, { min: 0, max: 0.49 });
  if (labelSmoothing > 0 && loss !== 'dpo') throw new UsageError('--label-smoothing applies to --loss dpo only');
  const magnetLoss = loss === 'mpo' || loss === 'nash-md' || loss === 'extragradient';
  if (!magnetLoss && (v.tau !== undefined || v.magnet !== undefined)) throw new UsageError('--tau and --magnet apply to --loss mpo, nash-md and extragradient only');
  const tau = magnetLoss ? num('tau', v.tau, loss === 'extragradient' ? 0 : NaN, { min: 0 }) : undefined;
  if (magnetLoss && loss !== 'extragradient' && !(tau! > 0)) throw new UsageError(`--loss ${loss} needs --tau > 0`);
  if (magnetLoss && tau! > 0 && v.magnet === undefined) throw new UsageError(`--loss ${loss} with tau > 0 needs --magnet DIR`);
  if (v.magnet !== undefined && !existsSync(v.magnet)) throw new UsageError(`--magnet: ${v.magnet} does not exist`);
  const { lr, epochs, batchSize, gradAccum, optimizer, weightDecay, warmupRatio, schedule, maxGradNorm, maxLength, evalFraction, seed, device, dtype } =
    optimizationOptions(v, { lr: 5e-7, batchSize: 8, optimizer: 'rmsprop', warmupRatio: 0.1, schedule: 'linear' });
  const maxPromptLength = num('max-prompt-length', v['max-prompt-length'], Math.min(512, maxLength - 1), { integer: true, min: 1, max: maxLength - 1 });
  const checkpointEvery = v['checkpoint-every'] === undefined ? undefined : num('checkpoint-every', v['checkpoint-every'], 1, { integer: true, min: 1 });
  const lora = loraOptions(v);
  const modelName = v.model!; // as given: a Hub name stays one in the adapter's base_model_name_or_path, as PEFT writes it
  v.model = await modelFolder('--model', v.model!);

  const pairFiles = await dataFiles('--pairs', v.pairs!, v.split, v['dataset-config']);
  checkOutput('--out', v.out!, { '--model': v.model, ...Object.fromEntries(pairFiles.map((f, i) => [i ? `--pairs (file ${i + 1})` : '--pairs', f])) }, 'folder');
  const pairs = (await Promise.all(pairFiles.map((f) => readPairs(f, loss)))).flat();
  const tokenizer = Tokenizer.fromFolder(v.model!);
  const template = ChatTemplate.hasTemplate(v.model!) ? ChatTemplate.fromFolder(v.model!, { specialTokens: tokenizer.specialTokens }) : undefined;
  const examples = tokenizePairs(tokenizer, pairs, !v['no-eos'], template);
  const policy = loadModel(v.model!, { dtype, device });
  const { total } = optimizerSteps(examples.length, { evalFraction, batchSize, gradAccum, epochs });
  const report = stepReporter(v, v.out!, 'sppo train', beta);
  const bar = progressBar('train', 'steps', 'loss {loss} | acc {acc}');
  bar.start(total, 0, { loss: '-', acc: '-' });
  const t0 = performance.now();
  let last: StepMetrics | undefined;
  try {
    const r = await train({
      policy, examples, loss, beta, labelSmoothing, ...(magnetLoss ? { tau, ...(v.magnet !== undefined ? { magnet: v.magnet } : {}) } : {}), lr, epochs, batchSize, gradAccum, optimizer, weightDecay, warmupRatio, schedule,
      maxGradNorm, maxLength, maxPromptLength, dtype, device, seed, evalFraction, metricsPath: v.metrics,
      checkpointDir: v['checkpoint-dir'], checkpointEvery, gradientCheckpointing: v['gradient-checkpointing'] ?? false, routerAuxLossCoef: num('router-aux-loss-coef', v['router-aux-loss-coef'], 0.001, { min: 0 }), masterWeights: !v['no-master-weights'], packing: !v['no-packing'],
      lora, adapterDir: lora ? v['adapter-out'] : undefined, adapterBaseModel: modelName,
      onStep: (m) => {
        last = m;
        report?.(m);
        bar.update(m.step, { loss: m.loss.toPrecision(4), acc: m.pair_accuracy.toFixed(2) });
      },
    });
    bar.stop();
    if (r.lora) {
      if (v['adapter-out']) saveAdapter(r.lora, v['adapter-out'], { baseModel: modelName });
      r.lora.mergeAndDetach();
    }
    saveModel(r.model, v.out!, { tokenizerDir: v.model! });
    const secs = (performance.now() - t0) / 1000;
    const ev = r.evalLoss !== undefined ? `, eval loss ${r.evalLossBefore?.toPrecision(4)} -> ${r.evalLoss.toPrecision(4)}` : '';
    console.error(`sppo train: ${r.metrics.length} steps on ${r.trainSize} pairs in ${secs.toFixed(1)} s, last loss ${last?.loss.toPrecision(4) ?? '-'}${ev} -> ${v.out}`);
    await pushIfAsked('train', v, v.out!);
  } finally {
    bar.stop();
    policy.dispose();
  }
}
