// LlamaForCausalLM (Llama 2/3, SmolLM2, ...), and the decoder that Mistral, Qwen2, Qwen3 and SmolLM3 share with it:
//   x = embed(ids)
//   per layer: x = x + attn(rmsnorm(x)); x = x + mlp(rmsnorm(x))
//   logits = lm_head(rmsnorm(x))
// with rotary positions, grouped-query attention and a gated SiLU MLP.
import { linear, tidy, type Tensor } from '../torch/index.js';
import { Module } from '../nn/module.js';
import { activation, Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { attend } from '../nn/attention.js';
import { CausalLMBase, type Context, type ForwardInput } from './causal_lm.js';
import type { LayerType, ModelConfig } from './config.js';
import { applyRotary, Rotary } from './rope.js';

export interface AttentionOptions {
  /** Score scale; 1/sqrt(head_dim) by default. */
  scale?: number;
  /** Bias on q, k, v (Qwen2) and on o (Llama's attention_bias). */
  qkvBias?: boolean;
  oBias?: boolean;
  softcap?: number | null;
  /** The q/k norms' weight offset (Gemma's RMSNorm scales by 1 + w). */
  normOffset?: number;
  /** The q/k norms scale in float32 before casting (Gemma's, OLMo 2's); default: with an offset. */
  normInFloat?: boolean;
}

export class Attention extends Module {
  /** q, k and v (or, with fusedProjections, their rows of Phi-3's qkv_proj). */
  q_proj: Linear | null = null;
  k_proj: Linear | null = null;
  v_proj: Linear | null = null;
  qkv_proj: Linear | null = null;
  o_proj: Linear;
  /** RMSNorms of q and k (qkNorm): over each head's dimensions (Qwen3, Gemma 3), or the whole projection (OLMo 2). */
  q_norm: RMSNorm | null = null;
  k_norm: RMSNorm | null = null;
  private qkNormOver: 'head' | 'projection' | null = null;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly scale: number;
  readonly softcap: number | null;
  /** Whether this layer rotates q and k (false: a NoPE layer, SmolLM3's). */
  readonly rope: boolean;

  constructor(cfg: ModelConfig, readonly layerIdx: number, readonly layerType: LayerType, opts: AttentionOptions = {}) {
    super();
    this.numHeads = cfg.numHeads;
    this.numKvHeads = cfg.numKvHeads;
    this.headDim = cfg.headDim;
    this.scale = opts.scale ?? 1 / Math.sqrt(cfg.headDim);
    this.softcap = opts.softcap ?? null;
    this.rope = cfg.ropeLayers?.[layerIdx] ?? true;
    const qkvBias = opts.qkvBias ?? cfg.qkvBias;
    if (cfg.fusedProjections) {
      this.qkv_proj = this.module('qkv_proj', new Linear(cfg.hiddenSize, (cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim, qkvBias));
    } else {
      this.q_proj = this.module('q_proj', new Linear(cfg.hiddenSize, cfg.numHeads * cfg.headDim, qkvBias));
      this.k_proj = this.module('k_proj', new Linear(cfg.hiddenSize, cfg.numKvHeads * cfg.headDim, qkvBias));
      this.v_proj = this.module('v_proj', new Linear(cfg.hiddenSize, cfg.numKvHeads * cfg.headDim, qkvBias));
    }
    this.o_proj = this.module('o_proj', new Linear(cfg.numHeads * cfg.headDim, cfg.hiddenSize, opts.oBias ?? cfg.attentionBias));
    if (cfg.qkNorm) {
      const [q, k] = cfg.qkNorm === 'head' ? [cfg.headDim, cfg.headDim] : [cfg.numHeads * cfg.headDim, cfg.numKvHeads * cfg.headDim];
      this.q_norm = this.module('q_norm', new RMSNorm(q, cfg.normEps, opts.normOffset ?? 0, opts.normInFloat));
      this.k_norm = this.module('k_norm', new RMSNorm(k, cfg.normEps, opts.normOffset ?? 0, opts.normInFloat));
      this.qkNormOver = cfg.qkNorm;
    }
  }

  forward(x: Tensor, ctx: Context): Tensor {
    return tidy(() => {
      const [b, l] = x.shape as [number, number];
      // [b, l, n * d] -> [b, n, l, d], normed first where the model has q/k norms: over d, or over n * d.
      const heads = (t: Tensor, n: number, norm: RMSNorm | null = null): Tensor => {
        if (norm && this.qkNormOver === 'projection') t = norm.forward(t);
        const h = t.view(b, l, n, this.headDim);
        return (norm && this.qkNormOver === 'head' ? norm.forward(h) : h).transpose(1, 2);
      };
      let qx: Tensor, kx: Tensor, vx: Tensor;
      if (this.qkv_proj) {
        const qkv = this.qkv_proj.forward(x);
        const [nq, nk] = [this.numHeads * this.headDim, this.numKvHeads * this.headDim];
        [qx, kx, vx] = [qkv.narrow(-1, 0, nq).contiguous(), qkv.narrow(-1, nq, nk).contiguous(), qkv.narrow(-1, nq + nk, nk).contiguous()];
      } else {
        [qx, kx, vx] = [this.q_proj!.forward(x), this.k_proj!.forward(x), this.v_proj!.forward(x)];
      }
      let q = heads(qx, this.numHeads, this.q_norm);
      let k = heads(kx, this.numKvHeads, this.k_norm);
      let v = heads(vx, this.numKvHeads);
      // Sliding-window layers with a rope of their own (Gemma 3) take its tables.
      const [cos, sin] = this.layerType === 'sliding_attention' && ctx.slidingCos ? [ctx.slidingCos, ctx.slidingSin!] : [ctx.cos!, ctx.sin!];
      if (this.rope) {
        q = applyRotary(q, cos, sin);
        k = applyRotary(k, cos, sin);
      }
      if (ctx.cache) [k, v] = ctx.cache.update(this.layerIdx, k, v);
      const mask = this.layerType === 'sliding_attention' ? ctx.slidingMask : ctx.fullMask;
      const varlen = ctx.varlen ? { ...ctx.varlen, slidingWindow: this.layerType === 'sliding_attention' ? ctx.varlen.slidingWindow : null } : null;
      const y = attend(q, k, v, { mask, causal: mask === null, emptyRows: ctx.emptyRows, scale: this.scale, softcap: this.softcap, fused: ctx.fused, varlen });
      return this.o_proj.forward(y.transpose(1, 2).reshape(b, l, this.numHeads * this.headDim));
    });
  }
}

/** How a checkpoint names a gated MLP's three projections (Llama's gate_proj / up_proj / down_proj; Mixtral's experts' w1 / w3 / w2). */
export interface MlpNames {
  gate: string;
  up: string;
  down: string;
}

export const LLAMA_MLP_NAMES: MlpNames = { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };

/**
 * down(act(gate(x)) * up(x)); with fusedProjections, gate and up are the halves of Phi-3's gate_up_proj. `names`: the
 * projections' names in the checkpoint (a mixture of experts' experts: sparse_moe.ts).
 */
export class GatedMlp extends Module {
  gate_proj: Linear | null = null;
  up_proj: Linear | null = null;
  gate_up_proj: Linear | null = null;
  down_proj: Linear;
  readonly act: (x: Tensor) => Tensor;
  constructor(cfg: Pick<ModelConfig, 'hiddenSize' | 'intermediateSize' | 'mlpBias' | 'hiddenAct' | 'fusedProjections'>, readonly names: MlpNames = LLAMA_MLP_NAMES) {
    super();
    if (cfg.fusedProjections) {
      this.gate_up_proj = this.module('gate_up_proj', new Linear(cfg.hiddenSize, 2 * cfg.intermediateSize, cfg.mlpBias));
    } else {
      this.gate_proj = this.module(names.gate, new Linear(cfg.hiddenSize, cfg.intermediateSize, cfg.mlpBias));
      this.up_proj = this.module(names.up, new Linear(cfg.hiddenSize, cfg.intermediateSize, cfg.mlpBias));
    }
    this.down_proj = this.module(names.down, new Linear(cfg.intermediateSize, cfg.hiddenSize, cfg.mlpBias));
    this.act = activation(cfg.hiddenAct);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      if (this.gate_up_proj) {
        const gu = this.gate_up_proj.forward(x);
        const n = gu.size(-1) / 2;
        return this.down_proj.forward(gu.narrow(-1, n, n).mul(this.act(gu.narrow(-1, 0, n))));
      }
      return this.down_proj.forward(this.act(this.gate_proj!.forward(x)).mul(this.up_proj!.forward(x)));
    });
  }
}

export class LlamaDecoderLayer extends Module {
  self_attn: Attention;
  mlp: GatedMlp;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  constructor(cfg: ModelConfig, layerIdx: number) {
    super();
    this.self_attn = this.module('self_attn', new Attention(cfg, layerIdx, cfg.layerTypes[layerIdx]!));
    this.mlp = this.module('mlp', new GatedMlp(cfg));
    this.input_layernorm = this.module('input_layernorm', new RMSNorm(cfg.hiddenSize, cfg.normEps));
    this.post_attention_layernorm = this.module('post_attention_layernorm', new RMSNorm(cfg.hiddenSize, cfg.normEps));
  }
  forward(x: Tensor, ctx: Context): Tensor {
    return tidy(() => {
      const h = x.add(this.self_attn.forward(this.input_layernorm.forward(x), ctx));
      return h.add(this.mlp.forward(this.post_attention_layernorm.forward(h)));
    });
  }
}

/** A decoder layer of this family (Llama's, or another norm arrangement: OLMo 2's). */
export type DecoderLayer = Module & { forward(x: Tensor, ctx: Context): Tensor };

export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: DecoderLayer[];
  norm: RMSNorm;
  constructor(cfg: ModelConfig, layer: (cfg: ModelConfig, i: number) => DecoderLayer = (c, i) => new LlamaDecoderLayer(c, i), normInFloat = false) {
    super();
    this.embed_tokens = this.module('embed_tokens', new Embedding(cfg.vocabSize, cfg.hiddenSize));
    this.layers = this.moduleList('layers', Array.from({ length: cfg.numLayers }, (_, i) => layer(cfg, i)));
    this.norm = this.module('norm', new RMSNorm(cfg.hiddenSize, cfg.normEps, 0, normInFloat));
  }
}

export class LlamaForCausalLM extends CausalLMBase {
  model: LlamaModel;
  lm_head: Linear | null;
  readonly rotary: Rotary;

  constructor(cfg: ModelConfig, layer?: (cfg: ModelConfig, i: number) => DecoderLayer, normInFloat = false) {
    super(cfg);
    this.model = this.module('model', new LlamaModel(cfg, layer, normInFloat));
    this.lm_head = cfg.tieWordEmbeddings ? null : this.module('lm_head', new Linear(cfg.hiddenSize, cfg.vocabSize, false));
    this.rotary = new Rotary(cfg.rope, cfg.headDim);
  }

  hidden(input: ForwardInput): Tensor {
    return tidy(() => {
      const { positions, fullMask, slidingMask, emptyRows, varlen } = this.prepare(input, this.config.slidingWindow);
      const { cos, sin } = this.rotary.tables(positions, this.dtype);
      const ctx: Context = { cos, sin, fullMask, slidingMask, emptyRows, cache: input.cache ?? null, fused: this.fused, varlen, routerLogits: input.routerLogits ?? null, capturable: !!input.attentionBias };
      let x = this.model.embed_tokens.forward(input.inputIds);
      x = this.runLayers(x, this.model.layers, ctx, input.tape);
      this.advanceCache(input);
      return this.model.norm.forward(x);
    });
  }

  logits(hidden: Tensor): Tensor {
    return this.lm_head ? this.lm_head.forward(hidden) : linear(hidden, this.model.embed_tokens.weight);
  }

  protected override moveBuffers(device: string): void {
    this.rotary.to(device);
  }

  override dispose(): void {
    super.dispose();
    this.rotary.dispose();
  }
}
