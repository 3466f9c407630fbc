// `sppo train-judge`: trains a pairwise preference model (the PairRM stand-in) from labelled comparisons
// {prompt, a, b, p}: a causal-LM backbone (initialised from --model) plus a head, fitted to P(a > b) with the
// binary cross-entropy (soft labels allowed). Two heads (--head):
//   gpm    (default) a general preference model (src/judge/general_preference.ts): the backbone reads the
//          prompt with each response in the model's chat format; a Bradley-Terry score plus a skew-symmetric
//          form of preference embeddings compares them (intransitive preferences included). Comparisons of
//          the same prompt are batched together, so each response is read once per step.
//   joint  a linear head on the last token of template(prompt, A, B) (src/judge/pairwise.ts); every
//          comparison is also used swapped (B, A, 1 - p), so the judge learns both orders.
// The result is a `pairwise:DIR` judge folder: the backbone (saveModel) and the head's safetensors.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, clipGradNorm, Generator, type Optimizer, keep, linear, linspace, LRScheduler, noGrad, ones, randn, tensor, tidy, zeros, type Tensor } from '../torch/index.js';
import { loadModel, saveModel } from '../models/registry.js';
import type { CausalLMBase } from '../models/causal_lm.js';
import { pooledHidden } from '../models/sequence_classification.js';
import { Tokenizer } from '../text/tokenizer.js';
import { pairwiseText, savePairwiseHead } from '../judge/pairwise.js';
import { headTensors, preferenceLogits, responseSequence, savePreferenceHead, sequenceFeatures, type PreferenceHead, type ResponseSequence } from '../judge/general_preference.js';
import { loadJudge } from '../judge/judge.js';
import { ChatTemplate } from '../text/chat_template.js';
import { createRng, permutation } from '../util/rng.js';
import { UsageError } from './usage.js';
import { num, optNum, parseCommand, progressBar } from './args.js';
import { forEachJsonl } from '../util/files.js';

export const summary = 'train a pairwise preference model (judge) from labelled comparisons';

/** The compact default: the chat markers of a model's template around the prompt and both responses. */
export const COMPACT_TEMPLATE = '<|user|>{prompt}<|assistant|>{a}</s><|assistant|>{b}</s>';

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

export interface Comparison {
  prompt: string;
  a: string;
  b: string;
  p: number;
}

export function readComparisons(path: string, flag: string): Comparison[] {
  if (!existsSync(path)) throw new UsageError(`${flag}: ${path} does not exist`);
  const out: Comparison[] = [];
  forEachJsonl(path, (v, where) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected a JSON object with "prompt", "a", "b" and "p"`);
    const o = v as Record<string, unknown>;
    for (const k of ['prompt', 'a', 'b']) if (typeof o[k] !== 'string') throw new Error(`${where}: "${k}" must be a string`);
    if (typeof o.p !== 'number' || !(o.p >= 0 && o.p <= 1)) throw new Error(`${where}: "p" must be a probability in [0, 1], got ${JSON.stringify(o.p)}`);
    out.push({ prompt: o.prompt as string, a: o.a as string, b: o.b as string, p: o.p });
  });
  if (out.length === 0) throw new Error(`${path}: no comparisons`);
  return out;
}

export interface Agreement {
  /** Comparisons whose label is not 1/2. */
  n: number;
  /** Fraction of those where the judge (both orders combined) prefers the side the label prefers. */
  agreement: number;
  /** Same, restricted to comparisons whose label is at least 0.9 away from... i.e. p >= 0.9 or p <= 0.1. */
  strongN: number;
  strongAgreement: number;
  /** Mean absolute difference between the judge's probability and the label. */
  meanAbsError: number;
}

/** Agreement of judge probabilities q (both orders combined) with labels p. */
export function agreement(p: readonly number[], q: readonly number[]): Agreement {
  let n = 0, agree = 0, sn = 0, sagree = 0, abs = 0;
  p.forEach((pi, i) => {
    abs += Math.abs(pi - q[i]!);
    if (pi === 0.5) return;
    const ok = (pi > 0.5) === (q[i]! > 0.5) ? 1 : 0;
    n++;
    agree += ok;
    if (pi >= 0.9 || pi <= 0.1) {
      sn++;
      sagree += ok;
    }
  });
  return { n, agreement: n ? agree / n : NaN, strongN: sn, strongAgreement: sn ? sagree / sn : NaN, meanAbsError: p.length ? abs / p.length : NaN };
}

export interface TrainJudgeOptions {
  model: string;
  data: Comparison[];
  out: string;
  template?: string;
  lr?: number;
  headLr?: number;
  epochs?: number;
  batchSize?: number;
  warmupRatio?: number;
  maxLength?: number;
  seed?: number;
  onStep?: (step: number, total: number, loss: number) => void;
}

/** Trains and saves a pairwise judge; returns the per-step losses. */
export async function trainPairwiseJudge(o: TrainJudgeOptions): Promise<{ losses: number[]; steps: number }> {
  const template = o.template ?? COMPACT_TEMPLATE;
  const tok = Tokenizer.fromFolder(o.model);
  const backbone: CausalLMBase = loadModel(o.model, { dtype: 'float32', device: 'cpu' });
  const maxLength = o.maxLength ?? backbone.config.maxPositions;
  const encode = (prompt: string, a: string, b: string): number[] => {
    const ids = tok.encode(pairwiseText(template, { prompt, a, b }), { addSpecialTokens: true });
    return ids.length > maxLength ? ids.slice(ids.length - maxLength) : ids;
  };
  const rows: { ids: number[]; p: number }[] = [];
  for (const c of o.data) {
    rows.push({ ids: encode(c.prompt, c.a, c.b), p: c.p });
    rows.push({ ids: encode(c.prompt, c.b, c.a), p: 1 - c.p });
  }
  const h = backbone.config.hiddenSize;
  const weight = keep(zeros([1, h]).requiresGrad_());
  const bias = keep(zeros([1]).requiresGrad_());
  const params = backbone.parameters();
  backbone.train(true);
  backbone.requiresGrad_(true);
  const bs = o.batchSize ?? 32;
  const epochs = o.epochs ?? 1;
  const stepsPerEpoch = Math.ceil(rows.length / bs);
  const total = stepsPerEpoch * epochs;
  // Disposed (native state freed) when the function returns or throws.
  using opt = AdamW([{ params }, { params: [weight, bias], lr: o.headLr ?? 1e-2 }], { lr: o.lr ?? 1e-3, weightDecay: 0, betas: [0.9, 0.999], eps: 1e-8 });
  const sched = new LRScheduler(opt, { kind: 'cosine', totalSteps: total, warmupRatio: o.warmupRatio ?? 0.05 });
  const pad = tok.padTokenId ?? 0;
  const losses: number[] = [];
  let step = 0;
  try {
    for (let e = 0; e < epochs; e++) {
      const perm = permutation(rows.length, createRng(o.seed ?? 0, 0x7d9e, e));
      for (let s = 0; s < perm.length; s += bs) {
        const batch = perm.slice(s, s + bs).map((i) => rows[i]!);
        const loss = tidy(() => {
          const logits = headLogits(backbone, weight, bias, batch.map((r) => r.ids), pad);
          const target = tensor(Float32Array.from(batch.map((r) => r.p)));
          // BCE with logits: softplus(z) - p z
          const l = logits.softplus().sub(logits.mul(target)).mean();
          l.backward();
          return l.item();
        });
        optimizerStep([...params, weight, bias], opt, sched);
        step++;
        losses.push(loss);
        o.onStep?.(step, total, loss);
        await new Promise((r) => setImmediate(r));
      }
    }
    saveBackbone(backbone, o.out, o.model);
    noGrad(() => savePairwiseHead(o.out, weight.detach(), bias.detach(), template));
  } finally {
    backbone.dispose();
    weight.dispose();
    bias.dispose();
  }
  return { losses, steps: step };
}

/** Units of the likelihood reading g(l) of a general preference model. */
const LIKELIHOOD_UNITS = 16;

/**
 * Trains and saves a general preference model (src/judge/general_preference.ts); returns the per-step losses.
 * A step takes whole prompts (in a shuffled order) until it has `batchSize` comparisons, reads each distinct
 * (prompt, response) once, and fits logit P(a > b) = r_a - r_b + v_a^T J v_b to p with the binary cross-entropy.
 */
export async function trainGeneralPreference(o: TrainJudgeOptions & { embedDim?: number }): Promise<{ losses: number[]; steps: number }> {
  const m2 = o.embedDim ?? 8;
  if (!Number.isInteger(m2) || m2 < 0 || m2 % 2 !== 0) throw new UsageError(`--embed-dim must be an even integer >= 0, got ${m2}`);
  const tok = Tokenizer.fromFolder(o.model);
  const chat = ChatTemplate.hasTemplate(o.model) ? ChatTemplate.fromFolder(o.model, { specialTokens: tok.specialTokens }) : undefined;
  const backbone: CausalLMBase = loadModel(o.model, { dtype: 'float32', device: 'cpu' });
  const maxLength = o.maxLength ?? backbone.config.maxPositions;
  // Comparisons grouped by prompt; each distinct response of a prompt tokenized once.
  const groups = new Map<string, { seqs: ResponseSequence[]; index: Map<string, number>; pairs: { a: number; b: number; p: number }[] }>();
  for (const c of o.data) {
    let g = groups.get(c.prompt);
    if (!g) groups.set(c.prompt, (g = { seqs: [], index: new Map(), pairs: [] }));
    const slot = (r: string): number => {
      let i = g!.index.get(r);
      if (i === undefined) {
        i = g!.seqs.length;
        g!.index.set(r, i);
        g!.seqs.push(responseSequence(tok, chat, c.prompt, r, maxLength));
      }
      return i;
    };
    g.pairs.push({ a: slot(c.a), b: slot(c.b), p: c.p });
  }
  const list = [...groups.values()];
  const h = backbone.config.hiddenSize;
  const gen = new Generator(o.seed ?? 0, 'cpu');
  const head: PreferenceHead = {
    scoreWeight: keep(zeros([1, h]).requiresGrad_()),
    scoreBias: keep(zeros([1]).requiresGrad_()),
    // g(l) starts at zero (c = 0), its tanh units at thresholds l = -0.5 ... -16 nats.
    likelihood: {
      weight: keep(ones([LIKELIHOOD_UNITS, 1]).requiresGrad_()),
      bias: keep(linspace(0.5, 16, LIKELIHOOD_UNITS).requiresGrad_()),
      out: keep(zeros([1, LIKELIHOOD_UNITS]).requiresGrad_()),
    },
    embedding: keep(randn([m2, h], { generator: gen })),
  };
  // Small random embeddings (at zero the bilinear term would have no gradient), scaled on the data so that the
  // embeddings start with a standard deviation of 0.1 whatever the size of the backbone's hidden states.
  if (m2 > 0 && list.length > 0) {
    const probe = list.slice(0, 16).flatMap((g) => g.seqs);
    const scale = noGrad(() => tidy(() => {
      const v = sequenceFeatures(backbone, head, probe, tok.padTokenId ?? 0).narrow(1, 1, m2);
      return 0.1 / Math.max(1e-6, Math.sqrt(v.pow(2).mean().item()));
    }));
    noGrad(() => head.embedding.mul_(scale));
  }
  head.embedding.requiresGrad_();
  const headParams = headTensors(head);
  const params = backbone.parameters();
  backbone.train(true);
  backbone.requiresGrad_(true);
  const bs = o.batchSize ?? 32;
  const epochs = o.epochs ?? 1;
  const batchesOf = (order: number[]): number[][] => {
    const out: number[][] = [];
    let cur: number[] = [];
    let n = 0;
    for (const gi of order) {
      cur.push(gi);
      n += list[gi]!.pairs.length;
      if (n >= bs) {
        out.push(cur);
        cur = [];
        n = 0;
      }
    }
    if (cur.length) out.push(cur);
    return out;
  };
  const plans = Array.from({ length: epochs }, (_, e) => {
    return batchesOf(permutation(list.length, createRng(o.seed ?? 0, 0x6e3a, e)));
  });
  const total = plans.reduce((a, p) => a + p.length, 0);
  // Disposed (native state freed) when the function returns or throws.
  using opt = AdamW([{ params }, { params: headParams, lr: o.headLr ?? 1e-2 }], { lr: o.lr ?? 1e-3, weightDecay: 0, betas: [0.9, 0.999], eps: 1e-8 });
  const sched = new LRScheduler(opt, { kind: 'cosine', totalSteps: total, warmupRatio: o.warmupRatio ?? 0.05 });
  const pad = tok.padTokenId ?? 0;
  const losses: number[] = [];
  let step = 0;
  try {
    for (const plan of plans) {
      for (const batch of plan) {
        const seqs: ResponseSequence[] = [];
        const ia: number[] = [], ib: number[] = [], ps: number[] = [];
        for (const gi of batch) {
          const g = list[gi]!;
          const base = seqs.length;
          seqs.push(...g.seqs);
          for (const pr of g.pairs) {
            ia.push(base + pr.a);
            ib.push(base + pr.b);
            ps.push(pr.p);
          }
        }
        const loss = tidy(() => {
          const f = sequenceFeatures(backbone, head, seqs, pad);
          const idx = (xs: number[]) => tensor(BigInt64Array.from(xs.map(BigInt)), { shape: [xs.length] });
          const logits = preferenceLogits(f.indexSelect(0, idx(ia)), f.indexSelect(0, idx(ib)));
          const target = tensor(Float32Array.from(ps));
          const l = logits.softplus().sub(logits.mul(target)).mean();
          l.backward();
          return l.item();
        });
        optimizerStep([...params, ...headParams], opt, sched);
        step++;
        losses.push(loss);
        o.onStep?.(step, total, loss);
        await new Promise((r) => setImmediate(r));
      }
    }
    saveBackbone(backbone, o.out, o.model);
    savePreferenceHead(o.out, head);
  } finally {
    backbone.dispose();
    for (const t of headParams) t.dispose();
  }
  return { losses, steps: step };
}

/** Saves a trained backbone as a model folder (with the tokenizer files of the folder it started from). */
function saveBackbone(backbone: CausalLMBase, out: string, from: string): void {
  backbone.requiresGrad_(false);
  backbone.eval();
  saveModel(backbone, out, { tokenizerDir: from });
}

/** One optimizer step after backward: gradients clipped to norm 1, the step, the schedule, gradients cleared. */
function optimizerStep(params: Tensor[], opt: Optimizer, sched: LRScheduler): void {
  clipGradNorm(params, 1);
  opt.step();
  sched.step();
  opt.zeroGrad();
}

/** Head logits [B] of right-padded sequences, pooled at each one's last token. */
function headLogits(backbone: CausalLMBase, weight: Tensor, bias: Tensor, seqs: number[][], pad: number): Tensor {
  return tidy(() => linear(pooledHidden(backbone, seqs, pad), weight, bias).reshape(seqs.length));
}

/** Held-out agreement of a saved judge folder with labelled comparisons (both orders asked and combined). */
export async function judgeAgreement(dir: string, data: Comparison[], batchSize = 64): Promise<Agreement> {
  const judge = await loadJudge({ kind: 'pairwise', dir, batchSize });
  try {
    const fwd = await judge.prefer(data.map((c) => ({ prompt: c.prompt, a: c.a, b: c.b })));
    const bwd = await judge.prefer(data.map((c) => ({ prompt: c.prompt, a: c.b, b: c.a })));
    return agreement(data.map((c) => c.p), fwd.map((f, i) => (f + 1 - bwd[i]!) / 2));
  } finally {
    judge.dispose?.();
  }
}


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
  if (!existsSync(v.model!)) throw new UsageError(`--model: ${v.model} does not exist`);
  const headKind = v.head ?? 'gpm';
  if (headKind !== 'gpm' && headKind !== 'joint') throw new UsageError(`--head must be gpm or joint, got '${v.head}'`);
  if (headKind === 'gpm' && v.template !== undefined) throw new UsageError('--template applies to --head joint only (gpm reads the model\'s chat format)');
  if (headKind === 'joint' && v['embed-dim'] !== undefined) throw new UsageError('--embed-dim applies to --head gpm only');
  const embedDim = num('embed-dim', v['embed-dim'], 8, int(0));
  if (embedDim % 2 !== 0) throw new UsageError(`--embed-dim must be even, got ${embedDim}`);
  const template = v.template ?? COMPACT_TEMPLATE;
  for (const k of ['{prompt}', '{a}', '{b}']) if (!template.includes(k)) throw new UsageError(`--template must contain ${k}`);
  const read = readComparisons(v.data!, '--data');
  const copies = num('decided-copies', v['decided-copies'], 1, int(1));
  const data = copies === 1 ? read : read.flatMap((c) => (c.p >= 0.9 || c.p <= 0.1 ? Array<Comparison>(copies).fill(c) : [c]));
  const evalData = v['eval-data'] ? readComparisons(v['eval-data'], '--eval-data') : undefined;
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
