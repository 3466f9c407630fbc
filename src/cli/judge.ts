// `sppo judge`: the preference matrix and win rates of every prompt's responses, with a judge.
import { existsSync } from 'node:fs';
import { loadJudge, parseJudgeSpec, preferenceMatrices, type JudgeSpec } from '../judge/judge.js';
import { winRates } from '../sppo/winrates.js';
import { readGenerations } from '../sppo/generations.js';
import { UsageError } from './usage.js';
import { isHubName } from '../hub/resolve.js';
import { JUDGE_OPTIONS, JUDGE_OPTIONS_HELP, withJudgeOptions } from './judge_options.js';
import { checkOutput, deviceOption, dtypeOption, num, parseCommand, progressBar } from './args.js';
import { writeJsonlAtomic } from '../util/files.js';

export const summary = 'preference matrices and win rates of sampled responses, with a judge';

const PROMPTS_PER_CALL = 16;

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
  pairrm:DIR             llm-blender's PairRM (the SPPO paper's judge), a folder laid out as
                         llm-blender/PairRM-hf: P = sigmoid(C(a,b) - C(b,a)) per pair (docs/pairrm.md)
  pairrm-rank:DIR        PairRM as the official SPPO pipeline used it: rank scores s over the K
                         responses, P = sigmoid(s_i - s_j)
  openai:URL#MODEL       an LLM judge behind an OpenAI-compatible endpoint (vLLM, sppo serve, ...)
Each DIR may be a Hub name org/name[@revision] (pairrm:llm-blender/PairRM-hf), from the Hugging Face cache and
downloaded into it when online (docs/hub.md).

options:
  --judge SPEC           the judge (required)
  --generations FILE     JSONL responses (required)
  --out FILE             JSONL output (required)
  --judge-options JSON   passed to a module judge's functions as their second argument
  --batch-size B         sequences per forward pass of a model judge (default 8)
  --dtype D              model judges: float32 | bfloat16 | float16 (default: the checkpoint's;
                         PairRM: bfloat16 on a GPU, float32 on the CPU)
  --device D             model judges: cpu | cuda | cuda:N (default: cuda when available)
  -h, --help             this help

${JUDGE_OPTIONS_HELP}
`;

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
      ...JUDGE_OPTIONS,
    },
    HELP,
    { required: ['judge', 'generations', 'out'] },
  );
  if (!parsed) return;
  const v = parsed.values;
  const batchSize = num('batch-size', v['batch-size'], 8, { integer: true, min: 1 });
  const device = deviceOption(v.device);
  const dtype = dtypeOption(v.dtype, device);
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
  spec = withJudgeOptions(spec, v);
  if ((spec.kind === 'reward-model' || spec.kind === 'pairwise') && !isHubName(spec.dir) && !existsSync(spec.dir)) throw new UsageError(`--judge: ${spec.dir} does not exist`);

  if (!existsSync(v.generations!)) throw new UsageError(`--generations: ${v.generations} does not exist`);
  checkOutput('--out', v.out!, { '--generations': v.generations });
  const groups = readGenerations(v.generations!);
  const judge = await loadJudge(spec);
  const lines: Record<string, unknown>[] = [];
  const bar = progressBar('judge', 'prompts');
  const t0 = performance.now();
  bar.start(groups.length, 0);
  try {
    // PROMPTS_PER_CALL prompts per call: a judge with preferenceMatrices (PairRM) batches across them.
    for (let s = 0; s < groups.length; s += PROMPTS_PER_CALL) {
      const chunk = groups.slice(s, s + PROMPTS_PER_CALL);
      const matrices = await preferenceMatrices(judge, chunk.map((g) => ({ prompt: g.prompt, responses: g.responses })));
      chunk.forEach((g, n) => {
        const matrix = matrices[n]!;
        const w = Array.from(winRates(matrix, { promptId: g.promptId }));
        const line: Record<string, unknown> = { prompt_id: g.promptId, prompt: g.prompt, responses: g.responses, matrix, win_rates: w };
        if (g.promptText !== undefined) line.prompt_text = g.promptText;
        if (g.refLogprobs) line.ref_logprobs = g.refLogprobs;
        lines.push(line);
      });
      bar.update(s + chunk.length);
    }
  } finally {
    bar.stop();
    judge.dispose?.();
  }
  const out = v.out!;
  writeJsonlAtomic(out, lines);
  console.error(`sppo judge: ${groups.length} prompts judged by ${judge.name} in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${out}`);
}
