// `sppo generate`: sample responses for a JSONL file of prompts with a Hugging Face model folder.
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { cuda, type DType } from '../torch/index.js';
import { loadModel } from '../models/registry.js';
import { generate, type Generation } from '../generate/generate.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate, promptText, type ChatMessage } from '../text/chat_template.js';
import { UsageError } from './usage.js';

export const summary = 'sample responses to a JSONL file of prompts with a Hugging Face model folder';

const HELP = `usage: sppo generate --model DIR --prompts FILE.jsonl --out FILE.jsonl [options]

Reads one prompt per line of FILE.jsonl, as {"prompt": "..."} (plain text: rendered as one user turn with
the model's chat template when it has one) or {"messages": [{"role", "content"}, ...]} (rendered with the
chat template and a generation prompt), and writes one line per prompt to OUT: the input's fields, plus
"prompt_text" (the rendered prompt) and "responses": [{"text", "token_ids", "logprobs", "finish_reason"}],
n of them. "logprobs" are the untempered policy's log-probs of each token (log_softmax of the raw logits).
OUT is written atomically (a temporary file renamed when all is done).

options:
  --model DIR            Hugging Face model folder (config.json, safetensors, tokenizer.json) (required)
  --prompts FILE         JSONL prompts (required)
  --out FILE             JSONL output (required)
  -n, --n K              samples per prompt, sharing the prompt's prefill (default 1)
  --temperature T        0 = greedy (default 1)
  --top-p P              nucleus sampling, in (0, 1] (default 1: off)
  --top-k K              keep the K most likely tokens (default 0: off)
  --max-new-tokens N     default 256
  --min-new-tokens N     EOS forbidden before N new tokens (default 0)
  --stop TEXT            stop a response at TEXT (repeatable; the text is cut before it)
  --seed S               sampling seed (default 0); outputs are reproducible for a given --batch-size
  --batch-size B         prompts per batch (default 8; B * n sequences decode together)
  --dtype D              float32 | bfloat16 | float16 (default: the checkpoint's)
  --device D             cpu | cuda | cuda:N (default: cuda when available)
  --raw                  use plain-text prompts as they are, without the chat template
  -h, --help             this help
`;

function num(name: string, v: string | undefined, dflt: number, integer: boolean, min: number, max = Infinity): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x) || (integer && !Number.isInteger(x)) || x < min || x > max) {
    throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got '${v}'`);
  }
  return x;
}

interface PromptLine {
  fields: Record<string, unknown>;
  prompt: string | ChatMessage[];
}

/** Reads the prompts; a malformed line is an error naming the file and the line. */
export function readPrompts(path: string): PromptLine[] {
  if (!existsSync(path)) throw new UsageError(`--prompts: ${path} does not exist`);
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: PromptLine[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${path}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected a JSON object with "prompt" or "messages"`);
    const o = v as Record<string, unknown>;
    if (typeof o.prompt === 'string') {
      out.push({ fields: o, prompt: o.prompt });
    } else if (Array.isArray(o.messages)) {
      o.messages.forEach((m, j) => {
        if (!m || typeof m !== 'object' || typeof (m as ChatMessage).role !== 'string' || !('content' in (m as object))) {
          throw new Error(`${where}: messages[${j}] must be an object with "role" and "content"`);
        }
      });
      if (o.messages.length === 0) throw new Error(`${where}: "messages" is empty`);
      out.push({ fields: o, prompt: o.messages as ChatMessage[] });
    } else {
      throw new Error(`${where}: expected "prompt" (a string) or "messages" (a list)`);
    }
  });
  if (out.length === 0) throw new Error(`${path}: no prompts`);
  return out;
}

export async function run(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        model: { type: 'string' },
        prompts: { type: 'string' },
        out: { type: 'string' },
        n: { type: 'string', short: 'n' },
        temperature: { type: 'string' },
        'top-p': { type: 'string' },
        'top-k': { type: 'string' },
        'max-new-tokens': { type: 'string' },
        'min-new-tokens': { type: 'string' },
        stop: { type: 'string', multiple: true },
        seed: { type: 'string' },
        'batch-size': { type: 'string' },
        dtype: { type: 'string' },
        device: { type: 'string' },
        raw: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${HELP}`);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return;
  }
  for (const k of ['model', 'prompts', 'out'] as const) if (!v[k]) throw new UsageError(`--${k} is required (sppo generate --help)`);
  const n = num('n', v.n, 1, true, 1);
  const temperature = num('temperature', v.temperature, 1, false, 0);
  const topP = num('top-p', v['top-p'], 1, false, 0, 1);
  if (topP === 0) throw new UsageError('--top-p must be in (0, 1], got 0');
  const topK = num('top-k', v['top-k'], 0, true, 0);
  const maxNewTokens = num('max-new-tokens', v['max-new-tokens'], 256, true, 1);
  const minNewTokens = num('min-new-tokens', v['min-new-tokens'], 0, true, 0);
  const seed = num('seed', v.seed, 0, true, 0);
  const batchSize = num('batch-size', v['batch-size'], 8, true, 1);
  if (v.dtype && !['float32', 'bfloat16', 'float16'].includes(v.dtype)) throw new UsageError(`--dtype must be float32, bfloat16 or float16, got '${v.dtype}'`);
  const device = v.device ?? (cuda.isAvailable() ? 'cuda' : 'cpu');
  if (!/^(cpu|cuda(:\d+)?)$/.test(device)) throw new UsageError(`--device must be cpu, cuda or cuda:N, got '${device}'`);
  if (!existsSync(v.model!)) throw new UsageError(`--model: ${v.model} does not exist`);

  const prompts = readPrompts(v.prompts!);
  const tokenizer = Tokenizer.fromFolder(v.model!);
  const template = ChatTemplate.hasTemplate(v.model!) ? ChatTemplate.fromFolder(v.model!, { specialTokens: tokenizer.specialTokens }) : undefined;
  const texts = prompts.map((p) => promptText(p.prompt, template, { raw: v.raw ?? false }));
  const ids = texts.map((t) => tokenizer.encode(t, { addSpecialTokens: false }));
  const model = loadModel(v.model!, { dtype: v.dtype as DType | undefined, device });

  // Prompts of similar length batch together (less padding); the output keeps the input order.
  const order = ids.map((_, i) => i).sort((a, b) => ids[a]!.length - ids[b]!.length || a - b);
  const results = new Array<Generation[]>(prompts.length);
  const bar = new cliProgress.SingleBar({ format: 'generate [{bar}] {value}/{total} prompts | {tps} tok/s | {eta_formatted} left', stream: process.stderr }, cliProgress.Presets.shades_classic);
  bar.start(prompts.length, 0, { tps: '-' });
  const t0 = performance.now();
  let tokensOut = 0;
  try {
    for (let s = 0; s < order.length; s += batchSize) {
      const idx = order.slice(s, s + batchSize);
      const gens = generate(model, idx.map((i) => ids[i]!), {
        n, temperature, topP, topK, maxNewTokens, minNewTokens, seed: seed + s, tokenizer, stopStrings: v.stop,
      });
      idx.forEach((i, j) => (results[i] = gens.slice(j * n, (j + 1) * n)));
      tokensOut += gens.reduce((a, g) => a + g.tokens.length, 0);
      bar.update(Math.min(s + batchSize, order.length), { tps: (tokensOut / ((performance.now() - t0) / 1000)).toFixed(0) });
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    bar.stop();
    model.dispose();
  }

  const out = v.out!;
  const tmp = `${out}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    prompts.forEach((p, i) => {
      const line = {
        ...p.fields,
        prompt_text: texts[i],
        responses: results[i]!.map((g) => ({ text: g.text, token_ids: g.tokens, logprobs: g.logprobs, finish_reason: g.finishReason })),
      };
      writeSync(fd, JSON.stringify(line) + '\n');
    });
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  renameSync(tmp, out);
  const secs = (performance.now() - t0) / 1000;
  console.error(`sppo generate: ${prompts.length} prompts x ${n} samples, ${tokensOut} tokens in ${secs.toFixed(1)} s (${(tokensOut / secs).toFixed(0)} tokens/s) -> ${out}`);
}
