// `sppo judge`: the preference matrix and win rates of every prompt's responses, with a judge.
import { existsSync } from 'node:fs';
import { loadJudge, parseJudgeSpec, preferenceMatrix, type JudgeSpec } from '../judge/judge.js';
import { winRates } from '../sppo/winrates.js';
import { UsageError } from './usage.js';
import { deviceOption, dtypeOption, num, parseCommand, progressBar } from './args.js';
import { forEachJsonl, writeJsonlAtomic } from '../util/files.js';

export const summary = 'preference matrices and win rates of sampled responses, with a judge';

const HELP = `usage: sppo judge --judge SPEC --generations FILE.jsonl --out FILE.jsonl [options]

Asks a judge P(y_i > y_j | x) for every pair of responses of every prompt, and writes one line per prompt:
{"prompt_id", "prompt", "responses": [...], "matrix": K x K, "win_rates": [...]} (matrix[i][j] = P(y_i > y_j),
diagonal 1/2, matrix + matrix^T = 1; win_rates[i] = the row mean, SPPO's P^(y_i > pi_t)). When the responses
came from 'sppo generate', "prompt_text" and "ref_logprobs" (the summed generation log-probs of each response)
are passed on. OUT is written atomically.

GENERATIONS lines: {"prompt_id" or "id", "prompt", "responses": ["...", ...]}, or the lines of 'sppo generate'
(responses as {"text", "token_ids", "logprobs"}; the prompt is "prompt", else "prompt_text"). Lines of the same
prompt (same id, else same prompt text) are grouped.

SPEC:
  ./judge.mjs            a JavaScript module judge (see docs/sppo-training.md)
  reward-model:DIR       an HF *ForSequenceClassification reward model: P = sigmoid(r_a - r_b)
  pairwise:DIR           a causal-LM folder with a preference_head.safetensors (general preference
                         model) or a pairwise_head.safetensors (reads prompt, A and B together)

options:
  --judge SPEC           the judge (required)
  --generations FILE     JSONL responses (required)
  --out FILE             JSONL output (required)
  --judge-options JSON   passed to a module judge's functions as their second argument
  --batch-size B         sequences per forward pass of a model judge (default 8)
  --dtype D              model judges: float32 | bfloat16 | float16 (default: the checkpoint's)
  --device D             model judges: cpu | cuda | cuda:N (default: cuda when available)
  -h, --help             this help
`;

export interface GenerationGroup {
  promptId: string | number;
  prompt: string;
  responses: string[];
  promptText?: string;
  refLogprobs?: (number | null)[];
}

/** Reads generations, grouping lines of the same prompt; a malformed line is an error naming file:line. */
export function readGenerations(path: string): GenerationGroup[] {
  if (!existsSync(path)) throw new UsageError(`--generations: ${path} does not exist`);
  const groups = new Map<string, GenerationGroup>();
  forEachJsonl(path, (v, where) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected a JSON object with "prompt" and "responses"`);
    const o = v as Record<string, unknown>;
    const prompt = typeof o.prompt === 'string' ? o.prompt : typeof o.prompt_text === 'string' ? o.prompt_text : undefined;
    if (prompt === undefined) throw new Error(`${where}: expected "prompt" (or "prompt_text") to be a string`);
    if (!Array.isArray(o.responses) || o.responses.length === 0) throw new Error(`${where}: expected "responses" to be a non-empty list`);
    const texts: string[] = [];
    const lps: (number | null)[] = [];
    o.responses.forEach((r, j) => {
      if (typeof r === 'string') {
        texts.push(r);
        lps.push(null);
      } else if (r && typeof r === 'object' && typeof (r as { text?: unknown }).text === 'string') {
        texts.push((r as { text: string }).text);
        const lp = (r as { logprobs?: unknown }).logprobs;
        lps.push(Array.isArray(lp) && lp.every((x) => typeof x === 'number') ? (lp as number[]).reduce((a, x) => a + x, 0) : null);
      } else {
        throw new Error(`${where}: responses[${j}] must be a string or an object with "text"`);
      }
    });
    const idRaw = o.prompt_id ?? o.id;
    if (idRaw !== undefined && typeof idRaw !== 'string' && typeof idRaw !== 'number') throw new Error(`${where}: "prompt_id" / "id" must be a string or a number`);
    const key = idRaw !== undefined ? `id:${JSON.stringify(idRaw)}` : `text:${prompt}`;
    let g = groups.get(key);
    if (!g) {
      g = { promptId: idRaw ?? groups.size, prompt, responses: [] };
      if (typeof o.prompt_text === 'string') g.promptText = o.prompt_text;
      groups.set(key, g);
    } else if (g.prompt !== prompt) {
      throw new Error(`${where}: prompt id ${JSON.stringify(idRaw)} was seen before with another prompt`);
    }
    g.responses.push(...texts);
    if (lps.some((x) => x !== null) || g.refLogprobs) {
      g.refLogprobs = [...(g.refLogprobs ?? new Array<number | null>(g.responses.length - texts.length).fill(null)), ...lps];
    }
  });
  if (groups.size === 0) throw new Error(`${path}: no generations`);
  return [...groups.values()];
}


export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand(
    'judge',
    argv,
    {
      judge: { type: 'string' },
      generations: { type: 'string' },
      out: { type: 'string' },
      'judge-options': { type: 'string' },
      'batch-size': { type: 'string' },
      dtype: { type: 'string' },
      device: { type: 'string' },
    },
    HELP,
    { required: ['judge', 'generations', 'out'] },
  );
  if (!parsed) return;
  const v = parsed.values;
  const batchSize = num('batch-size', v['batch-size'], 8, { integer: true, min: 1 });
  const dtype = dtypeOption(v.dtype);
  const device = deviceOption(v.device);
  let spec: JudgeSpec;
  try {
    spec = parseJudgeSpec(v.judge!, { device, batchSize, ...(dtype ? { dtype } : {}) });
  } catch (e) {
    throw new UsageError(`--judge: ${(e as Error).message}`);
  }
  if (v['judge-options'] !== undefined) {
    if (spec.kind !== 'module') throw new UsageError('--judge-options applies to module judges only');
    try {
      spec.options = JSON.parse(v['judge-options']);
    } catch (e) {
      throw new UsageError(`--judge-options: not valid JSON (${(e as Error).message})`);
    }
  }
  if (spec.kind !== 'module' && !existsSync(spec.dir)) throw new UsageError(`--judge: ${spec.dir} does not exist`);

  const groups = readGenerations(v.generations!);
  const judge = await loadJudge(spec);
  const lines: Record<string, unknown>[] = [];
  const bar = progressBar('judge', 'prompts');
  const t0 = performance.now();
  bar.start(groups.length, 0);
  try {
    for (const [i, g] of groups.entries()) {
      const matrix = await preferenceMatrix(judge, g.prompt, g.responses);
      const w = Array.from(winRates(matrix, { promptId: g.promptId }));
      const line: Record<string, unknown> = { prompt_id: g.promptId, prompt: g.prompt, responses: g.responses, matrix, win_rates: w };
      if (g.promptText !== undefined) line.prompt_text = g.promptText;
      if (g.refLogprobs) line.ref_logprobs = g.refLogprobs;
      lines.push(line);
      bar.update(i + 1);
    }
  } finally {
    bar.stop();
    judge.dispose?.();
  }
  const out = v.out!;
  writeJsonlAtomic(out, lines);
  console.error(`sppo judge: ${groups.length} prompts judged by ${judge.name} in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${out}`);
}
