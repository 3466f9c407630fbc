// `sppo serve DIR`: an OpenAI-compatible HTTP server (the part of the API vLLM implements) for a Hugging
// Face model folder, with continuous batching (src/serve).
import { loadModel } from '../models/registry.js';
import { positionLimit, readConfig } from '../models/config.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, stopSetWarning } from '../text/chat_template.js';
import { Engine } from '../serve/engine.js';
import { readSamplingDefaults, SppoServer } from '../serve/server.js';
import { UsageError } from './usage.js';
import { modelFolder } from './model_option.js';
import { choice, deviceOption, dtypeOption, num, optNum, parseCommand } from './args.js';

export const summary = 'serve a model folder over the OpenAI API (completions, chat, streaming; continuous batching)';

const HELP = `usage: sppo serve DIR [options]

Serves the Hugging Face model folder DIR (or a Hub name org/name[@revision], from the Hugging Face cache,
downloaded into it when online: docs/hub.md) over HTTP with the OpenAI API, as vLLM does:
  GET  /v1/models, GET /health, GET /metrics (Prometheus counters)
  POST /v1/completions        prompt as text or token ids (or lists of either); n, max_tokens, temperature,
                              top_p, top_k, min_p, seed, stop, logprobs, echo (max_tokens 0 with echo: the
                              prompt's log-probs), stream; vLLM's prompt_logprobs, return_tokens_as_token_ids,
                              return_token_ids, stop_token_ids, ignore_eos, min_tokens,
                              include_stop_str_in_output, skip_special_tokens, add_special_tokens,
                              truncate_prompt_tokens
  POST /v1/chat/completions   messages rendered with DIR's chat template; logprobs, top_logprobs, stream
  POST /tokenize, /detokenize, GET /tokenizer_info   vLLM's (lm-evaluation-harness's remote tokenizer)
Fields that would change the output and are not implemented get a 400 naming them.
Concurrent requests decode together (continuous batching). Log-probs are the untempered policy's.
SIGTERM (or Ctrl-C) refuses new requests (503; /health 503), finishes those in flight and exits 0.

options:
  --host H               address to listen on (default 127.0.0.1)
  --port P               port (default 8000; 0 = a free port, printed on stderr)
  --api-key KEY          every /v1 route needs "Authorization: Bearer KEY" (default: $SPPO_API_KEY; none: open)
  --served-model-name N  the model's name in the API (default: DIR as given)
  --device D             cpu | cuda | cuda:N (default: cuda when available)
  --dtype D              float32 | bfloat16 | float16 (default: the checkpoint's)
  --max-model-len N      prompt + new tokens at most (default: the model's max positions)
  --max-tokens N         max_tokens at most (default: the context length)
  --max-n N              n at most (default 16)
  --max-batch N          sequences decoding together at most (default 64)
  --max-queue N          requests waiting at most beyond those that fit the batch's free rows (at least
                         1); beyond it 429 with Retry-After (default 256)
  --gather-ms MS         an idle server waits until requests stop arriving for MS (4 x MS at most)
                         before its first prefill, so that a burst decodes together (default 2; 0 = off)
  --max-body-bytes N     request bodies at most; beyond it 413 (default 1048576)
  --timeout S            a request running longer is cancelled: 408 (default 600)
  --seed S               seed of the sampling of requests without a seed (default: random)
  --generation-config G  auto: requests that leave out temperature, top_p, top_k, min_p or
                         repetition_penalty take DIR's generation_config.json values, and its
                         max_new_tokens caps max_tokens, as vLLM's default; vllm: OpenAI's defaults
                         (temperature 1, top_p 1, no penalty) (default auto)
  --log-requests         one line per request on stderr (route, status, tokens, time; no prompts)
  --log-prompts          the same lines with the prompts
  -h, --help             this help
`;

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand(
    'serve',
    argv,
    {
      host: { type: 'string' },
      port: { type: 'string' },
      'api-key': { type: 'string' },
      'served-model-name': { type: 'string' },
      device: { type: 'string' },
      dtype: { type: 'string' },
      'max-model-len': { type: 'string' },
      'max-tokens': { type: 'string' },
      'max-n': { type: 'string' },
      'max-batch': { type: 'string' },
      'max-queue': { type: 'string' },
      'gather-ms': { type: 'string' },
      'max-body-bytes': { type: 'string' },
      timeout: { type: 'string' },
      seed: { type: 'string' },
      'generation-config': { type: 'string' },
      'log-requests': { type: 'boolean' },
      'log-prompts': { type: 'boolean' },
    },
    HELP,
    { positionals: true },
  );
  if (!parsed) return;
  const v = parsed.values;
  if (parsed.positionals.length !== 1) throw new UsageError(`sppo serve takes one model folder, got ${parsed.positionals.length} arguments\n\n${HELP}`);
  const given = parsed.positionals[0]!;
  const dir = await modelFolder('DIR', given);
  const int = { integer: true };
  const host = v.host ?? '127.0.0.1';
  const port = num('port', v.port, 8000, { ...int, min: 0, max: 65535 });
  const maxModelLen = optNum('max-model-len', v['max-model-len'], { ...int, min: 2 });
  const maxTokens = optNum('max-tokens', v['max-tokens'], { ...int, min: 1 });
  const maxN = num('max-n', v['max-n'], 16, { ...int, min: 1 });
  const maxBatch = num('max-batch', v['max-batch'], 64, { ...int, min: 1 });
  const maxQueue = num('max-queue', v['max-queue'], 256, { ...int, min: 1 });
  const gatherMs = num('gather-ms', v['gather-ms'], 2, { min: 0 });
  const maxBodyBytes = num('max-body-bytes', v['max-body-bytes'], 1024 * 1024, { ...int, min: 256 });
  const timeout = num('timeout', v.timeout, 600, { min: 0, open: true });
  const seed = optNum('seed', v.seed, { ...int, min: 0 });
  const apiKey = v['api-key'] ?? (process.env.SPPO_API_KEY || undefined);
  const device = deviceOption(v.device);
  const dtype = dtypeOption(v.dtype, device);

  if (maxModelLen !== undefined) {
    const over = positionLimit(readConfig(dir), maxModelLen);
    if (over?.learned) throw new UsageError(`--max-model-len ${maxModelLen}: ${over.message}`);
    if (over) console.error(`sppo serve: warning: --max-model-len ${maxModelLen}: ${over.message}`);
  }
  const generationConfig = choice('generation-config', v['generation-config'], ['auto', 'vllm'] as const, 'auto');
  const sampling = generationConfig === 'auto' ? readSamplingDefaults(dir) : {};
  const tokenizer = Tokenizer.fromFolder(dir);
  const template = ChatTemplate.hasTemplate(dir) ? ChatTemplate.fromFolder(dir, { specialTokens: tokenizer.specialTokens }) : undefined;
  const model = loadModel(dir, { dtype, device });
  const engine = new Engine(model, { tokenizer, maxBatch, maxQueue, maxModelLen, seed, gatherMs });
  const server = new SppoServer(engine, tokenizer, template, {
    modelName: v['served-model-name'] ?? given,
    modelDir: dir,
    apiKey,
    maxTokens,
    maxN: Math.min(maxN, maxBatch),
    maxBodyBytes,
    samplingDefaults: sampling,
    timeoutMs: timeout * 1000,
    logRequests: v['log-requests'] ?? false,
    logPrompts: v['log-prompts'] ?? false,
  });
  // A safety net: whatever a request does, the server logs it and goes on.
  process.on('unhandledRejection', (err) => console.error(`sppo serve: unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));
  const addr = await server.listen(port, host);
  console.error(`sppo serve: ${server.modelName} (${model.config.architecture}, ${model.dtype} on ${model.device}) at ${server.url}${apiKey ? ' (API key required)' : ''}`);
  console.error(`sppo serve: listening on ${addr.address}:${addr.port}`);
  if (Object.keys(sampling).length > 0) {
    console.error(`sppo serve: sampling defaults from generation_config.json: ${JSON.stringify(sampling)} (--generation-config vllm for OpenAI's)`);
  }
  const stopWarning = stopSetWarning(tokenizer, template);
  if (stopWarning) console.error(`sppo serve: warning: ${stopWarning}`);
  if (!apiKey && host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') console.error('sppo serve: warning: no API key, and listening beyond this machine');

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        console.error(`sppo serve: ${signal} again: exiting now`);
        process.exit(1);
      }
      stopping = true;
      console.error(`sppo serve: ${signal}: no new requests; finishing ${engine.batchSize} running sequences and ${engine.queued} queued requests`);
      void server.shutdown().then(() => {
        engine.dispose();
        model.dispose();
        console.error('sppo serve: stopped');
        resolve();
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
