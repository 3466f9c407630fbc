// `sppo generate`: sample responses for a JSONL file of prompts with a Hugging Face model folder.
import { existsSync } from 'node:fs';
import { loadModel } from '../models/registry.js';
import { positionLimit, readConfig } from '../models/config.js';
import { generateAll, type Generation } from '../generate/generate.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, encodePrompt, renderPrompt, stopSetWarning } from '../text/chat_template.js';
import { UsageError } from './usage.js';
import { modelFolder } from './model_option.js';
import { readPromptLines } from '../sppo/prompts.js';
import { chatTemplateKwargsOption, checkOutput, deviceOption, dtypeOption, num, parseCommand, progressBar } from './args.js';
import { writeJsonlAtomic } from '../util/files.js';
import { remoteGenerator } from '../sppo/remote_generation.js';

export const summary = 'sample responses to a JSONL file of prompts with a Hugging Face model folder';

const HELP = `usage: sppo generate --model DIR --prompts FILE.jsonl --out FILE.jsonl [options]

Reads one prompt per line of FILE.jsonl, as {"prompt": "..."} (plain text: rendered as one user turn with
the model's chat template when it has one) or {"messages": [{"role", "content"}, ...]} (rendered with the
chat template and a generation prompt), and writes one line per prompt to OUT: the input's fields, plus
"prompt_text" (the rendered prompt) and "responses": [{"text", "token_ids", "logprobs", "finish_reason"}],
n of them. "logprobs" are the untempered policy's log-probs of each token (log_softmax of the raw logits).
OUT is written atomically (a temporary file renamed when all is done).

options:
  --model DIR            Hugging Face model folder (config.json, safetensors, tokenizer.json), or a Hub name
                         org/name[@revision] (from the Hugging Face cache, downloaded when online) (required)
  --prompts FILE         JSONL prompts (required)
  --out FILE             JSONL output (required)
  -n, --n K              samples per prompt, sharing the prompt's prefill (default 1)
  --temperature T        0 = greedy (default 1)
  --top-p P              nucleus sampling, in (0, 1] (default 1: off)
  --top-k K              keep the K most likely tokens (default 0: off)
  --repetition-penalty R > 0: the logits of tokens already in the prompt or the response divided by R where
                         positive, multiplied where negative (transformers' and vLLM's; default 1: off)
  --presence-penalty P   in [-2, 2]: subtracted once from the logit of each token already in the response
                         (OpenAI's and vLLM's; default 0)
  --frequency-penalty F  in [-2, 2]: subtracted per occurrence in the response (default 0). The penalties
                         change what is sampled, not the log-probs written (the untempered policy's)
  --max-new-tokens N     default 256
  --min-new-tokens N     EOS forbidden before N new tokens (default 0)
  --stop TEXT            stop a response at TEXT (repeatable; the text is cut before it)
  --seed S               sampling seed (default 0); outputs are reproducible for a given --batch-size
  --batch-size B         prompts per batch (default 8; B * n sequences decode together)
  --dtype D              float32 | bfloat16 | float16 (default: the checkpoint's)
  --device D             cpu | cuda | cuda:N (default: cuda when available)
  --graph MODE           auto | on | off: decode each step as a replayed CUDA graph (one per batch bucket;
                         'on' on the CPU runs the same static step eagerly) or op by op (default auto:
                         graphs on a GPU, op by op on the CPU; --stop always decodes op by op)
  --mixture DIR          sample from the token-level geometric mixture of --model and DIR (same vocabulary):
                         each step's logits (1 - C) z_model + C z_DIR, as TRL's GeometricMixtureWrapper
                         (Nash-MD's opponent; the log-probs written are the mixture's; decodes op by op)
  --mixture-coef C       the mixture's weight C of DIR, in [0, 1] (required with --mixture)
  --raw                  use plain-text prompts as they are, without the chat template (plain text gets the
                         tokenizer's special tokens, e.g. a BOS, as transformers adds them)
  --chat-template-kwargs JSON
                         variables for the chat template, e.g. '{"enable_thinking": false}'
  --backend-url URL      generate on an OpenAI-compatible server (sppo serve, vLLM) at URL (its /v1 base,
                         e.g. http://127.0.0.1:8000/v1) instead of loading the model; repeatable: the
                         prompts are shared over the servers, a dead server's go to the others. DIR still
                         gives the tokenizer and chat template; token ids and log-probs come from the
                         responses (text-only responses are re-tokenised and scored with DIR). Each sample is
                         one n = 1 request with every sampler field pinned (top_k -1 for none, min_p 0,
                         repetition_penalty 1, ...); sample j of prompt i has seed seed + i * n + j;
                         --batch-size, --dtype and --device then do not apply
  --backend-model NAME   the requests' model (default: the first of the server's GET /v1/models)
  --api-key-env VAR      the environment variable holding the servers' API key
  --concurrency C        requests in flight per server (default 8)
  -h, --help             this help
`;


export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand(
    'generate',
    argv,
    {
      model: { type: 'string' },
      prompts: { type: 'string' },
      out: { type: 'string' },
      n: { type: 'string', short: 'n' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'top-k': { type: 'string' },
      'repetition-penalty': { type: 'string' },
      'presence-penalty': { type: 'string' },
      'frequency-penalty': { type: 'string' },
      'max-new-tokens': { type: 'string' },
      'min-new-tokens': { type: 'string' },
      stop: { type: 'string', multiple: true },
      seed: { type: 'string' },
      'batch-size': { type: 'string' },
      dtype: { type: 'string' },
      device: { type: 'string' },
      graph: { type: 'string' },
      mixture: { type: 'string' },
      'mixture-coef': { type: 'string' },
      raw: { type: 'boolean' },
      'chat-template-kwargs': { type: 'string' },
      'backend-url': { type: 'string', multiple: true },
      'backend-model': { type: 'string' },
      'api-key-env': { type: 'string' },
      concurrency: { type: 'string' },
    },
    HELP,
    { required: ['model', 'prompts', 'out'] },
  );
  if (!parsed) return;
  const v = parsed.values;
  const int = { integer: true };
  const n = num('n', v.n, 1, { ...int, min: 1 });
  const temperature = num('temperature', v.temperature, 1, { min: 0 });
  const topP = num('top-p', v['top-p'], 1, { min: 0, max: 1 });
  if (topP === 0) throw new UsageError('--top-p must be in (0, 1], got 0');
  const topK = num('top-k', v['top-k'], 0, { ...int, min: 0 });
  const penalties = {
    repetitionPenalty: num('repetition-penalty', v['repetition-penalty'], 1, { min: 0, open: true }),
    presencePenalty: num('presence-penalty', v['presence-penalty'], 0, { min: -2, max: 2 }),
    frequencyPenalty: num('frequency-penalty', v['frequency-penalty'], 0, { min: -2, max: 2 }),
  };
  const maxNewTokens = num('max-new-tokens', v['max-new-tokens'], 256, { ...int, min: 1 });
  const minNewTokens = num('min-new-tokens', v['min-new-tokens'], 0, { ...int, min: 0 });
  if (minNewTokens > maxNewTokens) throw new UsageError(`--min-new-tokens ${minNewTokens} is more than --max-new-tokens ${maxNewTokens}`);
  const seed = num('seed', v.seed, 0, { ...int, min: 0 });
  const batchSize = num('batch-size', v['batch-size'], 8, { ...int, min: 1 });
  const device = deviceOption(v.device);
  const dtype = dtypeOption(v.dtype, device);
  const graph = v.graph ?? 'auto';
  if (graph !== 'auto' && graph !== 'on' && graph !== 'off') throw new UsageError(`--graph must be auto, on or off, got '${graph}'`);
  const urls = v['backend-url'] ?? [];
  const concurrency = num('concurrency', v.concurrency, 8, { ...int, min: 1 });
  for (const u of urls) if (!/^https?:\/\/[^\s]+$/.test(u)) throw new UsageError(`--backend-url must be an http(s) URL, got '${u}'`);
  if (urls.length === 0 && (v['backend-model'] !== undefined || v['api-key-env'] !== undefined)) throw new UsageError('--backend-model and --api-key-env need --backend-url');
  if ((v.mixture === undefined) !== (v['mixture-coef'] === undefined)) throw new UsageError('--mixture and --mixture-coef go together');
  const mixtureCoef = v.mixture === undefined ? 0 : num('mixture-coef', v['mixture-coef'], 0, { min: 0, max: 1 });
  if (v.mixture !== undefined && urls.length > 0) throw new UsageError('--mixture samples with local models: it does not go with --backend-url');
  v.model = await modelFolder('--model', v.model!);
  const mixtureDir = v.mixture === undefined ? undefined : await modelFolder('--mixture', v.mixture);

  if (!existsSync(v.prompts!)) throw new UsageError(`--prompts: ${v.prompts} does not exist`);
  checkOutput('--out', v.out!, { '--prompts': v.prompts });
  const prompts = readPromptLines(v.prompts!);
  const tokenizer = Tokenizer.fromFolder(v.model!);
  const template = ChatTemplate.hasTemplate(v.model!) ? ChatTemplate.fromFolder(v.model!, { specialTokens: tokenizer.specialTokens }) : undefined;
  const kwargs = chatTemplateKwargsOption(v['chat-template-kwargs']) ?? {};
  const rendered = prompts.map((p) => renderPrompt(p.prompt, template, { ...kwargs, raw: v.raw ?? false }));
  const texts = rendered.map((r) => r.text);
  const ids = rendered.map((r) => encodePrompt(tokenizer, r));
  const modelConfig = readConfig(v.model!);
  ids.forEach((p, i) => {
    const over = positionLimit(modelConfig, p.length + maxNewTokens);
    if (over?.learned) throw new Error(`${prompts[i]!.where}: the prompt has ${p.length} tokens; with --max-new-tokens ${maxNewTokens} that is ${over.message}: shorten it or lower --max-new-tokens`);
  });
  const stopWarning = stopSetWarning(tokenizer, v.raw ? undefined : template, kwargs);
  if (stopWarning) console.error(`sppo generate: warning: ${stopWarning}`);

  const bar = progressBar('generate', 'prompts', '{tps} tok/s');
  bar.start(prompts.length, 0, { tps: '-' });
  const t0 = performance.now();
  let tokensOut = 0;
  let results: Generation[][];
  if (urls.length > 0) {
    const remote = remoteGenerator(
      { kind: 'openai', urls, model: v['backend-model'], apiKeyEnv: v['api-key-env'], concurrency, timeoutS: 600, servers: 1, startTimeoutS: 300 },
      { checkpoint: v.model!, tokenizer, label: 'sppo generate', log: (l) => console.error(l), loadModel: () => loadModel(v.model!, { dtype, device }), prompts: { raw: v.raw ?? false, chatTemplateKwargs: kwargs } },
    );
    try {
      const flat = await remote.generate(ids, { n, temperature, topP, topK, maxNewTokens, minNewTokens, stop: v.stop ?? [], seed, ...penalties }, (done) => bar.update(done, { tps: '-' }));
      results = ids.map((_, i) => flat.slice(i * n, (i + 1) * n));
      tokensOut = flat.reduce((a, g) => a + g.tokens.length, 0);
    } finally {
      bar.stop();
      await remote.stop();
    }
  } else {
    const model = loadModel(v.model!, { dtype, device });
    const mu = mixtureDir === undefined ? undefined : loadModel(mixtureDir, { dtype, device });
    try {
      results = await generateAll(model, ids, {
        n, temperature, topP, topK, maxNewTokens, minNewTokens, tokenizer, stopStrings: v.stop, batchSize, graph, ...penalties,
        ...(mu ? { mixture: { model: mu, coef: mixtureCoef } } : {}),
        seedOf: (b) => seed + b * batchSize,
        onBatch: (done, gens) => {
          tokensOut += gens.reduce((a, g) => a + g.tokens.length, 0);
          bar.update(done, { tps: (tokensOut / ((performance.now() - t0) / 1000)).toFixed(0) });
        },
      });
    } finally {
      bar.stop();
      model.dispose();
      mu?.dispose();
    }
  }

  const out = v.out!;
  writeJsonlAtomic(
    out,
    prompts.map((p, i) => ({
      ...p.fields,
      prompt_text: texts[i],
      responses: results[i]!.map((g) => ({ text: g.text, token_ids: g.tokens, logprobs: g.logprobs, finish_reason: g.finishReason })),
    })),
  );
  const secs = (performance.now() - t0) / 1000;
  console.error(`sppo generate: ${prompts.length} prompts x ${n} samples, ${tokensOut} tokens in ${secs.toFixed(1)} s (${(tokensOut / secs).toFixed(0)} tokens/s) -> ${out}`);
}
