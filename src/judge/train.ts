// Training of pairwise judges from labelled comparisons {prompt, a, b, p} (`sppo train-judge` parses its
// arguments and calls these): a causal-LM backbone (initialised from a model folder) plus a head, fitted to
// P(a > b) with the binary cross-entropy (soft labels allowed). Two heads:
//   general preference model (trainGeneralPreference, general_preference.ts): the backbone reads the prompt with
//          each response in the model's chat format; a Bradley-Terry score plus a skew-symmetric form of
//          preference embeddings compares them (intransitive preferences included). Comparisons of the same
//          prompt are batched together, so each response is read once per step.
//   joint  (trainPairwiseJudge, pairwise_head.ts) a linear head on the last token of template(prompt, A, B); every
//          comparison is also used swapped (B, A, 1 - p), so the judge learns both orders.
// The result is a `pairwise:DIR` judge folder: the backbone (saveModel) and the head's safetensors.
import { existsSync } from 'node:fs';
import { AdamW, clipGradNorm, Generator, type Optimizer, keep, linear, linspace, LRScheduler, noGrad, ones, randn, tensor, tidy, zeros, type Tensor } from '../torch/index.js';
import { loadModel, saveModel } from '../models/registry.js';
import type { CausalLMBase } from '../models/causal_lm.js';
import { pooledHidden } from '../models/sequence_classification.js';
import { Tokenizer } from '../text/tokenizer.js';
import { ChatTemplate } from '../text/chat_template.js';
import { createRng, permutation } from '../util/rng.js';
import { FileFormatError, forEachJsonl } from '../util/files.js';
import { pairwiseText, savePairwiseHead } from './pairwise_head.js';
import { headTensors, preferenceLogits, responseSequence, savePreferenceHead, sequenceFeatures, type PreferenceHead, type ResponseSequence } from './general_preference.js';
import { loadJudge } from './judge.js';

/** The compact default: the chat markers of a model's template around the prompt and both responses. */
export const COMPACT_TEMPLATE = '<|user|>{prompt}<|assistant|>{a}</s><|assistant|>{b}</s>';

export interface Comparison {
  prompt: string;
  a: string;
  b: string;
  p: number;
}

/** Reads labelled comparisons (JSONL); a malformed line is an error naming file:line. */
export function readComparisons(path: string): Comparison[] {
  if (!existsSync(path)) throw new FileFormatError(`${path} does not exist`);
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
  if (!Number.isInteger(m2) || m2 < 0 || m2 % 2 !== 0) throw new RangeError(`embedDim must be an even integer >= 0, got ${m2}`);
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
