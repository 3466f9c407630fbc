// `sppo train-judge`: trains a pairwise preference model (the PairRM stand-in) from labelled comparisons
// {prompt, a, b, p}: a causal-LM backbone (initialised from --model) plus a head, fitted to P(a > b) with the
// binary cross-entropy (soft labels allowed). Two heads (--head):
//   gpm    (default) a general preference model (src/judge/general_preference.ts): the backbone reads the
//          prompt with each response in the model's chat format; a Bradley-Terry score plus a skew-symmetric
//          form of preference embeddings compares them (intransitive preferences included). Comparisons of
//          the same prompt are batched together, so each response is read once per step.
//   joint  a linear head on the last token of template(prompt, A, B) (src/judge/pairwise_head.ts); every
//          comparison is also used swapped (B, A, 1 - p), so the judge learns both orders.
// The result is a `pairwise:DIR` judge folder: the backbone (saveModel) and the head's safetensors.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMPACT_TEMPLATE, judgeAgreement, readComparisons, trainGeneralPreference, trainPairwiseJudge, type Comparison } from '../judge/train.js';
import { UsageError } from './usage.js';
import { modelFolder } from './model_option.js';
import { num, optNum, parseCommand, progressBar } from './args.js';

export const summary = 'train a pairwise preference model (judge) from labelled comparisons';

const HELP = `usage: sppo train-judge --model DIR --data FILE.jsonl --out DIR [options]

DATA lines: {"prompt", "a", "b", "p"} with p = P(a > b) in [0, 1] (a verdict: 0, 1, or a probability).
OUT is a pairwise judge folder (use it as pairwise:OUT).

Heads (--head):
  gpm     (default) a general preference model: the backbone reads chat(prompt, response) for each response;
          from the last token's hidden state h, a score r = w.h + b and an embedding v = E h (--embed-dim
          values); logit P(a > b) = r_a - r_b + v_a^T J v_b with J skew-symmetric, so P(a > b) + P(b > a) = 1
          and a cycle a > b > c > a can be expressed. Writes preference_head.safetensors.
  joint   reads template(prompt, a, b) as one sequence; a linear head on its last token gives the logit.
          Each line is also trained swapped. Writes pairwise_head.safetensors.

options:
  --model DIR            backbone to start from (a causal-LM folder) (required)
  --data FILE            JSONL comparisons (required)
  --eval-data FILE       held-out comparisons: agreement with their labels is reported (both orders asked)
  --out DIR              where the judge is saved (required)
  --head gpm|joint       default gpm
  --embed-dim N          gpm: size of the preference embedding, even, 0 for a Bradley-Terry model (default 8)
  --template T           joint: text with {prompt}, {a}, {b} (default '${COMPACT_TEMPLATE}')
  --lr LR                default 1e-3
  --head-lr LR           default 1e-2
  --epochs N             default 1
  --decided-copies N     use each comparison decided by a strong preference (p >= 0.9 or <= 0.1) N times
                         per epoch (default 1)
  --batch-size B         comparisons per step (default 32; gpm: whole prompts until B comparisons)
  --warmup-ratio R       default 0.05
  --max-length N         tokens per sequence, kept from the right (default: the model's max positions)
  --seed S               default 0
  --report FILE          write the held-out agreement as JSON
  -h, --help             this help
`;

export async function run(argv: string[]): Promise<void> {
  const parsed = parseCommand(
    'train-judge',
    argv,
    {
      model: { type: 'string' }, data: { type: 'string' }, 'eval-data': { type: 'string' }, out: { type: 'string' },
      head: { type: 'string' }, 'embed-dim': { type: 'string' }, template: { type: 'string' }, lr: { type: 'string' }, 'head-lr': { type: 'string' }, epochs: { type: 'string' }, 'decided-copies': { type: 'string' },
      'batch-size': { type: 'string' }, 'warmup-ratio': { type: 'string' }, 'max-length': { type: 'string' },
      seed: { type: 'string' }, report: { type: 'string' },
    },
    HELP,
    { required: ['model', 'data', 'out'] },
  );
  if (!parsed) return;
  const v = parsed.values;
  const int = (min: number) => ({ integer: true, min });
  v.model = await modelFolder('--model', v.model!);
  const headKind = v.head ?? 'gpm';
  if (headKind !== 'gpm' && headKind !== 'joint') throw new UsageError(`--head must be gpm or joint, got '${v.head}'`);
  if (headKind === 'gpm' && v.template !== undefined) throw new UsageError('--template applies to --head joint only (gpm reads the model\'s chat format)');
  if (headKind === 'joint' && v['embed-dim'] !== undefined) throw new UsageError('--embed-dim applies to --head gpm only');
  const embedDim = num('embed-dim', v['embed-dim'], 8, int(0));
  if (embedDim % 2 !== 0) throw new UsageError(`--embed-dim must be even, got ${embedDim}`);
  const template = v.template ?? COMPACT_TEMPLATE;
  for (const k of ['{prompt}', '{a}', '{b}']) if (!template.includes(k)) throw new UsageError(`--template must contain ${k}`);
  const comparisons = (path: string, flag: string): Comparison[] => {
    if (!existsSync(path)) throw new UsageError(`${flag}: ${path} does not exist`);
    return readComparisons(path);
  };
  const read = comparisons(v.data!, '--data');
  const copies = num('decided-copies', v['decided-copies'], 1, int(1));
  const data = copies === 1 ? read : read.flatMap((c) => (c.p >= 0.9 || c.p <= 0.1 ? Array<Comparison>(copies).fill(c) : [c]));
  const evalData = v['eval-data'] ? comparisons(v['eval-data'], '--eval-data') : undefined;
  const t0 = performance.now();
  const bar = progressBar('train-judge', 'steps', 'loss {loss}');
  let started = false;
  const train = headKind === 'gpm' ? trainGeneralPreference : trainPairwiseJudge;
  const r = await train({
    model: v.model!, data, out: v.out!, template, embedDim,
    lr: num('lr', v.lr, 1e-3, { min: 0 }), headLr: num('head-lr', v['head-lr'], 1e-2, { min: 0 }), epochs: num('epochs', v.epochs, 1, int(1)),
    batchSize: num('batch-size', v['batch-size'], 32, int(1)), warmupRatio: num('warmup-ratio', v['warmup-ratio'], 0.05, { min: 0, max: 1 }),
    maxLength: optNum('max-length', v['max-length'], int(2)), seed: num('seed', v.seed, 0, int(0)),
    onStep: (s, total, loss) => {
      if (!started) {
        bar.start(total, 0, { loss: '-' });
        started = true;
      }
      bar.update(s, { loss: loss.toFixed(4) });
    },
  });
  bar.stop();
  const secs = (performance.now() - t0) / 1000;
  console.error(`sppo train-judge: ${r.steps} steps on ${data.length} comparisons${headKind === 'joint' ? ' (x2 orders)' : ''} in ${secs.toFixed(1)} s -> ${v.out}`);
  if (evalData) {
    const a = await judgeAgreement(v.out!, evalData);
    console.error(`sppo train-judge: held-out agreement ${(100 * a.agreement).toFixed(1)}% on ${a.n} comparisons with a preference ` +
      `(${(100 * a.strongAgreement).toFixed(1)}% on the ${a.strongN} with p >= 0.9 or <= 0.1), mean |q - p| ${a.meanAbsError.toFixed(3)}`);
    const report = { head: headKind, ...(headKind === 'gpm' ? { embed_dim: embedDim } : {}), train_comparisons: data.length, eval_comparisons: evalData.length, seconds: secs, ...a };
    if (v.report) writeFileSync(v.report, JSON.stringify(report, null, 2) + '\n');
    else writeFileSync(join(v.out!, 'judge_eval.json'), JSON.stringify(report, null, 2) + '\n');
  }
}
