// A sparse mixture-of-experts feed-forward (Qwen3-MoE's Qwen3MoeSparseMoeBlock, Mixtral's MixtralSparseMoeBlock):
//   p = softmax(router(x)) in float32, over numExperts
//   the topK experts of each token by p, their weights p_e (renormalised to sum to one with normTopkProb)
//   y = sum over the chosen e of p_e * expert_e(x), expert_e a gated MLP down(act(gate(x)) * up(x))
// Each expert runs once, on the tokens routed to it (gathered, in token order), and the weighted outputs are added
// back in expert order, as transformers adds them. The routing is read on the host once per layer (which experts got
// which tokens); experts that got none are skipped and receive no gradient. A pass that must not read back to the host
// (the static decoding step, captured as a CUDA graph) runs every expert on every token instead, weighted by the routing
// (zero for the experts not chosen): the same sum, in the same order, at numExperts / topK times the MLP arithmetic,
// which decoding's few tokens per step afford (its cost is reading the experts' weights, and a batch reads most anyway).
import { keep, ones, tensor, tidy, zeros, type Tensor } from '../torch/index.js';
import { Module } from '../nn/module.js';
import { Linear, RMSNorm } from '../nn/layers.js';
import type { Context } from './causal_lm.js';
import type { ModelConfig } from './config.js';
import { Attention, GatedMlp, type MlpNames } from './llama.js';

/** How a checkpoint names an expert's three projections: Qwen3-MoE's gate_proj / up_proj / down_proj, Mixtral's w1 / w3 / w2. */
export type ExpertNames = MlpNames;

export interface SparseMoeOptions {
  names: ExpertNames;
  /**
   * Whether the routing weights stay float32 when multiplying the experts' outputs (Mixtral's); else they are cast to
   * the activations' dtype first (Qwen3-MoE's). The same in float32.
   */
  weightsInFloat?: boolean;
}

/** The routing of n tokens: which tokens each expert takes, in expert order. */
interface Routing {
  /** Per expert, how many of the routed (token, slot) pairs it takes. */
  counts: number[];
  /** The routed pairs' token indices, grouped by expert (expert 0's first), in token order within each. */
  tokens: Tensor;
  /** The same pairs' flat indices into the [n, topK] routing weights. */
  slots: Tensor;
}

export class SparseMoeBlock extends Module {
  /** The router: [numExperts, hidden], no bias (Hugging Face names it `gate`). */
  gate: Linear;
  /** Each expert: a gated MLP of the expert intermediate size, its projections named as the checkpoint names them. */
  experts: GatedMlp[];
  readonly topK: number;
  readonly normTopkProb: boolean;
  readonly weightsInFloat: boolean;

  constructor(cfg: ModelConfig, opts: SparseMoeOptions) {
    super();
    const moe = cfg.moe!;
    this.gate = this.module('gate', new Linear(cfg.hiddenSize, moe.numExperts, false));
    const expert = { hiddenSize: cfg.hiddenSize, intermediateSize: moe.expertIntermediateSize, mlpBias: false, hiddenAct: cfg.hiddenAct };
    this.experts = this.moduleList('experts', Array.from({ length: moe.numExperts }, () => new GatedMlp(expert, opts.names)));
    this.topK = moe.topK;
    this.normTopkProb = moe.normTopkProb;
    this.weightsInFloat = opts.weightsInFloat ?? false;
  }

  /**
   * y for x [..., hidden]; with `routerLogits`, the router's logits [tokens, experts] appended to it (the caller's to
   * dispose); `capturable`: no read back to the host (every expert on every token, see the top of this file).
   */
  forward(x: Tensor, routerLogits: Tensor[] | null = null, capturable = false): Tensor {
    return tidy(() => {
      const shape = x.shape;
      const hidden = shape[shape.length - 1]!;
      const flat = x.reshape(-1, hidden);
      const n = flat.size(0);
      const logits = this.gate.forward(flat);
      if (routerLogits) routerLogits.push(keep(logits));
      let [weights, chosen] = logits.float().softmax(-1).topk(this.topK, -1);
      if (this.normTopkProb) weights = weights.div(weights.sum(-1, true));
      if (!this.weightsInFloat) weights = weights.to(logits.dtype);
      if (capturable) {
        const dense = zeros([n, this.experts.length], { dtype: weights.dtype, device: x.device }).scatter(1, chosen, weights);
        let y = zeros([n, hidden], { dtype: x.dtype, device: x.device });
        this.experts.forEach((e, i) => {
          y = y.add(e.forward(flat).mul(dense.narrow(1, i, 1)).to(x.dtype));
        });
        return y.view(...shape);
      }
      const r = this.route(chosen, x.device);
      const w = weights.reshape(-1).indexSelect(0, r.slots).unsqueeze(-1);
      // Each expert's weighted output added into y in place as it comes (as transformers' index_add_), its own
      // intermediates freed before the next expert's.
      const xs = flat.indexSelect(0, r.tokens);
      const y = zeros([n, hidden], { dtype: x.dtype, device: x.device });
      let start = 0;
      r.counts.forEach((count, e) => {
        if (count > 0) {
          tidy(() => {
            let out = this.experts[e]!.forward(xs.narrow(0, start, count)).mul(w.narrow(0, start, count));
            if (out.dtype !== x.dtype) out = out.to(x.dtype);
            y.indexAdd_(0, r.tokens.narrow(0, start, count), out);
          });
        }
        start += count;
      });
      return y.view(...shape);
    });
  }

  /** Groups the (token, slot) pairs of `chosen` [n, topK] by expert, from one read of it on the host. */
  private route(chosen: Tensor, device: string): Routing {
    const ids = chosen.toTypedArray() as BigInt64Array;
    const counts = new Array<number>(this.experts.length).fill(0);
    for (const e of ids) counts[Number(e)]!++;
    const next = new Array<number>(this.experts.length);
    for (let e = 0, at = 0; e < counts.length; e++) {
      next[e] = at;
      at += counts[e]!;
    }
    const slots = new BigInt64Array(ids.length);
    const tokens = new BigInt64Array(ids.length);
    for (let j = 0; j < ids.length; j++) {
      const at = next[Number(ids[j])]!++;
      slots[at] = BigInt(j);
      tokens[at] = BigInt(Math.floor(j / this.topK));
    }
    return { counts, tokens: tensor(tokens, { device }), slots: tensor(slots, { device }) };
  }
}

/**
 * The Switch Transformer's load-balancing loss over the sparse layers' router logits, as transformers' (5.x)
 * load_balancing_loss_func computes it, which TRL's trainers add times router_aux_loss_coef:
 *   numExperts * sum_e f_e P_e,  f_e = (top-k picks of e) / tokens,  P_e = (sum of e's router probability) / tokens,
 * both summed over every layer's tokens (so the picks sum to topK per token and layer); `mask` [tokens] (1 for real
 * tokens, the layers' rows flattened as the logits are) leaves padding out. Only P carries a gradient.
 */
export function loadBalancingLoss(routerLogits: readonly Tensor[], topK: number, mask: Tensor | null = null): Tensor {
  return tidy(() => {
    const numExperts = routerLogits[0]!.size(-1);
    const device = routerLogits[0]!.device;
    // Without a mask every row counts: a mask of ones.
    const m = mask ? mask.reshape(-1).to('float32') : ones([routerLogits[0]!.size(0)], { device });
    let picks = zeros([numExperts], { device });
    let probSum = zeros([numExperts], { device });
    for (const l of routerLogits) {
      const probs = l.float().softmax(-1);
      const chosen = probs.topk(topK, -1)[1].reshape(-1);
      picks = picks.scatterAdd(0, chosen, m.repeatInterleave(topK, 0));
      probSum = probSum.add(probs.mul(m.unsqueeze(-1)).sum(0));
    }
    const total = m.sum().mul(routerLogits.length);
    return picks.div(total).mul(probSum.div(total)).sum().mul(numExperts);
  });
}

/** Llama's pre-norm decoder layer with a mixture of experts, or a dense MLP where the config says so, as its feed-forward. */
export class MoeDecoderLayer extends Module {
  self_attn: Attention;
  readonly ff: SparseMoeBlock | GatedMlp;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  /** `ffName`: the feed-forward's name in the checkpoint (Qwen3-MoE's mlp, Mixtral's block_sparse_moe). */
  constructor(cfg: ModelConfig, layerIdx: number, ffName: string, opts: SparseMoeOptions) {
    super();
    this.self_attn = this.module('self_attn', new Attention(cfg, layerIdx, cfg.layerTypes[layerIdx]!));
    this.ff = this.module(ffName, cfg.moe!.sparseLayers[layerIdx] ? new SparseMoeBlock(cfg, opts) : new GatedMlp(cfg));
    this.input_layernorm = this.module('input_layernorm', new RMSNorm(cfg.hiddenSize, cfg.normEps));
    this.post_attention_layernorm = this.module('post_attention_layernorm', new RMSNorm(cfg.hiddenSize, cfg.normEps));
  }
  forward(x: Tensor, ctx: Context): Tensor {
    return tidy(() => {
      const h = x.add(this.self_attn.forward(this.input_layernorm.forward(x), ctx));
      const n = this.post_attention_layernorm.forward(h);
      return h.add(this.ff instanceof SparseMoeBlock ? this.ff.forward(n, ctx.routerLogits ?? null, ctx.capturable ?? false) : this.ff.forward(n));
    });
  }
}
