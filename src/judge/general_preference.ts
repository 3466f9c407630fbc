// A general preference model (Zhang et al., 2024, "Beyond Bradley-Terry Models: A General Preference Model
// for Language Model Alignment"): a pairwise judge that reads the prompt with each response through one
// causal-LM backbone, in the policy's own chat format, and compares the two readings with a head that can
// express intransitive preferences (a cycle), which no reward model r(x, y) can:
//
//   h_y  = the backbone's final hidden state at the last token of chat(prompt, y)   (the response's </s>)
//   l_y  = log p(y | prompt) under the backbone as a language model (summed over y's tokens and </s>)
//   r_y  = w . h_y + g(l_y) + b                           a Bradley-Terry score (the transitive part), with
//          g(l) = sum_k c_k tanh(a_k l + d_k)            a learned, saturating reading of the likelihood
//   v_y  = E h_y                                          a 2m-dimensional preference embedding
//   logit P(a > b) = r_a - r_b + sum_i (v_a[2i] v_b[2i+1] - v_a[2i+1] v_b[2i])     (v_a^T J v_b, J skew-symmetric)
//
// The logit is antisymmetric (logit(a, b) = -logit(b, a)), so P(a > b) + P(b > a) = 1 exactly and the order of
// presentation does not matter: one query per pair. Each distinct response is read once per batch, so a
// K x K matrix costs K forward passes (a judge that reads A and B together, src/judge/pairwise_head.ts, needs
// K (K - 1)). The likelihood term lets the judge use what its backbone knows as a language model (how
// plausible y is as an answer: a backbone that has learned a task gives its correct answers more probability
// than its mistakes), which a head on one hidden state only reaches after much more training. A judge folder
// is a causal-LM folder plus `preference_head.safetensors`:
//   score.weight [1, hidden], score.bias [1], embedding.weight [2m, hidden] (m >= 0),
//   likelihood.weight [J, 1] (a), likelihood.bias [J] (d), likelihood.out [1, J] (c)
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModel } from '../models/registry.js';
import type { CausalLMBase } from '../models/causal_lm.js';
import { chunkedLogprobs } from '../models/chunked_logprobs.js';
import { ChatTemplate, promptIds } from '../text/chat_template.js';
import { Tokenizer } from '../text/tokenizer.js';
import { cat, keep, linear, noGrad, SafetensorsFile, saveSafetensors, tensor, tidy, zeros, type DType, type Tensor } from '../torch/index.js';
import { JudgeError, judgeDtype, type PreferenceOracle, type PreferenceQuery } from './oracle.js';
import { sigmoid } from './oracle.js';

export const PREFERENCE_HEAD_FILE = 'preference_head.safetensors';

/** The head's parameters (tensors on the backbone's device). */
export interface PreferenceHead {
  scoreWeight: Tensor; // [1, H]
  scoreBias: Tensor; // [1]
  /** g(l) = out . tanh(weight l + bias): [J, 1], [J], [1, J]. */
  likelihood: { weight: Tensor; bias: Tensor; out: Tensor };
  embedding: Tensor; // [2m, H]
}

/** All the head's tensors. */
export function headTensors(head: PreferenceHead): Tensor[] {
  return [head.scoreWeight, head.scoreBias, head.likelihood.weight, head.likelihood.bias, head.likelihood.out, head.embedding];
}

/** [N, 1 + 2m]: each response's score r = w.h + g(l) + b and preference embedding v = E h, from pooled h [N, H] and l [N]. */
export function headFeatures(head: PreferenceHead, pooled: Tensor, loglik: Tensor): Tensor {
  return tidy(() => {
    const g = linear(linear(loglik.unsqueeze(1), head.likelihood.weight, head.likelihood.bias).tanh(), head.likelihood.out);
    const r = linear(pooled, head.scoreWeight, head.scoreBias).add(g);
    return cat([r, linear(pooled, head.embedding)], 1);
  });
}

/**
 * logit P(a > b) from the features [N, 1 + 2m] of the a's and of the b's (rows paired): r_a - r_b + v_a^T J v_b,
 * J block-diagonal with blocks [[0, 1], [-1, 0]]. Antisymmetric in (a, b).
 */
export function preferenceLogits(fa: Tensor, fb: Tensor): Tensor {
  return tidy(() => {
    const n = fa.size(0);
    const d = fa.size(1) - 1;
    const r = fa.narrow(1, 0, 1).sub(fb.narrow(1, 0, 1)).reshape(n);
    if (d === 0) return r;
    const va = fa.narrow(1, 1, d).reshape(n, d / 2, 2);
    const vb = fb.narrow(1, 1, d).reshape(n, d / 2, 2);
    const even = (v: Tensor) => v.narrow(2, 0, 1);
    const odd = (v: Tensor) => v.narrow(2, 1, 1);
    const skew = even(va).mul(odd(vb)).sub(odd(va).mul(even(vb))).reshape(n, d / 2).sum(1);
    return r.add(skew);
  });
}

/** The same in plain numbers (the judge's features are read back once per batch). */
export function preferenceLogit(fa: readonly number[], fb: readonly number[]): number {
  let z = fa[0]! - fb[0]!;
  for (let i = 1; i + 1 < fa.length; i += 2) z += fa[i]! * fb[i + 1]! - fa[i + 1]! * fb[i]!;
  return z;
}

/** Writes the head (detached copies: the tensors may be a training run's parameters). */
export function savePreferenceHead(dir: string, head: PreferenceHead): void {
  tidy(() => noGrad(() => {
    const d = (t: Tensor): Tensor => t.detach();
    saveSafetensors(join(dir, PREFERENCE_HEAD_FILE), new Map([
      ['score.weight', d(head.scoreWeight)],
      ['score.bias', d(head.scoreBias)],
      ['likelihood.weight', d(head.likelihood.weight)],
      ['likelihood.bias', d(head.likelihood.bias)],
      ['likelihood.out', d(head.likelihood.out)],
      ['embedding.weight', d(head.embedding)],
    ]), { format: 'general-preference' });
  }));
}

/** Reads `<dir>/preference_head.safetensors` onto the backbone's dtype and device, checking every shape. */
export function loadPreferenceHead(dir: string, hidden: number, opts: { dtype?: DType; device?: string } = {}): PreferenceHead {
  const path = join(resolve(dir), PREFERENCE_HEAD_FILE);
  if (!existsSync(path)) throw new JudgeError(`${path}: no preference head`);
  const f = SafetensorsFile.open(path);
  const shape = (name: string): number[] => {
    const e = f.entries.get(name);
    if (!e) throw new JudgeError(`${path}: missing tensor '${name}'`);
    return e.shape;
  };
  const sw = shape('score.weight');
  if (sw.length !== 2 || sw[0] !== 1 || sw[1] !== hidden) throw new JudgeError(`${path}: 'score.weight' has shape [${sw.join(', ')}], expected [1, ${hidden}]`);
  const sb = shape('score.bias');
  if (sb.length !== 1 || sb[0] !== 1) throw new JudgeError(`${path}: 'score.bias' has shape [${sb.join(', ')}], expected [1]`);
  const lw = shape('likelihood.weight');
  const j = lw[0]!;
  if (lw.length !== 2 || lw[1] !== 1) throw new JudgeError(`${path}: 'likelihood.weight' has shape [${lw.join(', ')}], expected [J, 1]`);
  const lb = shape('likelihood.bias');
  if (lb.length !== 1 || lb[0] !== j) throw new JudgeError(`${path}: 'likelihood.bias' has shape [${lb.join(', ')}], expected [${j}]`);
  const lo = shape('likelihood.out');
  if (lo.length !== 2 || lo[0] !== 1 || lo[1] !== j) throw new JudgeError(`${path}: 'likelihood.out' has shape [${lo.join(', ')}], expected [1, ${j}]`);
  const ew = shape('embedding.weight');
  if (ew.length !== 2 || ew[1] !== hidden || ew[0]! % 2 !== 0) throw new JudgeError(`${path}: 'embedding.weight' has shape [${ew.join(', ')}], expected [2m, ${hidden}]`);
  const load = (name: string) => keep(f.load(name, opts));
  return { scoreWeight: load('score.weight'), scoreBias: load('score.bias'), likelihood: { weight: load('likelihood.weight'), bias: load('likelihood.bias'), out: load('likelihood.out') }, embedding: load('embedding.weight') };
}

/** chat(prompt, response) as token ids; the response (with EOS) is ids[start..]. */
export interface ResponseSequence {
  ids: number[];
  start: number;
}

/**
 * Token ids of chat(prompt, response): the prompt as the chat template renders it for generation (as the
 * policy sees it), then the response and EOS; truncated from the left to maxLength tokens.
 */
export function responseSequence(tok: Tokenizer, chat: ChatTemplate | undefined, prompt: string, response: string, maxLength: number): ResponseSequence {
  const p = promptIds(tok, prompt, chat); // special tokens by the one rule (src/text/chat_template.ts)
  const ids = [...p, ...tok.encode(response, { addSpecialTokens: false })];
  if (tok.eosTokenId !== undefined) ids.push(tok.eosTokenId);
  const cut = Math.max(0, ids.length - maxLength);
  return { ids: ids.slice(cut), start: Math.max(1, p.length - cut) };
}

/**
 * Features [N, 1 + 2m] of sequences (right-padded into one batch, one forward pass): the hidden state at each
 * one's last token and the log-likelihood of its response tokens.
 */
export function sequenceFeatures(backbone: CausalLMBase, head: PreferenceHead, seqs: readonly ResponseSequence[], pad: number): Tensor {
  const n = seqs.length;
  const l = Math.max(2, ...seqs.map((s) => s.ids.length));
  const ids = new BigInt64Array(n * l).fill(BigInt(pad));
  const mask = new BigInt64Array(n * l);
  const last = new BigInt64Array(n);
  // The response's positions: hidden row (i, j - 1) predicts token (i, j).
  const rows: bigint[] = [];
  const targets: bigint[] = [];
  const owner: number[] = [];
  seqs.forEach((s, i) => {
    s.ids.forEach((t, j) => {
      ids[i * l + j] = BigInt(t);
      mask[i * l + j] = 1n;
    });
    for (let j = Math.max(1, s.start); j < s.ids.length; j++) {
      rows.push(BigInt(i * l + j - 1));
      targets.push(BigInt(s.ids[j]!));
      owner.push(i);
    }
    last[i] = BigInt(i * l + s.ids.length - 1);
  });
  const r = rows.length;
  const member = new Float32Array(n * r);
  owner.forEach((i, k) => (member[i * r + k] = 1));
  return tidy(() => {
    const dev = backbone.device;
    const h = backbone.hidden({ inputIds: tensor(ids, { shape: [n, l], device: dev }), attentionMask: tensor(mask, { shape: [n, l], device: dev }) });
    const d = h.size(2);
    const flat = h.reshape(n * l, d);
    const pooled = flat.indexSelect(0, tensor(last, { shape: [n], device: dev }));
    if (r === 0) return headFeatures(head, pooled, zeros([n], { dtype: pooled.dtype, device: dev }));
    // log p(y | prompt): the LM head on the response's rows only, in chunks of at most 64 M logits.
    const hs = flat.indexSelect(0, tensor(BigInt64Array.from(rows), { shape: [r], device: dev }));
    const tg = tensor(BigInt64Array.from(targets), { shape: [r], device: dev });
    const lp = chunkedLogprobs((x) => backbone.logits(x), hs, tg, { vocabSize: backbone.config.vocabSize, form: 'gather' });
    const loglik = tensor(member, { shape: [n, r], device: dev }).matmul(lp).to(pooled.dtype);
    return headFeatures(head, pooled, loglik);
  });
}

export interface GeneralPreferenceJudgeOptions {
  dtype?: string;
  device?: string;
  /** Sequences per forward pass (default 32). */
  batchSize?: number;
  /** Tokens kept per sequence, from the right (default: the model's max_position_embeddings). */
  maxLength?: number;
}

export class GeneralPreferenceJudge implements PreferenceOracle {
  readonly positionBiased = false;
  readonly name: string;
  readonly batchSize: number;
  readonly maxLength: number;

  constructor(readonly backbone: CausalLMBase, readonly head: PreferenceHead, readonly tokenizer: Tokenizer, readonly chat: ChatTemplate | undefined, dir: string, opts: GeneralPreferenceJudgeOptions = {}) {
    this.name = `pairwise:${dir}`;
    this.batchSize = opts.batchSize ?? 32;
    this.maxLength = opts.maxLength ?? backbone.config.maxPositions;
  }

  static load(dir: string, opts: GeneralPreferenceJudgeOptions = {}): GeneralPreferenceJudge {
    const dtype = judgeDtype('pairwise judge', opts.dtype);
    const backbone = loadModel(dir, { dtype, device: opts.device });
    try {
      backbone.eval();
      const head = loadPreferenceHead(dir, backbone.config.hiddenSize, { dtype: backbone.dtype, device: backbone.device });
      const tok = Tokenizer.fromFolder(dir);
      const chat = ChatTemplate.hasTemplate(dir) ? ChatTemplate.fromFolder(dir, { specialTokens: tok.specialTokens }) : undefined;
      return new GeneralPreferenceJudge(backbone, head, tok, chat, dir, opts);
    } catch (e) {
      backbone.dispose();
      throw e;
    }
  }

  /** Features [1 + 2m] of each (prompt, response), each distinct one computed once. */
  features(items: readonly { prompt: string; response: string }[]): number[][] {
    const key = (p: string, r: string) => JSON.stringify([p, r]);
    const index = new Map<string, number>();
    const seqs: ResponseSequence[] = [];
    const slot = items.map(({ prompt, response }) => {
      const k = key(prompt, response);
      let i = index.get(k);
      if (i === undefined) {
        i = seqs.length;
        index.set(k, i);
        seqs.push(responseSequence(this.tokenizer, this.chat, prompt, response, this.maxLength));
      }
      return i;
    });
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[a]!.ids.length - seqs[b]!.ids.length);
    const feats = new Array<number[]>(seqs.length);
    const pad = this.tokenizer.padTokenId ?? 0;
    for (let s = 0; s < order.length; s += this.batchSize) {
      const idx = order.slice(s, s + this.batchSize);
      const flat = tidy(() => noGrad(() => Array.from(sequenceFeatures(this.backbone, this.head, idx.map((i) => seqs[i]!), pad).float().cpu().toTypedArray() as Float32Array)));
      const w = flat.length / idx.length;
      idx.forEach((i, j) => (feats[i] = flat.slice(j * w, (j + 1) * w)));
    }
    return slot.map((i) => feats[i]!);
  }

  /** logit P(a > b) per query. */
  logits(batch: PreferenceQuery[]): number[] {
    const f = this.features(batch.flatMap((q) => [{ prompt: q.prompt, response: q.a }, { prompt: q.prompt, response: q.b }]));
    return batch.map((_, i) => preferenceLogit(f[2 * i]!, f[2 * i + 1]!));
  }

  async prefer(batch: PreferenceQuery[]): Promise<number[]> {
    return this.logits(batch).map(sigmoid);
  }

  dispose(): void {
    this.backbone.dispose();
    for (const t of headTensors(this.head)) t.dispose();
  }
}
